"""ImageNet training and evaluation (paper Sec. 4.1 and Table 3).

Entry point: ``train_imagenet.py`` (``python train_imagenet.py --help``). Two named recipes
(``--recipe``); every value below is also a flag of its own:

* ``authors`` (default): what the authors' released ``train_imagenet.py`` ran (MXNet Module
  API, ``example/image-classification``): a *global* batch of 96 (24 per GPU on their 4),
  lr 0.045 at that batch x0.98 after every epoch, 480 epochs, SGD momentum 0.9, weight decay
  4e-5 on conv/FC weights and BN gamma only (MXNet's optimiser spares the names not ending
  in ``_weight``/``_gamma``), ``multi_precision``, Xavier gaussian/in/2 initialisation,
  records packed at short side 480, random rescale 0.533-1 + random 224 crop + mirror + HSL
  jitter (36, 50, 50), mean subtraction only (123.68, 116.779, 103.939); validation at short
  side 256 (0.533 x 480), centre 224.
* ``gluoncv``: this project's earlier, GluonCV-style pipeline: 96 images per device, lr 0.045
  x global batch / 384, weight decay on every parameter, random resized crop + colour jitter
  + PCA lighting, mean/std normalisation.

Changing the global batch scales the lr linearly from the recipe's (0.045 at 96 for
``authors``). Then ``--retrain-epochs 50`` of retraining from the final weights (Sec. 4.1;
the authors never published theirs; ours: a fresh SGD state, lr ``--retrain-lr`` (default a
tenth of the training lr) x0.98 per epoch, in ``OUT_DIR/retrain``).
"""
import math
import os
import sys

from .cli import adopt_run_settings, evaluation_dir, parse_floats, parse_ints, spec_from_args
from .data.recordio import (
    AUGMENTATIONS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    RecordImages,
    check_labels,
    check_record_pair,
    scan_records,
    short_sides,
    train_augmentation,
)
from .deploy import WeightsError, load_weights
from .errors import UsageError, exit_on_usage_error, naming
from .evaluations import check_evaluation_folder, record_evaluation
from .models import get_model, list_models
from .models.pretrained import resolve_weights
from .models.spec import ARCH_KEYS, INPUT_KEYS
from .nn import norm_layer_for
from .train.classifier import ClassifierTask, topk_accuracy
from .train.cli import (
    check_can_run,
    contexts_from_args,
    export_name,
    fit,
    flags_record,
    model_kwargs,
    parse_args,
    parser_for,
    run_config,
    validate_common_args,
)
from .utils import say

__all__ = ["DEFAULTS", "RECIPES", "IDENTITY", "build_parser", "main", "run", "resolve_args",
           "scaled_lr"]

RECIPES = {
    "authors": dict(batch_size=96, base_lr=0.045, base_batch=96, wd_on="module",
                    augment="authors", mean=IMAGENET_MEAN, std=(1.0, 1.0, 1.0)),
    "gluoncv": dict(batch_size=None, base_lr=0.045, base_batch=384, wd_on="all",
                    augment="inception", mean=IMAGENET_MEAN, std=IMAGENET_STD),
}
RETRAIN_DECAY = 0.98          # the retraining stage: x0.98 per epoch whatever --lr-mode was
DEFAULTS = dict(model="igcv3_d_1.0", epochs=480, batch_size=None, lr=None, lr_mode="exp",
                lr_factor=0.98, wd=4e-5, wd_on=None, out_dir="runs/imagenet", kvstore="device",
                batch_help="global batch over all devices and workers (default: the recipe's: "
                           "96 for authors; 96 per device for gluoncv)",
                lr_help="initial lr (default: the recipe's, scaled linearly with the global "
                        "batch: 0.045 x batch / 96 for authors, / 384 for gluoncv)")
IDENTITY = ("model", "dataset") + ARCH_KEYS + ("batch_size", "stage")


def scaled_lr(global_batch, base_lr=0.045, base_batch=96):
    """The linear scaling rule (Goyal et al. 2017) from the recipe's lr at its batch."""
    return base_lr * global_batch / base_batch


