"""Values that come from the authors' files or a publisher's, pinned so that a change of one
fails a test for that reason (docs/development.md lists each default, its source and the test
that fails when it changes): the box encoding of the detector's training targets and its
decoding (in the network and in the exported graph), the conversion check that refuses a
network computing otherwise, and the detector's BatchNorm folding with its own epsilon."""
import math

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

import igcv3_gluon
from igcv3_gluon.data.detection import BOX_VARIANCES, LightTrainTransform, ssd_train_transform
from igcv3_gluon.deploy import export_detector
from igcv3_gluon.deploy.openvino import output_difference, strip_nms
from igcv3_gluon.deploy.optimize import optimize_files
from igcv3_gluon.errors import WeightsError

from conftest import randomize

# homles11/IGCV3 detection/symbol/symbol_builder.py: MultiBoxTarget(..., variances=(0.1, 0.1,
# 0.2, 0.2)) at line 79, MultiBoxDetection(..., variances=(0.1, 0.1, 0.2, 0.2)) at 103 and 174
AUTHORS_VARIANCES = (0.1, 0.1, 0.2, 0.2)


def test_the_detector_flags_default_to_the_authors_train_py():
    """homles11/IGCV3 detection/train.py: batch 32 (:21), 240 epochs (:37), data shape 320
    (:41), lr 0.004 (:47), momentum 0.9 (:49), wd 4e-5 (:51), mean 123/117/104 (:53-58), lr
    x0.1 at 60, 120, 180 (:59-61); the Module API spares BN beta and biases from weight decay
    (``--wd-on module``)."""
    from igcv3_gluon import detection
    args = detection.build_parser().parse_args([])
    assert (args.batch_size, args.epochs, args.data_shape, args.momentum, args.wd,
            args.lr_steps, args.lr_factor, args.lr_mode, args.wd_on, args.anchors,
            args.recipe) == (32, 240, 320, 0.9, 4e-5, "60,120,180", 0.1, "step", "module",
                             "authors", "authors")
    assert detection.RECIPES[args.recipe]["lr"] == 0.004 and args.lr is None


def _detector(size=64, classes=3):
    net = igcv3_gluon.get_model("ssdlite_320_igcv3_w_coco", classes=classes, multiplier=0.25,
                                base_size=size)
    net.initialize(mx.init.Xavier())
    with autograd.train_mode():
        _, _, anchors = net(mx.nd.zeros((1, 3, size, size)))
    return net, anchors


@pytest.mark.parametrize("augment", ["light", "ssd"])
def test_a_box_encoded_for_training_decodes_back_through_the_networks_decoder(augment):
    assert BOX_VARIANCES == AUTHORS_VARIANCES
    net, anchors = _detector()
    transform = ssd_train_transform(augment, 64, anchors)
    if isinstance(transform, LightTrainTransform):
        generator = transform.targets
    else:                          # GluonCV's transform builds this one from its box_norm
        from gluoncv.model_zoo.ssd.target import SSDTargetGenerator
        generator = SSDTargetGenerator(iou_thresh=0.5, stds=transform._box_norm,
                                       negative_mining_ratio=-1)
    truth = np.array([[[6.0, 9.0, 41.0, 50.0]], [[30.0, 4.0, 62.0, 30.0]]])  # two boxes
    for box in truth:
        cls_t, box_t, _ = generator(anchors, None, mx.nd.array(box[None]),
                                    mx.nd.array([[[1.0]]]))
        matched = np.flatnonzero(cls_t.asnumpy()[0] > 0)
        assert len(matched) > 0
        decoded = net.bbox_decoder(box_t, anchors).asnumpy()[0][matched]
        np.testing.assert_allclose(decoded, np.repeat(box, len(matched), 0), atol=1e-3)


