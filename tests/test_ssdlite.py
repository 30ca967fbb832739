"""SSDLite / SSDLite2 detectors, COCO-format data checks, train_ssdlite.py end to end."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from igcv3_gluon import get_model
from igcv3_gluon.models.ssdlite import SeparablePredictor

from conftest import (
    ROOT,
    assert_identical_workers,
    fake_coco,
    launch_dist_sync,
    start_script,
    wait_for,
)


def run(*args, timeout=600):
    return subprocess.run([sys.executable, "train_ssdlite.py"] + list(args), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    train = fake_coco(root, 24, seed=0, name="train")
    val = fake_coco(root, 8, seed=1, name="val")
    return ["--train-ann", train[0], "--train-images", train[1],
            "--val-ann", val[0], "--val-images", val[1]]


TINY = ["--multiplier", "0.5", "--data-shape", "128", "--batch-size", "8",
        "--lr", "0.02", "--warmup-epochs", "1", "--workers", "0", "--no-progress"]


@pytest.mark.parametrize("name, expansion", [("ssdlite_320_mobilenetv2_coco", 576),
                                             ("ssdlite_320_igcv3_w_coco", 1152)])
@pytest.mark.parametrize("preset, depths, total", [("authors", [4, 6, 6, 6, 4, 4], 2424),
                                                   ("ssdlite", [3, 6, 6, 6, 6, 6], 2034)])
def test_detector_maps_anchors_and_separable_heads(name, expansion, preset, depths, total):
    net = get_model(name, anchors=preset)
    assert net.channels == [expansion, 1280, 512, 256, 256, 128]
    assert [ag.num_depth for ag in net.anchor_generators] == depths
    heads = list(net.class_predictors) + list(net.box_predictors)
    assert len(heads) == 12 and all(isinstance(h, SeparablePredictor) for h in heads)
    for head, depth in zip(heads, depths * 2):      # Dw3x3 + BN + ReLU6 + 1x1 + BN
        conv = head.body[0]
        assert conv.weight.shape[1:] == (1, 3, 3)
        assert head.body[-2].weight.shape[0] in (depth * 81, depth * 4)
        assert head.body[-2].bias is not None            # common.py:314-316: with a bias
        assert isinstance(head.body[-1], mx.gluon.nn.BatchNorm)
        assert head.body[1]._kwargs["eps"] == head.body[-1]._kwargs["eps"] == 1e-3
    net.initialize()
    with autograd.train_mode():
        cls, box, anchors = net(mx.nd.zeros((1, 3, 320, 320)))
    # 20x20 + 10x10 + 5x5 + 3x3 + 2x2 + 1x1 positions times the anchors per position
    assert cls.shape == (1, total, 81) and box.shape == (1, total, 4)
    assert anchors.shape == (1, total, 4)


def expected_anchors(preset, size):
    """Every anchor box (cx, cy, w, h) in pixels, from the anchor formulas, written here
    independently of igcv3_gluon.models.ssdlite."""
    from math import sqrt
    if preset == "authors":       # the authors' symbol_factory.py + MXNet's MultiBoxPrior
        s = [round(0.2 + (0.9 - 0.2) * (k - 1) / 5, 2) for k in range(1, 7)] + [1.04]
        assert s == [0.2, 0.34, 0.48, 0.62, 0.76, 0.9, 1.04]
        ratios = [(1, 2, .5), (1, 2, .5, 3, 1 / 3), (1, 2, .5, 3, 1 / 3), (1, 2, .5, 3, 1 / 3),
                  (1, 2, .5), (1, 2, .5)]
        per_map = []
        # MultiBoxPrior: every size at ratios[0], then sizes[0] at the rest
        for k in range(6):
            sizes = (s[k], sqrt(s[k] * s[k + 1]))
            per_map.append([(z, ratios[k][0]) for z in sizes] +
                           [(sizes[0], r) for r in ratios[k][1:]])
    else:                         # TF object detection API, SSDLite (MobileNetV2 paper)
        s = [0.2 + (0.95 - 0.2) * k / 5 for k in range(6)] + [1.0]
        per_map = [[(0.1, 1.0), (s[0], 2.0), (s[0], 0.5)]]
        for k in range(1, 6):
            per_map.append([(s[k], r) for r in (1.0, 2.0, 0.5, 3.0, 1 / 3)] +
                           [(sqrt(s[k] * s[k + 1]), 1.0)])
    boxes = []
    for k, side in enumerate([20, 10, 5, 3, 2, 1]):
        step = size / side
        for i in range(side):
            for j in range(side):
                for z, r in per_map[k]:
                    boxes.append(((j + 0.5) * step, (i + 0.5) * step,
                                  z * size * sqrt(r), z * size / sqrt(r)))
    return np.array(boxes)


@pytest.mark.parametrize("preset", ["authors", "ssdlite"])
def test_every_anchor_box_follows_the_presets_formulas(preset):
    net = get_model("ssdlite_320_igcv3_w_coco", anchors=preset, multiplier=0.5)
    net.initialize()
    with autograd.train_mode():
        _, _, anchors = net(mx.nd.zeros((1, 3, 320, 320)))
    np.testing.assert_allclose(anchors[0].asnumpy(), expected_anchors(preset, 320),
                               rtol=1e-6, atol=1e-4)


def test_custom_classes_and_export_keeps_detections(tmp_path):
    from igcv3_gluon.deploy import export, load_symbolblock
    net = get_model("ssdlite_320_igcv3_w_coco", classes=["a", "b"], multiplier=0.5,
                    base_size=128)
    net.initialize(mx.init.Xavier())
    with autograd.train_mode():
        cls, _, _ = net(mx.nd.zeros((1, 3, 128, 128)))
    assert cls.shape[-1] == 3
    net.hybridize()
    x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (1, 3, 128, 128)))
    want = [a.asnumpy() for a in net(x)]
    export(net, str(tmp_path / "det"), (1, 3, 128, 128))
    got = [a.asnumpy() for a in load_symbolblock(str(tmp_path / "det"))(x)]
    for a, b in zip(want, got):                  # ids, scores, boxes
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    assert (want[1] > 0).any()


def test_coco_format_checks_clips_and_skips(tmp_path):
    from igcv3_gluon.data.coco import COCOFormat
    from igcv3_gluon.errors import DataError
    ann, images = fake_coco(tmp_path, 4, size=64, seed=3)
    data = json.load(open(ann))
    data["annotations"][0]["bbox"] = [50, 50, 40, 40]          # partly outside: clipped
    data["annotations"].append({"id": 999, "image_id": 1, "category_id": 1,
                                "bbox": [70, 70, 5, 5], "iscrowd": 0})   # fully outside
    data["images"].append({"id": 99, "file_name": "0000.jpg", "width": 64, "height": 64})
    json.dump(data, open(ann, "w"))
    train = COCOFormat(ann, images, skip_empty=True)
    val = COCOFormat(ann, images, skip_empty=False)
    assert train.stats == {"clipped": 2, "no_area": 1, "crowd": 0, "orphan": 0,
                           "unknown_category": 0, "empty_images": 1}
    assert len(val) == len(train) + 1 == 5
    first = [item for item in train.items if item[0] == data["annotations"][0]["image_id"]][0]
    assert first[2][:, :4].max() <= 64
    img, label = train[0]
    assert img.shape == (64, 64, 3) and label.shape[1] == 6
    os.remove(os.path.join(images, "0002.jpg"))
    with pytest.raises(DataError, match="1 image.*missing .*0002.jpg"):
        COCOFormat(ann, images)


def test_bad_detection_data_is_a_one_line_error(tmp_path, shapes):
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"images": [], "annotations": [], "categories": [
        {"id": 1, "name": "x"}]}))
    cases = [
        (["--train-ann", str(tmp_path / "nope.json"), "--train-images", str(tmp_path),
          "--val-ann", shapes[5], "--val-images", shapes[7]], "nope.json does not exist"),
        (["--train-ann", str(empty), "--train-images", str(tmp_path),
          "--val-ann", shapes[5], "--val-images", shapes[7]], "has no image with a usable box"),
        ([], "give --data-dir"),
        (["--data-dir", str(tmp_path / "coco")], "--data-dir .* does not exist"),
        (shapes + ["--eval-only"], "--params is required"),
    ]
    import re
    for args, message in cases:
        proc = run(*args, *TINY, "--out-dir", str(tmp_path / "x"), timeout=120)
        assert proc.returncode == 2, (args, proc.stderr[-1500:])
        assert "Traceback" not in proc.stderr and re.search(message, proc.stderr), proc.stderr


def test_trains_evaluates_predicts_and_resumes_exactly_after_interrupts(tmp_path, shapes):
    """Ctrl-C mid-epoch, resume, SIGKILL, resume: the same parameters as an uninterrupted
    run, bit for bit (the SSD augmentation is seeded per sample); then COCO
    evaluation and prediction from the run folder."""
    out, ref = str(tmp_path / "run"), str(tmp_path / "reference")
    args = [*shapes, *TINY, "--epochs", "4", "--batch-size", "4", "--workers", "2"]
    reference = run(*args, "--out-dir", ref)
    assert reference.returncode == 0, reference.stderr[-2000:]
    # Ctrl-C during batch 2 of epoch 2 (the engine's test hook), then a real SIGKILL
    stopped = subprocess.run([sys.executable, "train_ssdlite.py"] + args + ["--out-dir", out],
                             cwd=ROOT, capture_output=True, text=True, timeout=600,
                             env=dict(os.environ, IGCV3_GLUON_STOP_AT="2:2"))
    assert stopped.returncode == 130, stopped.stderr[-2000:]
    assert "interrupted in epoch 2 after 2 batch(es)" in stopped.stderr
    proc = start_script("train_ssdlite.py", args + ["--out-dir", out])
    wait_for(os.path.join(out, "checkpoints", "ckpt-0003-00000.json"), proc)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    again = run(*args, "--out-dir", out)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming" in again.stderr
    first, second = (mx.nd.load(os.path.join(d, "final.params")) for d in (ref, out))
    for key in first:
        np.testing.assert_array_equal(first[key].asnumpy(), second[key].asnumpy(), key)
    refused = run(*args, "--out-dir", out, "--no-resume")       # the shared resume rules
    assert refused.returncode == 2 and "already holds checkpoints" in refused.stderr
    rows = [json.loads(line) for line in open(os.path.join(out, "log.jsonl")) if line.strip()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert {"val_AP", "val_AP50", "val_AP75", "val_APs", "val_APm", "val_APl"} <= set(rows[-1])
    assert rows[-1]["cls_loss"] < rows[0]["cls_loss"]
    # the export says the width and input size built
    assert os.path.isfile(os.path.join(out, "export",
                                       "ssdlite_320_igcv3_w_coco-w0.5-128-symbol.json"))
    best = os.path.join(out, "best.params")
    ev = run(*shapes, *TINY, "--eval-only", "--params", best, "--out-dir", out + "-eval")
    assert ev.returncode == 0, ev.stderr[-1500:]
    assert "COCO mAP" in ev.stdout and "AP50" in ev.stdout
    assert os.path.isfile(os.path.join(out + "-eval", "evaluation.json"))
    # never into the training run's folder (the report would read it as that run's number)
    into_run = run(*shapes, *TINY, "--eval-only", "--params", best, "--out-dir", out)
    assert into_run.returncode == 2 and "holds a training run of" in into_run.stderr
    assert not os.path.exists(os.path.join(out, "evaluation.json"))
    # --predict from the run folder alone: it knows the model, width, size and class names
    image = os.path.join(shapes[7], "0000.jpg")
    pr = run("--predict", image, "--params", out, "--threshold", "0.0", "--no-progress",
             "--out-dir", out)
    assert pr.returncode == 0, pr.stderr[-1500:]
    png = os.path.join(out, "predictions", "0000-detections.png")
    assert os.path.getsize(png) > 10000


def test_coco_evaluation_scores_ground_truth_as_perfect(tmp_path):
    """The metric pipeline (resize back to image coordinates, category ids, image ids, empty
    images) gives AP 1.0 to the ground truth itself and 0 to boxes of the wrong class."""
    from igcv3_gluon.data.coco import COCOFormat
    from igcv3_gluon.train.detector import evaluate_coco
    ann, images = fake_coco(tmp_path, 6, size=96, seed=4)
    data = json.load(open(ann))
    data["images"].append({"id": 77, "file_name": "0000.jpg", "width": 96, "height": 96})
    json.dump(data, open(ann, "w"))
    val = COCOFormat(ann, images, skip_empty=False)
    size = 64

    from conftest import OracleDetector
    scale = size / 96.0
    assert evaluate_coco(OracleDetector(val, scale), val, [mx.cpu()], size)["AP"] > 0.99
    assert evaluate_coco(OracleDetector(val, scale, shift=1), val, [mx.cpu()],
                         size)["AP"] == 0.0


@pytest.mark.parametrize("size", [320, 128])
def test_anchor_centres_cover_every_map_symmetrically(size):
    """Each map's anchor centres lie inside the image and are centred on it (steps are
    size / map side, not powers of two, which put the small maps' centres on the border)."""
    from igcv3_gluon.models.ssdlite import feature_map_sizes
    net = get_model("ssdlite_320_mobilenetv2_coco", base_size=size, multiplier=0.5)
    net.initialize()
    with autograd.train_mode():
        _, _, anchors = net(mx.nd.zeros((1, 3, size, size)))
    centres = anchors[0, :, :2].asnumpy()
    start = 0
    depths = [ag.num_depth for ag in net.anchor_generators]
    for side, depth in zip(feature_map_sizes(size), depths):
        block = centres[start:start + side * side * depth]
        start += len(block)
        assert block.min() > 0 and block.max() < size
        np.testing.assert_allclose(block.mean(axis=0), [size / 2, size / 2], rtol=1e-5)
    assert start == len(centres)
    assert feature_map_sizes(320) == [20, 10, 5, 3, 2, 1]


