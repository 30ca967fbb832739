"""The classification run shared by ``train_cifar.py`` and ``train_imagenet.py``: devices and
kvstore, initialisation, resume from the last good checkpoint, the epoch loop with progress,
per-epoch log and checkpoint, Ctrl-C handling, curves, export of the best model, and repeats
over seeds."""
import contextlib
import json
import os
import random
import signal

import mxnet as mx
import numpy as np
from mxnet import gluon

from ..errors import UsageError
from .checkpoint import CheckpointManager, atomic_write, atomic_write_json
from .context import is_distributed, make_kvstore, parse_devices, split_global_batch
from .logbook import RunLog, say
from .loop import Interrupted, NonFiniteLoss, evaluate, train_epoch
from .schedule import LRSchedule, parse_steps

__all__ = ["fit_classifier", "run_seeds", "seed_everything", "kaiming_init", "RunSetup",
           "sigterm_as_interrupt"]

# "We initialize the weights similar to [He et al.]" (Sec. 4.1): gaussian, fan-in, gain 2.
kaiming_init = mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2)

# what must match for a run in --out-dir to be continued
_IDENTITY_KEYS = ("model", "dataset", "multiplier", "depths", "groups", "relu", "p2",
                  "batch_size")


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)


def _check_same_run(log, config):
    old = log.load_config()
    if old is None:
        return
    diff = [k for k in _IDENTITY_KEYS if old.get(k) != config.get(k)]
    if diff:
        raise UsageError("%s holds a run with different %s (%s); use another --out-dir"
                         % (log.out_dir, ", ".join(diff),
                            ", ".join("%s=%s" % (k, old.get(k)) for k in diff)))


