"""ImageNet training and evaluation (paper Sec. 4.1 and Table 3).

Entry point: ``train_imagenet.py`` (``python train_imagenet.py --help``). The recipe, as
defaults: SGD momentum 0.9, weight decay 4e-5, 96 images per device, lr 0.045 for a global
batch of 384 (4 x 96, the paper's set-up; scaled linearly with the global batch), multiplied
by 0.98 every epoch for 480 epochs; then ``--retrain-epochs 50`` of retraining from the final
weights. The retraining lr is ours (the authors never published their retraining code):
``--retrain-lr`` (default: a tenth of the training lr, i.e. 0.0045 at batch 384), again
x0.98 per epoch, in ``OUT_DIR/retrain`` with its own log, checkpoints and exports.
"""
import copy
import os
import sys

from .data.recordio import RecordImages, check_record_pair, read_labels
from .errors import UsageError, exit_on_usage_error
from .train.cli import model_overrides, parser_for, validate_common_args
from .train.context import is_distributed, parse_devices
from .train.logbook import say
from .train.runner import fit_classifier

__all__ = ["DEFAULTS", "PAPER_GLOBAL_BATCH", "build_parser", "main", "run", "scaled_lr"]

# Sec. 4.1: batch 96 per GPU on 4 GPUs, lr 0.045 x0.98 per epoch, 480 epochs, wd 4e-5.
PAPER_GLOBAL_BATCH = 4 * 96
PAPER_LR = 0.045
RETRAIN_DECAY = 0.98          # the retraining stage: x0.98 per epoch whatever --lr-mode was
DEFAULTS = dict(model="igcv3_d_1.0", epochs=480, batch_size=None, lr=None, lr_mode="exp",
                lr_factor=0.98, wd=4e-5, out_dir="runs/imagenet", kvstore="device")


def scaled_lr(global_batch, base_lr=PAPER_LR, base_batch=PAPER_GLOBAL_BATCH):
    """The linear scaling rule (Goyal et al. 2017): lr = 0.045 x global batch / 384."""
    return base_lr * global_batch / base_batch


def build_parser():
    parser = parser_for("Train or evaluate an IGCV3 / MobileNetV2 ImageNet model from "
                        "RecordIO (paper Sec. 4.1, Table 3).", DEFAULTS)
    g = parser.add_argument_group("data (RecordIO; build with python -m igcv3_gluon.data.im2rec)")
    g.add_argument("--rec-train", help="training .rec")
    g.add_argument("--rec-train-idx", help="its .idx (default: the .rec path with .idx)")
    g.add_argument("--rec-val", help="validation .rec")
    g.add_argument("--rec-val-idx", help="its .idx (default: the .rec path with .idx)")
    g.add_argument("--data-nthreads", type=int, default=4,
                   help="JPEG decoding/augmentation threads per worker")
    g.add_argument("--num-classes", type=int, default=None,
                   help="default: lines of PREFIX.classes.txt beside --rec-train, else 1000")
    g.add_argument("--input-size", type=int, default=224)
    g.add_argument("--crop-ratio", type=float, default=0.875,
                   help="validation: resize the short side to input-size / crop-ratio, then "
                        "centre crop")
    g.add_argument("--batch-per-device", type=int, default=96,
                   help="used when --batch-size (global) is not given: global batch = this x "
                        "devices x workers")
    g = parser.add_argument_group("retraining and evaluation")
    g.add_argument("--retrain-epochs", type=int, default=50,
                   help="epochs of retraining from the final weights (paper: 50); 0: none")
    g.add_argument("--retrain-lr", type=float, default=None,
                   help="retraining lr, x0.98 per epoch (default: --lr / 10)")
    g.add_argument("--eval-only", action="store_true",
                   help="report top-1/top-5 of --params on --rec-val and exit")
    g.add_argument("--params", help="weights for --eval-only (a .params from training, "
                                    "best.params, or an exported -0000.params)")
    return parser


def _idx_for(rec, idx):
    return idx or (os.path.splitext(rec)[0] + ".idx" if rec else None)


def _num_workers(kvstore):
    return int(os.environ.get("DMLC_NUM_WORKER", "1")) if is_distributed(kvstore) else 1


