"""Inputs that were taken with a wrong value, commands that ended in a traceback or an abort,
messages that named the wrong thing, and refusals that came after the work: each is one line
naming the value (or the file) now, before anything is computed or written."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import igcv3_gluon
from igcv3_gluon import detection, im2rec, imagenet
from igcv3_gluon.data.recordio import check_labels
from igcv3_gluon.deploy import export
from igcv3_gluon.deploy.cli import main as deploy
from igcv3_gluon.errors import DataError, DownloadError

from conftest import ROOT, digits_cifar, fake_coco, fake_image_folder


def _error_lines(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if "error" in line]


# --- values taken wrongly -------------------------------------------------------------------

@pytest.mark.parametrize("label, accepted", [(0, True), (9, True), (10, False), (-1, False),
                                             (2.5, False), (np.nan, False)])
def test_record_labels_are_whole_class_numbers_at_both_ends(label, accepted):
    labels = np.array([3.0, label])
    if accepted:
        check_labels(labels, 10, "x.rec")
    else:
        with pytest.raises(DataError, match=r"x.rec: record 1 has label %s, not a class number "
                                            r"0..9 of 10 classes" % ("nan" if label != label
                                                                     else "%g" % label)):
            check_labels(labels, 10, "x.rec")


def test_deploy_export_takes_zero_as_a_value(tmp_path, capsys):
    for flag, message in (("--classes", "classes must be a count >= 1 or a list of names; "
                                        "got 0"),
                          ("--multiplier", "--multiplier must be in (0, 16]; got 0")):
        assert deploy(["export", "cifar_igcv3_d_0.5", flag, "0", "--out",
                       str(tmp_path / "m")]) == 2
        lines = _error_lines(capsys)
        assert len(lines) == 1 and message in lines[0], lines
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize("classes, message", [
    (0, r"classes=0: a detector needs at least one class"),
    (-2, r"classes=-2: a detector needs at least one class"),
    ([], r"classes=\[\]: a detector needs at least one class"),
    (2.5, r"classes=2.5: give the list of class names"),
    ("abc", r"classes='abc': give the list of class names"),
    (["cat", "dog", "cat"], r"classes: cat named more than once"),
    (["cat", ""], r"classes: '' is not a class name")])
def test_a_detector_needs_distinct_named_classes(classes, message):
    with pytest.raises(ValueError, match=message):
        igcv3_gluon.get_model("ssdlite_320_igcv3_w_coco", classes=classes, multiplier=0.25,
                              base_size=64)
    net = igcv3_gluon.get_model("ssdlite_320_igcv3_w_coco", classes=3, multiplier=0.25,
                                base_size=64)
    assert net.classes == ["class0", "class1", "class2"]


def test_im2rec_refuses_class_folders_that_lead_elsewhere(tmp_path, capsys):
    root = fake_image_folder(tmp_path / "images", per_class=2, classes=2)
    os.symlink("..", os.path.join(root, "up"))                  # the image folder itself
    assert im2rec.main([root, str(tmp_path / "rec" / "x"), "--no-progress"]) == 2
    assert "up leads to %s, which holds the image folder %s itself" % (
        os.path.realpath(str(tmp_path)), root) in _error_lines(capsys)[0]
    os.remove(os.path.join(root, "up"))
    os.symlink("class0", os.path.join(root, "copy"))            # another class's images
    assert im2rec.main([root, str(tmp_path / "rec" / "x"), "--no-progress"]) == 2
    assert "class folders class0 and copy lead to the same images" in _error_lines(capsys)[0]
    assert not os.path.exists(str(tmp_path / "rec"))


def test_predict_refuses_an_image_cut_short(tmp_path, capsys):
    import cv2
    net = igcv3_gluon.get_model("ssdlite_320_igcv3_w_coco", classes=2, multiplier=0.25,
                                base_size=64)
    net.initialize()
    weights = str(tmp_path / "det.params")
    net.save_parameters(weights)
    jpg = cv2.imencode(".jpg", np.random.RandomState(0).randint(0, 255, (64, 64, 3),
                                                                dtype=np.uint8))[1].tobytes()
    cut = str(tmp_path / "cut.jpg")
    open(cut, "wb").write(jpg[:len(jpg) // 2])
    assert detection.main(["--predict", cut, "--params", weights, "--multiplier", "0.25",
                           "--data-shape", "64", "--out-dir", str(tmp_path / "p")]) == 2
    assert "--predict: %s is not a whole image (a JPEG cut off before its end marker)" % cut \
        in _error_lines(capsys)[0]
    assert not os.path.exists(str(tmp_path / "p"))


def test_a_shorter_rerun_of_a_finished_run_is_refused(tmp_path):
    data = digits_cifar(tmp_path / "data", 4, 2)
    out = str(tmp_path / "run")
    args = [sys.executable, "train_cifar.py", "--data-dir", data, "--model",
            "cifar_igcv3_d_0.5", "--multiplier", "0.25", "--depths", "1,1,1,1,1,1,1",
            "--batch-size", "8", "--workers", "0", "--no-progress", "--out-dir", out]
    first = subprocess.run(args + ["--epochs", "2"], cwd=ROOT, capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    kept = {name: open(os.path.join(out, name)).read()
            for name in ("config.json", "summary.json", "log.jsonl")}
    shorter = subprocess.run(args + ["--epochs", "1"], cwd=ROOT, capture_output=True,
                             text=True, timeout=300)
    assert shorter.returncode == 2
    assert shorter.stderr.strip().splitlines()[-1] == "train_cifar.py: error: --epochs 1: %s " \
        "holds a run that has trained 2 epoch(s); this one asks for 1: give at least 2, or " \
        "another output folder" % out
    assert {name: open(os.path.join(out, name)).read() for name in kept} == kept


# --- exits without a traceback --------------------------------------------------------------

def test_a_weights_cache_that_cannot_be_made_names_mxnet_home(tmp_path, monkeypatch, capsys,
                                                              tiny_rec):
    a_file = tmp_path / "home"
    a_file.write_text("not a folder")
    monkeypatch.setenv("MXNET_HOME", str(a_file))
    with pytest.raises(DownloadError, match=r"the weights cache %s/models \(from MXNET_HOME=%s\) "
                                            r"cannot be created .*: set MXNET_HOME to a "
                                            r"writable folder" % (a_file, a_file)):
        igcv3_gluon.get_model("igcv3_d_0.5", pretrained=True)
    assert imagenet.main(["--eval-only", "--pretrained", "--model", "igcv3_d_0.5",
                          "--rec-val", tiny_rec["val"] + ".rec"]) == 2
    assert "(from MXNET_HOME=%s) cannot be created" % a_file in _error_lines(capsys)[0]
    assert deploy(["export", "igcv3_d_0.5", "--params", "pretrained", "--out",
                   str(tmp_path / "e")]) == 2
    assert "--params: the weights cache" in _error_lines(capsys)[0]


def test_a_hand_edited_description_is_named_as_the_file_it_is(tmp_path, capsys, tiny_rec):
    net = igcv3_gluon.get_model("igcv3_d_0.25", classes=4)
    net.initialize()
    weights = str(tmp_path / "converted.params")
    net.save_parameters(weights)
    meta = dict(model="igcv3_d_0.25", classes=4, mean=[1, 2], std=[1, 1, 1])
    for change, message in ((dict(mean=[1, 2]), "mean takes three numbers"),
                            (dict(mean="abc"), "mean takes finite numbers"),
                            (dict(model="resnet50"), "model 'resnet50' is not in the zoo")):
        json.dump(dict(meta, **change), open(str(tmp_path / "converted-meta.json"), "w"))
        assert imagenet.main(["--eval-only", "--params", weights, "--rec-val",
                              tiny_rec["val"] + ".rec", "--out-dir", str(tmp_path / "ev")]) == 2
        line = _error_lines(capsys)[0]
        assert "--params: %s does not describe a model (%s" % (
            tmp_path / "converted-meta.json", message) in line and "--mean" not in line, line


def test_an_export_description_with_a_wrong_input_shape_is_one_line(tmp_path, capsys):
    net = igcv3_gluon.get_model("cifar_igcv3_d_0.5", multiplier=0.25, depths=(1,) * 7)
    net.initialize()
    prefix = str(tmp_path / "m")
    export(net, prefix, (1, 3, 32, 32))
    for shape, message in (("abc", "input_shape 'abc' is not [C, H, W]"),
                           ([3, 32], "input_shape [3, 32] is not [C, H, W]"),
                           ([3, 40000, 40000], "input_shape [3, 40000, 40000] at batch 1 is "
                                               "4800000000 values, above the 268435456")):
        json.dump(dict(input_shape=shape), open(prefix + "-meta.json", "w"))
        for command in (["onnx", prefix, str(tmp_path / "o.onnx")], ["bench", prefix]):
            assert deploy(command) == 2
            line = _error_lines(capsys)
            assert len(line) == 1 and "m-meta.json: %s" % message in line[0] and \
                "give --input-shape" in line[0], line
    # a file of the export that is a folder: named as one, not read as missing
    os.remove(prefix + "-meta.json")
    os.mkdir(prefix + "-meta.json")
    assert deploy(["onnx", prefix, str(tmp_path / "o.onnx")]) == 2
    assert "m-meta.json is not a readable description (a folder)" in _error_lines(capsys)[0]
    os.rmdir(prefix + "-meta.json")
    os.rename(prefix + "-symbol.json", str(tmp_path / "kept.json"))
    os.mkdir(prefix + "-symbol.json")
    for command in (["onnx", prefix, str(tmp_path / "o.onnx")], ["optimize", prefix,
                                                                 str(tmp_path / "p")]):
        assert deploy(command + ["--input-shape", "1,3,32,32"]) == 2
        assert "m-symbol.json is a folder, not a file of an export" in _error_lines(capsys)[0]
    assert sorted(os.listdir(str(tmp_path))) == ["kept.json", "m-0000.params", "m-symbol.json"]


def test_the_launcher_of_a_missing_command_starts_nothing(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "igcv3_gluon.train.launch", "-n", "2",
                           "--port", "39917", "--", str(tmp_path / "nonexistent")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "error: cannot start the worker command %s: not found, or " \
        "not executable" % (tmp_path / "nonexistent")
    left = []
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and b"DMLC_PS_ROOT_PORT=39917" in open(
                    "/proc/%s/environ" % pid, "rb").read():
                left.append(pid)
        except OSError:
            pass
    assert left == []


def _signal_when(proc, ready, sig=signal.SIGINT):
    """Send ``sig`` to ``proc`` once ``ready()`` holds (polled; the process must live)."""
    while not ready():
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(sig)
    return proc.communicate(timeout=120)


def test_ctrl_c_while_mxnet_imports_or_im2rec_packs_is_one_line(tmp_path):
    def loads_mxnet(pid):
        try:
            return b"libmxnet.so" in open("/proc/%d/maps" % pid, "rb").read()
        except OSError:
            return False
    proc = subprocess.Popen([sys.executable, "train_cifar.py", "--out-dir",
                             str(tmp_path / "never")], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    _, err = _signal_when(proc, lambda: loads_mxnet(proc.pid))
    assert proc.returncode == 130 and err.strip() == "train_cifar.py: interrupted while " \
        "starting", err
    proc = subprocess.Popen([sys.executable, "-m", "igcv3_gluon.deploy", "bench", "x"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    _, err = _signal_when(proc, lambda: loads_mxnet(proc.pid), signal.SIGTERM)
    assert proc.returncode == 143 and err.strip() == "python -m igcv3_gluon.deploy: " \
        "terminated while starting", err
    # a Ctrl-C while the threads encode images: the threads are stopped, nothing is left
    import cv2
    root = tmp_path / "images"
    for k in range(2):
        (root / ("c%d" % k)).mkdir(parents=True)
        for i in range(40):
            cv2.imwrite(str(root / ("c%d" % k) / ("%d.png" % i)),
                        np.random.RandomState(i).randint(0, 255, (300, 400, 3), np.uint8))
    prefix = str(tmp_path / "rec" / "x")
    proc = subprocess.Popen([sys.executable, "-m", "igcv3_gluon.im2rec", str(root), prefix,
                             "--resize", "1500", "--num-thread", "2", "--no-progress"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    part = prefix + ".rec.part"
    _, err = _signal_when(proc, lambda: os.path.isfile(part) and os.path.getsize(part) > 0)
    assert proc.returncode == 130 and \
        err.strip().splitlines()[-1] == "python -m igcv3_gluon.im2rec: interrupted", err
    assert "terminate called" not in err and os.listdir(str(tmp_path / "rec")) == []


# --- refused before the work ----------------------------------------------------------------

def test_an_evaluation_into_a_training_run_is_refused_before_it_is_computed(tmp_path, capsys,
                                                                           monkeypatch):
    ann, images = fake_coco(str(tmp_path), images=4, size=64)
    run = tmp_path / "run"
    run.mkdir()
    json.dump(dict(model="ssdlite_320_igcv3_w_coco", epochs=2, seed=0, multiplier=0.25,
                   data_shape=64, classes=["a"]), open(str(run / "config.json"), "w"))
    net = igcv3_gluon.get_model("ssdlite_320_igcv3_w_coco", classes=3, multiplier=0.25,
                                base_size=64)
    net.initialize()
    weights = str(tmp_path / "det.params")
    net.save_parameters(weights)

    def evaluated(*args, **kwargs):
        raise AssertionError("evaluated before the output folder was checked")
    monkeypatch.setattr(detection, "evaluate_coco", evaluated)
    assert detection.main(["--eval-only", "--params", weights, "--multiplier", "0.25",
                           "--data-shape", "64", "--val-ann", ann, "--val-images", images,
                           "--out-dir", str(run)]) == 2
    assert "--out-dir: %s holds a training run of ssdlite_320_igcv3_w_coco" % run in \
        _error_lines(capsys)[0]
    assert sorted(os.listdir(str(run))) == ["config.json"]


def test_gluoncv_conversion_defaults_to_the_one_model_gluoncv_publishes(tmp_path, capsys):
    """``convert gluoncv`` without ``--model`` converts into MobileNetV2 (GluonCV publishes
    no IGCV3); an IGCV3 ``--model`` is one line naming the flag, before any file is read."""
    from igcv3_gluon import convert
    weights = tmp_path / "theirs.params"
    weights.write_bytes(b"not their weights")
    assert convert.main(["gluoncv", str(weights), str(tmp_path / "o.params"), "--model",
                         "igcv3_d_0.5"]) == 2
    assert "--model igcv3_d_0.5 has no GluonCV counterpart (GluonCV publishes no IGCV3): give " \
        "--model mobilenetv2_1.0" in _error_lines(capsys)[0]
    assert convert.main(["gluoncv", str(weights), str(tmp_path / "o.params")]) == 2
    line = _error_lines(capsys)[0]
    assert "theirs.params is not an MXNet parameter file" in line and \
        "GluonCV's mobilenetv2_1.0" in line, line
    assert sorted(os.listdir(str(tmp_path))) == ["theirs.params"]


def test_an_onnx_output_that_names_a_folder_asks_for_a_file(tmp_path, capsys):
    """``deploy onnx P newdir/`` (and the library's ``export_onnx``) asks for the ONNX file's
    path, not for a prefix of symbol/params files; a prefix command still asks for one."""
    from igcv3_gluon.deploy import export_onnx
    from igcv3_gluon.errors import OutputConflict
    net = igcv3_gluon.get_model("cifar_igcv3_d_0.5", multiplier=0.25, depths=(1,) * 7)
    net.initialize()
    prefix = str(tmp_path / "m")
    export(net, prefix, (1, 3, 32, 32))
    out = str(tmp_path / "newdir") + os.sep
    assert deploy(["onnx", prefix, out]) == 2
    assert "OUTPUT %r: give the path of the ONNX file to write, such as exp/model.onnx" % out \
        in _error_lines(capsys)[0]
    with pytest.raises(OutputConflict, match="give the path of the ONNX file to write"):
        export_onnx(prefix, out, (1, 3, 32, 32))
    assert deploy(["optimize", prefix, out]) == 2
    assert "OUT_PREFIX %r: give an output prefix such as exp/model" % out in \
        _error_lines(capsys)[0]
    assert not os.path.exists(out)


@pytest.mark.parametrize("command, batches", [("quantize", 20), ("openvino", 10)])
def test_each_int8_command_calibrates_on_its_own_default_number_of_batches(tmp_path, command,
                                                                          batches):
    """The sub-commands share the calibration flags (one argparse action): a default set by
    one parser must not become the other's (quantize took openvino's 10 for its 20)."""
    from igcv3_gluon.deploy import commands_int8
    from igcv3_gluon.deploy.cli import build_parser
    calib = str(tmp_path / "calib.npy")
    np.save(calib, np.zeros((25 * 32, 3, 8, 8), np.float32))
    args = build_parser().parse_args([command, "exp/m", "out", "--calib-npy", calib])
    args.prefix = str(tmp_path / "m")
    got, _, _ = commands_int8._calibration(args, (32, 3, 8, 8))
    assert len(got) == batches == commands_int8.CALIB_BATCHES[command]
    args = build_parser().parse_args([command, "exp/m", "out", "--calib-npy", calib,
                                      "--calib-batches", "3"])
    args.prefix = str(tmp_path / "m")
    assert len(commands_int8._calibration(args, (32, 3, 8, 8))[0]) == 3


def test_bench_refuses_batches_it_cannot_hold_and_values_it_would_ignore(tmp_path, capsys):
    """``bench``: a batch above the input limit is one line before any timing (not MXNet's
    allocation error), ``1,,2`` is no list of numbers, ``--ov-precision`` without OpenVINO
    in ``--runtime`` would be ignored."""
    net = igcv3_gluon.get_model("cifar_igcv3_d_0.5", multiplier=0.25, depths=(1,) * 7)
    net.initialize()
    prefix = str(tmp_path / "m")
    export(net, prefix, (1, 3, 32, 32))
    for flags, message in ((["--batch", "1,300000"], "--batch 300000: input shape (300000, 3, "
                                                     "32, 32) is 921600000 values, above the "
                                                     "268435456"),
                           (["--batch", "1,,2"], "--batch takes comma-separated integers"),
                           (["--ov-precision", "bf16"], "--ov-precision bf16 times OpenVINO, "
                                                        "which --runtime mxnet leaves out")):
        assert deploy(["bench", prefix] + flags) == 2, flags
        lines = _error_lines(capsys)
        assert len(lines) == 1 and message in lines[0], lines


def test_messages_say_what_the_input_is(tmp_path, capsys):
    """A folder given where a file belongs is called a folder (not "does not exist"); a
    config file naming another config is told so; a multiplier just above the limit is
    printed as given; a negative checkpoint epoch is refused."""
    from igcv3_gluon import cifar, convert
    folder = tmp_path / "a-folder"
    folder.mkdir()
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("config: other.yaml\nepochs: 1\n")
    cases = [
        (lambda: deploy(["quantize", str(tmp_path / "m"), str(tmp_path / "q"), "--calib-npy",
                         str(folder)]), "--calib-npy %s is a folder, not a file" % folder),
        (lambda: convert.main(["imgclsmob", str(folder), str(tmp_path / "o.params"), "--model",
                               "igcv3_d_0.5"]), "a-folder is a folder, not a .params file"),
        (lambda: cifar.main(["--config", str(folder)]), "--config %s: a folder, not a file"
                                                        % folder),
        (lambda: cifar.main(["--config", str(recipe)]), "a config file does not name another "
                                                        "(config: other.yaml)"),
        (lambda: cifar.main(["--multiplier", "16.0000001", "--out-dir", str(tmp_path / "r")]),
         "multiplier must be in (0, 16]; got 16.0000001"),
        (lambda: convert.main(["authors", str(tmp_path / "ck"), str(tmp_path / "o.params"),
                               "--epoch", "-1"]), "--epoch must be >= 0"),
    ]
    net = igcv3_gluon.get_model("cifar_igcv3_d_0.5", multiplier=0.25, depths=(1,) * 7)
    net.initialize()
    export(net, str(tmp_path / "m"), (1, 3, 32, 32))
    for call, message in cases:
        assert call() == 2, message
        lines = _error_lines(capsys)
        assert len(lines) == 1 and message in lines[0], (message, lines)
    assert not os.path.exists(str(tmp_path / "r"))


def test_an_architecture_flag_that_differs_from_the_run_is_refused(tmp_path, capsys):
    """``export --params RUN --p2`` loaded the run's weights into a P2 network (no shape
    changes, so nothing failed) and wrote other logits; a flag equal to the run's is fine."""
    run = tmp_path / "run"
    run.mkdir()
    net = igcv3_gluon.get_model("cifar_igcv3_d_0.5", multiplier=0.25, depths=(1,) * 7)
    net.initialize()
    net.save_parameters(str(run / "best.params"))
    json.dump(dict(model="cifar_igcv3_d_0.5", epochs=1, seed=0, multiplier=0.25,
                   depths="1,1,1,1,1,1,1", p2=False, relu=None, groups=None, dataset="digits",
                   classes=10), open(str(run / "config.json"), "w"))
    for flags, message in ((["--p2"], "--p2: the run of --params was trained with p2 False"),
                           (["--multiplier", "0.5"], "--multiplier 0.5: the run of --params "
                                                     "was trained with multiplier 0.25")):
        assert deploy(["export", "--params", str(run), "--out", str(tmp_path / "e")] +
                      flags) == 2
        lines = _error_lines(capsys)
        assert len(lines) == 1 and message in lines[0], lines
    assert deploy(["export", "--params", str(run), "--out", str(tmp_path / "e"),
                   "--multiplier", "0.25"]) == 0
    assert os.path.isfile(str(tmp_path / "e-symbol.json"))


def test_sigterm_while_a_deploy_command_works_is_one_line_and_leaves_nothing(tmp_path):
    """SIGTERM (a launcher's, a scheduler's) while ``deploy openvino`` has staged its files:
    the staging files and temporary folders go, the last line says ``terminated``, exit
    143 (it used to end at once, leaving them, with no word)."""
    net = igcv3_gluon.get_model("cifar_igcv3_d_0.5", multiplier=0.25, depths=(1,) * 7)
    net.initialize()
    prefix = str(tmp_path / "m")
    export(net, prefix, (1, 3, 32, 32))
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "igcv3_gluon.deploy", "openvino", prefix,
                             str(out / "ir"), "--check-batches", "1,2,3,4,5,6,7,8"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    _, err = _signal_when(proc, lambda: any(".part" in n and n.endswith(".xml")
                                            for n in os.listdir(str(out))), signal.SIGTERM)
    assert proc.returncode == 143 and err.strip().splitlines()[-1] == \
        "python -m igcv3_gluon.deploy: terminated", err[-2000:]
    assert os.listdir(str(out)) == []
