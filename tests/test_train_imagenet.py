"""train_imagenet.py and its RecordIO pipeline on a tiny generated RecordIO (4 colour classes):
packing, training + retraining + evaluation, errors, resume, dist_sync, the Module API."""
import json
import os
import re
import signal
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

import igcv3_gluon
from igcv3_gluon.nn import he_normal

from conftest import ROOT, assert_identical_workers, launch_dist_sync, start_script, wait_for

# The tiny classes are rectangle colours: the authors' hue jitter (+-36) would scramble them,
# so the tests switch it off (--hsl 0,0,0); their 0.533-1 rescale needs the crop at 48 here
TINY = ["--model", "igcv3_d_0.7", "--multiplier", "0.25", "--depths", "1,1,1,1,1,1,1",
        "--input-size", "48", "--batch-size", "16", "--no-progress", "--data-nthreads", "2",
        "--hsl", "0,0,0"]


def data(rec):
    return ["--rec-train", rec["train"] + ".rec", "--rec-val", rec["val"] + ".rec"]


def run(*args, timeout=600, script="train_imagenet.py"):
    cmd = [sys.executable] + ([script] if script else []) + list(args)
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def log_of(out_dir):
    with open(os.path.join(out_dir, "log.jsonl")) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def one_line_error(proc):
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_im2rec_packs_a_folder_tree_with_im2rec_labels(tiny_rec):
    prefix = tiny_rec["train"]
    classes = open(prefix + ".classes.txt").read().split()
    assert classes == ["class0", "class1", "class2", "class3"]
    listed = [line.split("\t") for line in open(prefix + ".lst").read().splitlines()]
    assert len(listed) == 120
    reader = mx.recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "r")
    assert len(reader.keys) == 120
    for key in (0, 57, 119):
        header, img = mx.recordio.unpack_img(reader.read_idx(key))
        index, label, path = listed[key]
        assert int(index) == key and header.id == key
        assert header.label == float(label) == classes.index(path.split("/")[0])
        assert img.ndim == 3 and img.shape[2] == 3 and 64 <= min(img.shape[:2]) < 96
    # the rectangle's colour is the class: the packed pixels still say so
    assert sorted(set(int(float(label)) for _, label, _ in listed)) == [0, 1, 2, 3]


def test_im2rec_resizes_and_reports_bad_folders(tiny_rec, tmp_path):
    proc = run("-m", "igcv3_gluon.im2rec", os.path.join(tiny_rec["images"], "val"),
               str(tmp_path / "small"), "--resize", "40", "--no-progress", script=None)
    assert proc.returncode == 0, proc.stderr
    assert "small.rec: 40 images, 4 classes" in proc.stdout
    reader = mx.recordio.MXIndexedRecordIO(str(tmp_path / "small.idx"),
                                           str(tmp_path / "small.rec"), "r")
    assert min(mx.recordio.unpack_img(reader.read_idx(3))[1].shape[:2]) == 40
    assert not any(f.endswith(".part") for f in os.listdir(tmp_path))
    line = one_line_error(run("-m", "igcv3_gluon.im2rec", str(tmp_path / "nowhere"),
                              str(tmp_path / "x"), script=None))
    assert "does not exist" in line
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    line = one_line_error(run("-m", "igcv3_gluon.im2rec", str(tmp_path / "empty"),
                              str(tmp_path / "x"), script=None))
    assert "no images" in line


def test_record_parts_resume_and_validation_counts(tiny_rec):
    from igcv3_gluon.data.recordio import RecordImages, part_sizes
    rec, idx = tiny_rec["train"] + ".rec", tiny_rec["train"] + ".idx"
    assert part_sizes(120, 3) == [40, 40, 40] and part_sizes(52, 3) == [18, 18, 16]
    parts = [RecordImages(rec, idx, 7, True, input_size=32, rank=r, num_parts=3, threads=1)
             for r in range(3)]
    assert [len(p) for p in parts] == [5, 5, 5]          # 40 // 7: the same on every worker
    labels = [[b[1].asnumpy() for b in p] for p in parts]
    assert all(len(row) == 5 and all(len(x) == 7 for x in row) for row in labels)
    # resuming epoch 2 after 3 batches yields exactly that epoch's remaining batches
    whole = parts[1]
    whole.set_epoch(2)
    full = [lab.asnumpy() for _, lab in whole]
    whole.set_epoch(2, start_batch=3)
    tail = [lab.asnumpy() for _, lab in whole]
    assert len(tail) == 2
    for a, b in zip(full[3:], tail):
        np.testing.assert_array_equal(a, b)
    whole.set_epoch(3)
    assert not all((a == b).all() for a, b in zip(full, (lab.asnumpy() for _, lab in whole)))
    # validation: every image once, the last batch trimmed, centre crop of the resized image
    val = RecordImages(tiny_rec["val"] + ".rec", tiny_rec["val"] + ".idx", 16, False,
                       input_size=64, threads=1)
    batches = list(val)
    assert [b[0].shape[0] for b in batches] == [16, 16, 8]
    assert batches[0][0].shape[1:] == (3, 64, 64)
    got = np.concatenate([b[1].asnumpy() for b in batches])
    np.testing.assert_array_equal(got, np.repeat(np.arange(4), 10))