def build_parser():
    parser = parser_for("Train or evaluate an IGCV3 / MobileNetV2 ImageNet model from "
                        "RecordIO (paper Sec. 4.1, Table 3).", DEFAULTS)
    g = parser.add_argument_group("recipe")
    g.add_argument("--recipe", default="authors", choices=sorted(RECIPES),
                   help="authors: the authors' released pipeline; gluoncv: GluonCV-style "
                        "(docs/imagenet.md)")
    g.add_argument("--augment", default=None, choices=AUGMENTATIONS,
                   help="training augmentation (default: the recipe's)")
    g.add_argument("--min-random-scale", type=float, default=0.533,
                   help="authors' augmentation: smallest random rescale of the 480 image")
    g.add_argument("--hsl", default="36,50,50",
                   help="authors' augmentation: max random hue, saturation, lightness shift")
    g.add_argument("--jitter", type=float, default=0.4,
                   help="inception augmentation: brightness/contrast/saturation jitter")
    g.add_argument("--lighting", type=float, default=0.1,
                   help="inception augmentation: PCA lighting noise")
    g.add_argument("--mean", default=None, help="R,G,B pixel mean (default: the recipe's)")
    g.add_argument("--std", default=None, help="R,G,B pixel std (default: the recipe's; "
                                               "1,1,1 for authors)")
    g.add_argument("--batch-per-device", type=int, default=96,
                   help="gluoncv recipe without --batch-size: global batch = this x devices x "
                        "workers")
    g = parser.add_argument_group("data (RecordIO; build with python -m igcv3_gluon.im2rec)")
    g.add_argument("--rec-train", help="training .rec")
    g.add_argument("--rec-train-idx", help="its .idx (default: the .rec path with .idx)")
    g.add_argument("--rec-val", help="validation .rec")
    g.add_argument("--rec-val-idx", help="its .idx (default: the .rec path with .idx)")
    g.add_argument("--data-nthreads", type=int, default=4,
                   help="JPEG decoding/augmentation threads per worker")
    g.add_argument("--num-classes", type=int, default=None,
                   help="default: lines of PREFIX.classes.txt beside the .rec, else 1000")
    g.add_argument("--input-size", type=int, default=224, help="training and validation crop")
    g.add_argument("--crop-ratio", type=float, default=0.875,
                   help="validation: resize the short side to input-size / crop-ratio (256), "
                        "then centre crop")
    g = parser.add_argument_group("retraining and evaluation")
    g.add_argument("--retrain-epochs", type=int, default=50,
                   help="epochs of retraining from the final weights (paper: 50); 0: none")
    g.add_argument("--retrain-lr", type=float, default=None,
                   help="retraining lr, x0.98 per epoch (default: --lr / 10)")
    g.add_argument("--eval-only", action="store_true",
                   help="report top-1/top-5 of --params on --rec-val and exit")
    g.add_argument("--params", help="weights for --eval-only: a .params (training, best, "
                                    "exported, converted), a run folder, or 'pretrained'")
    g.add_argument("--pretrained", action="store_true",
                   help="--eval-only of the published ImageNet weights of --model (downloaded "
                        "once, converted, cached in $MXNET_HOME/models); prints the "
                        "publisher's figures beside ours")
    return parser


def _idx_for(rec, idx):
    return idx or (os.path.splitext(rec)[0] + ".idx" if rec else None)


def _num_workers(kvstore):
    if kvstore.startswith("dist"):
        return int(os.environ.get("DMLC_NUM_WORKER", "1"))
    if kvstore == "horovod":
        return int(os.environ.get("HOROVOD_SIZE", os.environ.get("OMPI_COMM_WORLD_SIZE", "1")))
    return 1


