"""Odd inputs a new-user trial found ending in a traceback, a silent overwrite or a misleading
line; each is now one line naming the flag or the file, before any work (or, for a damaged
record of a run, a fallback)."""
import json
import os
import struct
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

import igcv3_gluon
from igcv3_gluon import imagenet
from igcv3_gluon.data.coco import COCOFormat
from igcv3_gluon.data.recordio import check_record_pair, scan_records
from igcv3_gluon.deploy import export
from igcv3_gluon.deploy.cli import main as deploy
from igcv3_gluon.errors import DataError

from conftest import ROOT


def _one_line(capsys):
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1, err
    return err[0]


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    """A 10-class CIFAR model at 3x32x32 as an export, and its INT8 form."""
    from igcv3_gluon.deploy.quantize import quantize
    folder = tmp_path_factory.mktemp("odd-export")
    net = igcv3_gluon.get_model("cifar_igcv3_d_0.5", multiplier=0.5, depths=(1,) * 7,
                                classes=10)
    net.initialize(mx.init.Xavier())
    prefix = str(folder / "tiny")
    export(net, prefix, (1, 3, 32, 32), meta=dict(model="cifar_igcv3_d_0.5", classes=10))
    calib = [mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (4, 3, 32, 32)))]
    quantize(prefix, prefix + "-int8", calib)
    return prefix


def test_an_output_that_is_the_input_or_empty_is_refused(tiny_export, capsys):
    before = open(tiny_export + "-symbol.json").read()
    assert deploy(["optimize", tiny_export, tiny_export]) == 2
    assert "%s-symbol.json is the input export's symbol file, which this command reads: " \
        "writing it would destroy the input" % tiny_export in _one_line(capsys)
    assert open(tiny_export + "-symbol.json").read() == before
    assert deploy(["export", "cifar_igcv3_d_0.5", "--out", ""]) == 2
    assert "--out '': give an output prefix" in _one_line(capsys)


@pytest.mark.parametrize("command", ["optimize", "onnx", "openvino"])
def test_an_int8_export_is_refused_where_only_float_graphs_go(tiny_export, tmp_path, capsys,
                                                              command):
    out = str(tmp_path / ("x.onnx" if command == "onnx" else "x"))
    assert deploy([command, tiny_export + "-int8", out]) == 2
    assert "%s takes float exports: %s-int8 is an INT8 export of `deploy quantize`" \
        % (command, tiny_export) in _one_line(capsys)
    assert os.listdir(str(tmp_path)) == []


def test_shapes_precisions_descriptions_and_gate_data_that_cannot_work(tiny_export, tmp_path,
                                                                     capsys):
    assert deploy(["optimize", tiny_export, str(tmp_path / "o"), "--input-shape",
                   "1,3,100000,100000"]) == 2
    assert "--input-shape 1,3,100000,100000 is 30000000000 values, above the 268435456" \
        in _one_line(capsys)
    assert deploy(["bench", tiny_export, "--runtime", "openvino", "--ov-precision", "f8"]) == 2
    assert "--ov-precision takes f32, bf16, default (comma-separated); got 'f8'" \
        in _one_line(capsys)
    listed = str(tmp_path / "listed")
    for suffix in ("-symbol.json", "-0000.params"):
        os.symlink(tiny_export + suffix, listed + suffix)
    open(listed + "-meta.json", "w").write("[1]")
    assert deploy(["optimize", listed, str(tmp_path / "o")]) == 2
    assert "listed-meta.json is not a readable description" in _one_line(capsys)
    calib = str(tmp_path / "calib.npy")
    np.save(calib, np.zeros((64, 3, 32, 32), np.float32))
    empty = str(tmp_path / "empty.npz")
    np.savez(empty, x=np.zeros((0, 3, 32, 32), np.float32), y=np.zeros(0, np.int64))
    nan = str(tmp_path / "nan.npz")
    np.savez(nan, x=np.full((2, 3, 32, 32), np.nan, np.float32), y=np.zeros(2, np.int64))
    for npz, message in ((empty, "expected (N,C,H,W) and (N,) with N >= 1"),
                         (nan, "the gate's images hold 6144 values that are not finite "
                               "numbers")):
        assert deploy(["quantize", tiny_export, str(tmp_path / "q"), "--calib-npy", calib,
                       "--val-npz", npz]) == 2
        assert message in _one_line(capsys)
    assert deploy(["quantize", tiny_export, str(tmp_path / "q"), "--calib-npy", calib,
                   "--calib-batches", "0"]) == 2
    assert "--calib-batches must be at least 1, got 0" in _one_line(capsys)
    assert not os.path.exists(str(tmp_path / "q-symbol.json"))