def resolve_args(args):
    """Fill the defaults that depend on the machine (global batch, lr), check the flags and
    the data."""
    if args.batch_per_device < 1:
        raise UsageError("--batch-per-device must be >= 1")
    if args.batch_size is None:
        devices = len(parse_devices(args.gpus, args.cpus))
        args.batch_size = args.batch_per_device * devices * _num_workers(args.kvstore)
    if args.lr is None:
        args.lr = scaled_lr(args.batch_size)
    if args.retrain_lr is None:
        args.retrain_lr = args.lr / 10
    validate_common_args(args)
    args.rec_train_idx = _idx_for(args.rec_train, args.rec_train_idx)
    args.rec_val_idx = _idx_for(args.rec_val, args.rec_val_idx)
    if not args.rec_val:
        raise UsageError("--rec-val is required (validation RecordIO)")
    args.val_images = check_record_pair(args.rec_val, args.rec_val_idx, "--rec-val")
    if not args.eval_only:
        if not args.rec_train:
            raise UsageError("--rec-train is required (training RecordIO); or --eval-only")
        args.train_images = check_record_pair(args.rec_train, args.rec_train_idx,
                                              "--rec-train")
    if args.num_classes is None:
        names = os.path.splitext(args.rec_train or args.rec_val)[0] + ".classes.txt"
        args.num_classes = (sum(1 for l in open(names) if l.strip())
                            if os.path.isfile(names) else 1000)
    checked = [] if args.eval_only else [(args.rec_train, args.rec_train_idx, "--rec-train")]
    for rec, idx, flag in checked + [(args.rec_val, args.rec_val_idx, "--rec-val")]:
        bad = [l for l in read_labels(rec, idx) if not 0 <= l < args.num_classes]
        if bad:
            raise UsageError("%s has label %g but --num-classes is %d" % (
                flag, bad[0], args.num_classes))
    if args.data_nthreads < 1 or args.input_size < 32:
        raise UsageError("--data-nthreads must be >= 1, --input-size >= 32")
    if not 0 < args.crop_ratio <= 1:
        raise UsageError("--crop-ratio must be in (0, 1]")
    if args.retrain_epochs < 0:
        raise UsageError("--retrain-epochs must be >= 0")
    return args


def _loaders(args):
    def make_loaders(rank, num_parts, worker_batch):
        common = dict(input_size=args.input_size, crop_ratio=args.crop_ratio,
                      threads=args.data_nthreads)
        train = RecordImages(args.rec_train, args.rec_train_idx, worker_batch, True,
                             seed=args.seed, rank=rank, num_parts=num_parts,
                             num_records=args.train_images, **common)
        val = RecordImages(args.rec_val, args.rec_val_idx, max(worker_batch, 32), False,
                           num_records=args.val_images, **common)
        if len(train) == 0:
            raise UsageError("%s holds %d image(s): fewer per worker than the batch (%d)"
                             % (args.rec_train, args.train_images, worker_batch))
        return train, train, val
    return make_loaders


def evaluate_params(args, net):
    """``--eval-only``: top-1 / top-5 of ``--params`` on ``--rec-val``."""
    import mxnet as mx

    from .deploy import load_weights
    from .train.loop import evaluate
    if not args.params or not os.path.isfile(args.params):
        raise UsageError("--eval-only needs --params FILE (a trained .params); got %s"
                         % args.params)
    contexts = parse_devices(args.gpus, args.cpus)
    try:
        load_weights(net, args.params, ctx=contexts)
    except (AssertionError, mx.MXNetError, ValueError) as err:
        raise UsageError("%s does not fit %s with %d classes (%s)" % (
            args.params, args.model, args.num_classes, str(err).split("\n")[0][:160]))
    net.hybridize(static_alloc=True, static_shape=True)
    val = RecordImages(args.rec_val, args.rec_val_idx, 32 * len(contexts), False,
                       input_size=args.input_size, crop_ratio=args.crop_ratio,
                       threads=args.data_nthreads, num_records=args.val_images)
    result = evaluate(net, val, contexts, (1, 5), not args.no_progress)
    print("%s on %s (%d images): top-1 %.2f%%  top-5 %.2f%%" % (
        args.model, args.rec_val, args.val_images, 100 * result["top1"], 100 * result["top5"]))
    return result


def run(args):
    """Training (then retraining) or evaluation; returns the summaries / the result."""
    from .models import get_model
    net = get_model(args.model, classes=args.num_classes, **model_overrides(args))
    if args.eval_only:
        return evaluate_params(args, net)
    config = dict(vars(args), dataset=os.path.basename(args.rec_train), classes=args.num_classes,
                  stage="train")
    input_shape = (1, 3, args.input_size, args.input_size)
    session = {}
    summaries = [fit_classifier(args, net, _loaders(args), input_shape, config, topk=(1, 5),
                                session=session)]
    if args.retrain_epochs:
        again = copy.copy(args)
        again.epochs, again.lr, again.warmup_epochs = args.retrain_epochs, args.retrain_lr, 0
        again.lr_mode, again.lr_factor = "exp", RETRAIN_DECAY
        again.out_dir = os.path.join(args.out_dir, "retrain")
        say("retraining %d epoch(s) from the final weights, lr %g x%g per epoch -> %s"
            % (again.epochs, again.lr, again.lr_factor, again.out_dir))
        config = dict(config, epochs=again.epochs, lr=again.lr, lr_mode="exp",
                      lr_factor=RETRAIN_DECAY, stage="retrain")
        summaries.append(fit_classifier(again, net, _loaders(again), input_shape, config,
                                        topk=(1, 5), initialize=False, session=session))
    for s in summaries:
        if s.get("export"):
            print("%s: final top-1 %.2f%%, best %.2f%% (epoch %d); exported %s"
                  % (s["out_dir"], 100 * s["final_val_acc"], 100 * s["best_val_acc"],
                     s["best_epoch"], s["export"]["symbol"]))
    return summaries


@exit_on_usage_error
def main(argv=None):
    args = build_parser().parse_args(argv)
    resolve_args(args)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
