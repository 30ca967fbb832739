"""The command-line layer of the training scripts: the flags they share, their checks (the
only place that names flags in errors), and ``run_config`` which turns the flags into the
engine's ``RunConfig`` (values only). Arguments flow down: script -> task -> engine."""
import argparse
import copy
import math
import os

import numpy as np

from ..cli import HelpFormatter, add_model_args, flag_error, model_kwargs, parse_ints
from ..models.spec import ARCH_KEYS, ModelSpec
from ..errors import NonFiniteLoss, RunMismatch, UsageError
from ..utils import atomic_write_json
from .context import KVSTORES, available_gpus
from . import engine
from .engine import RunConfig
from .optim import WD_RULES, SGDConfig
from .precision import DTYPES, check_dtype
from .precision import enable as enable_precision
from .schedule import LRSchedule

__all__ = ["parser_for", "validate_common_args", "contexts_from_args", "run_config", "fit",
           "check_can_run",
           "run_seeds", "parse_steps", "model_kwargs", "export_name", "flags_record"]

CLASSIFIER_FLAGS = ARCH_KEYS


def parser_for(description, defaults, task="classification"):
    """A parser with the flags every training script has; ``defaults`` is the recipe."""
    parser = argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)
    g = parser.add_argument_group("model")
    g.add_argument("--model", default=defaults["model"],
                   help="zoo name (python -m igcv3_gluon.complexity lists them)")
    add_model_args(parser, flags=CLASSIFIER_FLAGS if task == "classification"
                   else ("multiplier",), group=g)

    g = parser.add_argument_group("optimisation (defaults: the paper's recipe)")
    g.add_argument("--epochs", type=int, default=defaults["epochs"], help="training epochs")
    g.add_argument("--batch-size", type=int, default=defaults["batch_size"],
                   help=defaults.get("batch_help", "global batch over all devices and workers"))
    g.add_argument("--lr", type=float, default=defaults["lr"],
                   help=defaults.get("lr_help", "initial learning rate"))
    g.add_argument("--lr-mode", default=defaults["lr_mode"], choices=list(LRSchedule.MODES),
                   help="step: x --lr-factor at --lr-steps; exp: x --lr-factor every epoch; "
                        "cosine")
    g.add_argument("--lr-steps", default=defaults.get("lr_steps", ""),
                   help="epochs where the lr is multiplied by --lr-factor (step mode)")
    g.add_argument("--lr-factor", type=float, default=defaults["lr_factor"],
                   help="lr multiplier at each step (step) or every epoch (exp)")
    g.add_argument("--warmup-epochs", type=float, default=0.0,
                   help="linear lr warm-up from 0 over this many epochs")
    g.add_argument("--wd", type=float, default=defaults["wd"], help="weight decay")
    g.add_argument("--wd-on", default=defaults.get("wd_on", "all"), choices=list(WD_RULES),
                   help="which parameters weight decay applies to: all (Gluon's default), "
                        "module (MXNet's Module API, which the authors used: conv/FC weights "
                        "and BN gamma, not BN beta or biases), weights (conv/FC weights only)")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    if task == "classification":
        g.add_argument("--label-smoothing", type=float, default=0.0,
                       help="label smoothing epsilon (0: plain cross-entropy, as the paper)")
    g.add_argument("--seed", type=int, default=0,
                   help="seed of the initialisation, data order and augmentation")

    g = parser.add_argument_group("devices")
    g.add_argument("--gpus", default=None, help="GPU ids, e.g. 0,1,2,3")
    g.add_argument("--cpus", type=int, default=None,
                   help="number of CPU contexts (data parallelism without GPUs)")
    g.add_argument("--kvstore", default=defaults.get("kvstore", "device"), choices=KVSTORES,
                   help="how devices and workers combine gradients (docs/training.md, "
                        "Distributed training)")
    g.add_argument("--dtype", default="float32", choices=DTYPES,
                   help="training precision: float16 (GPUs) and bfloat16 (CPUs with AVX-512) "
                        "train with MXNet's AMP, float32 master weights")
    g.add_argument("--syncbn", action="store_true",
                   help="BatchNorm statistics over all GPUs of a worker (SyncBatchNorm)")
    g.add_argument("--workers", type=int, default=2, help="data-loading worker processes")

    g = parser.add_argument_group("run")
    g.add_argument("--out-dir", default=defaults["out_dir"],
                   help="checkpoints, logs, curves and the exported model go here; re-running "
                        "a command into the same folder resumes it")
    g.add_argument("--val-interval", type=int, default=defaults.get("val_interval", 1),
                   help="evaluate every N epochs (and after the last)")
    g.add_argument("--no-resume", action="store_true",
                   help="refuse to continue a run found in --out-dir")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def parse_steps(text):
    return parse_ints(text, "--lr-steps", minimum=0) if str(text).strip() else []


