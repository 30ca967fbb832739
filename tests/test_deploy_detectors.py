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
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert len(err) == 1 and "%s takes classifiers: %s is a detector; deploy it with " \
        "`python -m igcv3_gluon.deploy openvino" % (command[0], detector_export) in err[0], err
    assert not out.exists()
    assert sorted(os.listdir(os.path.dirname(detector_export))) == [
        "det-0000.params", "det-meta.json", "det-symbol.json"]
