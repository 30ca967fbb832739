"""Run records: ``config.json`` (every flag), ``log.jsonl`` (one JSON object per epoch) and
``curves.png`` (loss and accuracy per epoch)."""
import json
import os
import time

from ..errors import RunMismatch
from ..utils import (atomic_write, atomic_write_json, deferred_interrupts, read_json_object,
                     read_jsonl, save_figure, say)

__all__ = ["RunLog", "plot_curves"]


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
        if not self.enabled:
            return
        keep = [r for r in self.records() if r.get("epoch", 0) <= epochs_done]

        def write(tmp):
            with open(tmp, "w") as fh:
                for r in keep:
                    fh.write(json.dumps(r) + "\n")
        atomic_write(self.path, write)

    def append(self, record):
        if not self.enabled:
            return
        record = dict(record, time=round(time.time(), 3))
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

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