def test_the_exported_graph_decodes_with_the_authors_variances(tmp_path):
    """Every box head of the detector made to predict the constant c: the exported graph's
    candidates (before NMS) are then the anchors moved by c x variance (centre) and scaled by
    exp(c x variance) (size), as MultiBoxDetection decodes with the authors' variances."""
    net, anchors = _detector()
    c = 0.5
    for head in net.box_predictors:
        last = head.body[-1]                              # the BatchNorm ending the head
        last.gamma.set_data(mx.nd.zeros(last.gamma.shape))
        last.beta.set_data(mx.nd.full(last.beta.shape, c))
    prefix = str(tmp_path / "det")
    export_detector(net, prefix, 64, meta=dict(model="ssdlite_320_igcv3_w_coco", classes=3))
    strip_nms(prefix, str(tmp_path / "candidates"))
    from igcv3_gluon.deploy import load_symbolblock
    ids, scores, boxes = load_symbolblock(str(tmp_path / "candidates"))(mx.nd.zeros((1, 3, 64, 64)))
    a = anchors.asnumpy().reshape(-1, 4)                   # centre x, centre y, width, height
    v = AUTHORS_VARIANCES
    cx, cy = a[:, 0] + c * v[0] * a[:, 2], a[:, 1] + c * v[1] * a[:, 3]
    w, h = a[:, 2] * math.exp(c * v[2]), a[:, 3] * math.exp(c * v[3])
    want = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    got = boxes.asnumpy().reshape(-1, len(a), 4)          # one copy per class
    for per_class in got:
        np.testing.assert_allclose(per_class, want, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("fault", ["epsilon", "permuted"])
def test_a_conversion_whose_result_computes_otherwise_is_refused(tmp_path, monkeypatch, fault):
    """imgclsmob's network with another BatchNorm epsilon than ours (a difference the layer
    sequences do not show), or our copy with two filters swapped: the logits differ, the
    conversion says by how much and writes nothing."""
    from gluoncv2.model_provider import get_model as imgclsmob_model

    from igcv3_gluon.models import pretrained
    source = imgclsmob_model("igcv3_wd4")
    randomize(source, 1)
    weights = str(tmp_path / "igcv3_wd4.params")
    source.save_parameters(weights)
    if fault == "epsilon":
        original = pretrained._from_gluon

        def other_epsilon(theirs, path, model, label):
            theirs.apply(lambda b: b._kwargs.update(eps=1e-1)
                         if isinstance(b, mx.gluon.nn.BatchNorm) else None)
            return original(theirs, path, model, label)
        monkeypatch.setattr(pretrained, "_from_gluon", other_epsilon)
    else:
        original = pretrained.transfer

        def swapped(source_sym, values, net, source="source"):
            counts = original(source_sym, values, net, source)
            weight = [p for n, p in net.collect_params().items() if n.endswith("_weight")][3]
            w = weight.data().asnumpy()
            weight.set_data(mx.nd.array(w[[1, 0] + list(range(2, len(w)))]))
            return counts
        monkeypatch.setattr(pretrained, "transfer", swapped)
    with pytest.raises(WeightsError, match=r"differs from the source by [\d.e+-]+ on a random "
                                           r"batch .*: not written"):
        pretrained.convert_imgclsmob(weights, "igcv3_d_0.25")


def test_the_detectors_folding_keeps_its_outputs_with_its_own_epsilon(tmp_path):
    """The detector's BatchNorms have eps 1e-3 (the authors' common.py); with running
    variances of that order the epsilon decides the scale, so the folded detector gives the
    unfolded one's class scores and boxes (before NMS) only if folding uses each layer's
    own epsilon."""
    net, _ = _detector(classes=2)
    randomize(net, 3)
    rng = np.random.RandomState(0)
    params = net.collect_params()
    for name, param in params.items():     # variances of eps's order, the scale kept by gamma
        if name.endswith("running_var"):
            var = rng.uniform(1e-4, 2e-3, param.shape)
            param.set_data(mx.nd.array(var))
            params[name[:-len("running_var")] + "gamma"].set_data(mx.nd.array(np.sqrt(var)))
    prefix = str(tmp_path / "det")
    export_detector(net, prefix, 64, meta=dict(model="ssdlite_320_igcv3_w_coco", classes=2))
    strip_nms(prefix, str(tmp_path / "raw"))
    _, report = optimize_files(str(tmp_path / "raw"), str(tmp_path / "folded"))
    assert report["batchnorms_left"] == 0 and report["batchnorms_folded"] == 90
    from igcv3_gluon.deploy import load_symbolblock
    x = mx.nd.array(rng.uniform(-1, 1, (2, 3, 64, 64)))
    want, got = (load_symbolblock(str(tmp_path / p))(x) for p in ("raw", "folded"))
    assert output_difference([w.asnumpy() for w in want], [g.asnumpy() for g in got]) < 1e-4