class RunSetup:
    """What every training run derives from the common flags: devices, kvstore, this
    worker's rank and batch, the run log, the checkpoints and the lr schedule."""

    def __init__(self, args):
        self.contexts = parse_devices(args.gpus, args.cpus)
        self.kv = make_kvstore(args.kvstore, self.contexts)
        self.rank, self.num_workers = ((self.kv.rank, self.kv.num_workers)
                                       if self.kv is not None else (0, 1))
        self.worker_batch = split_global_batch(args.batch_size, self.num_workers, self.contexts)
        self.is_main = self.rank == 0
        self.log = RunLog(args.out_dir, enabled=self.is_main)
        self.ckpts = CheckpointManager(os.path.join(args.out_dir, "checkpoints"))
        self.schedule = LRSchedule(args.lr, args.lr_mode, args.epochs,
                                   parse_steps(args.lr_steps), args.lr_factor,
                                   args.warmup_epochs)

    def make_trainer(self, net, args):
        """SGD (the paper's optimiser) over the run's kvstore."""
        return gluon.Trainer(net.collect_params(), "sgd",
                             {"learning_rate": args.lr, "momentum": args.momentum, "wd": args.wd},
                             kvstore=self.kv,
                             update_on_kvstore=False if self.kv is not None else None)

    def resume(self, net, trainer, args, best):
        """Load the last good checkpoint of ``args.out_dir`` (unless ``--no-resume``, which
        refuses a folder holding checkpoints); returns ``(epochs_done, start_batch, best)``."""
        record = None if args.no_resume else self.ckpts.latest(log=say)
        if record is None and args.no_resume and self.ckpts.latest() is not None:
            raise UsageError("%s already holds checkpoints and --no-resume was given; use "
                             "another --out-dir" % args.out_dir)
        if record is None:
            return 0, 0, best
        try:
            self.ckpts.load(record, net, trainer, ctx=self.contexts)
        except (AssertionError, mx.MXNetError, ValueError) as err:
            raise UsageError("checkpoint %s does not fit this network (%s); it was written by "
                             "another version of the code or architecture: use another "
                             "--out-dir" % (record["files"]["params"],
                                            str(err).split(",")[0][:120]))
        done, start = record["epochs_done"], record["batch"]
        self.log.truncate(done)
        say("resuming %s from %s: %d epoch(s) done%s" % (
            args.out_dir, record["files"]["params"], done,
            ", %d batch(es) into the next" % start if start else ""))
        return done, start, record.get("best", best)


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM (a scheduler stopping the job) behaves like Ctrl-C inside the block: the
    training loops save a checkpoint and exit 130."""
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def fit_classifier(args, net, make_loaders, input_shape, config, topk=(1,), initialize=True,
                   session=None):
    """Train ``net`` per ``args`` (the common flags). ``make_loaders(rank, num_parts,
    worker_batch)`` returns ``(train_loader, train_sampler, val_loader)``; the sampler has
    ``set_epoch(epoch, start_batch)`` and ``len``. ``initialize=False`` continues from the
    weights ``net`` holds (a retraining stage); pass the same ``session`` dict to both stages
    so that the second reuses the first one's Trainer (a ``dist_*`` kvstore cannot initialise
    its keys twice). When it returns, ``net`` holds the final
    weights (``final.params``); the best and the final weights are exported as symbol/params.
    Returns the run summary (dict)."""
    run = RunSetup(args)
    contexts, rank, num_workers = run.contexts, run.rank, run.num_workers
    worker_batch, is_main, log, ckpts = run.worker_batch, run.is_main, run.log, run.ckpts
    schedule = run.schedule
    _check_same_run(log, config)

    seed_everything(args.seed)
    if initialize:
        net.initialize(kaiming_init, ctx=contexts)
    net.hybridize(static_alloc=True, static_shape=True)
    if getattr(args, "no_wd_bn_bias", False):
        for param in net.collect_params(".*gamma|.*beta|.*bias").values():
            param.wd_mult = 0.0
    session = {} if session is None else session
    if "trainer" not in session:
        session["trainer"] = run.make_trainer(net, args)
    trainer = session["trainer"]
    train_loader, sampler, val_loader = make_loaders(rank, num_workers, worker_batch)
    batches_per_epoch = len(sampler)
    if batches_per_epoch == 0:
        raise UsageError("the training set has fewer images per worker than --batch-size %d"
                         % args.batch_size)
    loss_fn = (_SmoothedLoss(config["classes"], args.label_smoothing) if args.label_smoothing
               else gluon.loss.SoftmaxCrossEntropyLoss())

    epochs_done, start_batch, best = run.resume(net, trainer, args,
                                                {"val_acc": -1.0, "epoch": 0})
    config = dict(config, contexts=[str(c) for c in contexts], num_workers=num_workers,
                  schedule=schedule.describe())
    if is_main:
        log.save_config(config)
        say("run %s: %s" % (args.out_dir, json.dumps(
            {k: config[k] for k in sorted(config) if k not in ("contexts",)})))
    best_params = os.path.join(args.out_dir, "best.params")
    progress = not args.no_progress and is_main

    def save(done, batch):
        if is_main:
            ckpts.save(net, trainer, done, batch, best=best, seed=args.seed)

    try:
        with sigterm_as_interrupt():
            for epoch in range(epochs_done, args.epochs):
                sampler.set_epoch(epoch, start_batch)
                try:
                    stats = train_epoch(net, train_loader, contexts, trainer, loss_fn, schedule,
                                        epoch, batches_per_epoch, args.batch_size, start_batch,
                                        progress, "epoch %d/%d" % (epoch + 1, args.epochs))
                except Interrupted as stop:
                    save(epoch, start_batch + stop.batches)
                    raise UsageError("interrupted in epoch %d after %d batch(es); saved to %s: run "
                                     "the same command again to continue"
                                     % (epoch + 1, start_batch + stop.batches, ckpts.directory),
                                     code=130)
                except NonFiniteLoss as err:
                    last = ckpts.latest()
                    raise UsageError("%s: stopped; the last good checkpoint is %s (lower --lr or "
                                     "add --warmup-epochs, then re-run to resume from it)"
                                     % (err, last["files"]["params"] if last else "none yet"),
                                     code=3)
                start_batch = 0
                val = evaluate(net, val_loader, contexts, topk, progress)
                row = dict(epoch=epoch + 1, lr=trainer.learning_rate, **stats,
                           **{"val_" + ("acc" if k == "top1" else k): v for k, v in val.items()})
                row["val_acc"] = val["top1"]
                if val["top1"] > best["val_acc"]:
                    best = {"val_acc": val["top1"], "epoch": epoch + 1}
                    if is_main:
                        atomic_write(best_params, net.save_parameters)
                log.append(row)
                save(epoch + 1, 0)
                if is_main:
                    top5 = "  top-5 %.4f" % val["top5"] if "top5" in val else ""
                    say("epoch %d/%d  loss %.4f  train acc %.4f  val acc %.4f%s  %.0f img/s  "
                        "lr %.3g" % (epoch + 1, args.epochs, stats["train_loss"],
                                     stats["train_acc"], val["top1"], top5, stats["img_per_s"],
                                     row["lr"]))
                    log.plot(title="%s on %s" % (config["model"], config["dataset"]))
    except KeyboardInterrupt:      # outside an epoch (evaluation, saving): last checkpoint
        raise UsageError("interrupted; the last checkpoint in %s is complete: run the same "
                         "command again to continue" % ckpts.directory, code=130)

    records = log.records() if is_main else []
    final = records[-1]["val_acc"] if records else None
    summary = dict(model=config["model"], dataset=config["dataset"], seed=args.seed,
                   epochs=args.epochs, final_val_acc=final, best_val_acc=best["val_acc"],
                   best_epoch=best["epoch"], out_dir=args.out_dir, rank=rank)
    if is_distributed(args.kvstore):
        net.save_parameters(os.path.join(args.out_dir, "final-rank%d.params" % rank))
    if is_main:
        summary["export"] = _export_best(net, best_params, contexts, input_shape, args.out_dir,
                                         config["model"])
        summary["final_export"] = summary["export"].pop("final")
        summary["curves"] = os.path.join(args.out_dir, "curves.png")
        atomic_write_json(os.path.join(args.out_dir, "summary.json"), summary)
    return summary


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


class _SmoothedLoss(gluon.loss.Loss):
    """Cross-entropy against label-smoothed one-hot targets."""

    def __init__(self, classes, eps, **kwargs):
        super().__init__(None, 0, **kwargs)
        self.classes, self.eps = classes, eps

    def hybrid_forward(self, F, pred, label):
        target = F.one_hot(label, self.classes, on_value=1 - self.eps + self.eps / self.classes,
                           off_value=self.eps / self.classes)
        return -F.sum(F.log_softmax(pred) * target, axis=-1)


def _export_best(net, best_params, contexts, input_shape, out_dir, model):
    """Export the final weights (``export/<model>-final``) and the best ones
    (``export/<model>``); ``net`` keeps the final weights."""
    from ..deploy import export
    final_params = os.path.join(out_dir, "final.params")
    atomic_write(final_params, net.save_parameters)
    prefix = os.path.join(out_dir, "export", model)
    sym_file, params_file = export(net, prefix + "-final", input_shape, ctx=contexts[0])
    final = {"symbol": sym_file, "params": params_file}
    if os.path.isfile(best_params):
        net.load_parameters(best_params, ctx=contexts)
    sym_file, params_file = export(net, prefix, input_shape, ctx=contexts[0])
    net.load_parameters(final_params, ctx=contexts)
    return {"symbol": sym_file, "params": params_file, "final": final}


def run_seeds(args, run_one):
    """``--seeds K``: run ``run_one(args)`` for seeds seed .. seed+K-1, each in
    ``out_dir/seed-S``; report mean +- std of the final top-1 accuracy (as the paper's tables)."""
    if args.seeds <= 1:
        return [run_one(args)]
    import copy
    summaries = []
    root = args.out_dir
    for seed in range(args.seed, args.seed + args.seeds):
        one = copy.copy(args)
        one.seed, one.out_dir = seed, os.path.join(root, "seed-%d" % seed)
        say("== seed %d (%d of %d) -> %s" % (seed, seed - args.seed + 1, args.seeds, one.out_dir))
        summaries.append(run_one(one))
    accs = np.array([s["final_val_acc"] for s in summaries], dtype=np.float64)
    report = dict(seeds=list(range(args.seed, args.seed + args.seeds)),
                  final_val_acc=accs.tolist(), mean=float(accs.mean()),
                  std=float(accs.std(ddof=1)) if len(accs) > 1 else 0.0)
    os.makedirs(root, exist_ok=True)
    atomic_write_json(os.path.join(root, "seeds.json"), report)
    print("final top-1 over %d seeds: %.2f +- %.2f %%"
          % (len(accs), 100 * report["mean"], 100 * report["std"]))
    return summaries