def _record_pair(folder, flag, labels=(1.0,)):
    """A one-record .rec/.idx whose IRHeader has ``flag`` labels (a JPEG after them)."""
    import cv2
    ok, jpg = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    payload = struct.pack("<IfQQ", flag, 0.0, 0, 0) + struct.pack(
        "<%df" % len(labels), *labels) * (flag > 0) + jpg.tobytes()
    rec, idx = os.path.join(folder, "one.rec"), os.path.join(folder, "one.idx")
    with open(rec, "wb") as fh:
        fh.write(struct.pack("<II", 0xCED7230A, len(payload)) + payload)
        fh.write(b"\0" * (-len(payload) % 4))
    open(idx, "w").write("0\t0\n")
    return rec, idx


def test_record_sets_mxnet_would_stop_on_are_named_before_training(tmp_path):
    rec, idx = _record_pair(str(tmp_path), 0)
    assert check_record_pair(rec, idx) == 1 and scan_records(rec, idx)[1] is None
    open(idx, "w").write("0\t-5\n")                       # before: OSError from seek
    with pytest.raises(DataError, match=r"one.idx line 1 has the offset -5: not an MXNet "):
        check_record_pair(rec, idx)
    open(idx, "wb").write(bytes(range(256)) * 4)          # binary junk, not text
    with pytest.raises(DataError, match=r"line 1 is not 'key<TAB>offset'"):
        check_record_pair(rec, idx)
    rec, idx = _record_pair(str(tmp_path), 2, (1.0, 2.0))  # before: MXNetError mid-epoch
    labels, problem = scan_records(rec, idx)
    assert problem == "record 0 (offset 0) has 2 labels; a classification set has one per " \
        "record"


def test_folders_and_files_are_named_for_what_they_are(tmp_path):
    ann = tmp_path / "a.json"
    ann.write_text("{}")
    with pytest.raises(DataError, match=r"^image folder %s is a file, not a folder$" % ann):
        COCOFormat(str(ann), str(ann))
    with pytest.raises(DataError, match=r"^annotation file %s is a folder, not a file$"
                       % tmp_path):
        COCOFormat(str(tmp_path), str(tmp_path))
    with pytest.raises(DataError, match=r"data directory %s is a file, not a folder" % ann):
        igcv3_gluon.data.load_cifar(str(ann), "cifar10")


def test_imagenet_flags_checked_before_the_first_stage(tiny_rec, tmp_path, capsys):
    data = ["--rec-train", tiny_rec["train"] + ".rec", "--rec-val", tiny_rec["val"] + ".rec",
            "--out-dir", str(tmp_path / "r")]
    for extra, message in (
            (["--retrain-lr", "nan"], "--retrain-lr must be a positive number, got nan"),
            (["--std", "0,0,0"], "--std must be positive: 0,0,0"),
            (["--mean", "nan,1,1"], "--mean takes 3 finite numbers such as R,G,B"),
            (["--params", str(tmp_path / "w.params")],
             "--params is read by --eval-only; a training run starts from scratch")):
        assert imagenet.main(data + extra) == 2
        assert message in _one_line(capsys)
    assert not os.path.exists(str(tmp_path / "r"))


