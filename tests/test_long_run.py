"""A long run a person can watch, trust and restart (the engine, through train_cifar.py on a
small real data set): progress lines in log.txt and on stdout without a terminal, batch rows,
TensorBoard curves read back from the event files, summary.csv, the environment recorded and
compared on resume, checkpoints every N minutes that make a kill at any moment cost little
and a rerun end bit for bit like an uninterrupted run, a run restarted from its own config,
and the settings that cannot work refused in one line."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from igcv3_gluon import cifar
from igcv3_gluon.train.tensorboard import read_scalars

from conftest import ROOT, digits_cifar, start_script, wait_for

EPOCHS, BATCHES = 3, 10                         # 160 training images in batches of 16


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return digits_cifar(tmp_path_factory.mktemp("digits-cifar"), 16, 8)


def tiny(data):
    return ["--data-dir", data, "--model", "cifar_igcv3_d_0.5", "--multiplier", "0.25",
            "--depths", "1,1,1,1,1,1,1", "--batch-size", "16", "--lr", "0.05", "--workers",
            "0", "--no-progress", "--log-interval", "3", "--log-seconds", "0", "--epochs",
            str(EPOCHS)]


def train(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "train_cifar.py"] + list(args), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """An uninterrupted run (its stdout is a pipe, as under nohup or a launcher)."""
    out = str(tmp_path_factory.mktemp("reference") / "run")
    proc = train(*tiny(data), "--out-dir", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, proc.stdout


def rows(path):
    return [json.loads(line) for line in open(path) if line.strip()]


def same(path_a, path_b, skip=("time", "img_per_s", "data_wait")):
    """The rows of two ``.jsonl`` files, equal but for the clock's numbers."""
    strip = [[{k: v for k, v in r.items() if k not in skip} for r in rows(p)]
             for p in (path_a, path_b)]
    return strip[0] == strip[1]


def assert_same_parameters(a, b):
    first, second = mx.nd.load(a), mx.nd.load(b)
    assert sorted(first) == sorted(second)
    for key in first:
        np.testing.assert_array_equal(first[key].asnumpy(), second[key].asnumpy(), key)


LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d epoch (\d)/3  batch (\d+)/10  loss [\d.]+  "
                  r"acc [\d.]+  lr 0\.05  \d+ img/s  data \d+%  epoch left (\d\d:\d\d), run "
                  r"(\d\d:\d\d)$")


def test_progress_reaches_log_txt_and_stdout_without_a_terminal(reference):
    out, stdout = reference
    log = open(os.path.join(out, "log.txt")).read().splitlines()
    lines = [LINE.match(line) for line in log]
    seen = [(int(m.group(1)), int(m.group(2))) for m in lines if m]
    expected = [(e, b) for e in range(1, EPOCHS + 1) for b in (3, 6, 9, 10)]
    assert seen == expected, log
    assert [m.group(4) for m in lines if m][-1] == "00:00"          # the run's time left
    assert sum(bool(LINE.match(line)) for line in stdout.splitlines()) == len(expected)
    assert sum(re.search(r" epoch \d/3  loss [\d.]+  train acc [\d.]+  val acc", line) is not None
               for line in log) == EPOCHS                               # the epoch lines
    assert any(" resuming " in line or " run %s: " % out in line for line in log)  # the notes too
    batch_rows = rows(os.path.join(out, "batches.jsonl"))
    assert [(r["epoch"], r["batch"], r["step"]) for r in batch_rows] == \
        [(e, b, (e - 1) * BATCHES + b) for e, b in expected]
    assert {"train_loss", "train_acc", "lr", "img_per_s", "data_wait"} <= set(batch_rows[0])
    assert all(0 <= r["data_wait"] <= 1 and r["img_per_s"] > 0 for r in batch_rows)
    epochs = rows(os.path.join(out, "log.jsonl"))
    import csv
    table = list(csv.DictReader(open(os.path.join(out, "summary.csv"))))
    assert [int(r["epoch"]) for r in table] == [1, 2, 3]
    assert [float(r["val_acc"]) for r in table] == [r["val_acc"] for r in epochs]