def contexts_from_args(args):
    """``--gpus "0,1"`` (mx.gpu) or ``--cpus N`` (N CPU contexts); default one CPU."""
    import mxnet as mx
    if args.gpus and args.cpus:
        raise UsageError("give --gpus or --cpus, not both")
    if args.gpus:
        ids = parse_ints(args.gpus, "--gpus (GPU ids such as 0,1,2,3)", minimum=0)
        available = available_gpus()
        if available == 0:
            raise UsageError("--gpus %s: no GPU is visible to MXNet (CPU build, or no driver); "
                             "install mxnet-cu112 on a GPU machine or use --cpus N" % args.gpus)
        if max(ids) >= available:
            raise UsageError("--gpus %s: this machine has GPUs 0..%d" % (args.gpus, available - 1))
        return [mx.gpu(i) for i in ids]
    n = 1 if args.cpus is None else int(args.cpus)
    if n < 1:
        raise UsageError("--cpus must be at least 1, got %d" % n)
    return [mx.cpu(i) for i in range(n)]


def _check_buildable(args, task):
    """The model flags fit the zoo model and give a network (a group count that does not
    divide a layer's channels is found here, not after the data is read)."""
    from ..models import get_model
    kwargs = model_kwargs(args, args.model)
    try:
        get_model(args.model, **kwargs)
    except ValueError as err:
        given = ["--%s%s" % (k, "" if v is True else " %s" % v)
                 for k, v in ((k, getattr(args, k, None)) for k in ARCH_KEYS)
                 if v not in (None, False)]
        raise UsageError("%s%s: %s" % (args.model, " with " + " ".join(given) if given else "",
                                       err)) from None


def _horovod_device(contexts):
    """Horovod runs one process per device: rank r of a machine takes device r of the list
    (``horovodrun -np 4 python train_imagenet.py --gpus 0,1,2,3 --kvstore horovod``)."""
    import os
    local = os.environ.get("HOROVOD_LOCAL_RANK", os.environ.get("OMPI_COMM_WORLD_LOCAL_RANK"))
    if local is None:                  # one rank of one: not a Horovod job, say so
        raise UsageError("--kvstore horovod was not started by horovodrun: start it with "
                         "horovodrun -np %d (one process per device; docs/training.md, "
                         "Distributed training), or train in one process with --kvstore "
                         "device" % len(contexts))
    return [contexts[int(local) % len(contexts)]]


def validate_common_args(args, task="classification"):
    """Flag checks that need no data; returns ``args`` with ``args.contexts`` set."""
    from ..models import list_models
    if args.model not in list_models(task):
        raise UsageError("unknown model %r; known: %s" % (args.model,
                                                          ", ".join(list_models(task))))
    for flag in ("epochs", "batch_size", "val_interval", "workers"):
        minimum = 0 if flag == "workers" else 1
        if getattr(args, flag) is not None and getattr(args, flag) < minimum:
            raise UsageError("--%s must be at least %d" % (flag.replace("_", "-"), minimum))
    if args.wd < 0 or args.momentum < 0:
        raise UsageError("--wd and --momentum must be >= 0")
    if not 0 <= getattr(args, "label_smoothing", 0.0) < 1:
        raise UsageError("--label-smoothing must be in [0, 1)")
    if args.warmup_epochs < 0:
        raise UsageError("--warmup-epochs must be >= 0")
    for flag in ("lr", "wd", "momentum", "warmup_epochs", "lr_factor", "label_smoothing"):
        value = getattr(args, flag, None)
        if value is not None and not math.isfinite(value):
            raise UsageError("--%s must be a finite number, got %s"
                             % (flag.replace("_", "-"), value))
    if args.lr is not None and args.lr <= 0:
        raise UsageError("--lr must be positive, got %g" % args.lr)
    if not 0 <= args.seed < 2 ** 31:
        raise UsageError("--seed must be in 0 .. 2^31-1, got %d" % args.seed)
    if not str(args.out_dir).strip():
        raise UsageError("--out-dir is empty: give the folder for the run")
    args.lr_step_list = parse_steps(args.lr_steps)
    if args.lr_step_list != sorted(args.lr_step_list):
        raise UsageError("--lr-steps must increase: %s" % args.lr_steps)
    _check_buildable(args, task)          # the architecture flags give a network
    args.contexts = contexts_from_args(args)
    devices = len(args.contexts)
    if args.batch_size is not None and args.batch_size % devices:
        raise UsageError("--batch-size %d does not split over the %d devices of %s: use a "
                         "multiple of %d" % (args.batch_size, devices,
                                             "--gpus" if args.gpus else "--cpus", devices))
    if getattr(args, "syncbn", False) and sum(c.device_type == "gpu" for c in args.contexts) < 2:
        raise UsageError("--syncbn synchronises BatchNorm over several GPUs (--gpus 0,1,...); "
                         "MXNet's SyncBatchNorm does not run on CPU contexts")
    if args.kvstore == "horovod":
        args.contexts = _horovod_device(args.contexts)
    try:
        check_dtype(args.dtype, args.contexts)
    except ValueError as err:
        raise flag_error("--dtype %s" % args.dtype, err)
    enable_precision(args.dtype)            # AMP patches MXNet before any network is built
    return args


