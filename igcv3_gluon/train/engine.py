"""The run engine: one training run of any kind of model, written once.

``fit(task, net, run)`` owns everything a long run needs: the devices and the kvstore (or
Horovod), initialisation, the optimiser, resuming from the last good checkpoint, the epoch
loop with its progress bar and lr schedule, mixed precision, the non-finite-loss guard,
interrupts, evaluation every ``val_interval`` epochs, the best model, per-epoch logs,
checkpoints and curves, and the best/final export. A *task* (``train.classifier``,
``train.detector``) supplies only what differs between kinds of model: its batches, the
forward pass and loss, what it tallies, its evaluation, which metric is "best", its export.

Resume is exact. Ctrl-C or SIGTERM only sets a flag; the run stops at the next batch
boundary (never inside an update), saves a checkpoint there (parameters, optimizer state,
position, the epoch's partial tallies) and exits 130. A stop during evaluation saves the
finished epoch with its evaluation pending, which the resumed run does first. A second
Ctrl-C stops at once, from the last complete checkpoint. After SIGKILL the run restarts from
the last checkpoint; every epoch's data order and augmentation are drawn from
``(seed, epoch)``, so the resumed run repeats the same batches and ends with the same
parameters as an uninterrupted one (bit for bit on one device).
"""
import json
import os
import random
import shutil
import signal
import tempfile
from dataclasses import dataclass, field

import mxnet as mx
import numpy as np

from ..environment import changed as environment_changes
from ..environment import environment
from ..errors import DataError, Interrupted, NonFiniteLoss, RunMismatch, SetupError
from ..nn import he_normal
from ..utils import (
    FolderLock,
    atomic_write,
    atomic_write_json,
    deferred_interrupts,
    ignore_interrupts,
    interrupts_raise,
    say,
)
from .checkpoint import CheckpointManager, epochs_done
from .context import make_cluster
from .logbook import RunLog, check_run_folder, remove_stale_run_files
from .loop import STOP_AT_ENV, Loop, StopFlag, Stopped, global_step
from .optim import SGDConfig, make_trainer
from .progress import RunLogger
from .schedule import LRSchedule
from .tensorboard import Scalars, prune

__all__ = ["RunConfig", "RunState", "Task", "fit", "check_can_run", "seed_everything",
           "Stopped", "STOP_AT_ENV", "NonFiniteLoss"]


@dataclass
class RunConfig:
    """What a run is, as values (the command-line layer builds it from the flags)."""
    out_dir: str
    epochs: int
    batch_size: int                       # global, over all devices and workers
    schedule: LRSchedule
    sgd: SGDConfig
    contexts: list
    kvstore: str = "device"
    dtype: str = "float32"
    seed: int = 0
    val_interval: int = 1
    resume: bool = True
    progress: bool = True
    stage: str = "epoch"                  # label of the progress bar and epoch lines
    export_name: str = "model"            # export/<export_name>-symbol.json
    settings: dict = field(default_factory=dict)   # what config.json records
    identity: tuple = ()                  # keys of ``settings`` a run found in out_dir shares
    log_interval: int = 50                # a progress line every N batches (0: none) ...
    log_seconds: float = 30.0             # ... and at least every S seconds (0: no minimum)
    tensorboard: bool = True              # scalars in out_dir/tensorboard
    checkpoint_minutes: float = 0.0       # a mid-epoch checkpoint every M minutes (0: none)


class Task:
    """What differs between kinds of model. ``best_key`` is the logged metric to maximise;
    ``curves`` the log keys drawn left (losses) and right (accuracies)."""
    best_key = "val_acc"
    curves = (("train_loss",), ("train_acc", "val_acc"))
    title = ""
    meta = None           # what the exports' -meta.json say (the engine adds the environment)

    def train_data(self, net, rank, num_workers, global_batch, contexts):
        """Batches of this worker: ``set_epoch(epoch, start_batch)``, ``batches_per_epoch``,
        iteration."""
        raise NotImplementedError

    def start_fresh(self, net, contexts):
        """Called once when a run starts from scratch (not when it resumes)."""

    def begin_epoch(self, net):
        """Called before every epoch's first batch."""

    def forward(self, net, batch, contexts):
        """Under ``autograd.record``: ``(losses to backpropagate, what to tally)``."""
        raise NotImplementedError

    def tally(self, what):
        """Numbers of one batch (a dict of floats; ``loss`` is checked for NaN)."""
        raise NotImplementedError

    def gradient_divisor(self, global_batch, num_workers):
        """The divisor of the gradients summed over every device and worker."""
        raise NotImplementedError

    def row(self, sums):
        """The epoch's training statistics from the summed tallies."""
        raise NotImplementedError

    def evaluate(self, net, contexts, progress, check_stop):
        """Validation metrics (``check_stop()`` between batches lets an interrupt through)."""
        raise NotImplementedError

    def epoch_line(self, row):
        return ""

    def export(self, net, prefix, ctx):
        raise NotImplementedError