def test_tensorboard_curves_are_the_logs_numbers(reference):
    out, _ = reference
    scalars = read_scalars(os.path.join(out, "tensorboard"))
    epochs = rows(os.path.join(out, "log.jsonl"))
    assert [s for s, _ in scalars["epoch/val_acc"]] == [BATCHES * e for e in (1, 2, 3)]
    np.testing.assert_allclose([v for _, v in scalars["epoch/val_acc"]],
                               [r["val_acc"] for r in epochs], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in scalars["epoch/train_loss"]],
                               [r["train_loss"] for r in epochs], rtol=1e-6)
    batch_rows = rows(os.path.join(out, "batches.jsonl"))
    for key in ("train_loss", "lr", "img_per_s", "data_wait"):
        assert [s for s, _ in scalars["train/" + key]] == [r["step"] for r in batch_rows]
    np.testing.assert_allclose([v for _, v in scalars["train/train_loss"]],
                               [r["train_loss"] for r in batch_rows], rtol=1e-6)


def test_the_environment_is_recorded_and_a_resume_elsewhere_says_what_changed(reference,
                                                                             data, tmp_path):
    import platform
    out, _ = reference
    config = json.load(open(os.path.join(out, "config.json")))
    env = config["environment"]
    assert env["packages"]["mxnet"] == mx.__version__
    assert env["packages"]["numpy"] == np.__version__
    assert ("MKLDNN" in env["mxnet_features"]) == mx.runtime.Features().is_enabled("MKLDNN")
    assert env["python"] == platform.python_version() and env["host"] == socket.gethostname()
    flags = open("/proc/cpuinfo").read()
    assert ("avx512_vnni" in env["cpu"]["isa"]) == (" avx512_vnni" in flags)
    assert env["command"][0].endswith("train_cifar.py") and "--log-interval" in env["command"]
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    if head:
        assert env["git"]["commit"] == head and isinstance(env["git"]["changed"], bool)
    assert config["hosts"] == [socket.gethostname()] and config["num_workers"] == 1
    meta = json.load(open(os.path.join(out, "export", "cifar_igcv3_d_0.5-w0.25-meta.json")))
    assert meta["environment"] == env
    # the same run continued "elsewhere": another MXNet and another host were recorded
    moved = str(tmp_path / "moved")
    shutil.copytree(out, moved)
    old = dict(config, out_dir=moved)
    old["environment"] = dict(env, host="elsewhere", packages=dict(env["packages"],
                                                                   mxnet="1.8.0"))
    json.dump(old, open(os.path.join(moved, "config.json"), "w"))
    more = train(*tiny(data), "--epochs", "4", "--out-dir", moved)
    assert more.returncode == 0, more.stderr[-2000:]
    assert "note: continuing from epoch 4 on another environment: mxnet 1.8.0 -> %s; host " \
        "elsewhere -> %s" % (mx.__version__, socket.gethostname()) in more.stderr
    changes = json.load(open(os.path.join(moved, "config.json")))["environment_changes"]
    assert changes == [dict(from_epoch=4, mxnet=["1.8.0", mx.__version__],
                            host=["elsewhere", socket.gethostname()])]
    assert "on another environment" in open(os.path.join(moved, "log.txt")).read()