def test_reports_and_benchmarks_say_one_line(tmp_path):
    good = tmp_path / "runs" / "good"
    good.mkdir(parents=True)
    json.dump(dict(model="cifar_igcv3_d_1.0", dataset="cifar10", epochs=1),
              open(str(good / "config.json"), "w"))
    open(str(good / "log.jsonl"), "w").write(json.dumps(dict(epoch=1, val_acc=0.9)) + "\n")
    bad = tmp_path / "runs" / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{cut")
    proc = subprocess.run([sys.executable, "-m", "igcv3_gluon.reproduce", "--collect",
                           str(tmp_path / "runs")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert "note: %s is left out of the report: not a readable run config" % bad in proc.stderr
    proc = subprocess.run([sys.executable, "benchmarks/inference.py", "--batch-sizes", "1,x"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == \
        "inference.py: error: argument --batch-sizes: takes an integer >= 1; got 'x'"


def test_detection_splits_and_categories_are_named(tmp_path, capsys):
    from igcv3_gluon import detection

    from conftest import fake_coco
    for flag, value in (("--train-sets", "val2017,,"), ("--train-sets", "../../etc"),
                        ("--val-sets", "val2017,val2017")):
        assert detection.main(["--data-dir", str(tmp_path), flag, value, "--out-dir",
                               str(tmp_path / "r")]) == 2
        assert "%s %r: give" % (flag, value) in _one_line(capsys)
    train = fake_coco(str(tmp_path), images=4, size=64, name="train")
    val = fake_coco(str(tmp_path), images=4, size=64, name="val", seed=1)
    data = json.load(open(train[0]))
    data["categories"].append(dict(id=99, name="extra"))
    json.dump(data, open(train[0], "w"))
    assert detection.main(["--train-ann", train[0], "--train-images", train[1], "--val-ann",
                           val[0], "--val-images", val[1], "--out-dir",
                           str(tmp_path / "r")]) == 2
    assert "the training set %s and the validation set %s have different categories " \
        "(extra)" % (train[0], val[0]) in _one_line(capsys)
    assert detection.main(["--train-ann", train[0], "--train-images", train[0], "--val-ann",
                           val[0], "--val-images", val[1]]) == 2
    assert "--train-ann/--train-images: image folder %s is a file, not a folder" % train[0] \
        in _one_line(capsys)


@pytest.mark.parametrize("name, kwargs, message", [
    ("cifar_mobilenetv2_1.0", dict(groups=(2, 4)), "groups changes IGCV3 blocks; mobilenetv2 "
                                                   "has mobilenetv2 blocks"),
    ("cifar_igcv3_d_0.5", dict(groups=(0, 4)), r"groups \(0, 0\) .* needs strict=True"),
    ("cifar_igcv3_d_0.5", dict(groups=2), r"groups takes \(G1, G2\)"),
    ("cifar_igcv3_d_0.5", dict(depths="1,1,1,1,1,1,1"), "depths takes whole numbers"),
    ("cifar_igcv3_d_0.5", dict(multiplier="0.5"), r"multiplier must be a number in \(0, 16\]"),
    ("cifar_igcv3_d_0.5", dict(classes=0), "classes must be a whole number >= 1"),
])
def test_get_model_refuses_what_builds_nothing_or_the_plain_network(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        igcv3_gluon.get_model(name, **kwargs)


def test_model_descriptions_and_library_conversions_check_their_values(tiny_export, tmp_path):
    from igcv3_gluon.deploy import export_onnx
    from igcv3_gluon.errors import WeightsError
    from igcv3_gluon.models.spec import ModelSpec
    assert ModelSpec.from_dict(dict(model="igcv3_d_1.0", p2="false")).p2 is False
    for bad, message in ((dict(std=[0, 0, 0]), "std must be positive"),
                         (dict(groups=[2.5, 4]), "groups takes integers"),
                         (dict(input_shape=224), "input_shape takes C,H,W"),
                         (dict(classes=-1), "classes must be a count >= 1")):
        with pytest.raises(ValueError, match=message):
            ModelSpec.from_dict(dict(model="igcv3_d_1.0", **bad))
    with pytest.raises(WeightsError, match="nothing-symbol.json not found"):
        export_onnx(str(tmp_path / "nothing"), str(tmp_path / "x.onnx"), (1, 3, 32, 32))
    with pytest.raises(ValueError, match="the ONNX path '': give the path of the ONNX file"):
        export_onnx(tiny_export, "", (1, 3, 32, 32))
    from igcv3_gluon.deploy.openvino import to_openvino
    meta = open(tiny_export + "-meta.json").read()
    with pytest.raises(ValueError, match="%s-meta.json is the input export's description, "
                                         "which this command reads" % tiny_export):
        to_openvino(tiny_export, tiny_export)
    assert open(tiny_export + "-meta.json").read() == meta
