"""COCO-format sets with real-world faults: entries without the keys the reader uses, files
that are not images, ids written as text, and an image that fails to decode only at the
evaluation after a trained epoch (the epoch is kept: checkpoint first, evaluate after)."""
import json
import os
import re
import shutil
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from igcv3_gluon.data.coco import COCOFormat
from igcv3_gluon.errors import DataError

from conftest import ROOT, fake_coco


@pytest.fixture
def coco(tmp_path):
    ann, images = fake_coco(tmp_path, 6, size=96, seed=3, name="set")
    return ann, images


def _edit(ann, change):
    data = json.load(open(ann))
    change(data)
    json.dump(data, open(ann, "w"))


@pytest.mark.parametrize("change, message", [
    (lambda d: d["annotations"][2].pop("bbox"),
     r"annotations\[2\] \(id \S+\) has no bbox; every entry of annotations needs image_id, "
     r"category_id, bbox"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), r"annotations\[0\] .* has bbox "
                                                           r"\[1, 2, 3\]"),
    (lambda d: d["images"][1].pop("width"), r"images\[1\] \(id \S+\) has no width"),
    (lambda d: d["images"][0].update(height=0), r"images\[0\] .* has height 0"),
    (lambda d: d["categories"][0].pop("name"), r"categories\[0\] .* has no name"),
    (lambda d: d.update(images={}), r"images must be a list"),
    (lambda d: d["images"][1].update(id=d["images"][0]["id"]),
     r"images\[0\] and images\[1\] share id \S+; every image needs its own id"),
    (lambda d: d["categories"].append(dict(d["categories"][0], name="other")),
     r"categories\[0\] and categories\[\d\] share id \S+; every category needs its own"),
    (lambda d: d.update(annotations=[]), r"has no image with a usable box"),
    (lambda d: d["categories"].append(dict(id=77, name=d["categories"][0]["name"])),
     r"categories\[0\] and categories\[\d\] share the name '\S+'; every category needs its "
     r"own name"),
    (lambda d: d["categories"][0].update(name=" "), r"categories\[0\] .* has name ' '"),
])
def test_entries_without_the_keys_used_are_one_line_naming_the_entry(coco, change, message):
    ann, images = coco
    _edit(ann, change)
    with pytest.raises(DataError, match=message) as err:
        COCOFormat(ann, images)
    assert "\n" not in str(err.value) and ann in str(err.value)


def test_an_id_too_large_for_a_float_is_an_id_like_any_other(coco):
    """JSON integers have no size limit: an annotation whose image_id is 10**30 names no
    image (an orphan, counted), not a TypeError from NumPy."""
    ann, images = coco
    _edit(ann, lambda d: d["annotations"][0].update(image_id=10 ** 30))
    assert COCOFormat(ann, images).stats["orphan"] == 1


def _gif():
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.zeros((96, 96, 3), np.uint8)).save(buf, "GIF")
    return buf.getvalue()


@pytest.mark.parametrize("content, reason", [
    (b"", "empty"),
    (b"this is a text file, not a picture\n", r"not a JPEG/PNG/BMP image \(starts b'this'\)"),
    ("cut", "a JPEG cut off before its end marker"),
    # a whole GIF, which MXNet's decoder (OpenCV) cannot read: named now, not mid-epoch
    ("gif", r"not a JPEG/PNG/BMP image \(starts b'GIF8'\)")])