def resolve_args(args):
    """Fill the recipe's defaults and those that depend on the machine (global batch, lr),
    check the flags and the data."""
    recipe = RECIPES[args.recipe]
    args.augment = args.augment or recipe["augment"]
    args.wd_on = args.wd_on or recipe["wd_on"]
    # a string from the command line, a list from the weights' description, else the recipe's
    args.mean = (parse_floats(args.mean, "--mean") if isinstance(args.mean, str)
                 else tuple(args.mean) if args.mean else recipe["mean"])
    args.std = (parse_floats(args.std, "--std") if isinstance(args.std, str)
                else tuple(args.std) if args.std else recipe["std"])
    if min(args.std) <= 0:
        raise UsageError("--std must be positive: %s" % ",".join("%g" % v for v in args.std))
    args.hsl = parse_ints(args.hsl, "--hsl", count=3, minimum=0)
    if args.batch_per_device < 1:
        raise UsageError("--batch-per-device must be >= 1")
    if args.batch_size is None:
        args.batch_size = recipe["batch_size"]
    if args.batch_size is None:
        devices = len(contexts_from_args(args))
        args.batch_size = args.batch_per_device * devices * _num_workers(args.kvstore)
    args.lr_note = None
    if args.lr is None:
        args.lr = scaled_lr(args.batch_size, recipe["base_lr"], recipe["base_batch"])
        args.lr_note = ("lr %g = %g x global batch %d / %d (the %s recipe's lr, scaled "
                        "linearly with the batch; --lr sets it)"
                        % (args.lr, recipe["base_lr"], args.batch_size, recipe["base_batch"],
                           args.recipe))
    if args.retrain_lr is None:
        args.retrain_lr = args.lr / 10
    if not (math.isfinite(args.retrain_lr) and args.retrain_lr > 0):
        raise UsageError("--retrain-lr must be a positive number, got %s" % args.retrain_lr)
    validate_common_args(args)
    if not 0 < args.min_random_scale <= 1:
        raise UsageError("--min-random-scale must be in (0, 1]")
    _check_records(args)
    if args.data_nthreads < 1 or args.input_size < 32:
        raise UsageError("--data-nthreads must be >= 1, --input-size >= 32")
    if not 0 < args.crop_ratio <= 1:
        raise UsageError("--crop-ratio must be in (0, 1]")
    if args.retrain_epochs < 0:
        raise UsageError("--retrain-epochs must be >= 0")
    return args


def _check_records(args):
    """The RecordIO pairs exist and belong together, every record's header and label is
    right (``scan_records``), the class lists agree; sets ``args.num_classes`` when the
    ``.classes.txt`` says it."""
    args.rec_train_idx = _idx_for(args.rec_train, args.rec_train_idx)
    args.rec_val_idx = _idx_for(args.rec_val, args.rec_val_idx)
    if not args.rec_val:
        raise UsageError("--rec-val is required (validation RecordIO)")
    with naming("--rec-val"):
        args.val_images = check_record_pair(args.rec_val, args.rec_val_idx)
    if not args.eval_only:
        if not args.rec_train:
            raise UsageError("--rec-train is required (training RecordIO); or --eval-only")
        with naming("--rec-train"):
            args.train_images = check_record_pair(args.rec_train, args.rec_train_idx)
    _check_class_lists(args)
    if args.num_classes is None:
        names = os.path.splitext(args.rec_train or args.rec_val)[0] + ".classes.txt"
        args.num_classes = (sum(1 for line in open(names) if line.strip())
                            if os.path.isfile(names) else 1000)
    checked = [] if args.eval_only else [(args.rec_train, args.rec_train_idx, "--rec-train")]
    for rec, idx, flag in checked + [(args.rec_val, args.rec_val_idx, "--rec-val")]:
        labels, problem = scan_records(rec, idx)        # every record's header
        if problem:
            raise UsageError("%s %s: %s; repack it (python -m igcv3_gluon.im2rec)"
                             % (flag, rec, problem))
        with naming("%s (--num-classes %d)" % (flag, args.num_classes)):
            check_labels(labels, args.num_classes, rec)


def _augmentation(args):
    return train_augmentation(args.augment, args.min_random_scale, args.hsl, args.jitter,
                              args.lighting)


def _val_data(args, batch):
    return RecordImages(args.rec_val, args.rec_val_idx, batch, False, args.input_size,
                        args.crop_ratio, args.mean, args.std, threads=args.data_nthreads,
                        num_records=args.val_images)