def _export_stop_hook():
    """``IGCV3_GLUON_STOP_AT="export:TERM"`` (or ``export:INT``): the process sends itself
    that signal once the first export of a finished run is written (staged), so the tests
    meet an interrupt during the exports at the same point on every machine."""
    text = os.environ.get(STOP_AT_ENV, "")
    if text.startswith("export:"):
        os.kill(os.getpid(), getattr(signal, "SIG" + text.split(":", 1)[1]))


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)


def _check_same_run(old, run):
    """A run found in ``run.out_dir`` (its config ``old``) must share ``run.identity``."""
    if old is None:
        return
    diff = [k for k in run.identity if old.get(k) != run.settings.get(k)]
    if diff:
        raise RunMismatch("%s holds a run with different %s (%s); use another output folder"
                          % (run.out_dir, ", ".join(diff),
                             ", ".join("%s=%s" % (k, old.get(k)) for k in diff)),
                          diff, {k: old.get(k) for k in diff})


def check_can_run(run):
    """Before anything is built, read or written: ``run.out_dir`` can take this run. It is
    new or empty, or holds this project's run (``logbook.check_run_folder``) with the same
    identity (model, data set, architecture, batch, ...) that has not trained more epochs
    than ``run.epochs`` (a shorter rerun would rewrite config.json and summary.json to claim
    fewer epochs than its weights and log hold). ``RunMismatch`` / ``OutputConflict``."""
    check_run_folder(run.out_dir)
    _check_same_run(RunLog(run.out_dir, enabled=False).load_config(), run)
    done = epochs_done(os.path.join(run.out_dir, "checkpoints"))
    if run.resume and done > run.epochs:
        raise RunMismatch("%s holds a run that has trained %d %s(s); this one asks for %d: give "
                          "at least %d, or another output folder"
                          % (run.out_dir, done, run.stage, run.epochs, done), ["epochs"],
                          {"epochs": done})


# settings a resumed run may change without it being another run (they say how it is run,
# not what it trains); every other change is printed and recorded in config.json
_HOW_IT_RUNS = ("no_progress", "no_resume", "resume", "workers", "data_nthreads", "gpus",
                "cpus", "contexts", "kvstore", "num_workers", "val_interval", "out_dir",
                "changes", "plan", "environment", "environment_changes", "hosts",
                "log_interval", "log_seconds", "no_tensorboard", "checkpoint_minutes",
                "config", "overrides", "seeds")


def _note_changes(old, new, done, note=say):
    """A resumed run whose settings differ from those its first epochs were trained with
    (``--lr`` lowered after a NaN, more ``--epochs``): said, and recorded in ``new`` as
    ``changes`` (from which epoch, old and new value) so config.json never claims the new
    values for the epochs already trained."""
    if not old:
        return
    changed = {k: [old[k], new[k]] for k in sorted(set(old) & set(new))
               if k not in _HOW_IT_RUNS and old[k] != new[k]}
    new["changes"] = list(old.get("changes") or [])
    if changed:
        new["changes"].append(dict(from_epoch=done + 1, **changed))
        note("note: continuing from epoch %d with %s (epochs 1-%d used %s)" % (
            done + 1, ", ".join("%s=%s" % (k, v[1]) for k, v in changed.items()), done,
            ", ".join("%s=%s" % (k, v[0]) for k, v in changed.items())))


