"""Inputs of the wrong kind, each one line before any work: weights of a detector given to
the classifier's evaluation and the other way round, folders where files belong, training
and validation records packed with different class lists, --predict inputs all read before
a picture is written."""
import json
import os

import mxnet as mx

from igcv3_gluon import detection, imagenet


def _run_folder(folder, model):
    os.makedirs(folder)
    json.dump(dict(model=model, classes=3), open(os.path.join(folder, "config.json"), "w"))
    net = mx.gluon.nn.Dense(2, in_units=2)
    net.initialize()
    net.save_parameters(os.path.join(folder, "best.params"))
    return folder


def _one_line(capsys):
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1, err
    return err[0]


def test_weights_of_the_other_task_are_named(tmp_path, tiny_rec, capsys):
    det = _run_folder(str(tmp_path / "det"), "ssdlite_320_igcv3_w_coco")
    assert imagenet.main(["--eval-only", "--params", det, "--rec-val",
                          tiny_rec["val"] + ".rec", "--out-dir", str(tmp_path / "e")]) == 2
    assert "%s holds a detector (ssdlite_320_igcv3_w_coco), not a classifier: evaluate it with "\
        "train_ssdlite.py --eval-only" % det in _one_line(capsys)
    cls = _run_folder(str(tmp_path / "cls"), "igcv3_d_0.25")
    assert detection.main(["--eval-only", "--params", cls, "--val-ann", "x.json",
                           "--val-images", str(tmp_path)]) == 2
    assert "%s holds a classifier (igcv3_d_0.25), not a detector" % cls in _one_line(capsys)
    assert not os.path.exists(str(tmp_path / "e"))


def test_folders_where_files_belong(tmp_path, tiny_rec, capsys):
    folder = tmp_path / "recs"
    folder.mkdir()
    assert imagenet.main(["--rec-train", str(folder), "--rec-val", tiny_rec["val"] + ".rec",
                          "--out-dir", str(tmp_path / "r")]) == 2
    assert "--rec-train: %s is a folder: give the .rec file" % folder in _one_line(capsys)
    det = _run_folder(str(tmp_path / "det"), "ssdlite_320_igcv3_w_coco")
    out = tmp_path / "pred"
    image = os.path.join(tiny_rec["images"], "val", sorted(os.listdir(os.path.join(
        tiny_rec["images"], "val")))[0])
    image = os.path.join(image, sorted(os.listdir(image))[0])
    for bad, message in ((str(folder), "is a folder; give image files"),
                         (os.path.join(str(tmp_path), "det", "config.json"), "is not an image")):
        assert detection.main(["--predict", image, bad, "--params", det, "--out-dir",
                               str(out)]) == 2
        assert "--predict: %s %s" % (bad, message) in _one_line(capsys)
        assert not out.exists()                     # the good first image drew nothing


def test_training_and_validation_records_with_different_class_lists(tmp_path, tiny_rec,
                                                                    capsys):
    import shutil
    for ext in (".rec", ".idx"):
        shutil.copy(tiny_rec["val"] + ext, str(tmp_path / ("val" + ext)))
    names = open(tiny_rec["train"] + ".classes.txt").read().split()
    open(str(tmp_path / "val.classes.txt"), "w").write("\n".join(names[::-1]) + "\n")
    assert imagenet.main(["--rec-train", tiny_rec["train"] + ".rec", "--rec-val",
                          str(tmp_path / "val.rec"), "--out-dir", str(tmp_path / "r")]) == 2
    line = _one_line(capsys)
    assert "train.classes.txt and %s differ (label 0: %r vs %r): pack the validation images " \
        "with --classes-from" % (tmp_path / "val.classes.txt", names[0], names[-1]) in line


def test_a_threshold_outside_0_1_and_a_run_without_best_weights(tmp_path, capsys):
    det = _run_folder(str(tmp_path / "det"), "ssdlite_320_igcv3_w_coco")
    assert detection.main(["--predict", "x.png", "--params", det, "--threshold", "2"]) == 2
    assert "--threshold is a score between 0 and 1; got 2" in _one_line(capsys)
    os.remove(os.path.join(det, "best.params"))
    os.makedirs(os.path.join(det, "checkpoints"))
    ckpt = os.path.join(det, "checkpoints", "ckpt-0004-00000.params")
    open(ckpt, "wb").close()
    assert detection.main(["--eval-only", "--params", det, "--val-ann", "x.json",
                           "--val-images", str(tmp_path)]) == 2
    assert "--params: %s holds no best.params or final.params yet: its training stopped " \
        "before an evaluation finished; run the training command again to finish it, or " \
        "give its last checkpoint %s" % (det, ckpt) in _one_line(capsys)
