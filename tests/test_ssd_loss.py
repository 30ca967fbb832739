"""The detector's default loss normalisation is the authors' (symbol_builder.py:85-97): checked
against MXNet's own operators, SoftmaxOutput(normalization='valid') and
MakeLoss(normalization='valid'), whose gradients are what the authors trained with, and
against the formula written here; GluonCV's stays available under --recipe gluoncv."""
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
from mxnet import autograd

from igcv3_gluon.train.ssd_loss import AuthorsMultiBoxLoss, make_loss

from conftest import ROOT, fake_coco


def fixed_batch(seed=0, images=3, anchors=50, classes=4):
    rng = np.random.RandomState(seed)
    cls_pred = rng.normal(0, 2, (images, anchors, classes + 1)).astype(np.float32)
    box_pred = rng.normal(0, 1, (images, anchors, 4)).astype(np.float32)
    cls_t = np.zeros((images, anchors), np.float32)
    for i in range(images):                     # 2, 3, 4 positives
        pos = rng.choice(anchors, 2 + i, replace=False)
        cls_t[i, pos] = rng.randint(1, classes + 1, len(pos))
    cls_t[0, :3] = np.where(cls_t[0, :3] > 0, cls_t[0, :3], -1)     # a few ignored anchors
    box_t = rng.normal(0, 1, (images, anchors, 4)).astype(np.float32) * (cls_t > 0)[..., None]
    return cls_pred, box_pred, cls_t, box_t


def mined_labels(cls_pred, cls_t, ratio=3):
    """MultiBoxTarget's labels: class id + ... here our targets' ids for positives, 0 for
    the hardest 3-per-positive negatives (largest cross-entropy against background), -1
    for every other anchor; written with numpy."""
    logp = cls_pred - np.log(np.exp(cls_pred).sum(-1, keepdims=True))
    labels = np.full(cls_t.shape, -1.0, np.float32)
    for i in range(cls_t.shape[0]):
        pos = cls_t[i] > 0
        labels[i, pos] = cls_t[i, pos]
        neg = np.where(cls_t[i] == 0)[0]
        hardest = neg[np.argsort(logp[i, neg, 0])][:int(pos.sum()) * ratio]
        labels[i, hardest] = 0
    return labels