def test_files_that_are_not_images_are_named_before_training(coco, content, reason):
    ann, images = coco
    name = json.load(open(ann))["images"][3]["file_name"]
    if content == "cut":                           # a JPEG cut in half: no end marker
        data = open(os.path.join(images, name), "rb").read()
        content = data[:len(data) // 2]
    elif content == "gif":
        content = _gif()
        with pytest.raises(mx.MXNetError):         # why it must be refused up front
            mx.image.imdecode(content)
    with open(os.path.join(images, name), "wb") as fh:
        fh.write(content)
    with pytest.raises(DataError, match=r"1 file\(s\) in .* are not whole images \(first: "
                                         r".*%s, %s\): replace them" % (re.escape(name), reason)):
        COCOFormat(ann, images)


def test_text_ids_match_and_the_counts_of_left_out_boxes_are_told(coco):
    ann, images = coco
    base = COCOFormat(ann, images, skip_empty=False)
    base_ids = sorted(img["id"] for img in json.load(open(ann))["images"])

    def as_text(d):
        for img in d["images"]:
            img["id"] = "img-%s" % img["id"]
        for a in d["annotations"]:
            a["image_id"] = "img-%s" % a["image_id"]
        d["annotations"][0]["iscrowd"] = 1
        d["annotations"][1]["image_id"] = "nowhere"
        d["annotations"].append(dict(d["annotations"][2], id=999, bbox=[-50, -50, 10, 10]))
    _edit(ann, as_text)
    data = COCOFormat(ann, images, skip_empty=False)
    assert len(data) == len(base) and data.image_ids == list(range(len(base)))
    assert data.ground_truth["image_index"]["img-%s" % base_ids[0]] == 0
    assert sum(len(item[2]) for item in data.items) == \
        sum(len(item[2]) for item in base.items) - 2
    assert (data.stats["crowd"], data.stats["orphan"], data.stats["no_area"]) == (1, 1, 1)
    assert data.describe().startswith("%d boxes clipped to their image; left out: 1 crowd, 1 "
                                      "without area, 0 of unknown categories, 1 of images not "
                                      "in the json" % data.stats["clipped"])


def test_an_image_failing_only_at_evaluation_keeps_the_trained_epoch(tmp_path):
    """A val image with a JPEG start and end marker and nothing between passes the up-front
    check and fails to decode at the evaluation after epoch 1: one line naming the file; the
    checkpoint of
    the trained epoch is on disk; with the file repaired, the same command resumes, evaluates
    that epoch and goes on."""
    train = fake_coco(tmp_path, 8, size=96, seed=0, name="train")
    val = fake_coco(tmp_path, 4, size=96, seed=1, name="val")
    name = json.load(open(val[0]))["images"][2]["file_name"]
    path = os.path.join(val[1], name)
    shutil.copy(path, str(tmp_path / "good.jpg"))
    with open(path, "wb") as fh:
        fh.write(b"\xff\xd8\xff\xe0" + b"\x00" * 40 + b"\xff\xd9")
    out = str(tmp_path / "run")
    args = [sys.executable, "train_ssdlite.py", "--train-ann", train[0], "--train-images",
            train[1], "--val-ann", val[0], "--val-images", val[1], "--multiplier", "0.25",
            "--data-shape", "64", "--batch-size", "4", "--epochs", "2", "--workers", "0",
            "--no-progress", "--out-dir", out]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert re.search(r"evaluation after epoch 1 failed: .*%s cannot be decoded as an image"
                     r".*the trained epoch is saved in" % re.escape(name), errors[0]), errors[0]
    assert any(f.startswith("ckpt-0001") for f in os.listdir(os.path.join(out, "checkpoints")))
    shutil.copy(str(tmp_path / "good.jpg"), path)
    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "1 epoch(s) done, its evaluation pending" in again.stderr
    rows = [json.loads(line) for line in open(os.path.join(out, "log.jsonl")) if line.strip()]
    assert [r["epoch"] for r in rows] == [1, 2] and "val_AP" in rows[0]


def test_predictions_of_images_with_the_same_name_never_overwrite_each_other():
    from igcv3_gluon.detection import prediction_names
    assert prediction_names(["a/x.png", "b/x.jpg", "c/y.png", "a/x.png"]) == [
        "a-x-detections.png", "b-x-detections.png", "y-detections.png",
        "a-x-2-detections.png"]
    assert prediction_names(["x.png"]) == ["x-detections.png"]


def test_float_ids_match_integer_ids_and_a_wrong_image_size_is_named(coco):
    ann, images = coco
    base = COCOFormat(ann, images)

    def floats(d):
        for img in d["images"]:
            img["id"] = float(img["id"])
    _edit(ann, floats)
    assert sum(len(i[2]) for i in COCOFormat(ann, images).items) == \
        sum(len(i[2]) for i in base.items)
    _edit(ann, lambda d: d["images"][0].update(width=10000, height=5))
    data = COCOFormat(ann, images, skip_empty=False)
    index = [k for k, item in enumerate(data.items) if item[3] == (10000, 5)][0]
    with pytest.raises(DataError, match=r"is 96x96 pixels but .* says 10000x5: its boxes are "
                                         r"in the json's coordinates"):
        data[index]
    os.makedirs(os.path.join(images, "folder.jpg"))
    _edit(ann, lambda d: d["images"][1].update(file_name="folder.jpg"))
    with pytest.raises(DataError, match=r"folder.jpg \(listed in .*\) is a folder, not an "
                                         r"image file"):
        COCOFormat(ann, images)


def test_evaluation_survives_text_ids_and_missing_or_repeated_annotation_ids(coco):
    """pycocotools needs integer image ids, and unique annotation ids; the ground truth the
    metric reads is renumbered, so a perfect detector still scores AP 1."""
    import mxnet as mx

    from igcv3_gluon.train.detector import evaluate_coco

    from conftest import OracleDetector
    ann, images = coco

    def messy(d):
        d["images"][0]["id"] = str(d["images"][0]["id"])
        for a in d["annotations"]:
            if str(a["image_id"]) == d["images"][0]["id"]:
                a["image_id"] = d["images"][0]["id"]
            a.pop("id", None)
        d["annotations"][1]["id"] = d["annotations"][2]["id"] = 5
    _edit(ann, messy)
    val = COCOFormat(ann, images, skip_empty=False)
    assert len(val.ground_truth["annotations"]) == sum(len(i[2]) for i in val.items)

    assert evaluate_coco(OracleDetector(val, 64 / 96.0), val, [mx.cpu()], 64)["AP"] > 0.99
