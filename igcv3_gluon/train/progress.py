"""Progress a person can watch from a log file: a line every ``log_interval`` batches (and at
least every ``log_seconds`` while batches go on) with the epoch, batch/total, the epoch's
running training numbers, lr, images/s, the share of the time spent waiting for data, and
the epoch's and the run's time left, written through Python's ``logging`` to stdout and to
``RUN/log.txt`` whether or not a terminal is attached (MXNet's ``fit.py`` prints every
``--disp-batches``, GluonCV's scripts every ``--log-interval``, timm with its data time).
The same numbers go to ``RUN/batches.jsonl`` (one row per line, for curves inside an
epoch) and to TensorBoard (``train/tensorboard.py``).

Nothing here synchronises the devices: the numbers are the ones the engine already reads
back for every batch (its non-finite guard), and the clock.
"""
import json
import logging
import os
import sys
import time

from ..utils import atomic_write, read_jsonl, say

__all__ = ["RunLogger", "Meter", "format_seconds"]

LOG_FILE = "log.txt"
BATCHES_FILE = "batches.jsonl"


def format_seconds(seconds):
    """``3d 04:05:06``, ``04:05:06`` or ``05:06`` for a duration (``?`` when unknown)."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = "%02d:%02d:%02d" % (hours, minutes, secs) if hours or days else \
        "%02d:%02d" % (minutes, secs)
    return ("%dd " % days if days else "") + clock


class RunLogger:
    """The run's log on rank 0: ``info`` lines (progress, epochs) to stdout and ``log.txt``,
    ``note`` lines (resume, changes, warnings) to stderr (``utils.say``) and ``log.txt``;
    the batch rows to ``batches.jsonl``. Other ranks write nothing."""

    def __init__(self, out_dir, enabled=True):
        self.enabled = enabled
        self.batches_path = os.path.join(out_dir, BATCHES_FILE)
        self.logger = logging.getLogger("igcv3_gluon.run.%s" % os.path.abspath(out_dir))
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.file = None
        if enabled:
            stamp = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
            self.file = logging.FileHandler(os.path.join(out_dir, LOG_FILE), encoding="utf-8",
                                            delay=True)       # created by its first line
            self.file.setFormatter(stamp)
            self.console = logging.StreamHandler(sys.stdout)
            self.console.setFormatter(stamp)
            self.console.addFilter(lambda record: not getattr(record, "note", False))
            for handler in (self.file, self.console):
                self.logger.addHandler(handler)

    def info(self, message):
        if self.enabled:
            self.logger.info(message)
            self.console.flush()

    def note(self, message):
        """A note for a person: on stderr at once, and in ``log.txt``."""
        if self.enabled:
            say(message)
            self.logger.info(message, extra={"note": True})

    def batch_row(self, row):
        if self.enabled:
            with open(self.batches_path, "a") as fh:
                fh.write(json.dumps(row) + "\n")

    def truncate_batches(self, epoch, batch):
        """Keep the batch rows up to ``batch`` of ``epoch`` (1-based), as the checkpoint the
        run resumes from; the rows of batches it will train again go."""
        if not self.enabled or not os.path.exists(self.batches_path):
            return
        keep = [r for r in read_jsonl(self.batches_path)
                if (r.get("epoch", 0), r.get("batch", 0)) <= (epoch, batch)]

        def write(tmp):
            with open(tmp, "w") as fh:
                fh.writelines(json.dumps(r) + "\n" for r in keep)
        atomic_write(self.batches_path, write)

    def close(self):
        if self.file is not None:
            for handler in (self.file, self.console):
                self.logger.removeHandler(handler)
            self.file.close()
            self.file = None


class Meter:
    """When the next progress line is due, and its numbers: images/s and the share of time
    waiting for data since the previous line, time left in the epoch (its batches so far)
    and in the run (the epochs left at that pace, plus the evaluations at theirs)."""

    def __init__(self, interval, seconds, epochs, batches_per_epoch):
        self.interval, self.seconds = interval, seconds
        self.epochs, self.batches_per_epoch = epochs, batches_per_epoch
        self.eval_seconds = []

    def start_epoch(self, epoch, start):
        now = time.time()
        self.epoch, self.epoch_start, self.first = epoch, now, start
        self.last_time, self.last_batch, self.images, self.waited = now, start, 0, 0.0

    def add(self, images, waited):
        self.images += images
        self.waited += waited

    def due(self, done):
        """Whether batch ``done`` (of the epoch) gets a line: every ``interval``-th batch of
        the epoch (the same batches after a resume), its last, and any batch ``seconds``
        after the previous line."""
        if self.interval <= 0 and self.seconds <= 0:
            return False
        return (self.interval > 0 and done % self.interval == 0) or \
            (self.seconds > 0 and time.time() - self.last_time >= self.seconds) or \
            done == self.batches_per_epoch

    def take(self, done):
        """The numbers of the window ending at batch ``done``; starts the next window."""
        now = time.time()
        window = max(now - self.last_time, 1e-9)
        per_batch = (now - self.epoch_start) / max(done - self.first, 1)
        epoch_left = per_batch * (self.batches_per_epoch - done)
        evaluation = (sum(self.eval_seconds) / len(self.eval_seconds)
                      if self.eval_seconds else 0.0)
        run_left = epoch_left + (self.epochs - self.epoch - 1) * (
            per_batch * self.batches_per_epoch + evaluation)
        numbers = dict(img_per_s=self.images / window,
                       data_wait=min(1.0, self.waited / window),
                       epoch_left=epoch_left, run_left=run_left)
        self.last_time, self.last_batch, self.images, self.waited = now, done, 0, 0.0
        return numbers