def _optimizer_snapshot(trainer):
    """The trainer's optimizer state as bytes (to restore later with ``_restore``)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "states")
        trainer.save_states(path)
        with open(path, "rb") as fh:
            return fh.read()


def _restore(trainer, states):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "states")
        with open(path, "wb") as fh:
            fh.write(states)
        trainer.load_states(path)


@dataclass
class RunState:
    """Where a run is, as its checkpoints record it: ``done`` epochs finished, ``start``
    batches of the next one done, the best metric ``best_value`` and its ``best_epoch``,
    ``partial`` tallies of an interrupted epoch, ``pending`` the row of an epoch saved
    before its evaluation (which a resumed run does first)."""
    done: int = 0
    start: int = 0
    best_value: float = None
    best_epoch: int = 0
    partial: dict = None
    pending: dict = None

    @classmethod
    def from_checkpoint(cls, ckpt):
        best = ckpt.get("best") or {}
        return cls(done=ckpt["epochs_done"], start=ckpt["batch"], best_value=best.get("value"),
                   best_epoch=best.get("epoch", 0), partial=ckpt.get("partial"),
                   pending=ckpt.get("pending"))

    @property
    def best(self):
        """As checkpoints store it: ``{"value": ..., "epoch": ...}``."""
        return {"value": self.best_value, "epoch": self.best_epoch}

    def improves(self, value):
        return value is not None and (self.best_value is None or value > self.best_value)


@dataclass
class _Parts:
    """What one ``fit`` builds before its epoch loop."""
    cluster: object
    trainer: object
    data: object
    log: RunLog
    ckpts: CheckpointManager
    logger: RunLogger
    scalars: Scalars = None
    environment: dict = None


def fit(task, net, run, initialize=True, session=None):
    """Train ``net`` on ``task`` as ``run`` says; returns the run summary (a dict).

    ``initialize=False`` continues from the weights ``net`` holds (a second stage, e.g.
    ImageNet retraining); pass the same ``session`` dict to both stages so that the second
    reuses the first one's cluster and Trainer (a ``dist_*`` kvstore cannot initialise its
    keys twice); a second stage starting fresh gets fresh momentum. When ``fit`` returns,
    ``net`` holds the final weights."""
    session = {} if session is None else session
    try:
        cluster = session.get("cluster") or make_cluster(run.kvstore, run.contexts)
        per_device = cluster.worker_batch(run.batch_size) // len(cluster.contexts)
    except ValueError as err:
        raise SetupError(str(err)) from None
    if per_device < 2:
        raise SetupError("a global batch of %d gives each of the %d device(s) of %d worker(s) "
                         "one image: BatchNorm would normalise each channel over a single "
                         "value; use at least 2 images per device"
                         % (run.batch_size, len(cluster.contexts), cluster.num_workers))
    session["cluster"] = cluster
    check_can_run(run)                     # nothing written or removed in a folder not ours
    lock = FolderLock(run.out_dir) if cluster.is_main else None
    if lock is not None:
        lock.acquire()                     # FolderBusy: another live run holds the folder
    logger = RunLogger(run.out_dir, enabled=cluster.is_main)
    parts = None
    try:
        parts = _prepare(task, net, run, cluster, initialize, session, logger)
        state = _resume_or_start(task, net, run, parts, initialize, session)
        _write_config(run, parts, state)
        try:
            with StopFlag() as stop:
                Loop(task, net, run, parts, state, stop).run()
        except Stopped as stopped:
            raise Interrupted(str(stopped)) from None
        except KeyboardInterrupt:
            raise Interrupted("interrupted; the last complete checkpoint in %s is used when "
                              "you run the same command again" % parts.ckpts.directory) from None
        return _finish(task, net, run, parts, state)
    finally:
        if parts is not None and parts.scalars is not None:
            parts.scalars.close()
        logger.close()
        if lock is not None:
            lock.release()


def _prepare(task, net, run, cluster, initialize, session, logger):
    """The run's log, checkpoints, initial weights, Trainer (kept in ``session``) and data."""
    check_can_run(run)                     # again, now that the folder is locked
    log = RunLog(run.out_dir, enabled=cluster.is_main)
    seed_everything(run.seed)
    if initialize:
        net.initialize(he_normal(), ctx=cluster.contexts, force_reinit=True)
    net.hybridize(static_alloc=True, static_shape=True)
    if "trainer" not in session:
        session["trainer"] = make_trainer(net, cluster, run.sgd, run.dtype)
        session["fresh_states"] = _optimizer_snapshot(session["trainer"])
    with ignore_interrupts():              # loader worker processes leave Ctrl-C to us
        data = task.train_data(net, cluster.rank, cluster.num_workers, run.batch_size,
                               cluster.contexts)
    if data.batches_per_epoch == 0:
        raise DataError("the training set gives no whole batch: the global batch of %d takes "
                        "%d images from each of %d worker(s) per step; use a smaller batch or "
                        "more images" % (run.batch_size, cluster.worker_batch(run.batch_size),
                                         cluster.num_workers))
    if cluster.is_main:                    # what killed runs left half-written
        stale = remove_stale_run_files(run.out_dir)
        if stale:
            logger.note("removed %d temporary file(s) of an interrupted write: %s"
                        % (len(stale), ", ".join(os.path.basename(p) for p in stale[:3])))
    return _Parts(cluster, session["trainer"], data, log,
                  CheckpointManager(os.path.join(run.out_dir, "checkpoints")), logger)


