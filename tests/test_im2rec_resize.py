"""Packing as the authors packed (MXNet's tools/im2rec.py `image_encode`: the short side set
to --resize, smaller images enlarged, the long side long * resize // short), and the note a
training run prints when records are not packed at the size the recipe assumes."""
import os
import subprocess
import sys

import cv2
import mxnet as mx
import numpy as np
import pytest

from conftest import ROOT


def folder(root, sizes):
    rng = np.random.RandomState(0)
    for k, (h, w) in enumerate(sizes):
        d = os.path.join(str(root), "class%d" % (k % 2))
        os.makedirs(d, exist_ok=True)
        cv2.imwrite(os.path.join(d, "%d.jpg" % k), rng.randint(0, 255, (h, w, 3), np.uint8))
    return str(root)


def packed_shapes(prefix):
    rec = mx.recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "r")
    shapes = sorted(mx.recordio.unpack_img(rec.read_idx(i))[1].shape[:2] for i in rec.keys)
    rec.close()
    return shapes


SIZES = [(375, 500), (500, 333), (30, 41), (64, 48), (96, 96)]


@pytest.mark.parametrize("mode", [None, "shrink"])
def test_resize_sets_the_short_side_both_ways_like_mxnet_im2rec(tmp_path, mode):
    root = folder(tmp_path / "img", SIZES)
    prefix = str(tmp_path / "rec" / "train")
    proc = subprocess.run([sys.executable, "-m", "igcv3_gluon.im2rec", root, prefix,
                           "--resize", "64", "--no-progress"]
                          + (["--resize-mode", mode] if mode else []),
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    want = []
    for h, w in SIZES:               # MXNet's im2rec, written out: (w, h) for cv2.resize
        if mode == "shrink" and min(h, w) <= 64:
            want.append((h, w))
        elif h > w:
            want.append((h * 64 // w, 64))
        else:
            want.append((64, w * 64 // h))
    assert packed_shapes(prefix) == sorted(want)
    if mode is None:
        assert (64, 85) in want and (96, 64) in want and (64, 87) in want   # 30x41 enlarged


def test_training_says_plainly_when_records_are_not_packed_at_480(tmp_path):
    root = folder(tmp_path / "img", [(40, 56)] * 8)
    prefix = str(tmp_path / "rec" / "train")
    subprocess.run([sys.executable, "-m", "igcv3_gluon.im2rec", root, prefix,
                    "--no-progress"], cwd=ROOT, check=True, capture_output=True, timeout=300)
    proc = subprocess.run(
        [sys.executable, "train_imagenet.py", "--rec-train", prefix + ".rec", "--rec-val",
         prefix + ".rec", "--model", "igcv3_d_0.25", "--batch-size", "4", "--epochs", "1",
         "--retrain-epochs", "0", "--input-size", "32", "--no-progress",
         "--out-dir", str(tmp_path / "run")], cwd=ROOT, capture_output=True, text=True,
        timeout=600)
    assert "8 of the first 8 records" in proc.stderr and "not packed at short side 480" \
        in proc.stderr, proc.stderr[-2000:]
    assert "(seen: 40)" in proc.stderr and "gives 21-40" in proc.stderr


def write_rec(prefix, labels, cut_last=0):
    """A .rec/.idx pair of tiny JPEG records with ``labels``; the last record cut short by
    ``cut_last`` bytes."""
    rng = np.random.RandomState(0)
    rec = mx.recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "w")
    for i, label in enumerate(labels):
        img = rng.randint(0, 255, (40, 40, 3)).astype(np.uint8)
        rec.write_idx(i, mx.recordio.pack_img(mx.recordio.IRHeader(0, float(label), i, 0), img))
    rec.close()
    if cut_last:
        size = os.path.getsize(prefix + ".rec")
        with open(prefix + ".rec", "r+b") as fh:
            fh.truncate(size - cut_last)


def test_every_label_and_every_record_is_checked_before_training(tmp_path):
    """A label beyond the class count at record 300 (after the first 256) and a last record
    cut inside: one line each, naming the file and the record, before any training."""
    from igcv3_gluon.data.recordio import scan_records
    good = str(tmp_path / "good")
    write_rec(good, [i % 4 for i in range(40)])
    late = str(tmp_path / "late")
    write_rec(late, [i % 4 for i in range(300)] + [7] + [0] * 9)
    labels, problem = scan_records(late + ".rec", late + ".idx")
    assert problem is None and len(labels) == 310 and labels[300] == 7
    cut = str(tmp_path / "cut")
    write_rec(cut, [i % 4 for i in range(40)], cut_last=100)
    labels, problem = scan_records(cut + ".rec", cut + ".idx")
    assert len(labels) == 39 and problem.startswith("record 39 ") and "is cut" in problem
    for prefix, message in ((late, "record 300 has label 7, not a class number 0..3 of 4 "
                                   "classes (1 record(s) so)"),
                            (cut, "record 39 (offset")):
        proc = subprocess.run(
            [sys.executable, "train_imagenet.py", "--rec-train", prefix + ".rec", "--rec-val",
             good + ".rec", "--num-classes", "4", "--model", "igcv3_d_0.25", "--batch-size",
             "4", "--epochs", "1", "--input-size", "32", "--no-progress",
             "--out-dir", str(tmp_path / "run")], cwd=ROOT, capture_output=True, text=True,
            timeout=300)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-1500:]
        assert message in proc.stderr and os.path.basename(prefix) + ".rec" in proc.stderr
        assert not os.path.exists(str(tmp_path / "run" / "checkpoints"))


def test_records_whose_image_is_not_whole_are_found_before_training(tmp_path):
    """A record whose header is whole but whose JPEG is cut short inside it (or is not an
    image at all) would abort MXNet's C++ decoder mid-epoch (exit 134): found up front."""
    import cv2

    from igcv3_gluon.data.recordio import scan_records
    jpg = cv2.imencode(".jpg", np.full((40, 40, 3), 120, np.uint8))[1].tobytes()
    for name, payload, message in (("cut", jpg[:len(jpg) // 2], "cut off before its end marker"),
                                   ("text", b"hello, not an image" * 4,
                                    "not a JPEG/PNG/BMP image")):
        prefix = str(tmp_path / name)
        rec = mx.recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "w")
        for i in range(6):
            data = payload if i == 4 else jpg
            rec.write_idx(i, mx.recordio.pack(mx.recordio.IRHeader(0, 0.0, i, 0), data))
        rec.close()
        labels, problem = scan_records(prefix + ".rec", prefix + ".idx")
        assert problem.startswith("record 4 (offset ") and message in problem, problem
    whole = str(tmp_path / "whole")
    write_rec(whole, [0, 1, 2, 3])
    assert scan_records(whole + ".rec", whole + ".idx")[1] is None


def test_junk_after_the_last_record_and_images_damaged_inside_are_found(tmp_path):
    """Bytes appended after the last record (MXNet's reader aborts the process on them), and
    a JPEG whose middle was zeroed (its start and end markers intact): named up front."""
    from igcv3_gluon.data.recordio import scan_records
    prefix = str(tmp_path / "set")
    write_rec(prefix, [0, 1, 2, 3, 0, 1])
    assert scan_records(prefix + ".rec", prefix + ".idx")[1] is None
    size = os.path.getsize(prefix + ".rec")
    with open(prefix + ".rec", "ab") as fh:
        fh.write(b"\0" * 3000)
    problem = scan_records(prefix + ".rec", prefix + ".idx")[1]
    assert problem == "3000 bytes follow the last record (offset %d): junk appended, or the " \
                      ".idx of a shorter file" % size, problem
    with open(prefix + ".rec", "r+b") as fh:
        fh.truncate(size)
    rec = mx.recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "r")
    offset = rec.idx[4]
    rec.close()
    with open(prefix + ".rec", "r+b") as fh:          # record 4: bytes 60.. of its JPEG zeroed
        fh.seek(offset + 8 + 24 + 60)
        fh.write(b"\0" * 400)
    problem = scan_records(prefix + ".rec", prefix + ".idx")[1]
    assert problem.startswith("record 4 (offset %d) holds an image that does not decode"
                              % offset), problem
