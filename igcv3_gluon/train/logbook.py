"""Run records: ``config.json`` (every flag), ``log.jsonl`` (one JSON object per epoch) and
``curves.png`` (loss and accuracy per epoch); what a run folder may hold (``RUN_FILES``) and
the check that an output folder is one (``check_run_folder``)."""
import csv
import json
import os
import re
import time

from ..errors import OutputConflict, RunMismatch
from ..utils import (
    atomic_write,
    atomic_write_json,
    deferred_interrupts,
    read_json_object,
    read_jsonl,
    remove_stale_temp_files,
    save_figure,
    say,
)

__all__ = ["RunLog", "plot_curves", "RUN_FILES", "check_run_folder", "is_run_config",
           "remove_stale_run_files"]

# Everything the project's commands write into a run folder (file names or patterns): the
# engine's records, checkpoints and exports, the ImageNet retraining stage, the detector's
# predictions and the demo's picture. Cleanup touches only these names.
RUN_FILES = ("config.json", "log.jsonl", "log.txt", "batches.jsonl", "summary.csv",
             "curves.png", "best.params", "final.params", "summary.json", "final-rank*.params",
             ".lock", "checkpoints", "export", "tensorboard", "retrain", "predictions",
             "predictions.png")
# a run killed before it wrote config.json leaves only these, always with its ".lock" (taken
# first, and left in place when released)
_BEFORE_CONFIG = (".lock", "checkpoints", "log.txt")


def is_run_config(config):
    """Whether a ``config.json`` (a dict) is one this project's training runs write."""
    return isinstance(config, dict) and all(k in config for k in ("model", "epochs", "seed"))


def _is_our_lock(path):
    """Whether ``path`` is a lock file a run of ours took (``utils.FolderLock``: its owner's
    process id; an empty one, as ``touch`` makes, is not taken for ours)."""
    if not os.path.isfile(path) or os.path.getsize(path) > 32:
        return False
    with open(path, "rb") as fh:
        return re.match(rb"^\d+$", fh.read().strip()) is not None


def _is_temporary(name):
    return re.match(r"^.*\.(tmp|part)\d+$", name) is not None


def check_run_folder(folder):
    """That ``folder`` can take a training run: it does not exist, is empty, or holds one of
    this project's runs (its ``config.json``; what a run killed before writing it leaves is
    accepted too, recognised by the ``.lock`` it took first). Anything else is refused before
    a file is written or removed: a folder of the user's own files (``OutputConflict``: a run
    would overwrite its ``curves.png`` or append to its ``log.jsonl``), another program's
    ``config.json`` (``OutputConflict``) or an evaluation's (``RunMismatch``)."""
    if not os.path.isdir(folder):
        if os.path.exists(folder):
            raise OutputConflict("%s is a file, not a folder: give a new or empty folder for the "
                                 "run" % folder)
        return
    names = sorted(os.listdir(folder))
    if "config.json" in names:
        try:
            config = read_json_object(os.path.join(folder, "config.json"))
        except ValueError:
            return                 # a damaged run config: RunLog.load_config says what to do
        if config is not None and config.get("evaluated"):
            raise RunMismatch("%s holds an evaluation of %s (evaluation.json), not a training "
                              "run; use another output folder" % (folder, config.get("model")),
                              ["evaluated"])
        if not is_run_config(config):
            raise OutputConflict("%s/config.json is not a config of an igcv3-gluon run (it has "
                                 "no model, epochs and seed): the folder holds another "
                                 "program's files; give a new or empty output folder" % folder)
        return
    # a log.txt without the .lock is the user's; an empty checkpoints/ may be another
    # worker's of a distributed run (made before the main one takes the lock)
    ours = _BEFORE_CONFIG if _is_our_lock(os.path.join(folder, ".lock")) else ("checkpoints",)
    foreign = [n for n in names if n not in ours and not _is_temporary(n)]
    ckpts = os.path.join(folder, "checkpoints")
    empty_ckpts = not os.path.isdir(ckpts) or all(_is_temporary(n) for n in os.listdir(ckpts))
    if foreign or not empty_ckpts:
        shown = [n + ("/" if os.path.isdir(os.path.join(folder, n)) else "")
                 for n in (foreign or ["checkpoints"])]
        raise OutputConflict("%s holds files that are not an igcv3-gluon run (%s%s): a run "
                             "writes config.json, log.jsonl, curves.png, checkpoints/ and "
                             "export/ there; give a new or empty output folder"
                             % (folder, ", ".join(shown[:4]), ", ..." if len(shown) > 4 else ""))