def _task(args):
    def train_data(rank, num_workers, global_batch):
        worker_batch = global_batch // num_workers
        data = RecordImages(args.rec_train, args.rec_train_idx, worker_batch, True,
                            args.input_size, args.crop_ratio, args.mean, args.std, args.seed,
                            args.data_nthreads, rank, num_workers, args.train_images,
                            _augmentation(args))
        if len(data) == 0:
            raise UsageError("--batch-size %d: %s holds %d image(s), fewer than one batch of %d "
                             "per worker; give a smaller --batch-size or more images"
                             % (args.batch_size, args.rec_train, args.train_images,
                                worker_batch))
        return data
    val = _val_data(args, max(32, args.batch_size // max(1, _num_workers(args.kvstore))))
    return ClassifierTask(train_data, val, args.num_classes,
                          (1, 3, args.input_size, args.input_size), args.label_smoothing,
                          topk=(1, 5), title="%s on ImageNet" % args.model,
                          meta=_spec(args).to_dict())


def _spec(args, **extra):
    """The description written with this run's weights (and its evaluations)."""
    return spec_from_args(args, classes=args.num_classes, mean=list(args.mean),
                          std=list(args.std), input_size=args.input_size,
                          crop_ratio=args.crop_ratio, extra=dict(dataset="imagenet", **extra))


def evaluate_params(args, net):
    """``--eval-only``: top-1 / top-5 of ``--params`` on ``--rec-val``."""
    with naming("--out-dir"):                # before the evaluation, not after it
        check_evaluation_folder(args.out_dir, args.model)
    try:
        load_weights(net, args.params_file, ctx=args.contexts)
    except WeightsError as err:
        raise UsageError("%s: %s" % (args.params_flag, err)) from None
    net.hybridize(static_alloc=True, static_shape=True)
    say("evaluating with input (pixel - %s) / %s, short side %d, centre crop %d" % (
        ",".join("%g" % v for v in args.mean), ",".join("%g" % v for v in args.std),
        int(round(args.input_size / args.crop_ratio)), args.input_size))
    result = topk_accuracy(net, _val_data(args, 32 * len(args.contexts)), args.contexts, (1, 5),
                           not args.no_progress)
    print("%s on %s (%d images): top-1 %.2f%%  top-5 %.2f%%" % (
        args.model, args.rec_val, args.val_images, 100 * result["acc"], 100 * result["top5"]))
    published = (args.weights_config or {}).get("published")
    if published:
        result["published"] = published
        print("published by %s (%s, %s): top-1 %.2f%%  top-5 %.2f%%; ours - theirs: "
              "%+.2f / %+.2f points" % (
                  published["publisher"], published["name"], published["figures"],
                  published["top1"], published["top5"], 100 * result["acc"] - published["top1"],
                  100 * result["top5"] - published["top5"]))
    with naming("--out-dir"):
        path = record_evaluation(args.params_file, args.weights_config, args.out_dir, result,
                                 _spec(args, val_rec=os.path.basename(args.rec_val)).to_dict())
    say("recorded in %s (python -m igcv3_gluon.reproduce --collect collects it)" % path)
    return result


def _check_class_lists(args):
    """Training and validation records packed with different class lists (their
    ``.classes.txt`` differ): the same label would mean two classes."""
    if args.eval_only or not args.rec_train:
        return
    lists = [os.path.splitext(rec)[0] + ".classes.txt" for rec in (args.rec_train,
                                                                    args.rec_val)]
    if all(os.path.isfile(p) for p in lists):
        train, val = ([line.strip() for line in open(p) if line.strip()] for p in lists)
        if train != val:
            first = next((i for i, (a, b) in enumerate(zip(train, val)) if a != b),
                         min(len(train), len(val)))
            raise UsageError("%s and %s differ (label %d: %r vs %r): pack the validation "
                             "images with --classes-from %s" % (
                                 lists[0], lists[1], first,
                                 train[first] if first < len(train) else None,
                                 val[first] if first < len(val) else None, lists[0]))


def _check_eval_classes(args, found):
    """Weights of N classes evaluated on records of M != N classes (their
    ``PREFIX.classes.txt`` says M): refused, whatever the labels happen to be."""
    if not (found and isinstance(found.get("classes"), int) and args.rec_val):
        return
    names = os.path.splitext(args.rec_val)[0] + ".classes.txt"
    if os.path.isfile(names):
        count = sum(1 for line in open(names) if line.strip())
        if count != found["classes"]:
            raise UsageError("the weights classify %d classes, %s has %d (%s): evaluate "
                             "weights trained on this set's classes (or give --num-classes "
                             "%d if its labels are the weights' class indices)"
                             % (found["classes"], args.rec_val, count, names,
                                found["classes"]))


def _check_packing(args):
    """The authors' augmentation assumes records packed at short side 480 (their im2rec)."""
    if args.augment != "authors":
        return
    sides = short_sides(args.rec_train, args.rec_train_idx)
    off = [s for s in sides if s != 480]
    if off:
        low = int(min(sides) * args.min_random_scale)
        say("note: %d of the first %d records of %s are not packed at short side 480 (seen: "
            "%s): the authors' augmentation rescales records packed at exactly 480 by %g-1 "
            "(short sides 256-480); with these it gives %d-%d, and crops below 224 are "
            "enlarged. Pack with `python -m igcv3_gluon.im2rec ... --resize 480` (it "
            "enlarges smaller images, as MXNet's im2rec)"
            % (len(off), len(sides), args.rec_train,
               "/".join(map(str, sorted(set(sides))[:6])), args.min_random_scale, low,
               max(sides)))


def run(args):
    """Training (then retraining) or evaluation; returns the summaries / the result."""
    kwargs = model_kwargs(args, args.model)
    net = get_model(args.model, classes=args.num_classes, **kwargs,
                    **norm_layer_for(args.contexts, args.syncbn))
    if args.eval_only:
        return evaluate_params(args, net)
    _check_packing(args)
    name = export_name(args.model, kwargs)
    plan = ("%d training epoch(s) (lr %g x%g per epoch) + %d retraining epoch(s) (lr %g x%g "
            "per epoch, --retrain-epochs %d)" % (
                args.epochs, args.lr, args.lr_factor, args.retrain_epochs, args.retrain_lr,
                RETRAIN_DECAY, args.retrain_epochs))
    say("plan: %s -> %s%s" % (plan, args.out_dir, " and %s" % os.path.join(args.out_dir,
                                                                         "retrain")
                               if args.retrain_epochs else ""))
    if args.lr_note:
        say(args.lr_note)
    task = _task(args)
    record = dict(flags_record(args), dataset="imagenet", classes=args.num_classes,
                  train_rec=os.path.basename(args.rec_train),
                  val_rec=os.path.basename(args.rec_val), stage="train", plan=plan,
                  mean=list(args.mean), std=list(args.std), hsl=list(args.hsl))
    session = {}
    out = os.path.join(args.out_dir, "retrain")
    # the weights it starts from: a retraining of an earlier, shorter first stage is
    # another run (extending --epochs must not resume it)
    retrain = run_config(args, dict(record, stage="retrain", epochs=args.retrain_epochs,
                                    lr=args.retrain_lr, lr_mode="exp",
                                    lr_factor=RETRAIN_DECAY, warmup_epochs=0,
                                    trained_epochs=args.epochs),
                         IDENTITY + ("trained_epochs",), name, out_dir=out,
                         epochs=args.retrain_epochs,
                         lr=args.retrain_lr, lr_mode="exp", lr_factor=RETRAIN_DECAY,
                         lr_steps=[], warmup_epochs=0, stage="retrain")
    if args.retrain_epochs:            # both stages' folders checked before either trains
        check_can_run(retrain)
    summaries = [fit(task, net, run_config(args, record, IDENTITY, name, stage="train"),
                     session=session)]
    if args.retrain_epochs:
        say("retraining %d epoch(s) from the final weights, lr %g x%g per epoch, fresh "
            "momentum -> %s" % (args.retrain_epochs, args.retrain_lr, RETRAIN_DECAY, out))
        summaries.append(fit(task, net, retrain, initialize=False, session=session))
    for s in summaries:
        if s.get("export"):
            print("%s: final top-1 %.2f%%, best %.2f%% (epoch %d); exported %s"
                  % (s["out_dir"], 100 * s["final_val_acc"], 100 * s["best_val_acc"],
                     s["best_epoch"], s["export"]["symbol"]))
    return summaries


@exit_on_usage_error
def main(argv=None):
    parser = build_parser()
    args = parse_args(parser, argv)
    if args.eval_only and args.rec_val and not os.path.isfile(args.rec_val):
        raise UsageError("--rec-val %s does not exist" % args.rec_val)
    if args.pretrained:
        if not args.eval_only or args.params:
            raise UsageError("--pretrained evaluates the published weights: use it with "
                             "--eval-only and without --params")
        args.params = "pretrained"
    args.params_flag = "--pretrained" if args.pretrained else "--params"
    if args.params and not args.eval_only:
        raise UsageError("--params is read by --eval-only; a training run starts from "
                         "scratch (add --eval-only to evaluate the weights)")
    if args.eval_only:
        if not args.params:
            raise UsageError("--eval-only needs --params (a .params file or a run folder) or "
                             "--pretrained")
        with naming(args.params_flag):
            args.params_file, found = resolve_weights(args.params, args.model)
        args.weights_config = found
        if found and found.get("model") in list_models("detection"):
            raise UsageError("%s holds a detector (%s), not a classifier: evaluate it with "
                             "train_ssdlite.py --eval-only" % (args.params, found["model"]))
        adopt_run_settings(args, parser, found, ("model",) + ARCH_KEYS + INPUT_KEYS +
                           ("recipe",))
        if found and args.num_classes is None:
            _check_eval_classes(args, found)
            args.num_classes = found.get("classes")
        args.out_dir = evaluation_dir(args, parser, args.rec_val)
    resolve_args(args)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
