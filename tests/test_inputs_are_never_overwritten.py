"""No command and no library function writes over a file it reads, however the output path is
spelled (the same path, ./relative, absolute, a symbolic link, a second hard link); a training
run never writes into, or cleans up, a folder of someone else's files; whatever gates or
checks a file writes it under a temporary name and names it only once it passed, so an
interrupt during the check leaves nothing under the final name."""
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

import igcv3_gluon
from igcv3_gluon import cifar, convert, im2rec
from igcv3_gluon.deploy import export, export_onnx
from igcv3_gluon.deploy.cli import main as deploy
from igcv3_gluon.errors import OutputConflict

from conftest import ROOT, digits_cifar


def _digests(paths):
    import hashlib
    return {p: hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths}


def _error_lines(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if "error" in line]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 10-class CIFAR model as an export (symbol, params, -meta.json)."""
    folder = tmp_path_factory.mktemp("tiny-export")
    net = igcv3_gluon.get_model("cifar_igcv3_d_0.5", multiplier=0.25, depths=(1,) * 7)
    net.initialize(mx.init.Xavier())
    prefix = str(folder / "m")
    export(net, prefix, (1, 3, 32, 32), meta=dict(model="cifar_igcv3_d_0.5", classes=10,
                                                    mean=[0, 0, 0], std=[1, 1, 1]))
    return prefix


SPELLINGS = ["same", "dot-relative", "absolute", "symlink", "hardlink"]


def _spelled(path, how, folder):
    """An output path that names the existing file ``path``, spelled ``how``."""
    if how == "same":
        return path
    if how == "dot-relative":
        return os.path.join(".", os.path.relpath(path))
    if how == "absolute":
        return os.path.abspath(path)
    link = os.path.join(folder, "link-%s%s" % (how, os.path.splitext(path)[1]))
    (os.symlink if how == "symlink" else os.link)(path, link)
    return link


@pytest.mark.parametrize("how", SPELLINGS)
def test_no_deploy_command_writes_over_a_file_it_reads(tiny, tmp_path, capsys, monkeypatch,
                                                      how):
    monkeypatch.chdir(os.path.dirname(tiny))
    inputs = [tiny + s for s in ("-symbol.json", "-0000.params", "-meta.json")]
    before = _digests(inputs)
    calib = str(tmp_path / "calib.npy")
    np.save(calib, np.zeros((32, 3, 32, 32), np.float32))
    cases = [["onnx", tiny, _spelled(inputs[0], how, str(tmp_path))],
             ["export", "cifar_igcv3_d_0.5", "--multiplier", "0.25", "--depths",
              "1,1,1,1,1,1,1", "--params", _spelled(inputs[1], how, str(tmp_path)), "--out",
              tiny]]
    if how == "same":      # prefix outputs: the input prefix itself, and an IR over the meta
        cases += [["optimize", tiny, tiny], ["openvino", tiny, tiny],
                  ["quantize", tiny, tiny, "--calib-npy", calib]]
    for argv in cases:
        assert deploy(argv) == 2, argv
        lines = _error_lines(capsys)
        assert len(lines) == 1 and "which this command reads: writing it would destroy the " \
            "input; give another output" in lines[0], (argv, lines)
    assert _digests(inputs) == before


def test_library_writers_refuse_their_own_inputs(tiny, tmp_path):
    from igcv3_gluon.deploy.int8 import quantize_ir
    from igcv3_gluon.deploy.openvino import to_openvino
    from igcv3_gluon.deploy.optimize import optimize_files
    from igcv3_gluon.deploy.quantize import quantize, quantize_gated
    inputs = [tiny + s for s in ("-symbol.json", "-0000.params", "-meta.json")]
    before = _digests(inputs)
    link = str(tmp_path / "alias")                     # alias-symbol.json -> the input's
    os.symlink(inputs[0], link + "-symbol.json")
    calib = [mx.nd.zeros((4, 3, 32, 32))]
    for call in (lambda: export_onnx(tiny, _spelled(inputs[1], "hardlink", str(tmp_path)),
                                     (1, 3, 32, 32)),
                 lambda: optimize_files(tiny, link),
                 lambda: to_openvino(tiny, tiny),                  # tiny-meta.json
                 lambda: quantize(tiny, link, calib),
                 lambda: quantize_gated(tiny, os.path.abspath(tiny), calib)):
        with pytest.raises(OutputConflict, match="which this command reads"):
            call()
    float_onnx = str(tmp_path / "float.onnx")
    open(float_onnx, "w").close()
    with pytest.raises(OutputConflict, match="float.onnx is the float model, which this "
                                             "command reads"):
        quantize_ir(float_onnx, float_onnx[:-len(".onnx")],
                    [np.zeros((1, 3, 32, 32), np.float32)])
    assert _digests(inputs) == before
    assert sorted(os.listdir(os.path.dirname(tiny))) == ["m-0000.params", "m-meta.json",
                                                         "m-symbol.json"]


def test_converters_and_the_packer_refuse_to_write_over_what_they_read(tmp_path, capsys):
    weights = str(tmp_path / "pub.params")
    open(weights, "wb").write(b"the publisher's file")
    assert convert.main(["imgclsmob", weights, "./" + os.path.relpath(weights),
                         "--model", "igcv3_d_0.5"]) == 2
    assert "pub.params is the imgclsmob weights being converted, which this command reads" \
        in _error_lines(capsys)[0]
    assert open(weights, "rb").read() == b"the publisher's file"
    assert convert.main(["imgclsmob", weights, str(tmp_path), "--model", "igcv3_d_0.5"]) == 2
    line = _error_lines(capsys)[0]
    assert "%s is a folder: give the path of the file to write" % tmp_path in line
    assert ".tmp" not in line
    for out in (str(tmp_path / "new") + "/", ""):                 # a folder, or nothing
        assert convert.main(["imgclsmob", weights, out, "--model", "igcv3_d_0.5"]) == 2
        lines = _error_lines(capsys)
        assert len(lines) == 1 and "names a folder: give the path of the .params file to " \
            "write" in lines[0], lines
    assert not os.path.exists(str(tmp_path / "new"))
    from conftest import fake_image_folder
    root = fake_image_folder(tmp_path / "images", per_class=2, classes=2)
    listed = str(tmp_path / "val.classes.txt")
    open(listed, "w").write("class0\nclass1\n")
    assert im2rec.main([root, str(tmp_path / "val"), "--classes-from", listed,
                        "--no-progress"]) == 2
    assert "val.classes.txt is the --classes-from list, which this command reads" in \
        _error_lines(capsys)[0]
    assert open(listed).read() == "class0\nclass1\n"
    assert not os.path.exists(str(tmp_path / "val.rec"))


def test_a_training_run_refuses_a_folder_of_other_files_and_touches_nothing(tmp_path,
                                                                           capsys):
    data = digits_cifar(tmp_path / "data", 4, 2)
    args = ["--data-dir", data, "--model", "cifar_igcv3_d_0.5", "--multiplier", "0.25",
            "--depths", "1,1,1,1,1,1,1", "--batch-size", "8", "--epochs", "1", "--workers",
            "0", "--no-progress"]
    user = tmp_path / "user"
    (user / "sub").mkdir(parents=True)
    files = {"sub/report.tmp99999": "a report", "curves.png": "my plot",
             "log.jsonl": '{"mine": 1}\n'}
    for name, text in files.items():
        (user / name).write_text(text)
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text('{"name": "another program", "epochs": 3}')
    evaluation = tmp_path / "evaluation"
    evaluation.mkdir()
    (evaluation / "config.json").write_text('{"model": "cifar_igcv3_d_0.5", "evaluated": "x"}')
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "seeds.json").write_text("my seeds")
    (seeds / "notes.txt").write_text("mine")
    lonely = tmp_path / "lonely"                     # a log.txt without the .lock a run takes
    lonely.mkdir()
    (lonely / "log.txt").write_text("my own log\n")
    locked = tmp_path / "locked"                     # and a .lock that no run of ours wrote
    locked.mkdir()
    (locked / ".lock").write_text("")                # as `touch .lock` leaves it
    (locked / "log.txt").write_text("my notes\n")
    for out, extra, message in (
            (lonely, [], "holds files that are not an igcv3-gluon run (log.txt)"),
            (locked, [], "holds files that are not an igcv3-gluon run (.lock, log.txt)"),
            (user, [], "holds files that are not an igcv3-gluon run (curves.png, log.jsonl, "
                       "sub/)"),
            (other, [], "other/config.json is not a config of an igcv3-gluon run"),
            (evaluation, [], "holds an evaluation of cifar_igcv3_d_0.5 (evaluation.json), "
                             "not a training run"),
            (a_file, [], "a-file is a file, not a folder"),
            (seeds, ["--seeds", "2"], "holds files that are not runs of --seeds (notes.txt, "
                                      "seeds.json)")):
        assert cifar.main(args + ["--out-dir", str(out)] + extra) == 2, out
        lines = _error_lines(capsys)
        assert len(lines) == 1 and message in lines[0], lines
    for name, text in files.items():
        assert (user / name).read_text() == text
    assert sorted(os.listdir(str(user))) == ["curves.png", "log.jsonl", "sub"]
    assert sorted(os.listdir(str(other))) == ["config.json"]
    assert sorted(os.listdir(str(seeds))) == ["notes.txt", "seeds.json"]
    assert a_file.read_text() == "x"
    assert os.listdir(str(lonely)) == ["log.txt"]
    assert (locked / ".lock").read_text() == ""
    from igcv3_gluon.train.logbook import check_run_folder
    killed = tmp_path / "killed"             # what a run killed before its config.json leaves
    (killed / "checkpoints").mkdir(parents=True)
    (killed / ".lock").write_text("4242")
    (killed / "log.txt").write_text("2026-12-04 10:00:00 resuming ...\n")
    check_run_folder(str(killed))
    assert (lonely / "log.txt").read_text() == "my own log\n"


def test_a_start_removes_only_the_temporary_files_of_the_runs_own_names(tmp_path):
    from igcv3_gluon.train.logbook import remove_stale_run_files
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "sub").mkdir()
    dead = 2 ** 22 + 12345                           # no such process
    ours = ["log.jsonl.tmp%d" % dead, "config.json.tmp%d" % dead,
            "checkpoints/ckpt-0001-00000.params.tmp%d" % dead]
    theirs = ["notes.txt.tmp%d" % dead, "sub/report.tmp%d" % dead,
              "checkpoints/mine.tmp%d" % dead, "log.jsonl.tmp%d" % os.getpid()]
    for name in ours + theirs:
        (run / name).write_text("x")
    (run / ("export.part%d" % dead)).mkdir()
    removed = remove_stale_run_files(str(run))
    assert sorted(os.path.relpath(p, str(run)) for p in removed) == sorted(
        ours + ["export.part%d" % dead])
    assert all((run / name).exists() for name in theirs)


def _interrupting(*_, **__):
    raise KeyboardInterrupt


def test_an_interrupt_during_a_check_or_gate_leaves_nothing_under_the_final_names(
        tiny, tmp_path, monkeypatch):
    """Ctrl-C while ONNX Runtime, OpenVINO or the INT8 gate judges the new file: the
    staged files are removed and nothing carries the output's name."""
    import importlib

    from igcv3_gluon.deploy import int8, openvino, optimize, quantize
    export_module = importlib.import_module("igcv3_gluon.deploy.export")
    calib = [mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (8, 3, 32, 32)))]
    cases = [
        (export_module, "onnx_difference",
         lambda: export_onnx(tiny, str(tmp_path / "a.onnx"), (1, 3, 32, 32), check=True)),
        (optimize, "max_difference",
         lambda: optimize.optimize_files(tiny, str(tmp_path / "b"), check_shape=(1, 3, 32, 32))),
        (openvino, "ir_difference", lambda: openvino.to_openvino(tiny, str(tmp_path / "f"))),
        (quantize, "accuracy",
         lambda: quantize.quantize_gated(tiny, str(tmp_path / "d"), calib, max_drop=100)),
        (int8, "ir_accuracy",
         lambda: int8.quantize_ir(str(tmp_path / "c.onnx"), str(tmp_path / "e"),
                                  [calib[0].asnumpy()], max_restore=0)),
    ]
    openvino.to_openvino(tiny, str(tmp_path / "c"), check_batches=())   # the ONNX for int8
    keep = sorted(os.listdir(str(tmp_path)))
    for module, name, call in cases:
        with monkeypatch.context() as patch:
            patch.setattr(module, name, _interrupting)
            with pytest.raises(KeyboardInterrupt):
                call()
        assert sorted(os.listdir(str(tmp_path))) == keep, (name, os.listdir(str(tmp_path)))


