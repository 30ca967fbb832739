"""Issue 14: the project used as a new user would, with inputs nobody here wrote. Each case
ended in a traceback or a surprise on the earlier main."""
import json
import os
import re
import signal
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from conftest import ROOT, fake_image_folder, small_digits, start_script, wait_for

PY = sys.executable


def run(*args, timeout=600, cwd=ROOT):
    return subprocess.run([PY] + list(args), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def one_line(proc, code=2):
    assert proc.returncode == code, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(lines) == 1, proc.stderr
    return lines[0]


TINY_CIFAR = ["--model", "cifar_igcv3_d_0.5", "--multiplier", "0.5", "--depths",
              "1,1,1,1,1,1,1", "--batch-size", "32", "--lr", "0.05", "--no-progress",
              "--workers", "0", "--data-dir", small_digits()]


@pytest.mark.parametrize("images", [6, 12])
def test_imagenet_evaluates_a_validation_set_smaller_than_a_batch(tiny_rec, tmp_path, images):
    """The evaluation batch is at least 32: a 6- or 12-image validation set is evaluated
    exactly, every image once, after training and with --eval-only."""
    from igcv3_gluon.data.im2rec import pack_folder
    per_class = images // 3
    folder = fake_image_folder(tmp_path / "val", per_class, classes=3, seed=5)
    classes = open(tiny_rec["train"] + ".classes.txt").read().split()
    pack_folder(folder, str(tmp_path / "val"), classes=classes, shuffle=False, progress=False)
    out = str(tmp_path / "run")
    common = ["--model", "igcv3_d_0.7", "--multiplier", "0.25", "--depths", "1,1,1,1,1,1,1",
              "--input-size", "48", "--no-progress", "--data-nthreads", "1",
              "--rec-val", str(tmp_path / "val.rec")]
    proc = run("train_imagenet.py", *common, "--rec-train", tiny_rec["train"] + ".rec",
               "--batch-size", "16", "--epochs", "1", "--retrain-epochs", "0", "--out-dir", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    acc = json.loads(open(os.path.join(out, "log.jsonl")).read().splitlines()[-1])["val_acc"]
    assert round(acc * images, 6) == int(round(acc * images))        # k of `images` right
    ev = run("train_imagenet.py", *common, "--eval-only", "--params", out, "--batch-size", "16",
             "--out-dir", str(tmp_path / "ev"))
    assert ev.returncode == 0, ev.stderr[-2000:]
    top1 = float(re.search(r"\((\d+) images\): top-1 ([\d.]+)%", ev.stdout).group(2))
    assert "(%d images)" % images in ev.stdout and top1 == pytest.approx(100 * acc, abs=0.006)


def test_deploy_one_line_errors(digits_run, tmp_path):
    """A corrupt -0000.params for every sub-command, --batch 0, and ONNX into a folder that
    does not exist yet (which now works)."""
    export = os.path.join(digits_run, "export", "cifar_igcv3_d_0.5-w0.5")
    bad = str(tmp_path / "bad")
    with open(export + "-symbol.json") as src, open(bad + "-symbol.json", "w") as dst:
        dst.write(src.read())
    with open(bad + "-0000.params", "wb") as fh:
        fh.write(b"\x12\x01" * 40)
    for cmd in (["optimize", bad, str(tmp_path / "o")], ["onnx", bad, str(tmp_path / "o.onnx")],
                ["bench", bad, "--rounds", "1"],
                ["quantize", bad, str(tmp_path / "q"), "--digits-config",
                 os.path.join(digits_run, "config.json")]):
        line = one_line(run("-m", "igcv3_gluon.deploy", *cmd, "--input-shape", "1,3,32,32"))
        assert "bad-0000.params is not an MXNet parameter file" in line, (cmd, line)
    line = one_line(run("-m", "igcv3_gluon.deploy", "bench", export, "--batch", "0"))
    assert "--batch takes numbers >= 1" in line
    # a run folder stands for its best model's export (the way `deploy export` takes it)
    proc = run("-m", "igcv3_gluon.deploy", "onnx", digits_run, str(tmp_path / "new" / "m.onnx"))
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert "is a run: using its best model's export %s" % export in proc.stderr
    assert "(input 1x3x32x32)" in proc.stdout            # from the export's -meta.json
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text(open(os.path.join(digits_run, "config.json")).read())
    for folder, message in ((unfinished, "is a run that has not finished"),
                            (tmp_path / "new", "is a folder, not an export")):
        line = one_line(run("-m", "igcv3_gluon.deploy", "openvino", str(folder),
                            str(tmp_path / "v")))
        assert message in line, line


def test_a_corrupt_params_file_is_named_as_not_a_parameter_file(digits_run, tmp_path, tiny_rec):
    corrupt = str(tmp_path / "corrupt.params")
    with open(corrupt, "wb") as fh:
        fh.write(os.urandom(300))
    cases = [
        ("train_imagenet.py", "--eval-only", "--params", corrupt, "--rec-val",
         tiny_rec["val"] + ".rec", "--num-classes", "4"),
        ("train_ssdlite.py", "--predict", os.path.join(ROOT, "README.md"), "--params", corrupt,
         "--val-ann", "x.json", "--val-images", "x"),
        ("-m", "igcv3_gluon.deploy", "export", "cifar_igcv3_d_0.5", "--params", corrupt,
         "--out", str(tmp_path / "e")),
    ]
    for args in cases:
        line = one_line(run(*args, timeout=300))
        assert "corrupt.params is not an MXNet parameter file" in line, line
        assert "does not fit" not in line


@pytest.mark.parametrize("script", ["train_cifar.py", "train_imagenet.py", "train_ssdlite.py"])
def test_dist_async_is_not_offered(script):
    """MXNet refuses update_on_kvstore=False for async stores, and async updates on the
    servers cannot be checkpointed: the kvstore is not offered (one line)."""
    line = one_line(run(script, "--kvstore", "dist_async", timeout=120))
    assert "invalid choice: 'dist_async'" in line


def test_a_second_run_into_the_same_folder_is_refused_and_a_killed_run_leaves_no_lock(tmp_path):
    out = str(tmp_path / "run")
    args = TINY_CIFAR + ["--epochs", "30", "--out-dir", out]
    first = start_script("train_cifar.py", args)
    wait_for(os.path.join(out, "checkpoints", "ckpt-0001-00000.json"), first)
    second = run("train_cifar.py", *args, timeout=120)
    line = one_line(second)
    assert "%s is in use by a run still going (process %d)" % (out, first.pid) in line
    os.killpg(first.pid, signal.SIGKILL)                   # the kernel releases the lock
    first.wait()
    ckpts = os.path.join(out, "checkpoints")
    done = max(int(n[len("ckpt-"):len("ckpt-0000")]) for n in os.listdir(ckpts)
               if n.endswith(".json"))
    third = start_script("train_cifar.py", args)            # an epoch of its own, then Ctrl-C
    wait_for(os.path.join(ckpts, "ckpt-%04d-00000.json" % (done + 1)), third)
    third.send_signal(signal.SIGINT)
    _, err = third.communicate(timeout=120)
    assert third.returncode == 130 and "resuming" in err, err[-2000:]


def test_imagenet_says_its_plan_training_plus_retraining(tiny_rec, tmp_path):
    out = str(tmp_path / "run")
    proc = run("train_imagenet.py", "--model", "igcv3_d_0.7", "--multiplier", "0.25", "--depths",
               "1,1,1,1,1,1,1", "--input-size", "48", "--batch-size", "16", "--no-progress",
               "--data-nthreads", "1", "--rec-train", tiny_rec["train"] + ".rec", "--rec-val",
               tiny_rec["val"] + ".rec", "--epochs", "1", "--retrain-epochs", "1",
               "--out-dir", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "plan: 1 training epoch(s) (lr 0.0075 x0.98 per epoch) + 1 retraining epoch(s)" \
        in proc.stderr
    assert re.search(r"^\S+ \S+ train 1/1  loss", proc.stdout, re.M) and \
        re.search(r"^\S+ \S+ retrain 1/1  loss", proc.stdout, re.M)     # the epoch lines
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["plan"].startswith("1 training epoch(s)") and "1 retraining" in config["plan"]
    # the default is the paper's 480 + 50, and the plan says so before anything runs
    parser_defaults = " ".join(run("train_imagenet.py", "--help").stdout.split())
    assert "(paper: 50); 0: none (default: 50)" in parser_defaults


def test_help_shows_the_recipe_defaults_and_only_the_scripts_own_flags():
    for script, shown in (("train_cifar.py", ["--epochs EPOCHS", "(default: 400)",
                                              "(default: 0.1)", "(default: 200,300,350)"]),
                          ("train_imagenet.py", ["(default: 480)", "(default: authors)",
                                                 "(default: 0.98)"]),
                          ("train_ssdlite.py", ["(default: 240)", "0.004 for authors",
                                                "(default: authors)", "(default: 32)"])):
        text = " ".join(run(script, "--help", timeout=120).stdout.split())
        for fragment in shown:
            assert fragment in text, (script, fragment)
        assert "(default: None)" not in text and "(default: False)" not in text, script
    ssd = run("train_ssdlite.py", "--help", timeout=120).stdout
    assert "--depths" not in ssd and "--label-smoothing" not in ssd and "--p2" not in ssd


def test_detections_are_clipped_to_the_image():
    from igcv3_gluon.train.detector import detect

    class Wild:
        def __call__(self, x):
            ids = mx.nd.array([[[0], [1]]])
            scores = mx.nd.array([[[0.9], [0.8]]])
            boxes = mx.nd.array([[[-20, -5, 50, 60], [10, 20, 200, 140]]])   # 128-pixel input
            return ids, scores, boxes
    img = mx.nd.zeros((60, 80, 3), dtype="uint8")
    _, _, boxes = detect(Wild(), img, mx.cpu(), 128)
    assert boxes.min() >= 0 and (boxes[:, [0, 2]] <= 80).all() and (boxes[:, [1, 3]] <= 60).all()
    np.testing.assert_allclose(boxes[1], [10 * 80 / 128, 20 * 60 / 128, 80, 60])


def test_constraints_keep_numpy_below_1_24_for_extra_installs():
    """`pip install scikit-image` alone pulls numpy 2, which breaks `import mxnet`; with the
    project's constraints file (which the Makefile uses) it resolves a compatible release."""
    from packaging.requirements import Requirement
    constraints = os.path.join(ROOT, "constraints.txt")
    assert "-c constraints.txt" in open(os.path.join(ROOT, "Makefile")).read()
    pins = [Requirement(line.split("#")[0].strip()) for line in open(constraints)
            if line.split("#")[0].strip()]
    numpy = [r.specifier for r in pins if r.name == "numpy"]
    assert numpy and "1.23.5" in numpy[0] and "1.24.0" not in numpy[0] and "2.0.0" not in numpy[0]
    # the package index (PyPI) is reachable wherever `make test` installs the project
    proc = subprocess.run([PY, "-m", "pip", "install", "--dry-run", "-c", constraints,
                           "scikit-image"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "Would install" in proc.stdout, proc.stderr[-1000:]
    planned = proc.stdout.split("Would install", 1)[1]
    assert "numpy-" not in planned, planned


def test_eval_only_refuses_weights_of_another_class_count(digits_run, tiny_rec, tmp_path):
    """The demo's 10-class digits model on the 4-class tiny records (their classes.txt says
    4): one line, and no evaluation.json anywhere (not in the run's folder either)."""
    proc = run("train_imagenet.py", "--eval-only", "--params", digits_run, "--rec-val",
               tiny_rec["val"] + ".rec", "--out-dir", str(tmp_path / "ev"), timeout=300)
    line = one_line(proc)
    assert "the weights classify 10 classes, %s.rec has 4" % tiny_rec["val"] in line, line
    assert not os.path.exists(os.path.join(digits_run, "evaluation.json"))
    assert not os.path.exists(str(tmp_path / "ev"))
