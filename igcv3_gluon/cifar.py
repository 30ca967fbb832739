"""CIFAR-10/100 (and the embedded digits set) training: the paper's Sec. 4.1 recipe.

Entry point: ``train_cifar.py`` (``python train_cifar.py --help``).
"""
import sys

from .cli import spec_from_args
from .data import DATASETS, channel_stats, load_dataset, make_loader
from .errors import UsageError, exit_on_usage_error, naming
from .models import get_model, model_info
from .models.spec import ARCH_KEYS
from .nn import norm_layer_for
from .train.classifier import ClassifierTask
from .train.cli import (
    export_name,
    fit,
    flags_record,
    model_kwargs,
    parse_args,
    parser_for,
    run_config,
    run_seeds,
    validate_common_args,
)
from .utils import say

__all__ = ["DEFAULTS", "IDENTITY", "build_parser", "main", "run"]

# Sec. 4.1: SGD, momentum 0.9, wd 1e-4, lr 0.1 /10 at 200, 300, 350 of 400 epochs, batch 64.
DEFAULTS = dict(model="cifar_igcv3_d_1.0", epochs=400, batch_size=64, lr=0.1, lr_mode="step",
                lr_steps="200,300,350", lr_factor=0.1, wd=1e-4, out_dir="runs/cifar",
                kvstore="device")
# what a run found in --out-dir must share with this one to be continued
IDENTITY = ("model", "dataset") + ARCH_KEYS + ("batch_size",)
EVAL_BATCH = 128


def build_parser():
    parser = parser_for("Train an IGCV3 / MobileNetV2 CIFAR model (paper Sec. 4.1). Without "
                        "--data-dir it trains on scikit-learn's bundled digits.", DEFAULTS)
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", choices=DATASETS, default=None,
                   help="default: cifar10 with --data-dir, digits without")
    g.add_argument("--data-dir", default=None,
                   help="folder with cifar-10-batches-bin/ or cifar-100-binary/ (or the "
                        ".tar.gz archives)")
    g.add_argument("--seeds", type=int, default=1,
                   help="repeat the run with this many seeds; report mean +- std")
    return parser


def run(args):
    """One training run; returns its summary."""
    with naming("--data-dir"):
        train_x, train_y, test_x, test_y, classes = load_dataset(args.dataset, args.data_dir)
    if len(train_x) < args.batch_size:
        raise UsageError("--batch-size %d is more than the %d training images of %s: give at "
                         "most %d" % (args.batch_size, len(train_x), args.dataset,
                                      len(train_x)))
    mean, std = channel_stats(train_x)
    flip = args.dataset != "digits"          # flipped digits are other symbols
    if not model_info(args.model).cifar:
        say("note: %s is an ImageNet model (stride-2 stem); the cifar_* models are built for "
            "32x32 inputs" % args.model)
    kwargs = model_kwargs(args, args.model)
    net = get_model(args.model, classes=classes, **kwargs,
                    **norm_layer_for(args.contexts, args.syncbn))

    def train_data(rank, num_workers, global_batch):
        return make_loader(train_x, train_y, mean, std, global_batch, True, args.seed, flip,
                           args.workers, rank, num_workers)
    val = make_loader(test_x, test_y, mean, std, EVAL_BATCH, False, workers=args.workers)
    task = ClassifierTask(train_data, val, classes, (1, 3, 32, 32), args.label_smoothing,
                          title="%s on %s" % (args.model, args.dataset),
                          meta=spec_from_args(args, classes=classes, mean=mean.tolist(),
                                              std=std.tolist(), input_size=32,
                                              extra=dict(dataset=args.dataset)).to_dict())
    record = dict(flags_record(args), classes=classes, mean=mean.tolist(), std=std.tolist(),
                  train_images=len(train_x), test_images=len(test_x), stage="train")
    summary = fit(task, net, run_config(args, record, IDENTITY, export_name(args.model, kwargs)))
    if summary.get("export"):
        print("%s on %s: final top-1 %.2f%%, best %.2f%% (epoch %d); curves: %s"
              % (args.model, args.dataset, 100 * summary["final_val_acc"],
                 100 * summary["best_val_acc"], summary["best_epoch"], summary["curves"]))
        print("exported: %s\n  load: mx.gluon.SymbolBlock.imports('%s', ['data'], '%s')"
              % (summary["export"]["symbol"], summary["export"]["symbol"],
                 summary["export"]["params"]))
    return summary


@exit_on_usage_error
def main(argv=None):
    args = parse_args(build_parser(), argv)
    if args.dataset is None:
        args.dataset = "cifar10" if args.data_dir else "digits"
    if args.seeds < 1:
        raise UsageError("--seeds must be at least 1")
    if args.dataset == "digits" and args.data_dir:
        raise UsageError("--data-dir %s with --dataset digits: the digits set is embedded and "
                         "reads no folder; drop --data-dir, or give --dataset cifar10 or "
                         "cifar100" % args.data_dir)
    if args.dataset != "digits" and not args.data_dir:
        raise UsageError("--dataset %s needs --data-dir (the folder with its binary files)"
                         % args.dataset)
    validate_common_args(args)
    run_seeds(args, run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