def test_a_kill_at_any_moment_loses_at_most_the_checkpoint_interval(reference, data,
                                                                    tmp_path):
    """Ctrl-C at batch 3 of epoch 2 (the engine's hook); resumed with a checkpoint every
    minute (here: every batch) and killed as by SIGKILL at batch 7 (the hook); resumed and
    killed by a real SIGKILL once the checkpoint of batch 2 of epoch 3 is written: each rerun
    resumes from the newest checkpoint, the last ends with the reference's parameters, bit
    for bit, the same log, batch rows and TensorBoard steps, none written twice."""
    ref, _ = reference
    out = str(tmp_path / "run")
    args = tiny(data) + ["--out-dir", out]
    ckpts = os.path.join(out, "checkpoints")
    stopped = train(*args, env=dict(IGCV3_GLUON_STOP_AT="2:3"))
    assert stopped.returncode == 130, stopped.stderr[-2000:]
    assert "interrupted in epoch 2 after 3 batch(es)" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    from igcv3_gluon.train.tensorboard import Scalars
    orphan = Scalars(out)              # what a writer killed after its checkpoint left on disk:
    orphan.batch(BATCHES + 6, {"train_loss": 9.0})       # batch 6 of epoch 2, and epoch 2's
    orphan.epoch(2 * BATCHES, {"val_acc": 0.0})          # end, which the rerun writes again
    orphan.close()
    killed = train(*args, "--checkpoint-minutes", "1e-9", env=dict(IGCV3_GLUON_STOP_AT="2:7:kill"))
    assert killed.returncode == -9 and "3 batch(es) into the next" in killed.stderr
    assert sorted(os.listdir(ckpts)) == ["ckpt-0001-00000.%s" % k for k in ("json", "params",
                                                                           "states")] + \
        ["ckpt-0001-00007.%s" % k for k in ("json", "params", "states")]   # the newest only
    proc = start_script("train_cifar.py", args + ["--checkpoint-minutes", "1e-9"])
    wait_for(os.path.join(ckpts, "ckpt-0002-00002.json"), proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    final = train(*args)
    assert final.returncode == 0, final.stderr[-2000:]
    assert re.search(r"resuming %s from ckpt-0002-000\d\d\.params: 2 epoch\(s\) done, \d "
                     r"batch\(es\) into the next" % re.escape(out), final.stderr)
    assert_same_parameters(os.path.join(ref, "final.params"), os.path.join(out, "final.params"))
    for name in ("log.jsonl", "batches.jsonl"):
        assert same(os.path.join(ref, name), os.path.join(out, name)), name
    theirs, ours = (read_scalars(os.path.join(d, "tensorboard")) for d in (ref, out))
    assert sorted(theirs) == sorted(ours)
    for tag in theirs:
        assert [s for s, _ in ours[tag]] == [s for s, _ in theirs[tag]], tag
    assert not [f for f in os.listdir(ckpts) if ".tmp" in f]


def test_a_run_restarted_from_its_config_reproduces_its_log(reference, tmp_path, capsys):
    ref, _ = reference
    again = str(tmp_path / "again")
    proc = train("--config", os.path.join(ref, "config.json"), "--out-dir", again)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert same(os.path.join(ref, "log.jsonl"), os.path.join(again, "log.jsonl"))
    assert_same_parameters(os.path.join(ref, "final.params"),
                           os.path.join(again, "final.params"))
    config = json.load(open(os.path.join(again, "config.json")))
    assert config["config"] == os.path.join(ref, "config.json")
    assert config["overrides"] == {"out_dir": again}
    # a YAML file: flag names as keys, lists allowed; a key that is no flag is one line
    yaml_file = tmp_path / "recipe.yaml"
    yaml_file.write_text("epochs: 1\nlr_steps: [1]\nlr_stepz: [2]\n")
    assert cifar.main(["--config", str(yaml_file), "--out-dir", str(tmp_path / "y")]) == 2
    assert "--config %s: lr_stepz is no flag of" % yaml_file in capsys.readouterr().err
    assert not os.path.exists(str(tmp_path / "y"))


@pytest.mark.parametrize("flags, message", [
    (["--syncbn", "--kvstore", "horovod"], "--syncbn synchronises BatchNorm over the GPUs of "
                                           "one process (MXNet's SyncBatchNorm); with "
                                           "--kvstore horovod each process would keep its own "
                                           "statistics: drop --syncbn"),
    (["--syncbn", "--kvstore", "dist_sync"], "with --kvstore dist_sync each process would "
                                             "keep its own statistics"),
    (["--cpus", "2", "--batch-size", "2"], "--batch-size 2 gives each of the 2 devices one "
                                           "image: BatchNorm would normalise each channel "
                                           "over a single value"),
    (["--log-interval", "-1"], "--log-interval must be a number >= 0, got -1"),
    (["--checkpoint-minutes", "nan"], "--checkpoint-minutes must be a number >= 0, got nan"),
])
def test_settings_that_cannot_work_are_one_line(tmp_path, capsys, flags, message):
    assert cifar.main(["--epochs", "1", "--out-dir", str(tmp_path / "r")] + flags) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], lines
    assert not os.path.exists(str(tmp_path / "r"))