def test_trains_retrains_and_evaluates_on_tiny_recordio(tiny_rec, tmp_path):
    out = str(tmp_path / "run")
    proc = run(*TINY, *data(tiny_rec), "--epochs", "12", "--lr", "0.1", "--lr-mode", "cosine",
               "--warmup-epochs", "1", "--retrain-epochs", "2", "--out-dir", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = log_of(out)
    assert [r["epoch"] for r in rows] == list(range(1, 13))
    assert {"val_acc", "val_top5", "train_loss", "lr"} <= set(rows[0])
    best = max(r["val_acc"] for r in rows)
    assert best >= 0.9, [r["val_acc"] for r in rows]
    configs = [json.load(open(os.path.join(d, "config.json")))
               for d in (out, os.path.join(out, "retrain"))]
    assert [(c["dataset"], c["stage"], c["epochs"]) for c in configs] == \
        [("imagenet", "train", 12), ("imagenet", "retrain", 2)]
    from igcv3_gluon import imagenet
    from igcv3_gluon.train.cli import parse_args
    again = parse_args(imagenet.build_parser(),            # its config.json is its --config
                       ["--config", os.path.join(out, "config.json")])
    assert (again.epochs, again.lr, again.lr_mode, again.retrain_epochs, again.rec_train) == \
        (12, 0.1, "cosine", 2, data(tiny_rec)[1])
    retrain = log_of(os.path.join(out, "retrain"))
    assert [r["epoch"] for r in retrain] == [1, 2]
    assert retrain[0]["lr"] == pytest.approx(0.01) and retrain[1]["lr"] == pytest.approx(0.0098)
    for stage in (out, os.path.join(out, "retrain")):
        for name in ("igcv3_d_0.7-w0.25-symbol.json", "igcv3_d_0.7-w0.25-0000.params",
                     "igcv3_d_0.7-w0.25-final-symbol.json",
                     "igcv3_d_0.7-w0.25-final-0000.params"):
            assert os.path.isfile(os.path.join(stage, "export", name)), name
    # --eval-only on the best weights reproduces the logged best accuracy, from the Gluon
    # .params and from the exported (arg:/aux:) .params alike
    for params in (os.path.join(out, "best.params"),
                   os.path.join(out, "export", "igcv3_d_0.7-w0.25-0000.params")):
        ev = run(*TINY, "--rec-val", tiny_rec["val"] + ".rec", "--eval-only", "--params", params,
                 "--out-dir", str(tmp_path / "ev"))
        assert ev.returncode == 0, ev.stderr[-2000:]
        top1, top5 = map(float, re.search(r"top-1 ([\d.]+)%\s+top-5 ([\d.]+)%", ev.stdout).groups())
        assert top1 == pytest.approx(100 * best, abs=0.01) and top5 == 100.0
    # one more training epoch: the retraining of the 12-epoch weights is another run, so it
    # is refused (not resumed as if it had started from the new weights)
    more = run(*TINY, *data(tiny_rec), "--epochs", "13", "--lr", "0.1", "--lr-mode", "cosine",
               "--warmup-epochs", "1", "--retrain-epochs", "2", "--out-dir", out)
    assert more.returncode == 2, more.stderr[-2000:]
    assert "retrain holds a run with different trained_epochs (trained_epochs=12)" \
        in more.stderr
    # refused before the first stage trained its 13th epoch (both folders checked first)
    assert [r["epoch"] for r in log_of(out)] == list(range(1, 13))
    assert "epoch 13/13" not in more.stderr + more.stdout


@pytest.mark.parametrize("change, message", [
    (lambda r: ["--rec-train", r["train"] + ".missing.rec", "--rec-val", r["val"] + ".rec"],
     "--rec-train: .*missing.rec does not exist"),
    (lambda r: data(r) + ["--rec-train-idx", r["val"] + ".idx"], "does not match"),
    (lambda r: ["--rec-train", r["val"] + ".rec", "--rec-train-idx", r["train"] + ".idx",
                "--rec-val", r["val"] + ".rec"], "does not belong to"),
    (lambda r: data(r) + ["--num-classes", "2"],
     r"--rec-train \(--num-classes 2\): .*train.rec: record \d+ has label [23], not a class "
     r"number 0..1 of 2 classes"),
    (lambda r: ["--rec-val", r["val"] + ".rec"], "--rec-train is required"),
    (lambda r: ["--rec-val", r["val"] + ".rec", "--eval-only"], "--eval-only needs --params"),
    (lambda r: data(r) + ["--batch-size", "512"],
     "--batch-size 512: .* fewer than one batch of 512 per worker"),
])
def test_bad_data_and_flags_are_one_line_errors(tiny_rec, tmp_path, change, message):
    proc = run(*TINY, *change(tiny_rec), "--out-dir", str(tmp_path / "x"), "--epochs", "1",
               timeout=120)
    assert re.search(message, one_line_error(proc)), proc.stderr


def test_ctrl_c_saves_and_rerun_resumes(tiny_rec, tmp_path):
    """The real signal (the other interrupt tests use the engine's deterministic hook)."""
    out = str(tmp_path / "run")
    args = [*TINY, *data(tiny_rec), "--epochs", "40", "--retrain-epochs", "0", "--lr", "0.05",
            "--out-dir", out]
    proc = start_script("train_imagenet.py", args)
    wait_for(os.path.join(out, "checkpoints", "ckpt-0002-00000.json"), proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "run the same command again to continue" in err
    stopped = len(log_of(out))          # epoch 2 is saved before its evaluation: 1 row or more
    assert 1 <= stopped < 40
    args[args.index("40")] = str(stopped + 2)            # continue two more epochs
    again = run(*args, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming" in again.stderr
    assert [r["epoch"] for r in log_of(out)] == list(range(1, stopped + 3))


def test_dist_sync_two_workers_train_and_retrain_to_identical_parameters(tiny_rec, tmp_path):
    out = str(tmp_path / "dist")
    launch_dist_sync("train_imagenet.py", TINY + data(tiny_rec) + [
        "--epochs", "2", "--retrain-epochs", "1", "--lr", "0.05", "--data-nthreads", "1",
        "--out-dir", out])
    for stage in (out, os.path.join(out, "retrain")):
        assert_identical_workers(stage, 40)
    # each worker read its own half: 60 images -> 7 batches of 8 per worker and epoch
    assert log_of(out)[0]["images"] == 56
    assert json.load(open(os.path.join(out, "config.json")))["num_workers"] == 2


def test_module_api_fits_the_igcv3_symbol_on_the_recordio(tiny_rec):
    from symbols import igcv3
    sym = igcv3.get_symbol(num_classes=4, multiplier=0.25)
    train = mx.io.ImageRecordIter(path_imgrec=tiny_rec["train"] + ".rec",
                                  path_imgidx=tiny_rec["train"] + ".idx",
                                  data_shape=(3, 64, 64), batch_size=8, shuffle=True,
                                  rand_mirror=True, preprocess_threads=1)
    train = mx.io.ResizeIter(train, 2)                     # exactly two iterations
    mod = mx.mod.Module(sym, context=[mx.cpu(0), mx.cpu(1)])
    seen = []
    mod.fit(train, num_epoch=1, optimizer="sgd",
            optimizer_params={"learning_rate": 0.01, "momentum": 0.9, "wd": 4e-5},
            initializer=he_normal(),
            kvstore="device", batch_end_callback=lambda p: seen.append(p.nbatch))
    assert seen == [0, 1]
    args, _ = mod.get_params()
    assert len(args) > 100 and all(np.isfinite(v.asnumpy()).all() for v in args.values())
    out = mod.predict(mx.io.ResizeIter(mx.io.ImageRecordIter(
        path_imgrec=tiny_rec["val"] + ".rec", data_shape=(3, 64, 64), batch_size=8), 1))
    assert out.shape == (8, 4)
    np.testing.assert_allclose(out.sum(axis=1).asnumpy(), 1.0, rtol=1e-5)


def test_defaults_are_the_authors_imagenet_recipe(tiny_rec, monkeypatch):
    """Issue 11: the defaults are what the authors' released train_imagenet.py ran."""
    from igcv3_gluon.data.recordio import RecordImages
    from igcv3_gluon.imagenet import _augmentation, build_parser, resolve_args
    from igcv3_gluon.train.optim import apply_wd_rule
    parser = build_parser()
    args = resolve_args(parser.parse_args(data(tiny_rec)))
    assert (args.recipe, args.model, args.epochs, args.batch_size, args.lr, args.lr_mode,
            args.lr_factor, args.momentum, args.wd, args.wd_on, args.retrain_epochs,
            args.input_size, args.crop_ratio, args.dtype) == \
        ("authors", "igcv3_d_1.0", 480, 96, pytest.approx(0.045), "exp", 0.98, 0.9, 4e-5,
         "module", 50, 224, 0.875, "float32")
    assert not (args.label_smoothing or args.warmup_epochs)
    assert args.mean == (123.68, 116.779, 103.939) and args.std == (1.0, 1.0, 1.0)
    # their augmentation, as ImageRecordIter arguments; validation at short side 256
    train = RecordImages(tiny_rec["train"] + ".rec", tiny_rec["train"] + ".idx", 8, True,
                         mean=args.mean, std=args.std, augmentation=_augmentation(args))
    expected = dict(rand_crop=True, rand_mirror=True, min_random_scale=0.533,
                    max_random_scale=1.0, random_h=36, random_s=50, random_l=50,
                    mean_r=123.68, mean_g=116.779, mean_b=103.939, std_r=1.0, std_g=1.0,
                    std_b=1.0, data_shape=(3, 224, 224), shuffle=True)
    assert {k: train.kwargs[k] for k in expected} == expected
    assert "random_resized_crop" not in train.kwargs and "pca_noise" not in train.kwargs
    val = RecordImages(tiny_rec["val"] + ".rec", tiny_rec["val"] + ".idx", 8, False)
    assert val.kwargs["resize"] == 256 and not val.kwargs["rand_crop"]
    # a global batch of 96 whatever the devices (the Module split it over 4 GPUs)...
    args = resolve_args(parser.parse_args(data(tiny_rec) + ["--cpus", "2"]))
    assert (args.batch_size, args.lr) == (96, pytest.approx(0.045))
    # ... and the lr scales linearly from 0.045 at 96, saying so
    args = resolve_args(parser.parse_args(data(tiny_rec) + ["--batch-size", "192"]))
    assert args.lr == pytest.approx(0.09) and "0.045 x global batch 192 / 96" in args.lr_note
    assert args.retrain_lr == pytest.approx(0.009)
    # MXNet's Module rule: weight decay on conv/FC weights and BN gamma, not beta or bias
    net = igcv3_gluon.get_model("cifar_igcv3_d_0.5", multiplier=0.25, depths=[1] * 7)
    spared = apply_wd_rule(net, "module")
    assert spared and all(n.endswith(("_beta", "_bias")) for n in spared)
    decayed = [n for n, p in net.collect_params().items()
               if p.grad_req != "null" and p.wd_mult == 1.0]
    assert all(n.endswith(("_weight", "_gamma")) for n in decayed)
    assert len(spared) + len(decayed) == sum(p.grad_req != "null"
                                             for p in net.collect_params().values())
    # the GluonCV-style recipe stays available
    args = resolve_args(parser.parse_args(data(tiny_rec) + ["--recipe", "gluoncv", "--cpus",
                                                            "2"]))
    assert (args.batch_size, args.lr, args.wd_on, args.augment) == \
        (192, pytest.approx(0.0225), "all", "inception")
    monkeypatch.setenv("DMLC_NUM_WORKER", "4")
    args = resolve_args(parser.parse_args(data(tiny_rec) + ["--recipe", "gluoncv",
                                                            "--kvstore", "dist_sync"]))
    assert (args.batch_size, args.lr) == (384, pytest.approx(0.045))
