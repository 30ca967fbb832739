"""The command-line layer of the training scripts: the flags they share, their checks (the
only place that names flags in errors), and ``run_config`` which turns the flags into the
engine's ``RunConfig`` (values only). Arguments flow down: script -> task -> engine."""
import argparse
import copy
import json
import math
import os
import re
import sys

import mxnet as mx
import numpy as np

from ..cli import HelpFormatter, add_model_args, flag_error, model_kwargs, parse_ints
from ..errors import NonFiniteLoss, RunMismatch, UsageError
from ..models import get_model, list_models
from ..models.spec import ARCH_KEYS, ModelSpec
from ..utils import atomic_write_json, read_json_object, say
from . import engine
from .context import KVSTORES, available_gpus
from .engine import RunConfig
from .logbook import is_run_config
from .optim import WD_RULES, SGDConfig
from .precision import DTYPES, check_dtype
from .precision import enable as enable_precision
from .schedule import LRSchedule

__all__ = ["parser_for", "parse_args", "validate_common_args", "contexts_from_args",
           "run_config", "fit", "check_can_run",
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
    _add_optimisation(parser.add_argument_group(
        "optimisation (defaults: the paper's recipe)"), defaults, task)
    _add_devices(parser.add_argument_group("devices"), defaults)
    _add_run(parser, defaults)
    return parser


def _add_optimisation(g, defaults, task):
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


def _add_devices(g, defaults):
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


def _add_run(parser, defaults):
    """The run's folder, resume and config; what a person watching a long run sees."""
    g = parser.add_argument_group("run")
    g.add_argument("--out-dir", default=defaults["out_dir"],
                   help="checkpoints, logs, curves and the exported model go here; re-running "
                        "a command into the same folder resumes it")
    g.add_argument("--val-interval", type=int, default=defaults.get("val_interval", 1),
                   help="evaluate every N epochs (and after the last)")
    g.add_argument("--no-resume", action="store_true",
                   help="refuse to continue a run found in --out-dir")
    g.add_argument("--config", default=None, metavar="FILE",
                   help="take every setting from FILE (a run's config.json, or YAML with "
                        "flag names as keys); flags given here override it and are recorded "
                        "as overrides")
    g = parser.add_argument_group("watching a long run (docs/training.md)")
    g.add_argument("--log-interval", type=int, default=50, metavar="N",
                   help="a progress line (stdout, log.txt, batches.jsonl, TensorBoard) every N "
                        "batches (0: none)")
    g.add_argument("--log-seconds", type=float, default=30.0, metavar="S",
                   help="... and at least every S seconds while batches go on (0: no minimum)")
    g.add_argument("--no-tensorboard", action="store_true",
                   help="no TensorBoard event files (default: in OUT_DIR/tensorboard)")
    g.add_argument("--checkpoint-minutes", type=float,
                   default=defaults.get("checkpoint_minutes", 30.0), metavar="M",
                   help="also a mid-epoch checkpoint every M minutes (0: only at epoch ends); "
                        "a kill loses at most M minutes")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_args(parser, argv=None):
    """``parser.parse_args(argv)`` with ``--config FILE``: the file's settings (a run's
    ``config.json``, or YAML with the flags' names as keys, ``lr_steps: [200, 300]`` lists
    allowed) become the defaults, and the flags given on the command line override them;
    ``args.config`` is the file and ``args.overrides`` the flags given that differ from it,
    both recorded in the new run's ``config.json``. A run's ``config.json`` also holds
    what the run measured (classes, image counts, the environment): those are not flags and
    are left, and without ``--out-dir`` it continues the run in the folder that holds it;
    in a YAML file, a key that is no flag of the script is refused (a typo)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--config", default=None)
    path = probe.parse_known_args(argv)[0].config
    if not path:
        args = parser.parse_args(argv)
        args.overrides = {}
        args.given = set(_explicit_flags(parser, argv))
        return args
    settings, yaml_file = _read_config_file(path)
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "config")}
    if yaml_file and "config" in settings:
        raise UsageError("--config %s: a config file does not name another (config: %s); "
                         "copy that file's settings into this one, or give it as --config"
                         % (path, settings["config"]))
    unknown = sorted(k for k in settings if k not in actions)
    if yaml_file and unknown:
        raise UsageError("--config %s: %s %s no flag of %s (flags are written as keys with _ "
                         "for -, e.g. lr_steps)" % (path, ", ".join(unknown[:5]),
                                                    "is" if len(unknown) == 1 else "are",
                                                    parser.prog))
    explicit = _explicit_flags(parser, argv)
    taken = {k: _as_flag_value(v, actions[k], path) for k, v in settings.items()
             if k in actions and k not in ("config", "overrides")}
    if not yaml_file and is_run_config(settings) and "out_dir" not in explicit:
        # a run's own config continues that run where the file is now (moved, copied, or
        # recorded relative to another working folder), not where it was first started
        here = os.path.dirname(os.path.abspath(path))
        taken["out_dir"] = os.path.dirname(here) if settings.get("stage") == "retrain" \
            else here
    if {"gpus", "cpus"} & set(explicit):             # the devices of this machine instead
        taken.pop("gpus", None), taken.pop("cpus", None)
    parser.set_defaults(**taken)
    args = parser.parse_args(argv)
    args.config = os.path.abspath(path)
    args.given = set(explicit) | {k for k in settings if k in actions} if yaml_file else \
        set(explicit)                     # a run's config.json holds every flag, given or not
    args.overrides = {k: v for k, v in explicit.items()
                      if k != "config" and taken.get(k, _MISSING) != getattr(args, k)}
    return args


_MISSING = object()


def _read_config_file(path):
    """``(settings, is_yaml)`` of a ``--config`` file; one line when it cannot be one."""
    if not os.path.isfile(path):
        raise UsageError("--config %s: %s (give a run's config.json or a YAML file)"
                         % (path, "a folder, not a file" if os.path.isdir(path) else
                            "no such file"))
    yaml_file = path.endswith((".yaml", ".yml"))
    try:
        with open(path, encoding="utf-8") as fh:
            if yaml_file:
                settings = _load_yaml(fh)
            else:
                settings = json.load(fh, object_pairs_hook=_unique_keys)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise UsageError("--config %s is not readable %s (%s)" % (
            path, "YAML" if yaml_file else "JSON", str(err).splitlines()[0][:120])) from None
    except Exception as err:                      # yaml.YAMLError
        raise UsageError("--config %s is not readable YAML (%s)"
                         % (path, str(err).splitlines()[0][:120])) from None
    if not isinstance(settings, dict):
        raise UsageError("--config %s holds a %s, not settings by name"
                         % (path, type(settings).__name__))
    return settings, yaml_file


def _unique_keys(pairs):
    """A JSON object whose keys are all different (the last of two would win silently)."""
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError("the key %s is given twice" % key)
        seen[key] = value
    return seen


def _load_yaml(stream):
    """``yaml.safe_load`` refusing a mapping that gives a key twice."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, "the key %s is given twice" % key, key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep)
    return yaml.load(stream, Loader=UniqueKeyLoader)


def _explicit_flags(parser, argv):
    """The settings given on the command line itself (not defaults), by name."""
    probe = copy.deepcopy(parser)
    probe._defaults.clear()
    for action in probe._actions:
        action.default = argparse.SUPPRESS
    return vars(probe.parse_args(argv))


def _as_flag_value(value, action, path="FILE"):
    """A config value as the flag's parser would have produced it, or ``UsageError`` naming
    the key: lists of a text flag joined with commas (``[200, 300]`` -> ``"200,300"``),
    numbers of a text flag as text; a switch takes ``true``/``false`` only, a whole-number
    flag a whole number (not 1.5, not ``true``), a number flag a number; ``null`` only where
    the flag's own default is none; a value of a flag with choices one of them (argparse
    checks neither a default's type nor its choice)."""
    key = action.dest

    def refuse(wanted):
        return UsageError("--config %s: %s must be %s, got %s" % (
            path, key, wanted, json.dumps(value) if not isinstance(value, str) else
            repr(value)))
    if value is None:
        if action.default is None:
            return None
        raise refuse("a value (leave the key out for the default %s)" % (action.default,))
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise refuse("true or false")
        return value
    if isinstance(value, bool):
        raise refuse("a whole number" if action.type is int else "a number"
                     if action.type is float else "text")
    if action.type is int:
        if not isinstance(value, int):
            raise refuse("a whole number")
    elif action.type is float:
        if not isinstance(value, (int, float)):
            raise refuse("a number")
        value = float(value)
    elif action.nargs in ("+", "*"):
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                   for v in items):
            raise refuse("a list of names")
        value = [str(v) for v in items]
    elif isinstance(value, list):
        if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                   for v in value):
            raise refuse("a list of numbers or names")
        value = ",".join(str(v) for v in value)
    elif isinstance(value, (int, float)):
        value = str(value)
    elif not isinstance(value, str):
        raise refuse("text")
    if action.choices and value not in action.choices:
        raise refuse("one of %s" % ", ".join(map(str, action.choices)))
    return value


