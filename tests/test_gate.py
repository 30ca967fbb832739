"""The INT8 accuracy gate: what it accepts (at its edge, on given accuracies: nothing is
quantized), and the data it refuses to judge on, in the library and in both commands that
gate (``deploy quantize``, ``deploy openvino --int8``), before any slow work."""
import os

import mxnet as mx
import numpy as np
import pytest

import igcv3_gluon
from igcv3_gluon.deploy import export
from igcv3_gluon.deploy.cli import main as deploy
from igcv3_gluon.deploy.gate import (
    accepts,
    check_images,
    check_labels,
    check_reference,
    drop_points,
)
from igcv3_gluon.errors import DataError


@pytest.mark.parametrize("fp32, int8, limit, kept", [
    (0.90, 0.89, 1.0, True),          # a loss equal to the limit is kept
    (0.90, 0.8899, 1.0, False),       # 1.01 points: just above
    (0.90, 0.8901, 1.0, True),        # 0.99 points: just below
    (0.90, 0.90, 0.0, True),          # no loss, no tolerance
    (0.90, 0.8999, 0.0, False),
    (0.50, 0.60, 0.0, True),          # INT8 better than float
    (0.983333, 0.972222, 1.111111, True),   # 360 images: 4 of them
    (0.983333, 0.969444, 1.111111, False),  # 5 of them
])
def test_the_gate_keeps_a_model_that_lost_at_most_max_drop_points(fp32, int8, limit, kept):
    assert accepts(fp32, int8, limit) is kept
    assert drop_points(fp32, int8) == pytest.approx(100 * (fp32 - int8))


def test_labels_must_be_whole_class_numbers_of_the_model():
    assert check_labels([0, 9, 3.0], 10).tolist() == [0, 9, 3]
    assert check_labels(np.array([0, 9], np.uint8), 10).dtype == np.int64
    for labels, message in (([0, 10], r"range 0..10; the model has 10 classes \(0..9\)"),
                            ([-1, 3], r"range -1..3"),
                            (np.arange(50, 60), r"range 50..59"),
                            ([0.5, 1.5], r"must be whole class numbers; label 0 is 0.5"),
                            ([1, np.nan], r"label 1 is nan"),
                            ([], r"must be a list of class numbers"),
                            (["a", "b"], r"must be a list of class numbers")):
        with pytest.raises(DataError, match=message):
            check_labels(labels, 10)


def test_images_must_be_the_model_s_preprocessed_floats():
    digits = ((77.5,) * 3, (82.4,) * 3)               # the digits model's mean / std
    x = np.random.RandomState(0).uniform(-0.9, 2.1, (4, 3, 8, 8))
    assert check_images(x, digits).dtype == np.float32
    with pytest.raises(DataError, match=r"are uint8 integers \(raw pixels\?\)"):
        check_images(x.astype(np.uint8), digits)
    with pytest.raises(DataError, match=r"span 0..255; the model's inputs .* span -0.941..2.15"):
        check_images(np.linspace(0, 255, 4 * 3 * 64).reshape(4, 3, 8, 8), digits)
    with pytest.raises(DataError, match="hold 1 values that are not finite"):
        check_images(np.where(np.arange(x.size).reshape(x.shape) == 5, np.inf, x), digits)
    # a quarter of the range beyond it is still the model's (augmentation, rounding)
    low, high = -77.5 / 82.4, (255 - 77.5) / 82.4
    check_images(np.array([low - 0.24 * (high - low), high]), digits)
    with pytest.raises(DataError):
        check_images(np.array([low - 0.26 * (high - low), high]), digits)
    check_images(np.linspace(0, 255, 10))            # without a normalisation: floats pass


@pytest.mark.parametrize("accuracy, classes, images, refused", [
    (0.10, 10, 360, True), (0.147, 10, 360, True), (0.16, 10, 360, False),
    (0.60, 2, 20, True), (0.90, 2, 20, False), (0.0, 1, 5, False)])
def test_a_reference_at_chance_is_refused(accuracy, classes, images, refused):
    if refused:
        with pytest.raises(DataError, match="no better than chance"):
            check_reference(accuracy, classes, images)
    else:
        check_reference(accuracy, classes, images)