def test_only_the_newest_mid_epoch_checkpoint_is_kept(tmp_path):
    """Epoch ends: the newest two; mid-epoch (timed or interrupted) saves: only the newest,
    and only while it is newer than every epoch end."""
    from igcv3_gluon.train.checkpoint import CheckpointManager
    net = mx.gluon.nn.Dense(2, in_units=2)
    net.initialize()
    manager = CheckpointManager(str(tmp_path / "checkpoints"))
    def kept():
        return sorted(n[:-len(".json")] for n in os.listdir(manager.directory)
                              if n.endswith(".json"))
    for done, batch in ((1, 0), (1, 3), (1, 4), (1, 5)):
        manager.save(net, None, done, batch)
    assert kept() == ["ckpt-0001-00000", "ckpt-0001-00005"]
    manager.save(net, None, 2, 0)
    assert kept() == ["ckpt-0001-00000", "ckpt-0002-00000"]
    manager.save(net, None, 2, 2)
    manager.save(net, None, 3, 0)
    assert kept() == ["ckpt-0002-00000", "ckpt-0003-00000"]
    assert manager.latest()["epochs_done"] == 3


def test_a_stop_asked_after_the_last_epoch_comes_before_the_exports(data, tmp_path, capsys,
                                                                     monkeypatch):
    """Ctrl-C while the last epoch writes its row, checkpoint and plot: the run stops
    there (exit 130, the way to finish), writes no export and no summary.json; the same
    command then writes them without training again."""
    from igcv3_gluon.train import loop
    real = loop.Loop.finish_epoch

    def finish_then_ctrl_c(self, epoch, row):
        real(self, epoch, row)
        self.stop.requested = True                  # as the StopFlag's handler does
    monkeypatch.setattr(loop.Loop, "finish_epoch", finish_then_ctrl_c)
    out = str(tmp_path / "run")
    args = tiny(data)[:-1] + ["1", "--out-dir", out]
    assert cifar.main(args) == 130
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.endswith("interrupted after the last epoch (1); every epoch is trained and "
                         "saved in %s: run the same command again to write the exports"
                         % os.path.join(out, "checkpoints")), last
    assert not os.path.exists(os.path.join(out, "export"))
    assert not os.path.exists(os.path.join(out, "summary.json"))
    monkeypatch.undo()
    assert cifar.main(args) == 0
    assert len(rows(os.path.join(out, "log.jsonl"))) == 1          # nothing trained again
    assert len(os.listdir(os.path.join(out, "export"))) == 6
    assert os.path.isfile(os.path.join(out, "summary.json"))