def _resume_or_start(task, net, run, parts, initialize, session):
    """The last good checkpoint loaded (weights, optimizer, position), or a fresh start;
    the weights broadcast to every worker. Returns the run's ``RunState``."""
    ckpts, log = parts.ckpts, parts.log
    ckpt = ckpts.latest(log=parts.logger.note) if run.resume else None
    if ckpt is None and not run.resume and ckpts.any():
        raise RunMismatch("%s already holds checkpoints and this run may not resume them; use "
                          "another output folder" % run.out_dir, ["resume"])
    if ckpt is None:
        log.truncate(0)         # no checkpoint: rows of an earlier start describe nothing
        _start_records(run, parts, RunState())
        if not initialize and session.get("fresh_states"):
            _restore(parts.trainer, session["fresh_states"])  # a new stage: fresh momentum
        task.start_fresh(net, parts.cluster.contexts)
        parts.cluster.broadcast(net)
        return RunState()
    try:
        ckpts.load(ckpt, net, parts.trainer, ctx=parts.cluster.contexts)
    except (AssertionError, mx.MXNetError, ValueError) as err:
        raise RunMismatch("checkpoint %s does not fit this network (%s); it was written by "
                          "another version of the code or architecture: use another output "
                          "folder" % (ckpt["files"]["params"], str(err).split(",")[0][:120]),
                          ["architecture"]) from None
    state = RunState.from_checkpoint(ckpt)
    # the log keeps the rows of the epochs the checkpoint finished; an epoch saved before
    # its evaluation is not finished (a kill after its row was written, before the
    # checkpoint that follows it, must not leave that row twice)
    log.truncate(state.done - 1 if state.pending is not None else state.done)
    _start_records(run, parts, state)
    if parts.cluster.is_main:
        _repair_log(log, state, ckpts.records(), parts.logger.note)
    parts.logger.note("resuming %s from %s: %d epoch(s) done%s" % (
        run.out_dir, ckpt["files"]["params"], state.done,
        ", %d batch(es) into the next" % state.start if state.start else
        (", its evaluation pending" if state.pending else "")))
    parts.cluster.broadcast(net)
    return state


def _start_records(run, parts, state):
    """The batch rows and TensorBoard curves cut back to where the run (re)starts (``state``:
    nothing after its position is kept, so no step is written twice), and the TensorBoard
    writer opened."""
    bpe = parts.data.batches_per_epoch
    if state.start:                                  # mid-epoch: epoch done+1, batch start
        last_batch, last_epoch = (state.done + 1, state.start), state.done
    else:                                            # at an epoch's end (its rows are kept,
        last_batch = (state.done, bpe)               # its epoch scalars unless pending)
        last_epoch = state.done - 1 if state.pending is not None else state.done
    parts.logger.truncate_batches(*last_batch)
    enabled = run.tensorboard and parts.cluster.is_main
    if enabled:
        prune(os.path.join(run.out_dir, "tensorboard"),
              global_step(last_batch[0] - 1, last_batch[1], bpe) if state.done or state.start
              else -1, global_step(last_epoch, 0, bpe) if last_epoch > 0 else -1)
    parts.scalars = Scalars(run.out_dir, enabled=enabled)


def _repair_log(log, state, records, note):
    """A ``log.jsonl`` cut or edited: the rows of finished epochs that the kept checkpoints
    hold (each epoch end's record carries its row) are written back in epoch order (so the
    curves and the run's final metric stay right); rows no checkpoint holds are named as
    lost."""
    logged = state.done - 1 if state.pending is not None else state.done
    have = {r.get("epoch") for r in log.records()}
    back = {}
    for record in records:
        row = record.get("row")
        if isinstance(row, dict) and isinstance(row.get("epoch"), int) and \
                1 <= row["epoch"] <= logged and row["epoch"] not in have:
            back[row["epoch"]] = row
    if back:
        log.restore(list(back.values()))
        have |= set(back)
        note("note: log.jsonl lacked the row of epoch(s) %s; written back from the "
             "checkpoints" % ", ".join(map(str, sorted(back))))
    lost = [e for e in range(1, logged + 1) if e not in have]
    if lost:
        note("note: log.jsonl has no row for epoch(s) %s (cut or edited): the curves and the "
             "report skip them" % ", ".join(map(str, lost[:10])))


