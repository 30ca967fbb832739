"""Command-line flags shared by the training scripts, and their validation."""
import argparse

from ..errors import UsageError
from .context import KVSTORES

__all__ = ["add_common_args", "validate_common_args", "model_overrides"]


def add_common_args(parser, defaults):
    """Add the flags every training script has; ``defaults`` holds the paper's recipe."""
    g = parser.add_argument_group("model")
    g.add_argument("--model", default=defaults["model"],
                   help="zoo name (python -m igcv3_gluon.complexity lists them); default "
                        "%(default)s")
    g.add_argument("--multiplier", type=float, default=None,
                   help="width multiplier replacing the zoo entry's")
    g.add_argument("--depths", default=None,
                   help="blocks per stage replacing the zoo entry's, e.g. 1,2,3,4,3,3,1")
    g.add_argument("--groups", default=None,
                   help="G1,G2 of every IGCV3 block (Table 7), e.g. 2,4")
    g.add_argument("--relu", default=None, choices=["dw", "pw1+dw", "pw2", "none"],
                   help="ReLU6 placement in the IGCV3 block (Table 6)")
    g.add_argument("--p2", action="store_true", help="apply the second permutation P2")

    g = parser.add_argument_group("optimisation (defaults: the paper's recipe)")
    g.add_argument("--epochs", type=int, default=defaults["epochs"])
    g.add_argument("--batch-size", type=int, default=defaults["batch_size"],
                   help="global batch over all devices and workers (default %(default)s)")
    g.add_argument("--lr", type=float, default=defaults["lr"])
    g.add_argument("--lr-mode", default=defaults["lr_mode"], choices=["step", "exp", "cosine"])
    g.add_argument("--lr-steps", default=defaults.get("lr_steps", ""),
                   help="epochs where the lr is multiplied by --lr-factor (step mode)")
    g.add_argument("--lr-factor", type=float, default=defaults["lr_factor"])
    g.add_argument("--warmup-epochs", type=float, default=0.0)
    g.add_argument("--wd", type=float, default=defaults["wd"], help="weight decay")
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--label-smoothing", type=float, default=0.0)
    g.add_argument("--no-wd-bn-bias", action="store_true",
                   help="no weight decay on BatchNorm gamma/beta and biases (the paper decays "
                        "all weights)")
    g.add_argument("--seed", type=int, default=0)

    g = parser.add_argument_group("devices")
    g.add_argument("--gpus", default=None, help="GPU ids, e.g. 0,1,2,3")
    g.add_argument("--cpus", type=int, default=None,
                   help="number of CPU contexts (data parallelism without GPUs)")
    g.add_argument("--kvstore", default=defaults.get("kvstore", "device"), choices=KVSTORES)
    g.add_argument("--workers", type=int, default=2, help="data-loading worker processes")

    g = parser.add_argument_group("run")
    g.add_argument("--out-dir", default=defaults["out_dir"],
                   help="checkpoints, logs, curves and the exported model go here; re-running "
                        "a command into the same folder resumes it")
    g.add_argument("--no-resume", action="store_true",
                   help="refuse to continue a run found in --out-dir")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def validate_common_args(args):
    from ..models import list_models
    task = getattr(args, "task", "classification")
    if args.model not in list_models(task):
        raise UsageError("unknown model %r; known: %s" % (args.model,
                                                          ", ".join(list_models(task))))
    for flag in ("epochs", "batch_size"):
        if getattr(args, flag) < 1:
            raise UsageError("--%s must be at least 1" % flag.replace("_", "-"))
    if args.wd < 0 or args.momentum < 0 or not 0 <= args.label_smoothing < 1:
        raise UsageError("--wd and --momentum must be >= 0, --label-smoothing in [0, 1)")
    if args.gpus and args.cpus:
        raise UsageError("give --gpus or --cpus, not both")
    if args.multiplier is not None and args.multiplier <= 0:
        raise UsageError("--multiplier must be positive")
    if args.groups is not None:
        try:
            groups = tuple(int(g) for g in args.groups.split(","))
            assert len(groups) == 2 and min(groups) >= 1
        except (ValueError, AssertionError):
            raise UsageError("--groups takes G1,G2 such as 2,2; got %r" % args.groups)
    if args.depths is not None:
        try:
            depths = [int(d) for d in args.depths.split(",")]
            assert len(depths) == 7 and min(depths) >= 1
        except (ValueError, AssertionError):
            raise UsageError("--depths takes 7 stage depths >= 1 such as 1,2,3,4,3,3,1; got %r"
                             % args.depths)
    return args


def model_overrides(args):
    """Keyword arguments for ``get_model`` from the model flags."""
    kwargs = {}
    if args.multiplier is not None:
        kwargs["multiplier"] = args.multiplier
    if args.depths is not None:
        kwargs["depths"] = [int(d) for d in args.depths.split(",")]
    if args.groups is not None:
        kwargs["groups"] = tuple(int(g) for g in args.groups.split(","))
    if args.relu is not None:
        kwargs["relu"] = args.relu
    if args.p2:
        kwargs["p2"] = True
    return kwargs


def parser_for(description, defaults):
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    return add_common_args(parser, defaults)