def test_gradients_equal_mxnet_softmaxoutput_and_makeloss_valid():
    cls_pred, box_pred, cls_t, box_t = fixed_batch()
    labels = mined_labels(cls_pred, cls_t)
    # the authors' graph, operator for operator, on one device
    cp = mx.nd.array(cls_pred.transpose(0, 2, 1))            # (N, classes, anchors)
    bp = mx.nd.array(box_pred.reshape(3, -1))
    for a in (cp, bp):
        a.attach_grad()
    mask = mx.nd.array(((cls_t > 0)[..., None] * np.ones(4)).reshape(3, -1))
    with autograd.record():
        prob = mx.nd.SoftmaxOutput(cp, mx.nd.array(labels), ignore_label=-1, use_ignore=True,
                                   multi_output=True, normalization="valid")
        loc = mx.nd.MakeLoss(mx.nd.smooth_l1(mask * (bp - mx.nd.array(box_t.reshape(3, -1))),
                                             scalar=1.0), normalization="valid")
    autograd.backward([prob, loc])
    want_cls = cp.grad.asnumpy().transpose(0, 2, 1)
    want_box = bp.grad.asnumpy().reshape(box_pred.shape)
    # ours
    c, b = mx.nd.array(cls_pred), mx.nd.array(box_pred)
    for a in (c, b):
        a.attach_grad()
    with autograd.record():
        total, cls_l, box_l = AuthorsMultiBoxLoss()([c], [b], [mx.nd.array(cls_t)],
                                                    [mx.nd.array(box_t)])
    autograd.backward(total)
    np.testing.assert_allclose(c.grad.asnumpy(), want_cls, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(b.grad.asnumpy(), want_box, rtol=1e-4, atol=1e-7)
    # the value: mean CE over the valid anchors + smooth-L1 over the non-zero elements
    logp = cls_pred - np.log(np.exp(cls_pred).sum(-1, keepdims=True))
    valid = labels >= 0
    ce = -np.take_along_axis(logp, np.maximum(labels, 0).astype(int)[..., None], -1)[..., 0]
    d = np.abs((box_pred - box_t) * (cls_t > 0)[..., None])
    sl1 = np.where(d > 1, d - 0.5, 0.5 * d ** 2)
    assert valid.sum() == (2 + 3 + 4) * 4
    np.testing.assert_allclose(float(cls_l[0].asscalar()), ce[valid].sum() / valid.sum(),
                               rtol=1e-5)
    np.testing.assert_allclose(float(box_l[0].asscalar()), sl1.sum() / (sl1 > 0).sum(),
                               rtol=1e-5)
    assert (sl1 > 0).sum() == 4 * (2 + 3 + 4)


def test_devices_are_averaged_like_rescale_grad_one_over_devices():
    """train_net.py:50 rescale_grad = 1 / len(ctx): two devices give the mean of their
    normalised losses (their gradients sum to it)."""
    parts = [fixed_batch(seed) for seed in (1, 2)]
    loss = AuthorsMultiBoxLoss()
    alone = [loss(*[[mx.nd.array(a)] for a in p])[0][0].asscalar() for p in parts]
    both = loss(*[[mx.nd.array(p[k]) for p in parts] for k in range(4)])[0]
    np.testing.assert_allclose([float(t.asscalar()) for t in both],
                               [a / 2 for a in alone], rtol=1e-6)


def test_gluoncv_loss_is_several_times_the_authors_on_the_same_batch():
    """GluonCV divides both terms by the positives only: its box term is exactly 4x the
    authors' (4 non-zero elements per positive) and its class term (1 + 3)x."""
    cls_pred, box_pred, cls_t, box_t = fixed_batch()
    cls_t = np.maximum(cls_t, 0)                     # GluonCV's targets have no -1
    args = [[mx.nd.array(a)] for a in (cls_pred, box_pred, cls_t, box_t)]
    _, a_cls, a_box = make_loss("authors")(*args)
    _, g_cls, g_box = make_loss("gluoncv")(*args)
    g_cls, g_box = (float(part[0].sum().asscalar()) for part in (g_cls, g_box))
    a_cls, a_box = float(a_cls[0].asscalar()), float(a_box[0].asscalar())
    np.testing.assert_allclose(g_box / a_box, 4.0, rtol=1e-5)
    np.testing.assert_allclose(g_cls / a_cls, 4.0, rtol=1e-5)


def test_a_run_records_the_recipe_its_loss_and_lr(tmp_path):
    """What a run writes down (config.json), not the constants module: the authors' recipe
    by default, GluonCV's on request."""
    ann, images = fake_coco(tmp_path, 8, size=128, seed=0, name="s")
    common = ["--train-ann", ann, "--train-images", images, "--val-ann", ann,
              "--val-images", images, "--multiplier", "0.25", "--data-shape", "64",
              "--batch-size", "4", "--epochs", "1", "--workers", "0", "--no-progress",
              "--augment", "light"]
    for recipe, lr in ((None, 0.004), ("gluoncv", 0.001)):
        out = str(tmp_path / str(recipe))
        proc = subprocess.run([sys.executable, "train_ssdlite.py"] + common
                              + (["--recipe", recipe] if recipe else []) + ["--out-dir", out],
                              cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        config = json.load(open(os.path.join(out, "config.json")))
        assert config["recipe"] == (recipe or "authors") and config["lr"] == lr, config
        import re  # AP said the same way, as a percentage, everywhere
        said = proc.stdout + proc.stderr
        assert re.search(r"AP50 [\d.]+%", said) and re.search(r"best AP [\d.]+% \(epoch 1\)",
                                                               said), said[-1500:]
        # the rest of the authors' recipe as the run wrote it down (train.py:47-61)
        assert config["mean"] == [123, 117, 104] and config["std"] == [1, 1, 1]
        assert config["wd"] == 4e-5 and config["momentum"] == 0.9 and config["anchors"] == \
            "authors" and config["lr_steps"] == "60,120,180" and config["lr_factor"] == 0.1
        # the export: the same normalisation, and the NMS of the authors' evaluate.py
        # (:42 --nms 0.45, :46 --force False; symbol_builder.py:15 nms_topk=400), 100 kept
        import glob
        symbol = [p for p in glob.glob(os.path.join(out, "export", "*-symbol.json"))
                  if "-final-" not in p][0]
        meta = json.load(open(symbol[:-len("-symbol.json")] + "-meta.json"))
        assert meta["mean"] == [123, 117, 104] and meta["std"] == [1, 1, 1]
        assert meta["recipe"] == (recipe or "authors") and meta["anchors"] == "authors"
        nodes = json.load(open(symbol))["nodes"]
        nms = [n for n in nodes if n["op"] == "_contrib_box_nms"]
        assert len(nms) == 1, [n["op"] for n in nodes][-10:]
        attrs = nms[0]["attrs"]
        assert float(attrs["overlap_thresh"]) == 0.45 and int(attrs["topk"]) == 400
        assert attrs.get("force_suppress", "False") in ("False", "false", "0")
        cut = [n for n in nodes if n["op"] == "slice_axis" and n["attrs"].get("end") == "100"]
        assert cut, "the 100 detections kept after NMS"