def _write_config(run, parts, state):
    """``config.json``: the run's settings, how it runs and on what (``environment``); a
    resumed run's changes of settings or environment noted."""
    cluster = parts.cluster
    config = dict(run.settings, contexts=[str(c) for c in cluster.contexts],
                  num_workers=cluster.num_workers, kvstore=run.kvstore, dtype=run.dtype,
                  schedule=run.schedule.describe(), wd_on=run.sgd.wd_on,
                  environment=environment())
    config["hosts"] = cluster.hosts(config["environment"]["host"])
    parts.environment = config["environment"]
    if state.done or state.start:
        old = parts.log.load_config() or {}
        _note_changes(old, config, state.done, parts.logger.note)
        _note_environment(old, config, state.done, parts.logger.note)
    if cluster.is_main:
        parts.log.save_config(config)
        parts.logger.note("run %s: %s" % (run.out_dir, json.dumps(
            {k: config[k] for k in sorted(config)
             if k not in ("contexts", "environment", "hosts", "changes",
                          "environment_changes")})))


def _note_environment(old, new, done, note):
    """A run resumed on another machine or software (versions, MXNet's build, CPU, GPUs,
    host, code): said, and recorded as ``environment_changes`` (from which epoch)."""
    new["environment_changes"] = list(old.get("environment_changes") or [])
    diff = environment_changes(old.get("environment"), new["environment"])
    if diff:
        new["environment_changes"].append(dict(from_epoch=done + 1, **diff))
        note("note: continuing from epoch %d on another environment: %s" % (
            done + 1, "; ".join("%s %s -> %s" % (k, _short(v[0]), _short(v[1]))
                                for k, v in diff.items())))


def _short(value):
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def _finish(task, net, run, parts, state):
    """Final weights and exports (best and final); ``net`` keeps the final weights. The
    exports are written into ``export.partPID/`` and moved into ``export/`` once both are
    whole; an interrupt meanwhile (SIGINT or SIGTERM) leaves no half export and says how to
    finish (the same command: every epoch is trained and saved)."""
    mx.nd.waitall()
    cluster, key = parts.cluster, task.best_key
    records = parts.log.records() if cluster.is_main else []
    summary = {k: run.settings[k] for k in ("model", "dataset", "stage") if k in run.settings}
    summary.update(out_dir=run.out_dir, seed=run.seed, epochs=run.epochs, rank=cluster.rank,
                   best_metric=key, best_epoch=state.best_epoch)
    summary["best_" + key] = state.best_value
    summary["final_" + key] = next((r[key] for r in reversed(records) if key in r), None)
    if cluster.distributed:                  # every worker's final weights, to compare
        net.save_parameters(os.path.join(run.out_dir, "final-rank%d.params" % cluster.rank))
    if not cluster.is_main:
        return summary
    task.meta = dict(task.meta or {}, environment=parts.environment)   # with the exports
    try:
        with interrupts_raise():
            summary.update(_write_exports(task, net, run, cluster.contexts,
                                          parts.logger.note))
    except KeyboardInterrupt:
        raise Interrupted("interrupted while writing the exports of the finished run (its %d "
                          "%s(s) are trained and saved in %s): run the same command again to "
                          "write them" % (run.epochs, run.stage, run.out_dir)) from None
    summary["curves"] = os.path.join(run.out_dir, "curves.png")
    atomic_write_json(os.path.join(run.out_dir, "summary.json"), summary)
    return summary


def _write_exports(task, net, run, contexts, note):
    """``final.params`` and the final and best exports (staged, then moved into
    ``export/``); returns their paths for the summary."""
    final_params = os.path.join(run.out_dir, "final.params")
    best_params = os.path.join(run.out_dir, "best.params")
    atomic_write(final_params, net.save_parameters)
    export_dir = os.path.join(run.out_dir, "export")
    staging = "%s.part%d" % (export_dir, os.getpid())
    written = {}
    try:
        prefix = os.path.join(staging, run.export_name)
        written["final_export"] = task.export(net, prefix + "-final", contexts[0])
        _export_stop_hook()
        if os.path.isfile(best_params):
            try:
                net.load_parameters(best_params, ctx=contexts)
            except (mx.MXNetError, AssertionError, ValueError) as err:
                note("note: %s cannot be read (%s); the export holds the final weights"
                     % (best_params, str(err).strip().split("\n")[-1][:80]))
                net.load_parameters(final_params, ctx=contexts)
        written["export"] = task.export(net, prefix, contexts[0])
        net.load_parameters(final_params, ctx=contexts)
        os.makedirs(export_dir, exist_ok=True)
        with deferred_interrupts():          # all files or none under their names
            for name in sorted(os.listdir(staging)):
                os.replace(os.path.join(staging, name), os.path.join(export_dir, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {key: {"symbol": os.path.join(export_dir, os.path.basename(sym)),
                  "params": os.path.join(export_dir, os.path.basename(params))}
            for key, (sym, params) in written.items()}