def test_ssdlite2_learns_generated_shapes_to_ap50_above_half(trained_detector):
    """Acceptance: a generated COCO-format set of 320x320 images (coloured
    rectangles / ellipses of 3 classes on textured backgrounds) trains on the CPU and
    reaches COCO AP50 >= 0.5 on its own held-out images (measured: 0.65 to 0.85 after 6
    epochs; conftest.trained_detector; a longer run: benchmarks/backbone_pretraining.py)."""
    out, _ = trained_detector
    rows = [json.loads(line) for line in open(os.path.join(out, "log.jsonl")) if line.strip()]
    ap50 = [r["val_AP50"] for r in rows if "val_AP50" in r]
    assert len(ap50) == 2 and ap50[-1] >= 0.5, ap50
    from igcv3_gluon import detection
    from igcv3_gluon.train.cli import parse_args
    again = parse_args(detection.build_parser(),            # its config.json is its --config
                       ["--config", os.path.join(out, "config.json")])
    assert (again.epochs, again.data_shape, again.multiplier, again.augment, again.lr) == \
        (6, 128, 0.5, "light", 0.05)


@pytest.fixture(scope="module")
def one_detector_process(shapes, tmp_path_factory):
    """One process with two devices, one epoch at the global batch of 8: the reference of
    the distributed tests."""
    single = str(tmp_path_factory.mktemp("single") / "run")
    proc = run(*shapes, *TINY, "--epochs", "1", "--batch-size", "8", "--cpus", "2",
               "--out-dir", single)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return mx.nd.load(os.path.join(single, "final.params"))