@pytest.mark.parametrize("classes, fewest", [(10, 2), (2, 10), (3, 5), (1000, 1)])
def test_a_gate_set_too_small_to_beat_chance_even_at_100_percent_is_refused(classes,
                                                                          fewest):
    """Three standard errors above chance need ``floor(9p / (1 - p)) + 1`` images before
    even a perfect score clears them: fewer is "too few", never "no better than chance"."""
    check_reference(1.0, classes, fewest)
    if fewest > 1:
        with pytest.raises(DataError, match="the gate's %d labelled image\\(s\\) are too few "
                                            "to tell a %d-class model from chance .* need at "
                                            "least %d images" % (fewest - 1, classes, fewest)):
            check_reference(1.0, classes, fewest - 1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits_run):
    """The demo run's export, and gate data derived from its digits test set."""
    import json

    from igcv3_gluon.data import load_digits32
    folder = tmp_path_factory.mktemp("gate")
    summary = json.load(open(os.path.join(digits_run, "summary.json")))
    prefix = summary["export"]["symbol"][:-len("-symbol.json")]
    config = json.load(open(os.path.join(digits_run, "config.json")))
    _, _, x, y = load_digits32()
    norm = ((x.astype(np.float32) - config["mean"]) / config["std"]).transpose(0, 3, 1, 2)
    sets = {"labels-50-59": (norm, y + 50), "labels-halves": (norm, y + 0.5),
            "uint8-pixels": (x.transpose(0, 3, 1, 2).astype(np.uint8), y),
            "float-pixels": (x.transpose(0, 3, 1, 2).astype(np.float32), y),
            "shuffled-labels": (norm, np.random.RandomState(0).permutation(y))}
    paths = {}
    for name, (images, labels) in sets.items():
        paths[name] = str(folder / (name + ".npz"))
        np.savez(paths[name], x=images, y=labels)
    whole = open(paths["labels-50-59"], "rb").read()
    paths["cut"] = str(folder / "cut.npz")                  # a copy cut short
    open(paths["cut"], "wb").write(whole[:len(whole) // 2])
    paths["nhwc"] = str(folder / "nhwc.npz")
    np.savez(paths["nhwc"], x=norm.transpose(0, 2, 3, 1), y=y)
    paths["one-image"] = str(folder / "one-image.npz")
    np.savez(paths["one-image"], x=norm[:1], y=y[:1])
    paths["calib"] = str(folder / "calib.npy")
    np.save(paths["calib"], norm[:64])
    paths["calib-pixels"] = str(folder / "calib-pixels.npy")
    np.save(paths["calib-pixels"], x[:64].transpose(0, 3, 1, 2).astype(np.uint8))
    return prefix, paths


GATE_CASES = [("labels-50-59", "the gate's labels range 50..59; the model has 10 classes"),
              ("labels-halves", "the gate's labels must be whole class numbers"),
              ("uint8-pixels", "the gate's images are uint8 integers"),
              ("float-pixels", "the gate's images span 0..255"),
              ("shuffled-labels", "no better than chance (10.00% for 10 classes)"),
              ("cut", "is not an .npz with arrays x (N,C,H,W) and y (N labels)"),
              ("nhwc", "the images are 32x32x3 each; the model takes 3x32x32 (C,H,W): store "
                       "them as (N,3,32,32)"),
              ("one-image", "the gate's 1 labelled image(s) are too few to tell a 10-class "
                            "model from chance")]


@pytest.mark.parametrize("command", ["quantize", "openvino"])
def test_both_gates_refuse_data_they_cannot_judge_on_before_any_work(trained, tmp_path,
                                                                      capsys, command):
    prefix, paths = trained
    out = str(tmp_path / "out")
    extra = ["--int8"] if command == "openvino" else []
    for name, message in GATE_CASES:
        assert deploy([command, prefix, out, "--calib-npy", paths["calib"], "--val-npz",
                       paths[name]] + extra) == 2, name
        lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
        assert len(lines) == 1 and "--val-npz %s" % paths[name] in lines[0] and \
            message in lines[0], (name, lines)
    assert deploy([command, prefix, out, "--calib-npy", paths["calib-pixels"]] + extra) == 2
    assert "--calib-npy %s: the calibration images are uint8 integers" % paths["calib-pixels"] \
        in capsys.readouterr().err
    assert os.listdir(str(tmp_path)) == []            # refused before converting anything


@pytest.mark.parametrize("command", ["quantize", "openvino"])
def test_both_gates_refuse_their_outputs_and_double_sources_before_reading_data(
        trained, tmp_path, capsys, monkeypatch, command):
    """An output that would replace the gate set, or the export, and calibration images
    given twice: one line naming the file (not the flag of the gate data), before the
    float model has judged a single image."""
    import shutil

    from igcv3_gluon.deploy import commands_int8
    prefix, paths = trained
    monkeypatch.setattr(commands_int8, "check_gate_data", None)     # never reached
    gate_set = str(tmp_path / ("g-int8-meta.json" if command == "openvino" else "g-meta.json"))
    shutil.copy(paths["labels-50-59"], gate_set)
    config = os.path.join(os.path.dirname(os.path.dirname(prefix)), "config.json")
    extra = ["--int8"] if command == "openvino" else []
    for out, data, message in (
            (str(tmp_path / "g"), ["--calib-npy", paths["calib"], "--val-npz", gate_set],
             "%s is the --val-npz gate set, which this command reads" % gate_set),
            (prefix, ["--calib-npy", paths["calib"]], "which this command reads"),
            (str(tmp_path / "q"), ["--calib-npy", paths["calib"], "--digits-config", config],
             "--digits-config and --calib-npy both give calibration images: choose one")):
        assert deploy([command, prefix, out] + data + extra) == 2, out
        lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
        assert len(lines) == 1 and message in lines[0] and "--val-npz %s:" % gate_set \
            not in lines[0], lines
    assert os.listdir(str(tmp_path)) == [os.path.basename(gate_set)]


def test_the_library_gates_check_their_data_too(tmp_path):
    from igcv3_gluon.deploy.quantize import quantize_gated
    net = igcv3_gluon.get_model("cifar_igcv3_d_0.5", multiplier=0.25, depths=(1,) * 7)
    net.initialize(mx.init.Xavier())
    prefix = str(tmp_path / "m")
    export(net, prefix, (1, 3, 32, 32), meta=dict(model="cifar_igcv3_d_0.5", classes=10,
                                                    mean=[127, 127, 127], std=[64, 64, 64]))
    calib = [mx.nd.zeros((4, 3, 32, 32))]
    x = np.zeros((4, 3, 32, 32), np.float32)
    with pytest.raises(DataError, match="the gate's labels range 10..13"):
        quantize_gated(prefix, str(tmp_path / "q"), calib, (x, np.arange(10, 14)))
    with pytest.raises(DataError, match="the calibration images span 255..255"):
        quantize_gated(prefix, str(tmp_path / "q"), [mx.nd.array(np.full((4, 3, 32, 32), 255.))])
    assert sorted(os.listdir(str(tmp_path))) == ["m-0000.params", "m-meta.json",
                                                 "m-symbol.json"]
