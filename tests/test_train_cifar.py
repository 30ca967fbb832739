"""train_cifar.py end to end (subprocesses, as a user runs it): accuracy on the embedded
digits set, kill/Ctrl-C and resume, non-finite loss, bad input, seeds, dist_sync."""
import json
import os
import re
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from conftest import ROOT, assert_identical_workers, fake_cifar10, launch_dist_sync, small_digits

TINY = ["--model", "cifar_igcv3_d_0.5", "--multiplier", "0.5", "--depths", "1,1,1,1,1,1,1",
        "--batch-size", "32", "--lr", "0.05", "--lr-mode", "cosine", "--warmup-epochs", "1",
        "--no-progress", "--workers", "0", "--data-dir", small_digits()]


def train(*args, timeout=600, **kwargs):
    return subprocess.run([sys.executable, "train_cifar.py"] + list(args), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def epochs_logged(out_dir):
    with open(os.path.join(out_dir, "log.jsonl")) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def test_demo_reaches_95_percent_on_digits(demo_run, request):
    """`make demo`'s job: cifar_igcv3_d_0.5 (half width) on digits, 8 epochs, 2 CPU cores
    (the suite's shared run, conftest.demo_run)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):     # make test: the demo's readers share one
        assert request.node.nodeid.endswith("@demo")          # worker (trained once)
    out, stdout = demo_run
    accuracy = float(re.search(r"test accuracy ([\d.]+)%", stdout).group(1))
    assert accuracy >= 95.0, stdout[-2000:]
    records = epochs_logged(out)
    assert [r["epoch"] for r in records] == list(range(1, 9))
    assert records[-1]["val_acc"] == pytest.approx(accuracy / 100, abs=1e-4)
    for name in ("curves.png", "predictions.png"):
        assert open(os.path.join(out, name), "rb").read(4) == b"\x89PNG"
    assert "same predictions: True" in stdout
    summary = json.load(open(os.path.join(out, "summary.json")))
    net = mx.gluon.SymbolBlock.imports(summary["export"]["symbol"], ["data"],
                                       summary["export"]["params"])
    assert net(mx.nd.zeros((2, 3, 32, 32))).shape == (2, 10)
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["lr"] == 0.05 and config["wd"] == 1e-4 and config["dataset"] == "digits"


def assert_same_parameters(a, b):
    """Every tensor of two .params files equal, bit for bit (BatchNorm statistics too)."""
    first, second = mx.nd.load(a), mx.nd.load(b)
    assert sorted(first) == sorted(second)
    for key in first:
        np.testing.assert_array_equal(first[key].asnumpy(), second[key].asnumpy(), key)


def test_non_finite_loss_stops_with_a_clear_message(tmp_path):
    proc = train(*TINY, "--epochs", "2", "--lr", "1e30", "--warmup-epochs", "0",
                 "--out-dir", str(tmp_path / "nan"))
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert re.search(r"error: loss is (nan|inf)", proc.stderr) and "Traceback" not in proc.stderr
    assert "lower --lr" in proc.stderr


@pytest.mark.parametrize("args,message", [
    (["--model", "resnet50"], "unknown model 'resnet50'"),
    (["--data-dir", "/nonexistent/cifar"], "data directory /nonexistent/cifar does not exist"),
    (["--cpus", "3", "--batch-size", "64"],
     "--batch-size 64 does not split over the 3 devices of --cpus"),
    (["--gpus", "0,1"], "--gpus 0,1"),
    (["--depths", "1,2"], "--depths (cifar_igcv3_d_1.0 has 7 stages) takes 7 numbers"),
    (["--lr", "nan"], "--lr must be a finite number, got nan"),
    (["--groups", "3,4"], "cifar_igcv3_d_1.0 with --groups 3,4: W1 (expand) input: 32 "
                          "channels are not divisible by 3 groups"),
    (["--multiplier", "1e9"], "--multiplier must be in (0, 16]; got 1000000000.0"),
    (["--seed", "-1"], "--seed must be in 0 .. 2^31-1, got -1"),
])
def test_bad_input_is_one_line_and_nonzero(tmp_path, args, message):
    if args[0] == "--gpus" and mx.context.num_gpus() > 0:      # a GPU machine: ask for one
        args, message = ["--gpus", "99"], "this machine has GPUs 0.."  # that does not exist
    proc = train(*(args + ["--epochs", "1", "--out-dir", str(tmp_path / "bad")]), timeout=120)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert lines[0].startswith("train_cifar.py: error:")


def test_seeds_report_mean_and_std_on_two_cpu_contexts(tmp_path):
    out = str(tmp_path / "seeds")
    proc = train(*TINY, "--epochs", "1", "--seeds", "2", "--cpus", "2", "--out-dir", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.load(open(os.path.join(out, "seeds.json")))
    assert report["seeds"] == [0, 1] and len(report["final_val_acc"]) == 2
    accs = np.array(report["final_val_acc"])
    assert report["mean"] == pytest.approx(accs.mean())
    assert report["std"] == pytest.approx(accs.std(ddof=1))
    assert "final top-1 over 2 seeds" in proc.stdout
    config = json.load(open(os.path.join(out, "seed-1", "config.json")))
    assert config["contexts"] == ["cpu(0)", "cpu(1)"] and config["seed"] == 1
    # a different model into the same folder is refused before any training
    again = train(*TINY, "--epochs", "1", "--multiplier", "1.0",
                  "--out-dir", os.path.join(out, "seed-0"), timeout=120)
    assert again.returncode == 2 and "holds a run with different multiplier" in again.stderr


def test_dist_sync_two_workers_equal_one_process_at_the_same_global_batch(tmp_path):
    """Issue 11: two dist_sync workers (each half of the global batch, one device each) end
    with the parameters of one process with two devices at the same global batch: each
    step sees the same images, split the same way, and the same summed gradient. (Equal
    workers alone would also pass with a wrong gradient scale.)"""
    out, single = str(tmp_path / "dist"), str(tmp_path / "single")
    launch_dist_sync("train_cifar.py", TINY + ["--epochs", "1", "--out-dir", out])
    assert_identical_workers(out, 50)
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["num_workers"] == 2
    # each worker trained on its half of every global batch of 32: 44 steps of 16 images
    assert epochs_logged(out)[0]["images"] == (320 // 32) * 16
    proc = train(*TINY, "--epochs", "1", "--cpus", "2", "--out-dir", single)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dist, one = (mx.nd.load(os.path.join(out, "final-rank0.params")),
                 mx.nd.load(os.path.join(single, "final.params")))
    trained = [k for k in one if "running" not in k]   # BN statistics stay per device/worker
    assert len(trained) > 50
    worst = max(float(np.abs(dist[k].asnumpy() - one[k].asnumpy()).max()) for k in trained)
    moved = max(float(np.abs(one[k].asnumpy()).max()) for k in trained)
    assert worst <= 1e-5 * max(1.0, moved), worst


def test_no_reference_batchnorm_in_any_cifar_model():
    """oneDNN falls back to its (very slow) reference BatchNorm on 4-channel-blocked layouts;
    FlatBatchNorm must keep every zoo CIFAR model off it (read from DNNL_VERBOSE)."""
    code = ("import mxnet as mx, igcv3_gluon\n"
            "for name in [n for n in igcv3_gluon.list_models() if n.startswith('cifar')]:\n"
            "    net = igcv3_gluon.get_model(name); net.initialize()\n"
            "    net.hybridize(static_alloc=True, static_shape=True)\n"
            "    x = mx.nd.random.uniform(shape=(2, 3, 32, 32))\n"
            "    with mx.autograd.record(): y = net(x)\n"
            "    y.backward(); mx.nd.waitall()\n")
    env = dict(os.environ, DNNL_VERBOSE="1", MKLDNN_VERBOSE="1")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "batch_normalization" in proc.stdout          # verbose output is there
    assert "bnorm_ref" not in proc.stdout


def test_trains_from_a_cifar10_binary_folder(tmp_path):
    """The real-data path: --data-dir with CIFAR-10 binary files (written here, 64 images)."""
    fake_cifar10(tmp_path / "data", per_file=16)
    out = str(tmp_path / "run")
    proc = train(*TINY, "--epochs", "1", "--data-dir", str(tmp_path / "data"), "--out-dir", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["dataset"] == "cifar10" and config["train_images"] == 80
    assert config["test_images"] == 16 and config["classes"] == 10
    assert epochs_logged(out)[0]["images"] == 64          # 80 // 32 full batches, flipped too


def test_defaults_are_the_papers_cifar_recipe():
    """Sec. 4.1: SGD momentum 0.9, wd 1e-4, lr 0.1 /10 at 200, 300, 350, 400 epochs, batch 64."""
    from igcv3_gluon.cifar import build_parser
    args = build_parser().parse_args([])
    assert (args.model, args.epochs, args.batch_size, args.lr, args.lr_mode, args.lr_steps,
            args.lr_factor, args.wd, args.momentum) == (
        "cifar_igcv3_d_1.0", 400, 64, 0.1, "step", "200,300,350", 0.1, 1e-4, 0.9)
    from igcv3_gluon.nn import he_normal
    assert he_normal()._kwargs == {"rnd_type": "gaussian", "factor_type": "in", "magnitude": 2}


def test_a_start_cleans_what_killed_runs_left_before_their_first_checkpoint(tmp_path):
    """Killed during its first checkpoint write, a run leaves log rows of an epoch no
    checkpoint holds and a ckpt-*.tmpPID of a dead process: the next start removes both."""
    out = str(tmp_path / "run")
    killed = train(*TINY, "--epochs", "1", "--out-dir", out,      # before any checkpoint
                   env=dict(os.environ, IGCV3_GLUON_STOP_AT="1:2:kill"))
    assert killed.returncode == -9 and os.listdir(os.path.join(out, "checkpoints")) == []
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()                                        # a pid that no longer runs
    stale = os.path.join(out, "checkpoints", "ckpt-0001.params.tmp%d" % dead.pid)
    alive = os.path.join(out, "checkpoints", "other.params.tmp%d" % os.getpid())
    for path in (stale, alive):
        open(path, "wb").write(b"\0" * 1000)
    with open(os.path.join(out, "log.jsonl"), "w") as fh:
        fh.write(json.dumps({"epoch": 1, "train_loss": 9.0}) + "\n")
    proc = train(*TINY, "--epochs", "1", "--out-dir", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "removed 1 temporary file(s)" in proc.stderr
    assert not os.path.exists(stale) and os.path.exists(alive)     # a living writer's stays
    rows = epochs_logged(out)
    assert [r["epoch"] for r in rows] == [1] and rows[0]["train_loss"] != 9.0


def test_a_resumed_run_with_changed_settings_says_so_and_records_them(tmp_path):
    """--lr lowered on resume (what the NaN message advises) is allowed; it is printed and
    config.json records from which epoch, so it never claims the new lr for trained epochs."""
    out = str(tmp_path / "run")
    first = train(*TINY, "--epochs", "1", "--lr", "0.1", "--out-dir", out)
    assert first.returncode == 0, first.stderr[-2000:]
    again = train(*TINY, "--epochs", "2", "--lr", "0.05", "--out-dir", out)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "note: continuing from epoch 2 with epochs=2, lr=0.05" in again.stderr
    assert "(epochs 1-1 used epochs=1, lr=0.1" in again.stderr
    config = json.load(open(os.path.join(out, "config.json")))
    change = config["changes"][0]
    assert change["from_epoch"] == 2 and change["lr"] == [0.1, 0.05]


def test_a_kill_after_the_log_row_before_the_checkpoint_leaves_the_row_once(tmp_path):
    """A kill between writing an epoch's log row and the checkpoint that follows leaves the
    checkpoint saved before the evaluation (``pending``) and the row: the resumed run
    evaluates that epoch again and logs it once (a SIGKILL test met this by its timing)."""
    out = str(tmp_path / "run")
    first = train(*TINY, "--epochs", "1", "--out-dir", out)
    assert first.returncode == 0, first.stderr[-2000:]
    row = epochs_logged(out)[0]
    path = os.path.join(out, "checkpoints", "ckpt-0001-00000.json")
    ckpt = json.load(open(path))
    ckpt["pending"] = {k: v for k, v in row.items() if not k.startswith("val_")}
    json.dump(ckpt, open(path, "w"))
    os.remove(os.path.join(out, "summary.json"))
    again = train(*TINY, "--epochs", "2", "--out-dir", out)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "1 epoch(s) done, its evaluation pending" in again.stderr
    rows = epochs_logged(out)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[0]["val_acc"] == row["val_acc"]               # the same weights, evaluated


def test_a_damaged_run_folder_is_one_line_or_falls_back(tmp_path):
    """An output folder whose config.json is not a run's, or whose newest checkpoint record
    is damaged: one line, or the older checkpoint (never a traceback)."""
    for name, text in (("cut", '{"model": "cifar'), ("list", "[1, 2]")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(text)
        proc = train(*TINY, "--epochs", "1", "--out-dir", str(folder))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-1500:]
        assert "config.json must describe its run; repair it or use another output " \
            "folder" in proc.stderr
    empty = train(*TINY, "--epochs", "1", "--out-dir", "")
    assert empty.returncode == 2 and "--out-dir is empty" in empty.stderr
    out = str(tmp_path / "run")
    first = train(*TINY, "--epochs", "2", "--out-dir", out)
    assert first.returncode == 0, first.stderr[-2000:]
    newest = os.path.join(out, "checkpoints", "ckpt-0002-00000.json")
    record = json.load(open(newest))
    del record["batch"]                                    # edited by hand, or another tool
    json.dump(record, open(newest, "w"))
    again = train(*TINY, "--epochs", "3", "--out-dir", out)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "checkpoint record ckpt-0002-00000.json is unreadable; ignored" in again.stderr
    assert "resuming %s from ckpt-0001-00000.params" % out in again.stderr
    assert [r["epoch"] for r in epochs_logged(out)] == [1, 2, 3]
    # the finished run's log cut inside its last row, its best weights emptied: the same
    # command writes the row back from the checkpoint, exports the final weights, and the
    # summary keeps the final accuracy
    final = json.load(open(os.path.join(out, "summary.json")))["final_val_acc"]
    log = open(os.path.join(out, "log.jsonl")).read()
    open(os.path.join(out, "log.jsonl"), "w").write(log[:-40])
    open(os.path.join(out, "best.params"), "wb").close()
    done = train(*TINY, "--epochs", "3", "--out-dir", out)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "note: log.jsonl lacked the row of epoch(s) 3; written back from the checkpoints" \
        in done.stderr
    assert "best.params cannot be read" in done.stderr
    assert [r["epoch"] for r in epochs_logged(out)] == [1, 2, 3]
    assert json.load(open(os.path.join(out, "summary.json")))["final_val_acc"] == final
    # the rows of epochs 2 and 3 lost to NUL bytes and bytes that are not UTF-8 (a crashed
    # file system): both kept epoch-end checkpoints give theirs back, in order
    rows = open(os.path.join(out, "log.jsonl"), "rb").read().splitlines(keepends=True)
    open(os.path.join(out, "log.jsonl"), "wb").write(rows[0] + b"\x00" * 64 + b"\xff\xfe{\n")
    os.remove(os.path.join(out, "summary.json"))
    mended = train(*TINY, "--epochs", "3", "--out-dir", out)
    assert mended.returncode == 0, mended.stderr[-2000:]
    assert "note: log.jsonl lacked the row of epoch(s) 2, 3; written back from the " \
        "checkpoints" in mended.stderr
    def untimed(records):
        return [{k: v for k, v in r.items() if k != "time"} for r in records]
    assert untimed(json.loads(r) for r in rows) == untimed(epochs_logged(out))
    assert json.load(open(os.path.join(out, "summary.json")))["final_val_acc"] == final