@pytest.mark.parametrize("text, message", [
    ("epochs: 1.5", "epochs must be a whole number, got 1.5"),
    ("epochs: true", "epochs must be a whole number, got true"),
    ("lr: null", "lr must be a value (leave the key out for the default"),
    ("lr: fast", "lr must be a number, got 'fast'"),
    ("no_progress: \"no\"", "no_progress must be true or false, got 'no'"),
    ("no_progress: 0", "no_progress must be true or false, got 0"),
    ("dataset: cifar1000", "dataset must be one of digits, cifar10, cifar100, got "
                           "'cifar1000'"),
    ("lr_steps: [1, {a: 2}]", "lr_steps must be a list of numbers or names"),
    ("lr: 0.1\nepochs: 2\nlr: 0.5", "is not readable YAML (the key lr is given twice"),
])
def test_a_config_value_of_the_wrong_kind_is_one_line(tmp_path, capsys, text, message):
    """argparse checks neither the type nor the choice of a default: the values a
    ``--config`` file gives are checked as the flags would be, before anything is written."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text + "\n")
    assert cifar.main(["--config", str(recipe), "--out-dir", str(tmp_path / "r")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "--config %s" % recipe in lines[0] and message in lines[0], \
        lines
    assert not os.path.exists(str(tmp_path / "r"))


@pytest.mark.parametrize("script", ["cifar", "imagenet", "detection"])
def test_every_default_passes_through_a_config_file_unchanged(tmp_path, script):
    """The defaults of each script, written as a config file the way a run writes them
    (JSON), read back as the same settings (the kinds accepted are the kinds written)."""
    import importlib

    from igcv3_gluon.train.cli import parse_args
    module = importlib.import_module("igcv3_gluon." + script)
    defaults = vars(module.build_parser().parse_args([]))
    path = tmp_path / "config.json"
    path.write_text(json.dumps(defaults))
    again = vars(parse_args(module.build_parser(), ["--config", str(path)]))
    assert again.pop("config") == str(path)
    assert again.pop("out_dir") == str(tmp_path)          # a run's config: its own folder
    assert {k: again[k] for k in defaults if k not in ("config", "out_dir")} == \
        {k: v for k, v in defaults.items() if k not in ("config", "out_dir")}


@pytest.mark.parametrize("flags, message", [
    (["--lr-factor", "-1", "--lr-steps", "1"], "--lr-factor must be positive"),
    (["--lr-factor", "0"], "--lr-factor must be positive"),
    (["--lr-mode", "exp", "--lr-steps", "5,10"], "--lr-steps 5,10: only --lr-mode step uses "
                                                 "steps"),
    (["--lr-mode", "cosine", "--lr-factor", "7"], "--lr-factor 7: --lr-mode cosine has no "
                                                  "factor"),
    (["--dataset", "digits", "--data-dir", "/nonexistent"], "--data-dir /nonexistent with "
                                                             "--dataset digits: the digits set "
                                                             "is embedded"),
])
def test_a_value_the_run_would_ignore_or_misuse_is_refused(tmp_path, capsys, flags, message):
    """A value given is used or refused: schedule flags the chosen mode ignores, a factor
    that would turn descent into ascent, a data folder the embedded set never reads."""
    assert cifar.main(["--epochs", "2", "--out-dir", str(tmp_path / "r")] + flags) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], lines
    assert not os.path.exists(str(tmp_path / "r"))


def test_the_defaults_of_a_mode_are_not_given_values(tmp_path):
    """The recipe's default steps and factor are not refused when another mode is chosen:
    only values given on the command line (or in a YAML recipe) count."""
    from igcv3_gluon.train.cli import parse_args, validate_common_args
    args = parse_args(cifar.build_parser(), ["--lr-mode", "cosine", "--out-dir",
                                             str(tmp_path / "r")])
    assert args.lr_steps == "200,300,350" and "lr_steps" not in args.given
    validate_common_args(args)


def test_a_moved_runs_config_continues_it_where_it_is(reference, tmp_path, monkeypatch):
    """``--config RUN/config.json`` without ``--out-dir`` continues the run in the folder
    holding the file: a moved or copied run (or one recorded with a relative ``out_dir``
    from another working folder) is not trained again from scratch elsewhere."""
    import shutil

    from igcv3_gluon.train.cli import parse_args
    moved = str(tmp_path / "moved")
    shutil.copytree(reference[0], moved)
    monkeypatch.chdir(str(tmp_path))
    args = parse_args(cifar.build_parser(), ["--config", os.path.join("moved", "config.json")])
    assert args.out_dir == moved and args.overrides == {}
    proc = train("--config", os.path.join(moved, "config.json"), "--epochs", str(EPOCHS + 1))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resuming %s" % moved in proc.stderr
    assert [r["epoch"] for r in rows(os.path.join(moved, "log.jsonl"))] == \
        list(range(1, EPOCHS + 2))
    assert [r["epoch"] for r in rows(os.path.join(reference[0], "log.jsonl"))] == \
        list(range(1, EPOCHS + 1))                                  # the original untouched