def parse_steps(text):
    return parse_ints(text, "--lr-steps", minimum=0) if str(text).strip() else []


def contexts_from_args(args):
    """``--gpus "0,1"`` (mx.gpu) or ``--cpus N`` (N CPU contexts); default one CPU."""
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
    local = os.environ.get("HOROVOD_LOCAL_RANK", os.environ.get("OMPI_COMM_WORLD_LOCAL_RANK"))
    if local is None:                  # one rank of one: not a Horovod job, say so
        raise UsageError("--kvstore horovod was not started by horovodrun: start it with "
                         "horovodrun -np %d (one process per device; docs/training.md, "
                         "Distributed training), or train in one process with --kvstore "
                         "device" % len(contexts))
    return [contexts[int(local) % len(contexts)]]


def _check_syncbn(args):
    """``--syncbn`` where it does what it says: over the GPUs of one process. MXNet's
    SyncBatchNorm does not reach other processes, so with Horovod (one GPU per process) or a
    parameter-server job (each worker its own statistics) it is refused, saying what runs."""
    if not getattr(args, "syncbn", False):
        return
    if args.kvstore == "horovod" or args.kvstore.startswith("dist"):
        raise UsageError("--syncbn synchronises BatchNorm over the GPUs of one process "
                         "(MXNet's SyncBatchNorm); with --kvstore %s each process would keep "
                         "its own statistics: drop --syncbn (BatchNorm per GPU, as GluonCV's "
                         "multi-machine recipes run), or use --kvstore device on one machine"
                         % args.kvstore)
    if sum(c.device_type == "gpu" for c in args.contexts) < 2:
        raise UsageError("--syncbn synchronises BatchNorm over several GPUs (--gpus 0,1,...); "
                         "MXNet's SyncBatchNorm does not run on CPU contexts")