def test_an_interrupt_while_a_finished_run_exports_leaves_no_half_export(tmp_path):
    """SIGTERM (and SIGINT) while a run writes its exports: exit 130 with the way to finish,
    no file under export/ and no summary.json; the same command writes them."""
    data = digits_cifar(tmp_path / "data", 4, 2)
    out = str(tmp_path / "run")
    args = [sys.executable, "train_cifar.py", "--data-dir", data, "--model",
            "cifar_igcv3_d_0.5", "--multiplier", "0.25", "--depths", "1,1,1,1,1,1,1",
            "--batch-size", "8", "--epochs", "1", "--workers", "0", "--no-progress",
            "--out-dir", out]
    for sig in ("TERM", "INT"):
        proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, IGCV3_GLUON_STOP_AT="export:" + sig))
        assert proc.returncode == 130, proc.stderr[-2000:]
        last = proc.stderr.strip().splitlines()[-1]
        assert last == "train_cifar.py: interrupted while writing the exports of the finished " \
            "run (its 1 epoch(s) are trained and saved in %s): run the same command again to " \
            "write them" % out, last
        assert not os.listdir(os.path.join(out, "export")) if os.path.isdir(
            os.path.join(out, "export")) else True
        assert not os.path.exists(os.path.join(out, "summary.json"))
        assert not [n for n in os.listdir(out) if ".part" in n]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(os.listdir(os.path.join(out, "export"))) == sorted(
        "cifar_igcv3_d_0.5-w0.25%s%s" % (kind, suffix) for kind in ("", "-final")
        for suffix in ("-symbol.json", "-0000.params", "-meta.json"))
    assert os.path.isfile(os.path.join(out, "summary.json"))