def run_config(args, settings, identity, export_name, **changes):
    """The engine's ``RunConfig`` from the flags (``changes`` override fields: a second
    stage's epochs, lr, out_dir, ...)."""
    values = dict(out_dir=args.out_dir, epochs=args.epochs, batch_size=args.batch_size,
                  lr=args.lr, lr_mode=args.lr_mode, lr_steps=args.lr_step_list,
                  lr_factor=args.lr_factor, warmup_epochs=args.warmup_epochs, stage="epoch")
    values.update(changes)
    try:
        schedule = LRSchedule(values["lr"], values["lr_mode"], values["epochs"],
                              values["lr_steps"], values["lr_factor"], values["warmup_epochs"])
    except ValueError as err:
        raise flag_error("--lr/--lr-mode/--lr-steps", err)
    return RunConfig(out_dir=values["out_dir"], epochs=values["epochs"],
                     batch_size=values["batch_size"], schedule=schedule,
                     sgd=SGDConfig(values["lr"], args.momentum, args.wd, args.wd_on),
                     contexts=args.contexts, kvstore=args.kvstore, dtype=args.dtype,
                     seed=args.seed, val_interval=args.val_interval,
                     resume=not args.no_resume, progress=not args.no_progress,
                     stage=values["stage"], export_name=export_name, settings=settings,
                     identity=identity)


def fit(task, net, run, **kwargs):
    """``engine.fit``; a stop on a non-finite loss advises the flags that fix it, a folder
    whose run trained more epochs names ``--epochs``."""
    try:
        return engine.fit(task, net, run, **kwargs)
    except NonFiniteLoss as err:
        raise err.with_fix("lower --lr or add --warmup-epochs") from None
    except RunMismatch as err:
        raise _named_epochs(err, run) from None


def check_can_run(run):
    """``engine.check_can_run`` with ``--epochs`` named where it is the conflict."""
    try:
        engine.check_can_run(run)
    except RunMismatch as err:
        raise _named_epochs(err, run) from None


def _named_epochs(err, run):
    if err.keys == ["epochs"]:
        flag = "--retrain-epochs" if run.stage == "retrain" else "--epochs"
        err.args = ("%s %d: %s" % (flag, run.epochs, err),)
    return err


def flags_record(args):
    """The flags as JSON values (for config.json)."""
    return {k: v for k, v in vars(args).items() if k not in ("contexts", "lr_step_list")}


def export_name(model, kwargs, input_size=None):
    """The name exports carry: the zoo name, plus the width when ``--multiplier`` changed
    it (``cifar_igcv3_d_0.5-w0.5``), plus the input size when it is not the one the zoo
    name says (``ssdlite_320_igcv3_w_coco-w0.5-128``)."""
    return ModelSpec(model, multiplier=kwargs.get("multiplier")).export_name(input_size)


def _check_seeds_folder(root):
    """``--seeds``'s folder holds nothing but its runs (``seed-S/``) and its ``seeds.json``:
    anything else is refused before a run starts (its report would overwrite a file of the
    same name)."""
    import re
    if not os.path.isdir(root):
        if os.path.exists(root):
            raise UsageError("--out-dir %s is a file, not a folder" % root)
        return
    from ..utils import read_json_object
    foreign = []
    for name in sorted(os.listdir(root)):
        if re.match(r"^seed-\d+$", name) and os.path.isdir(os.path.join(root, name)):
            continue
        if name == "seeds.json":
            try:
                if "seeds" in (read_json_object(os.path.join(root, name)) or {}):
                    continue
            except ValueError:
                pass
        foreign.append(name)
    if foreign:
        raise UsageError("--out-dir %s holds files that are not runs of --seeds (%s): give a "
                         "new or empty folder" % (root, ", ".join(foreign[:4])))


def run_seeds(args, run_one):
    """``--seeds K``: run ``run_one(args)`` for seeds seed .. seed+K-1, each in
    ``out_dir/seed-S``; report mean +- std of the final top-1 accuracy (as the paper's tables)."""
    from ..utils import say
    if args.seeds <= 1:
        return [run_one(args)]
    summaries = []
    root = args.out_dir
    _check_seeds_folder(root)
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