def assert_equal_to_one_process(one, rank_files, rtol=1e-4):
    """The workers' parameters equal those of one process with two devices at the same
    global batch (each step: the same images split the same way, the same mean gradient)."""
    trained = [k for k in one if "running" not in k]     # BN statistics stay per device
    assert len(trained) > 100
    for path in rank_files:
        ranks = mx.nd.load(path)
        for key in trained:
            np.testing.assert_allclose(ranks[key].asnumpy(), one[key].asnumpy(), rtol=rtol,
                                       atol=1e-6, err_msg=key)
    # the comparison can fail: one epoch moved the weights far more than the tolerance
    assert max(float(np.abs(one[key].asnumpy()).max()) for key in trained) > 0.01


def test_dist_sync_two_workers_equal_one_detector_process_at_the_same_global_batch(
        tmp_path, shapes, one_detector_process):
    """Two dist_sync workers (4 images each of every global batch of 8, one device each) end
    with the parameters of one process with two devices: the authors' loss is normalised
    per device and averaged over devices, whichever process holds them."""
    out = str(tmp_path / "dist")
    launch_dist_sync("train_ssdlite.py", shapes + TINY + ["--epochs", "1", "--batch-size", "8",
                                                          "--out-dir", out])
    assert_identical_workers(out, 100)
    rows = [json.loads(line) for line in open(os.path.join(out, "log.jsonl")) if line.strip()]
    assert rows[0]["images"] == 12                  # 24 images: 12 per worker, 3 batches of 4
    assert_equal_to_one_process(one_detector_process, [os.path.join(out, "final-rank0.params")])