def test_the_report_plot_never_replaces_a_file_of_the_runs_it_reads(tmp_path, capsys):
    """``reproduce --collect RUNS --plot PNG``: a PNG path that names any file of a run under
    RUNS (its config.json, log.jsonl, curves.png, however spelled) is refused before
    anything is read or written, as is a missing folder."""
    import json

    from igcv3_gluon import reproduce
    run = tmp_path / "runs" / "C"
    run.mkdir(parents=True)
    files = {"config.json": json.dumps({"model": "cifar_igcv3_d_0.5", "epochs": 1, "seed": 0,
                                        "dataset": "cifar10"}),
             "log.jsonl": json.dumps({"epoch": 1, "val_acc": 0.5}) + "\n",
             "curves.png": "the run's curves"}
    for name, text in files.items():
        (run / name).write_text(text)
    before = _digests([str(run / n) for n in files])
    runs = str(tmp_path / "runs")
    for plot in (str(run / "config.json"), "./" + os.path.relpath(str(run / "log.jsonl")),
                 _spelled(str(run / "curves.png"), "symlink", str(tmp_path))):
        with pytest.raises(SystemExit) as exit_:
            reproduce.main(["--table", "2", "--collect", runs, "--plot", plot])
        assert exit_.value.code == 2
        lines = _error_lines(capsys)
        assert len(lines) == 1 and "is a file of the run %s, which this command reads" % run \
            in lines[0], lines
    with pytest.raises(SystemExit):
        reproduce.main(["--collect", runs, "--plot", str(tmp_path / "no" / "bars.png")])
    assert "the folder %s does not exist" % (tmp_path / "no") in _error_lines(capsys)[0]
    with pytest.raises(SystemExit):
        reproduce.main(["--plot", str(tmp_path / "bars.png")])
    assert "--plot draws the collected runs: give --collect RUNS_DIR too" in \
        _error_lines(capsys)[0]
    assert _digests([str(run / n) for n in files]) == before


