"""The epoch loop of one run (``engine.fit`` builds it): trains, evaluates, checkpoints and
logs epoch after epoch, and stops at a batch boundary when asked.

What a person watching a long run sees comes from here: a progress line every
``log_interval`` batches (and at least every ``log_seconds``) to stdout and ``log.txt``,
batch rows in ``batches.jsonl``, TensorBoard scalars, one line per epoch, the tqdm bar on a
terminal. What a preemption costs is decided here too: besides the checkpoint of every
epoch, one every ``checkpoint_minutes`` mid-epoch (only the newest kept), so a SIGKILL at
any moment loses at most that much training, and the rerun continues bit for bit.
"""
import math
import os
import signal
import threading
import time

import mxnet as mx
from mxnet import autograd

from ..errors import NonFiniteLoss, ProjectError
from ..utils import atomic_write, progress_bar, say
from . import precision
from .progress import Meter, format_seconds

__all__ = ["Loop", "StopFlag", "Stopped", "STOP_AT_ENV", "global_step"]

STOP_AT_ENV = "IGCV3_GLUON_STOP_AT"


class Stopped(Exception):
    """Raised at a batch boundary after Ctrl-C / SIGTERM; its message says where the run was
    saved (empty until the loop that catches it fills it in)."""


class StopFlag:
    """Ctrl-C / SIGTERM set ``requested``; a second one raises KeyboardInterrupt at once."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        say("stopping at the end of this batch (press Ctrl-C again to stop at once, from the "
            "last complete checkpoint)")

    def check(self):
        if self.requested:
            raise Stopped

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def _stop_hook():
    """The test hook ``IGCV3_GLUON_STOP_AT="EPOCH:BATCH"`` (1-based epoch, batches done):
    behave as if Ctrl-C arrived during that batch; ``"EPOCH:BATCH:kill"``: die there as by
    SIGKILL, saving nothing. Interrupt and resume tests stop at batch k on any machine,
    whatever its speed."""
    text = os.environ.get(STOP_AT_ENV)
    if not text or text.startswith("export:"):
        return None
    parts = text.split(":")
    return int(parts[0]), int(parts[1]), len(parts) > 2 and parts[2] == "kill"


def global_step(epoch, batch, batches_per_epoch):
    """Batches trained since the run's start after ``batch`` batches of epoch ``epoch``
    (0-based): the x axis of every TensorBoard curve."""
    return epoch * batches_per_epoch + batch


def _loss_scale(trainer):
    scaler = getattr(trainer, "_amp_loss_scaler", None)      # AMP's (float16) dynamic scale
    return None if scaler is None else float(scaler.loss_scale)


class Loop:
    """The epoch loop of one run from ``state`` (a ``RunState``); ``parts`` holds what
    ``fit`` built (cluster, trainer, data, log, checkpoints, the run's logger and
    TensorBoard writer)."""

    def __init__(self, task, net, run, parts, state, stop):
        self.task, self.net, self.run_cfg, self.parts = task, net, run, parts
        self.cluster, self.trainer, self.ckpts = parts.cluster, parts.trainer, parts.ckpts
        self.logger, self.scalars = parts.logger, parts.scalars
        self.state, self.stop = state, stop
        self.progress = run.progress and parts.cluster.is_main
        self.stop_at = _stop_hook()
        self.batches = parts.data.batches_per_epoch
        self.meter = Meter(run.log_interval, run.log_seconds, run.epochs, self.batches)
        self.last_save = time.time()

    def save(self, done, batch, **extra):
        if self.cluster.is_main:
            self.scalars.flush()
            self.ckpts.save(self.net, self.trainer, done, batch, best=self.state.best,
                            seed=self.run_cfg.seed, loss_scale=_loss_scale(self.trainer),
                            **extra)
        self.last_save = time.time()

    def run(self):
        run, state = self.run_cfg, self.state
        if state.pending is not None:                   # stopped during its evaluation
            self.finish_epoch(state.done - 1, state.pending)
            state.pending = None
        for epoch in range(state.done, run.epochs):
            row = self.train_epoch(epoch, state.start, state.partial)
            state.start, state.partial = 0, None
            self.finish_epoch(epoch, row)
            if self.stop.requested and epoch + 1 < run.epochs:
                raise Stopped("interrupted after %s %d; saved to %s: run the same command "
                              "again to continue" % (run.stage, epoch + 1,
                                                     self.ckpts.directory))
            if self.stop.requested:                 # the last epoch: stop before the exports
                raise Stopped("interrupted after the last %s (%d); every %s is trained and "
                              "saved in %s: run the same command again to write the exports"
                              % (run.stage, epoch + 1, run.stage, self.ckpts.directory))

    def train_epoch(self, epoch, start, partial):
        """One epoch from batch ``start`` (``partial``: the tallies of the batches before);
        returns its log row."""
        run, data = self.run_cfg, self.parts.data
        divisor = self.cluster.gradient_divisor(
            self.task.gradient_divisor(run.batch_size, self.cluster.num_workers))
        data.set_epoch(epoch, start)
        self.task.begin_epoch(self.net)
        sums = dict(partial or {})
        done, seen, tic = start, 0, time.time()
        self.meter.start_epoch(epoch, start)
        bar = progress_bar(self.batches, start, "%s %d/%d" % (run.stage, epoch + 1, run.epochs),
                           self.progress)
        batches = iter(data)
        try:
            while True:
                waiting = time.time()
                batch = next(batches, None)
                if batch is None:
                    break
                waited = time.time() - waiting
                numbers = self.step(batch, epoch + done / self.batches, divisor)
                if not math.isfinite(numbers["loss"]):
                    raise self.non_finite(numbers["loss"], epoch, done)
                for key, value in numbers.items():
                    sums[key] = sums.get(key, 0.0) + value
                sums["batches"] = sums.get("batches", 0) + 1
                done += 1
                seen += numbers.get("images", 0)
                self.meter.add(numbers.get("images", 0), waited)
                bar.update(1)
                bar.set_postfix(self.task.row(sums), refresh=False)
                self.report(epoch, done, sums)
                self.save_if_due(epoch, done, sums)
                self.stop_if_asked(epoch, done, sums)
        finally:
            bar.close()
        mx.nd.waitall()        # the last backward's BatchNorm statistics, before anyone reads
        seconds = time.time() - tic
        return dict(epoch=epoch + 1, lr=self.trainer.learning_rate, **self.task.row(sums),
                    images=int(sums.get("images", 0)), img_per_s=seen / max(seconds, 1e-9))

    def report(self, epoch, done, sums):
        """The progress line of batch ``done`` when one is due (rank 0): log, batch row,
        TensorBoard. Reads only numbers the loop already holds (no device sync)."""
        if not self.cluster.is_main or not self.meter.due(done):
            return
        run = self.run_cfg
        numbers = self.meter.take(done)
        row = dict(self.task.row(sums), lr=self.trainer.learning_rate,
                   img_per_s=numbers["img_per_s"], data_wait=numbers["data_wait"])
        self.logger.info("%s %d/%d  batch %d/%d  %s  lr %.4g  %.0f img/s  data %.0f%%  "
                         "%s left %s, run %s" % (
                             run.stage, epoch + 1, run.epochs, done, self.batches,
                             "  ".join("%s %.4f" % (k.replace("train_", ""), v)
                                       for k, v in self.task.row(sums).items()),
                             row["lr"], row["img_per_s"], 100 * row["data_wait"], run.stage,
                             format_seconds(numbers["epoch_left"]),
                             format_seconds(numbers["run_left"])))
        step = global_step(epoch, done, self.batches)
        self.logger.batch_row(dict(epoch=epoch + 1, batch=done, step=step, time=time.time(),
                                   **row))
        self.scalars.batch(step, row)

    def save_if_due(self, epoch, done, sums):
        """A mid-epoch checkpoint once ``checkpoint_minutes`` have passed since the last one
        (the epoch's end has its own)."""
        minutes = self.run_cfg.checkpoint_minutes
        if minutes and 0 < done < self.batches and time.time() - self.last_save >= 60 * minutes:
            self.save(epoch, done, partial=sums)

    def step(self, batch, epoch_position, divisor):
        """One update at ``epoch_position`` (epochs, fractional) of the schedule; returns
        the batch's tallies."""
        run, trainer = self.run_cfg, self.trainer
        trainer.set_learning_rate(run.schedule(epoch_position))
        with autograd.record():
            losses, what = self.task.forward(self.net, batch, self.cluster.contexts)
        with precision.scale_loss(losses, trainer, run.dtype) as scaled:
            autograd.backward(scaled)
        trainer.step(divisor)
        return self.task.tally(what)

    def non_finite(self, value, epoch, done):
        last = self.ckpts.latest()
        where = os.path.join(self.ckpts.directory, last["files"]["params"]) if last else None
        return NonFiniteLoss(value, self.run_cfg.stage, epoch + 1, done + 1, where)

    def stop_if_asked(self, epoch, done, sums):
        """After batch ``done`` of ``epoch``: a requested stop (or the test hook's) saves the
        position and the epoch's tallies so far, then raises ``Stopped``."""
        if self.stop_at and self.stop_at[:2] == (epoch + 1, done):
            if self.stop_at[2]:
                os.kill(os.getpid(), signal.SIGKILL)
            self.stop.requested = True
        if self.stop.requested:
            self.save(epoch, done, partial=sums)
            raise Stopped("interrupted in %s %d after %d batch(es); saved to %s: run the same "
                          "command again to continue" % (self.run_cfg.stage, epoch + 1, done,
                                                         self.ckpts.directory))

    def evaluate(self, epoch):
        """The validation metrics after ``epoch``; a failure keeps its type, its message says
        that the trained epoch is saved."""
        stage = self.run_cfg.stage
        tic = time.time()
        try:
            metrics = self.task.evaluate(self.net, self.cluster.contexts, self.progress,
                                         self.stop.check)
        except Stopped:
            raise Stopped("interrupted during the evaluation after %s %d; saved to %s: run the "
                          "same command again to continue"
                          % (stage, epoch + 1, self.ckpts.directory)) from None
        except ProjectError as err:
            err.args = ("evaluation after %s %d failed: %s; the trained epoch is saved in %s: "
                        "run the same command again once fixed"
                        % (stage, epoch + 1, err, self.ckpts.directory),)
            raise
        self.meter.eval_seconds.append(time.time() - tic)
        return metrics

    def finish_epoch(self, epoch, row):
        """Evaluate (when due), keep the best weights, log the row, checkpoint."""
        run, state = self.run_cfg, self.state
        if (epoch + 1) % run.val_interval == 0 or epoch + 1 == run.epochs:
            # the trained epoch is saved first: an evaluation that fails (a damaged image in
            # the validation set, a kill) never loses it; a resume evaluates it then
            self.save(epoch + 1, 0, pending=row)
            row.update({"val_" + k: v for k, v in self.evaluate(epoch).items()})
            if state.improves(row.get(self.task.best_key)):
                state.best_value, state.best_epoch = row[self.task.best_key], epoch + 1
                if self.cluster.is_main:
                    atomic_write(os.path.join(run.out_dir, "best.params"),
                                 self.net.save_parameters)
        self.parts.log.append(row)
        self.scalars.epoch(global_step(epoch + 1, 0, self.batches),
                           {k: v for k, v in row.items() if k != "epoch"})
        self.save(epoch + 1, 0, row=row)          # the row again: a cut log.jsonl gets it back
        if self.cluster.is_main:
            self.logger.info("%s %d/%d  %s  %.0f img/s  lr %.3g" % (
                run.stage, epoch + 1, run.epochs, self.task.epoch_line(row), row["img_per_s"],
                row["lr"]))
            self.parts.log.write_summary_csv()
            self.parts.log.plot(self.task.curves[0], self.task.curves[1],
                                title=self.task.title)