def remove_stale_run_files(folder):
    """The temporary files (``NAME.tmpPID``, ``NAME.partPID``) that killed processes left
    for the run's own files: in ``folder`` (names of ``RUN_FILES``) and in its
    ``checkpoints/`` (``ckpt-*``); nothing else is looked at. Returns their paths."""
    return (remove_stale_temp_files(folder, RUN_FILES) +
            remove_stale_temp_files(os.path.join(folder, "checkpoints"), ["ckpt-*"]))


class RunLog:
    def __init__(self, out_dir, enabled=True):
        self.out_dir, self.enabled = out_dir, enabled
        self.path = os.path.join(out_dir, "log.jsonl")
        if enabled:
            os.makedirs(out_dir, exist_ok=True)

    def save_config(self, config):
        """Write ``config.json``; a resumed run must have been started with the same
        model and data set."""
        if not self.enabled:
            return
        atomic_write_json(os.path.join(self.out_dir, "config.json"), config, sort_keys=True)

    def load_config(self):
        try:
            return read_json_object(os.path.join(self.out_dir, "config.json"))
        except ValueError as err:
            raise RunMismatch("%s: a run folder's config.json must describe its run; repair "
                              "it or use another output folder" % err, ["config.json"]) from None

    def records(self):
        return read_jsonl(self.path)

    def truncate(self, epochs_done):
        """Keep only the records of epochs <= ``epochs_done`` (resuming from a checkpoint)."""
        if not self.enabled or not os.path.exists(self.path):
            return                     # nothing to cut (a start that fails writes no log)
        self._rewrite([r for r in self.records() if r.get("epoch", 0) <= epochs_done])

    def restore(self, rows):
        """Put ``rows`` (epoch rows a cut log lost) back among the others, in epoch order."""
        if self.enabled:
            self._rewrite(sorted(self.records() + list(rows), key=lambda r: r.get("epoch", 0)))

    def _rewrite(self, rows):
        def write(tmp):
            with open(tmp, "w") as fh:
                fh.writelines(json.dumps(r) + "\n" for r in rows)
        atomic_write(self.path, write)

    def append(self, record):
        if not self.enabled:
            return
        record = dict(record, time=round(time.time(), 3))
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def write_summary_csv(self, filename="summary.csv"):
        """``summary.csv`` beside ``log.jsonl``: one row per epoch, a column per number (for
        spreadsheets); rewritten whole after every epoch."""
        if not self.enabled:
            return
        records = self.records()
        columns = []
        for record in records:
            columns += [k for k in record if k not in columns]

        def write(tmp):
            with open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, columns, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(records)
        atomic_write(os.path.join(self.out_dir, filename), write)

    def plot(self, keys_left=("train_loss",), keys_right=("train_acc", "val_acc"),
             filename="curves.png", title=None):
        """Redraw the curves. Ctrl-C / SIGTERM arriving meanwhile takes effect right after
        (matplotlib interrupted mid-call fails with unrelated errors), and a plotting failure
        only costs the picture, never the run."""
        if not self.enabled:
            return None
        with deferred_interrupts():
            try:
                return plot_curves(self.records(), os.path.join(self.out_dir, filename),
                                   keys_left, keys_right, title)
            except Exception as err:                  # noqa: BLE001 - the run goes on
                say("could not draw %s (%s: %s)" % (filename, type(err).__name__, err))
                return None


def plot_curves(records, path, keys_left, keys_right, title=None):
    """Loss (left) and accuracy (right) against epoch, as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if not records:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, keys in ((ax1, keys_left), (ax2, keys_right)):
        for key in keys:
            points = [(r["epoch"], r[key]) for r in records if r.get(key) is not None]
            if points:                       # metrics evaluated every N epochs: their epochs
                ax.plot(*zip(*points), marker=".", label=key)
    ax1.set_xlabel("epoch"), ax1.set_ylabel("loss"), ax1.legend(), ax1.grid(alpha=0.3)
    ax2.set_xlabel("epoch"), ax2.set_ylabel("accuracy"), ax2.legend(), ax2.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