def test_ctrl_c_during_int8_calibration_stops_the_command_and_writes_nothing(
        tiny, tmp_path, capsys, monkeypatch):
    """MXNet's calibration reads the layers in a ctypes callback, where a KeyboardInterrupt
    is printed and swallowed: a Ctrl-C arriving there must still end ``deploy quantize``
    (exit 130, one line) with no model written."""
    import ctypes
    import signal
    import time

    from igcv3_gluon.deploy import quantize as quantize_module
    real = quantize_module.quantization.quantize_net_v2

    def calibrating(*args, **kwargs):
        @ctypes.CFUNCTYPE(None)
        def layer_callback():                           # as MXNet's monitor calls back
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
        layer_callback()
        return real(*args, **kwargs)
    monkeypatch.setattr(quantize_module.quantization, "quantize_net_v2", calibrating)
    calib = str(tmp_path / "calib.npy")
    np.save(calib, np.random.RandomState(0).uniform(-1, 1, (32, 3, 32, 32)).astype(np.float32))
    out = str(tmp_path / "int8")
    assert deploy(["quantize", tiny, out, "--calib-npy", calib]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(": interrupted")
    assert sorted(os.listdir(str(tmp_path))) == ["calib.npy"]


def _sleep_a_second():
    import time
    time.sleep(1.0)


def test_ctrl_c_during_the_openvino_conversion_stops_quietly(tiny, tmp_path, capfd,
                                                            monkeypatch):
    """``ov.convert_model`` forks a process (OpenVINO's telemetry sender); a Ctrl-C on the
    terminal reaches it too. The child must not print a traceback, and the command ends
    with exit 130, one line, and nothing under the output's names."""
    import multiprocessing
    import signal
    import time

    import openvino as ov
    real = ov.convert_model
    children = []

    def converting(*args, **kwargs):
        child = multiprocessing.get_context("fork").Process(target=_sleep_a_second)
        child.start()
        children.append(child)
        time.sleep(0.3)                                 # the child is sending
        for pid in (child.pid, os.getpid()):           # the terminal's Ctrl-C: the group
            os.kill(pid, signal.SIGINT)
        child.join()
        return real(*args, **kwargs)
    monkeypatch.setattr(ov, "convert_model", converting)
    out = str(tmp_path / "ir")
    assert deploy(["openvino", tiny, out]) == 130
    children[0].join()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().splitlines()[-1].endswith(": interrupted")
    assert children[0].exitcode == 0
    assert os.listdir(str(tmp_path)) == []


def test_an_export_that_fails_leaves_the_previous_export_as_it_was(tiny, tmp_path,
                                                                    monkeypatch):
    """``export`` writes under staging names: a write that stops (a size limit, a full disk)
    or an interrupt while MXNet writes leaves the earlier export of that prefix whole and
    nothing beside it; odd prefixes and shapes are refused before anything is written."""
    import shutil

    from igcv3_gluon.utils import DiskFull
    prefix = str(tmp_path / "m")
    for suffix in ("-symbol.json", "-0000.params", "-meta.json"):
        shutil.copy(tiny + suffix, prefix + suffix)
    before = _digests([prefix + s for s in ("-symbol.json", "-0000.params", "-meta.json")])
    net = igcv3_gluon.get_model("cifar_igcv3_d_0.5", multiplier=0.25, depths=(1,) * 7)
    net.initialize(mx.init.Xavier())
    real = mx.gluon.HybridBlock.export

    def stops(self, path, epoch=0, **kwargs):
        real(self, path, epoch, **kwargs)
        open(path + "-%04d.params" % epoch, "r+b").truncate(100)
        raise mx.MXNetError("Check failed: nwrite == size (100 vs. 4096) : "
                            "FileStream.Write incomplete")
    for failure, error in ((stops, DiskFull), (_interrupting, KeyboardInterrupt)):
        with monkeypatch.context() as patch:
            patch.setattr(mx.gluon.HybridBlock, "export", failure)
            with pytest.raises(error):
                export(net, prefix, (1, 3, 32, 32))
        assert _digests(list(before)) == before
        assert sorted(os.listdir(str(tmp_path))) == ["m-0000.params", "m-meta.json",
                                                     "m-symbol.json"]
    for out, shape, message in (("", (1, 3, 32, 32), "give an output prefix"),
                                (str(tmp_path / "d") + os.sep, (1, 3, 32, 32),
                                 "give an output prefix"),
                                (prefix, (3, 32, 32), "give four whole numbers >= 1"),
                                (prefix, (1, 3, -32, 32), "give four whole numbers >= 1"),
                                (prefix, (1, 3, 32.0, 32), "give four whole numbers >= 1")):
        with pytest.raises(ValueError, match=message):
            export(net, out, shape)
    with pytest.raises(ValueError, match="give four whole numbers"):
        export_onnx(prefix, str(tmp_path / "z.onnx"), (0, 3, 32, 32))
    from igcv3_gluon.deploy import load_symbolblock
    with pytest.raises(TypeError, match="ctx must be an MXNet context"):
        load_symbolblock(prefix, ctx="cpu")
    assert _digests(list(before)) == before
    assert sorted(os.listdir(str(tmp_path))) == ["m-0000.params", "m-meta.json",
                                                 "m-symbol.json"]


def test_an_ir_never_replaces_the_description_of_another_export(tiny, tmp_path, capsys):
    """IRs and exports both describe themselves in ``PREFIX-meta.json``: an IR written at the
    prefix of another export would replace that export's description (its later conversions
    then skip the folding), so that prefix is refused before anything is converted."""
    import shutil
    other = str(tmp_path / "other")
    for suffix in ("-symbol.json", "-0000.params", "-meta.json"):
        shutil.copy(tiny + suffix, other + suffix)
    before = _digests([other + s for s in ("-symbol.json", "-0000.params", "-meta.json")])
    assert deploy(["openvino", tiny, other]) == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and "other-meta.json describes the MXNet export %s" % other in \
        lines[0], lines
    assert _digests(list(before)) == before and len(os.listdir(str(tmp_path))) == 3
