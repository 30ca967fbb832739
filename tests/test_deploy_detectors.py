"""Detector exports in the deploy commands that take classifiers only (optimize, onnx,
quantize, bench): one line naming the command that deploys detectors, and no file written."""
import os

import mxnet as mx
import pytest

from igcv3_gluon.deploy.__main__ import main as deploy_main
from igcv3_gluon.deploy.export import export_detector
from igcv3_gluon.models import get_model


@pytest.fixture(scope="module")
def detector_export(tmp_path_factory):
    net = get_model("ssdlite_320_igcv3_w_coco", classes=2, multiplier=0.25, base_size=64)
    net.initialize(mx.init.Xavier())
    prefix = str(tmp_path_factory.mktemp("det") / "det")
    export_detector(net, prefix, 64, meta=dict(model="ssdlite_320_igcv3_w_coco", classes=2))
    return prefix


@pytest.mark.parametrize("command", [["optimize", "{p}", "{o}/opt"], ["onnx", "{p}", "{o}/d.onnx"],
                                     ["quantize", "{p}", "{o}/q"], ["bench", "{p}"]])
def test_a_detector_is_refused_in_one_line_before_anything_is_written(
        detector_export, tmp_path, capsys, command):
    out = tmp_path / "out"
    argv = [a.format(p=detector_export, o=out) for a in command]
    assert deploy_main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "%s takes classifiers: %s is a detector; deploy it with " \
        "`python -m igcv3_gluon.deploy openvino" % (command[0], detector_export) in err[0], err
    assert not out.exists()
    assert sorted(os.listdir(os.path.dirname(detector_export))) == [
        "det-0000.params", "det-meta.json", "det-symbol.json"]


def test_an_export_whose_files_do_not_belong_together_is_one_line_and_leaves_nothing(
        tmp_path, capsys):
    """params of another width beside a classifier's symbol; a -meta.json cut short: one line
    each, before anything is written (optimize writes under a temporary name and renames
    only after its check)."""
    import shutil

    from igcv3_gluon.deploy.export import export
    nets = {}
    for width in (0.25, 0.5):
        net = get_model("cifar_igcv3_d_0.5", multiplier=width)
        net.initialize(mx.init.Xavier())
        nets[width] = str(tmp_path / ("w%g" % width))
        export(net, nets[width], (1, 3, 32, 32))
    shutil.copy(nets[0.5] + "-0000.params", nets[0.25] + "-0000.params")
    out = tmp_path / "out"
    for command in (["optimize", nets[0.25], str(out / "o")], ["onnx", nets[0.25],
                                                               str(out / "o.onnx")],
                    ["bench", nets[0.25]]):
        assert deploy_main(command) == 2
        line = [text for text in capsys.readouterr().err.splitlines() if "error" in text]
        assert len(line) == 1 and "w0.25-0000.params holds" in line[0] and \
            "the two files are not one export" in line[0], line
    assert not out.exists()
    open(nets[0.5] + "-meta.json", "w").write('{"input_shape": [3, 3')
    assert deploy_main(["optimize", nets[0.5], str(out / "o")]) == 2
    assert "w0.5-meta.json is not a readable description" in capsys.readouterr().err
    assert not out.exists()