def _check_schedule_flags(args):
    """A schedule flag given that the chosen ``--lr-mode`` would ignore is refused (a value
    is used or refused, never dropped); a factor must be positive."""
    if args.lr_factor is not None and args.lr_factor <= 0:
        raise UsageError("--lr-factor must be positive (the lr is multiplied by it), got %g"
                         % args.lr_factor)
    given = getattr(args, "given", set())
    if "lr_steps" in given and args.lr_step_list and args.lr_mode != "step":
        raise UsageError("--lr-steps %s: only --lr-mode step uses steps (exp multiplies by "
                         "--lr-factor every epoch, cosine falls to 0); drop it or use "
                         "--lr-mode step" % args.lr_steps)
    if "lr_factor" in given and args.lr_mode == "cosine":
        raise UsageError("--lr-factor %g: --lr-mode cosine has no factor (it falls to 0 at "
                         "the last epoch); drop it or use --lr-mode step or exp"
                         % args.lr_factor)


def validate_common_args(args, task="classification"):
    """Flag checks that need no data; returns ``args`` with ``args.contexts`` set."""
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
    for flag in ("log_interval", "log_seconds", "checkpoint_minutes"):
        value = getattr(args, flag)
        if not (math.isfinite(value) and value >= 0):
            raise UsageError("--%s must be a number >= 0, got %s"
                             % (flag.replace("_", "-"), value))
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
    _check_schedule_flags(args)
    _check_buildable(args, task)          # the architecture flags give a network
    args.contexts = contexts_from_args(args)
    devices = len(args.contexts)
    if args.batch_size is not None and args.batch_size % devices:
        raise UsageError("--batch-size %d does not split over the %d devices of %s: use a "
                         "multiple of %d" % (args.batch_size, devices,
                                             "--gpus" if args.gpus else "--cpus", devices))
    if args.batch_size is not None and args.batch_size // devices == 1:
        raise UsageError("--batch-size %d gives each of the %d devices one image: BatchNorm "
                         "would normalise each channel over a single value (on the detector's "
                         "1x1 maps cuDNN divides 0 by 0, apache/mxnet#18751); give at least 2 "
                         "images per device" % (args.batch_size, devices))
    _check_syncbn(args)
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
                     identity=identity, log_interval=args.log_interval,
                     log_seconds=args.log_seconds, tensorboard=not args.no_tensorboard,
                     checkpoint_minutes=args.checkpoint_minutes)


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
    return {k: v for k, v in vars(args).items() if k not in ("contexts", "lr_step_list", "given")}


def export_name(model, kwargs, input_size=None):
    """The name exports carry: the zoo name, plus the width when ``--multiplier`` changed
    it (``cifar_igcv3_d_0.5-w0.5``), plus the input size when it is not the one the zoo
    name says (``ssdlite_320_igcv3_w_coco-w0.5-128``)."""
    return ModelSpec(model, multiplier=kwargs.get("multiplier")).export_name(input_size)


def _check_seeds_folder(root):
    """``--seeds``'s folder holds nothing but its runs (``seed-S/``) and its ``seeds.json``:
    anything else is refused before a run starts (its report would overwrite a file of the
    same name)."""
    if not os.path.isdir(root):
        if os.path.exists(root):
            raise UsageError("--out-dir %s is a file, not a folder" % root)
        return
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
    if args.seeds <= 1:
        return [run_one(args)]
    summaries = []
    root = args.out_dir
    _check_seeds_folder(root)
    for seed in range(args.seed, args.seed + args.seeds):
        one = copy.copy(args)             # one run: its config.json reruns that run alone
        one.seed, one.out_dir, one.seeds = seed, os.path.join(root, "seed-%d" % seed), 1
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