def test_horovod_ranks_equal_one_detector_process_at_the_same_global_batch(
        tmp_path, shapes, one_detector_process):
    import importlib
    importlib.import_module("horovod.mxnet")      # make test installs it (Makefile, extra)
    horovodrun = os.path.join(os.path.dirname(sys.executable), "horovodrun")
    out = str(tmp_path / "hvd")
    proc = subprocess.run([horovodrun, "--gloo", "-np", "2", "-H", "localhost:2",
                           sys.executable, "train_ssdlite.py", *shapes, *TINY, "--epochs", "1",
                           "--batch-size", "8", "--kvstore", "horovod", "--out-dir", out],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert_equal_to_one_process(one_detector_process,
                                [os.path.join(out, "final-rank%d.params" % r) for r in (0, 1)])


def test_coco_layout_with_a_union_of_training_splits(tmp_path):
    """--data-dir in COCO's layout; --train-sets a,b is the union (trainval35k style)."""
    import argparse
    import shutil

    from igcv3_gluon.detection import _datasets
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    for split, n, seed in (("train2014", 5, 0), ("valminusminival2014", 3, 1),
                           ("minival2014", 2, 2)):
        ann, folder = fake_coco(tmp_path, n, size=64, seed=seed, name=split)
        shutil.move(ann, str(root / "annotations" / ("instances_%s.json" % split)))
        shutil.move(folder, str(root / split))
    args = argparse.Namespace(data_dir=str(root), train_sets="train2014,valminusminival2014",
                              val_sets="minival2014", train_ann=None, val_ann=None)
    train_sets, val = _datasets(args)
    assert [len(s) for s in train_sets] == [5, 3] and len(val) == 2
    assert val.classes == ["red_box", "green_ellipse", "blue_box"]
    args.train_sets = "train2014,test2015"
    from igcv3_gluon.errors import DataError
    with pytest.raises(DataError, match="instances_test2015.json does not exist"):
        _datasets(args)


def test_ssdlite2_optimises_to_a_graph_without_shuffles_or_batchnorms(tmp_path):
    from igcv3_gluon.deploy import export, load_symbolblock
    from igcv3_gluon.deploy.optimize import optimize_files
    net = get_model("ssdlite_320_igcv3_w_coco", classes=3, multiplier=0.5, base_size=128)
    net.initialize(mx.init.Xavier())
    with autograd.train_mode():
        net(mx.nd.zeros((1, 3, 128, 128)))
    net.hybridize()
    x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (1, 3, 128, 128)))
    want = net(x)
    export(net, str(tmp_path / "d"), (1, 3, 128, 128))
    _, report = optimize_files(str(tmp_path / "d"), str(tmp_path / "o"))
    # 17 IGCV3-W blocks + the interleaved last conv + 2 in each of the 4 extra layers
    assert report["shuffles_folded"] == 26 and report["shuffles_left"] == 0
    assert report["batchnorms_left"] == 0
    got = load_symbolblock(str(tmp_path / "o"))(x)
    # the same detections up to float rounding (order-free: near-equal scores may swap)
    np.testing.assert_allclose(np.sort(got[1].asnumpy().ravel()),
                               np.sort(want[1].asnumpy().ravel()), rtol=1e-4, atol=1e-5)
    assert (got[0].asnumpy() >= 0).sum() == (want[0].asnumpy() >= 0).sum() > 0


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory, tiny_rec):
    """An IGCV3-W 0.5 classifier trained one epoch by train_imagenet.py on the tiny RecordIO
    (the detector's backbone network and width), and an IGCV3-D one (the wrong network)."""
    root = tmp_path_factory.mktemp("backbones")
    runs = {}
    for model in ("igcv3_w_1.0", "igcv3_d_1.0"):
        out = str(root / model)
        proc = subprocess.run([sys.executable, "train_imagenet.py", "--model", model,
                               "--multiplier", "0.5", "--input-size", "48", "--batch-size", "16",
                               "--epochs", "1", "--retrain-epochs", "0", "--no-progress",
                               "--data-nthreads", "1", "--rec-train", tiny_rec["train"] + ".rec",
                               "--rec-val", tiny_rec["val"] + ".rec", "--out-dir", out],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs[model] = out
    return runs


def test_backbone_loads_from_an_imagenet_run_tensor_for_tensor(tiny_backbone):
    from igcv3_gluon.models import build
    from igcv3_gluon.train.detector import load_backbone
    run = tiny_backbone["igcv3_w_1.0"]
    classifier = build("igcv3_w", classes=4, multiplier=0.5)
    classifier.load_parameters(os.path.join(run, "best.params"))
    want = [p.data().asnumpy() for p in classifier.features.collect_params().values()]
    for weights in (os.path.join(run, "best.params"),                  # Gluon's format
                    os.path.join(run, "export", "igcv3_w_1.0-w0.5-0000.params")):  # export
        det = get_model("ssdlite_320_igcv3_w_coco", classes=3, multiplier=0.5, base_size=128)
        det.initialize()
        report = load_backbone(det, weights)
        got = [p.data().asnumpy() for p in det.features.backbone.collect_params().values()]
        assert report["loaded"] == len(got) == len(want) > 200
        for a, b in zip(want, got):
            np.testing.assert_array_equal(a, b)
        assert report["classes"] == 4
        assert report["fresh"]["extra layers"] == (4, 36, 60)
        assert report["fresh"]["class predictors"][0] == 6


def test_non_finite_detector_loss_names_the_last_good_checkpoint(tmp_path, shapes):
    """Issue 13: the detector's non-finite guard is the engine's (it used to name nothing)."""
    out = str(tmp_path / "nan")
    proc = run(*shapes, *TINY, "--epochs", "1", "--out-dir", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run(*shapes, *TINY, "--epochs", "2", "--lr", "1e30", "--warmup-epochs", "0",
               "--out-dir", out)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    found = re.search(r"error: loss is (nan|inf) at epoch 2, batch \d+: stopped; the last good "
                      r"checkpoint is (\S+) \(lower --lr", proc.stderr)
    assert found, proc.stderr[-2000:]
    assert "ckpt-0001-00000" in found.group(2) and os.path.isfile(found.group(2))


def test_taps_and_backbone_do_not_depend_on_the_classifier_head(tmp_path):
    """Issue 13: the detector reads its taps from the builder's feature_info, not from
    positions in ``features``; a classifier trained with dropout (one more layer in its
    ``features``) has the same body, taps and tensors, and starts a detector exactly."""
    from igcv3_gluon.models import build
    from igcv3_gluon.train.detector import load_backbone
    plain = build("igcv3_w", classes=4, multiplier=0.5)
    dropped = build("igcv3_w", classes=4, multiplier=0.5, dropout=0.2)
    assert len(dropped.features) == len(plain.features) + 1
    assert dropped.body_layers == plain.body_layers
    assert dropped.feature_info == plain.feature_info
    dropped.initialize(mx.init.Xavier())
    dropped(mx.nd.zeros((1, 3, 64, 64)))
    path = str(tmp_path / "dropout.params")
    dropped.save_parameters(path)
    det = get_model("ssdlite_320_igcv3_w_coco", classes=3, multiplier=0.5, base_size=128)
    det.initialize()
    report = load_backbone(det, path)
    want = [p.data().asnumpy() for p in dropped.features.collect_params().values()]
    got = [p.data().asnumpy() for p in det.features.backbone.collect_params().values()]
    assert report["loaded"] == len(got) == len(want) > 200
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a, b)


def test_train_ssdlite_starts_from_the_backbone_once_and_refuses_wrong_ones(tmp_path, shapes,
                                                                       tiny_backbone):
    out = str(tmp_path / "det")
    args = [*shapes, *TINY, "--epochs", "1", "--out-dir", out, "--backbone-params",
            tiny_backbone["igcv3_w_1.0"]]
    proc = run(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    det = get_model("ssdlite_320_igcv3_w_coco", classes=3, multiplier=0.5, base_size=128)
    loaded = len(list(det.features.backbone.collect_params().values()))
    line = next(text for text in proc.stderr.splitlines() if text.startswith("backbone:"))
    assert line.startswith("backbone: %d tensors loaded from %s" % (
        loaded, os.path.join(tiny_backbone["igcv3_w_1.0"], "best.params")))
    def count(block):
        return len(list(block.collect_params().values()))
    assert "extra layers (4 layers, %d tensors), class predictors (6 layers, %d tensors), box " \
           "predictors (6 layers, %d tensors)" % (count(det.features.extras),
                                                  count(det.class_predictors),
                                                  count(det.box_predictors)) in line
    # the backbone run trained on mean-only input: the detector is fed mean-only input
    assert "input normalisation: (pixel - 123.68,116.779,103.939) / 1,1,1 (the backbone's " \
           "training run)" in proc.stderr
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["anchors"] == "authors" and config["std"] == [1.0, 1.0, 1.0]
    # resuming never reloads the backbone over trained weights
    again = run(*[a if a != "1" else "2" for a in args])
    assert again.returncode == 0 and "resuming" in again.stderr, again.stderr[-2000:]
    assert "backbone:" not in again.stderr
    # wrong backbones: one line each, nothing trained
    import shutil
    lonely = str(tmp_path / "lonely.params")           # no run folder around it to say what
    shutil.copy(os.path.join(tiny_backbone["igcv3_d_1.0"], "best.params"), lonely)
    cases = [(tiny_backbone["igcv3_d_1.0"], "trained igcv3_d_1.0 (igcv3_d, width 0.5); the "
              "detector's backbone is igcv3_w at width 0.5"),
             (lonely, "is not a classifier of the detector's backbone (igcv3_w, width 0.5)"),
             (os.path.join(out, "best.params"), "is not an image classifier's weights"),
             (shapes[1], "is not an MXNet parameter file")]
    for weights, message in cases:
        bad = run(*shapes, *TINY, "--epochs", "1", "--out-dir", str(tmp_path / "bad"),
                  "--backbone-params", weights)
        assert bad.returncode == 2, bad.stderr[-1500:]
        lines = [line for line in bad.stderr.splitlines() if "error:" in line]
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in bad.stderr, \
            bad.stderr[-1500:]
