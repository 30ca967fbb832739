"""SSDLite / SSDLite2 training, COCO evaluation and prediction (paper Sec. 4.3, Table 4).

Entry point: ``train_ssdlite.py``. The recipe, as defaults, the authors' SSDLite2 (the paper
Sec. 4.3 and their MXNet SSD scripts): a global batch of 32 (8 per GPU on their 4), SGD lr
0.004 divided by 10 at epochs 60, 120 and 180 of 240, momentum 0.9, weight decay 4e-5 on
conv/FC weights and BN gamma (MXNet's Module rule), 320x320 input, mean subtraction
(123, 117, 104), their anchors (``models.ssdlite.anchor_boxes("authors")``), and a backbone
trained on ImageNet first (``--backbone-params``); GluonCV's SSD train transform
(photometric distortion, random expansion, random crop, flip) and the loss normalised as the
authors' symbol normalises it (``train.ssd_loss.AuthorsMultiBoxLoss``: class term over the
positives + mined negatives, box term over its non-zero smooth-L1 elements, averaged over
devices). ``--recipe gluoncv`` takes GluonCV's ``SSDMultiBoxLoss`` (both terms over the
positives, about 4x the authors' loss) with GluonCV's lr 0.001. The run itself (devices,
resume, logs, curves, progress, export) is the shared engine's driving
``train.detector.DetectorTask``.
"""
import os
import sys

import mxnet as mx

from .cli import adopt_run_settings, evaluation_dir, parse_floats, spec_from_args
from .data.coco import COCOFormat, coco_split_paths
from .data.detection import AUTHORS_MEAN, AUTHORS_STD, PIXEL_MEAN, PIXEL_STD
from .data.images import file_problem
from .deploy import WeightsError, load_weights, read_params
from .errors import UsageError, exit_on_usage_error, naming
from .evaluations import check_evaluation_folder, record_evaluation
from .models import get_model, list_models, model_info
from .models.pretrained import resolve_weights
from .models.ssdlite import ANCHOR_PRESETS
from .nn import norm_layer_for
from .train.cli import (
    export_name,
    fit,
    flags_record,
    model_kwargs,
    parse_args,
    parser_for,
    run_config,
    validate_common_args,
)
from .train.detector import NMS, DetectorTask, detect, evaluate_coco, load_backbone
from .utils import save_figure, say

__all__ = ["DEFAULTS", "RECIPES", "IDENTITY", "build_parser", "main", "predict_images"]

# Sec. 4.3 and the authors' SSD scripts: global batch 32, lr 0.004 /10 at 60, 120, 180,
# 240 epochs, wd 4e-5 (Module rule), 320x320.
DEFAULTS = dict(model="ssdlite_320_igcv3_w_coco", epochs=240, batch_size=32, lr=None,
                lr_mode="step", lr_steps="60,120,180", lr_factor=0.1, wd=4e-5, wd_on="module",
                out_dir="runs/ssdlite", kvstore="device",
                lr_help="initial lr (default: the recipe's: 0.004 for authors, the authors' "
                        "train.py:47; 0.001 for gluoncv, GluonCV's train_ssd.py)")
# the loss and its lr: the authors' (symbol_builder.py:85-97, train.py:47) or GluonCV's
# (gluoncv.loss.SSDMultiBoxLoss, scripts/detection/ssd/train_ssd.py --lr 0.001)
RECIPES = {"authors": dict(loss="authors", lr=0.004),
           "gluoncv": dict(loss="gluoncv", lr=0.001)}
IDENTITY = ("model", "multiplier", "batch_size", "data_shape", "classes", "anchors", "recipe")


def build_parser():
    parser = parser_for("Train / evaluate an SSDLite detector (paper Table 4) on COCO or any "
                        "COCO-format data set.", DEFAULTS, task="detection")
    g = parser.add_argument_group("data")
    g.add_argument("--data-dir", help="COCO root: annotations/instances_<split>.json, <split>/")
    g.add_argument("--train-sets", default="train2017",
                   help="comma-separated splits to train on (e.g. train2014,valminusminival2014)")
    g.add_argument("--val-sets", default="val2017", help="the split to evaluate on")
    g.add_argument("--train-ann", help="custom set: training json (instead of --data-dir)")
    g.add_argument("--train-images", help="custom set: its image folder")
    g.add_argument("--val-ann", help="custom set: validation json")
    g.add_argument("--val-images", help="custom set: its image folder")
    g.add_argument("--data-shape", type=int, default=320, help="input size")
    g.add_argument("--augment", default="ssd", choices=["ssd", "light"],
                   help="ssd: GluonCV's SSD train transform (the paper's); light: resize + "
                        "flip (small clean sets)")
    g.add_argument("--mean", default=None,
                   help="R,G,B pixel mean (default: the backbone run's, else the authors' "
                        "123,117,104)")
    g.add_argument("--std", default=None,
                   help="R,G,B pixel std (default: the backbone run's, else 1,1,1: mean "
                        "subtraction only)")
    g = parser.add_argument_group("detector")
    g.add_argument("--recipe", default="authors", choices=sorted(RECIPES),
                   help="authors: the authors' loss normalisation and lr 0.004; gluoncv: "
                        "GluonCV's SSDMultiBoxLoss and lr 0.001")
    g.add_argument("--anchors", default="authors", choices=list(ANCHOR_PRESETS),
                   help="authors: their SSDLite2 anchors (4,6,6,6,4,4 per position); "
                        "ssdlite: the MobileNetV2 paper's (3,6,6,6,6,6)")
    g.add_argument("--backbone-params", default=None,
                   help="start the backbone from an ImageNet classifier: a train_imagenet.py "
                        "run folder or .params (best, final, export) or converted weights of "
                        "the same network and width, or 'pretrained' (the published weights "
                        "of the backbone, where they exist); ignored when resuming")
    g = parser.add_argument_group("evaluation and prediction")
    g.add_argument("--eval-only", action="store_true", help="COCO mAP of --params on val")
    g.add_argument("--params", help="weights for --eval-only / --predict: a .params or a run "
                                    "folder")
    g.add_argument("--predict", nargs="+", metavar="IMAGE", help="draw detections into PNGs")
    g.add_argument("--threshold", type=float, default=0.5, help="--predict score threshold")
    return parser


def _datasets(args, need_train=True):
    """The training sets and the validation set of the flags, each checked (``COCOFormat``)
    and described."""
    if args.train_ann or args.val_ann:
        flags = "--train-ann/--train-images"
        pairs = [(args.train_ann, args.train_images)] if need_train else []
        val = (args.val_ann, args.val_images)
    elif args.data_dir:
        flags = "--data-dir"
        if not os.path.isdir(args.data_dir):
            raise UsageError("--data-dir %s %s" % (args.data_dir, "is a file, not a folder"
                                                   if os.path.exists(args.data_dir)
                                                   else "does not exist"))
        pairs = ([coco_split_paths(args.data_dir, s)
                  for s in _split_names(args.train_sets, "--train-sets")] if need_train else [])
        val = coco_split_paths(args.data_dir, _split_names(args.val_sets, "--val-sets", 1)[0])
    else:
        raise UsageError("give --data-dir (COCO layout) or --train-ann/--train-images/"
                         "--val-ann/--val-images (any COCO-format set)")
    sets = []
    for ann, images in pairs:
        if not ann or not images:
            raise UsageError("--train-ann and --train-images go together")
        with naming(flags):
            sets.append(COCOFormat(ann, images, skip_empty=True))
    if not val[0] or not val[1]:
        raise UsageError("--val-ann and --val-images go together")
    with naming("--data-dir" if flags == "--data-dir" else "--val-ann/--val-images"):
        val_set = COCOFormat(val[0], val[1], skip_empty=False)
    for dataset in sets:
        if dataset.classes != val_set.classes:
            differ = sorted(set(dataset.classes) ^ set(val_set.classes)) or ["their order"]
            raise UsageError("the training set %s and the validation set %s have different "
                             "categories (%s): give sets of the same categories"
                             % (dataset.ann_file, val_set.ann_file, ", ".join(differ[:5])))
    for dataset in sets + [val_set]:
        say("%s: %d images; %s" % (dataset.ann_file, len(dataset), dataset.describe()))
    return sets, val_set


def _split_names(text, flag, most=None):
    """``train2017,val2017`` -> the split names (folders of ``--data-dir``), each once."""
    names = [n.strip() for n in str(text).split(",")]
    bad = [n for n in names if not n or os.sep in n or n.startswith(".")]
    if bad or len(set(names)) != len(names) or (most and len(names) > most):
        raise UsageError("%s %r: give %s of --data-dir's splits (folder names such as "
                         "train2017), each once" % (flag, text, most or "comma-separated names"))
    return names


def _build_net(args, classes):
    kwargs = model_kwargs(args, args.model)
    return get_model(args.model, classes=list(classes), base_size=args.data_shape,
                     anchors=args.anchors, **kwargs,
                     **norm_layer_for(args.contexts, args.syncbn))


def _normalisation(args, parser, backbone_config):
    """``--mean``/``--std`` (0-255 pixels): given, else the backbone run's (a backbone
    trained on mean-only input must be fed mean-only input), else the authors'."""
    source = "the authors' SSD"
    mean, std = AUTHORS_MEAN, AUTHORS_STD
    if backbone_config and backbone_config.get("mean"):
        mean = tuple(backbone_config["mean"])
        std = tuple(backbone_config.get("std") or (1.0, 1.0, 1.0))
        source = "the backbone's training run"
    if args.mean or args.std:
        source = "--mean/--std"
    args.mean = parse_floats(args.mean, "--mean") if args.mean else mean
    args.std = parse_floats(args.std, "--std") if args.std else std
    if min(args.std) <= 0:
        raise UsageError("--std must be positive")
    return source


def _backbone_classifier(args):
    """The ImageNet zoo classifier that is this detector's backbone (for ``pretrained``)."""
    if args.model not in list_models("detection"):
        return None
    backbone = model_info(args.model).config
    width = args.multiplier or 1.0
    for name in list_models("classification"):
        info = model_info(name)
        if (info.config, info.multiplier, info.cifar, info.kwargs) == (backbone, width, False,
                                                                        {}):
            return name
    return None


def _check_backbone_run(path, config, net):
    """A run folder names the classifier it trained: it must be the detector's backbone."""
    if not config or config.get("model") not in list_models("classification"):
        return
    info = model_info(config["model"])
    width = config.get("multiplier") or info.multiplier
    if (info.config, width) != (net.backbone_config, net.backbone_multiplier):
        raise UsageError("--backbone-params %s trained %s (%s, width %g); the detector's "
                         "backbone is %s at width %g" % (path, config["model"], info.config,
                                                          width, net.backbone_config,
                                                          net.backbone_multiplier))


def _backbone_loader(path, config):
    """``on_fresh_start`` for the task: load the backbone and say what was loaded."""

    def load(net, contexts):
        try:
            report = load_backbone(net, path, contexts)
        except WeightsError as err:
            raise UsageError("--backbone-params: %s" % err)
        fresh = ", ".join("%s (%d layers, %d tensors)" % (part, n, tensors)
                          for part, (n, _, tensors) in report["fresh"].items())
        say("backbone: %d tensors loaded from %s (%s%d classes); starting fresh: %s"
            % (report["loaded"], path, "%s, " % config["model"] if config else "",
               report["classes"], fresh))
    return load


def _check_params_file(path):
    with naming("--params"):
        read_params(path)


def _load_params(net, path, contexts):
    with naming("--params"):
        load_weights(net, path, ctx=contexts)


def _task(args, train_set, val_set, on_fresh_start=None):
    return DetectorTask(train_set, val_set, args.data_shape, args.augment, args.workers,
                        args.seed, args.mean, args.std, on_fresh_start,
                        loss=RECIPES[args.recipe]["loss"],
                        title="%s on %s" % (args.model, os.path.basename(val_set.ann_file)),
                        meta=spec_from_args(args, input_size=args.data_shape, extra=dict(
                            anchors=args.anchors, recipe=args.recipe,
                            data_shape=args.data_shape)).to_dict())


def prediction_names(paths):
    """``NAME-detections.png`` per image; images of the same name from different folders get
    their folder's name in front (``a/x.png``, ``b/x.png`` -> ``a-x-...``, ``b-x-...``), and a
    number when that is not enough: no picture overwrites another."""
    stem = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    names = []
    for i, path in enumerate(paths):
        name = stem[i]
        if stem.count(name) > 1:
            folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
            name = "%s-%s" % (folder, name)
        base, k = name, 2
        while name in names:
            name, k = "%s-%d" % (base, k), k + 1
        names.append(name)
    return [n + "-detections.png" for n in names]


def read_images(paths):
    """Every ``--predict`` input decoded (before any weights load or picture is written):
    one line for a folder, a missing file or a file that is not an image."""
    images = []
    for path in paths:
        if os.path.isdir(path):
            raise UsageError("--predict: %s is a folder; give image files (e.g. %s/*.jpg)"
                             % (path, path.rstrip("/")))
        if not os.path.isfile(path):
            raise UsageError("--predict: %s does not exist" % path)
        damage = file_problem(path, kinds=None)        # a cut JPEG decodes as grey
        if damage:
            raise UsageError("--predict: %s is not a whole image (%s)" % (path, damage))
        try:
            images.append(mx.image.imread(path))
        except mx.MXNetError:
            raise UsageError("--predict: %s is not an image" % path)
    return images


def predict_images(net, classes, paths, out_dir, size, threshold, contexts,
                   mean=PIXEL_MEAN, std=PIXEL_STD, images=None):
    """Detect on image files and write ``<name>-detections.png`` with boxes (clipped to the
    image) and labels."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    images = read_images(paths) if images is None else images
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for path, name, img in zip(paths, prediction_names(paths), images):
        ids, scores, boxes = detect(net, img, contexts[0], size, mean, std)
        fig, ax = plt.subplots(figsize=(6, 6 * img.shape[0] / img.shape[1]))
        ax.imshow(img.asnumpy())
        ax.set_xlim(0, img.shape[1])
        ax.set_ylim(img.shape[0], 0)
        ax.axis("off")
        for c, s, (x1, y1, x2, y2) in zip(ids, scores, boxes):
            if s < threshold:
                continue
            colour = plt.cm.tab10(c % 10)
            ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=2,
                                       edgecolor=colour))
            ax.text(x1, max(y1 - 2, 8), "%s %.2f" % (classes[c], s), color="white",
                    fontsize=8, bbox=dict(facecolor=colour, alpha=0.8, pad=1, lw=0))
        out = os.path.join(out_dir, name)
        save_figure(fig, out)
        written.append((out, int((scores >= threshold).sum())))
    return written


def _classes_for_prediction(args, config):
    """Class names for --predict: the run's config.json, else the evaluation set's."""
    if config and config.get("classes"):
        classes = config["classes"]
        return (["class%d" % i for i in range(classes)] if isinstance(classes, int)
                else list(classes))
    if args.val_ann or args.data_dir:
        return _datasets(args, need_train=False)[1].classes
    raise UsageError("--predict needs the class names: give --params a run folder (or a "
                     "file inside one), or the data set (--val-ann/--val-images or --data-dir)")


@exit_on_usage_error
def main(argv=None):
    parser = build_parser()
    args = parse_args(parser, argv)
    config, backbone_config = _weights_given(args, parser)
    if args.lr is None:
        args.lr = RECIPES[args.recipe]["lr"]
    validate_common_args(args, task="detection")
    norm_source = _normalisation(args, parser, backbone_config)
    if args.data_shape < 64 or args.data_shape % 32:
        raise UsageError("--data-shape must be a multiple of 32, at least 64")
    if args.predict:
        return _predict(args, config)
    train_sets, val_set = _datasets(args, need_train=not args.eval_only)
    if args.eval_only:
        return _evaluate(args, config, val_set)
    summary = _train(args, train_sets, val_set, backbone_config, norm_source)
    if summary.get("export"):
        print("best AP %.1f%% (epoch %d); exported %s" % (100 * (summary["best_val_AP"] or 0),
                                                       summary["best_epoch"],
                                                       summary["export"]["symbol"]))
    return 0


def _weights_given(args, parser):
    """``(config, backbone_config)``: the run settings of ``--params`` (prediction and
    evaluation adopt its model, width, input size, anchors and normalisation) or of
    ``--backbone-params``."""
    if args.predict or args.eval_only:
        if not args.params:
            raise UsageError("--params is required (a .params file or a run folder)")
        with naming("--params"):
            args.params_file, config = resolve_weights(args.params)
        _check_params_file(args.params_file)
        if config and config.get("model") in list_models("classification"):
            raise UsageError("%s holds a classifier (%s), not a detector: evaluate it with "
                             "train_imagenet.py --eval-only, or start a detector from it with "
                             "--backbone-params" % (args.params, config["model"]))
        adopt_run_settings(args, parser, config, ("model", "multiplier", "data_shape",
                                                  "anchors", "mean", "std"))
        if args.eval_only:
            args.out_dir = evaluation_dir(args, parser, args.val_ann or args.val_sets)
        return config, None
    if args.backbone_params:
        with naming("--backbone-params"):
            args.backbone_file, backbone_config = resolve_weights(
                args.backbone_params, _backbone_classifier(args))
        return None, backbone_config
    return None, None


def _predict(args, config):
    """``--predict``: draw the detections of the trained detector on each image."""
    if not 0.0 <= args.threshold <= 1.0:
        raise UsageError("--threshold is a score between 0 and 1; got %g" % args.threshold)
    images = read_images(args.predict)
    classes = _classes_for_prediction(args, config)
    net = _build_net(args, classes)
    _load_params(net, args.params_file, args.contexts)
    net.set_nms(**NMS)
    net.hybridize(static_alloc=True, static_shape=True)
    for out, n in predict_images(net, classes, args.predict,
                                 os.path.join(args.out_dir, "predictions"),
                                 args.data_shape, args.threshold, args.contexts,
                                 args.mean, args.std, images):
        print("%s: %d detection(s) >= %.2f" % (out, n, args.threshold))
    return 0


def _evaluate(args, config, val_set):
    """``--eval-only``: COCO mAP of the trained detector, recorded as ``evaluation.json``."""
    trained = (config or {}).get("classes")
    if isinstance(trained, list) and trained != list(val_set.classes):
        raise UsageError("the weights detect %s; %s has the categories %s: evaluate on the set "
                         "the detector was trained for" % (
                             ", ".join(trained[:6]), val_set.ann_file,
                             ", ".join(val_set.classes[:6])))
    with naming("--out-dir"):                # before the evaluation, not after it
        check_evaluation_folder(args.out_dir, args.model)
    net = _build_net(args, val_set.classes)
    _load_params(net, args.params_file, args.contexts)
    coco = evaluate_coco(net, val_set, args.contexts, args.data_shape, not args.no_progress,
                         mean=args.mean, std=args.std)
    print("COCO mAP on %s (%d images): %s" % (val_set.ann_file, len(val_set), "  ".join(
        "%s %.1f%%" % (k, 100 * v) for k, v in coco.items())))
    with naming("--out-dir"):
        path = record_evaluation(args.params_file, config, args.out_dir, coco,
                                 dict(model=args.model, dataset="coco",
                                      multiplier=args.multiplier, data_shape=args.data_shape,
                                      val_ann=os.path.basename(val_set.ann_file)))
    say("recorded in %s (python -m igcv3_gluon.reproduce --collect collects it)" % path)
    return 0


def _train(args, train_sets, val_set, backbone_config, norm_source):
    """The training run (engine ``fit``); returns its summary."""
    net = _build_net(args, val_set.classes)
    train_set = train_sets[0] if len(train_sets) == 1 else _union(train_sets)
    if len(train_set) < args.batch_size:
        raise UsageError("--batch-size %d is more than the %d training images with boxes: give "
                         "at most %d" % (args.batch_size, len(train_set), len(train_set)))
    say("training on %d images (%s), validating on %d; classes: %s" % (
        len(train_set), ", ".join(s.ann_file for s in train_sets), len(val_set),
        ", ".join(val_set.classes[:10]) + (" ..." if len(val_set.classes) > 10 else "")))
    if args.backbone_params:
        _check_backbone_run(args.backbone_params, backbone_config, net)
    say("input normalisation: (pixel - %s) / %s (%s)" % (
        ",".join("%g" % v for v in args.mean), ",".join("%g" % v for v in args.std),
        norm_source))
    settings = dict(flags_record(args), dataset="coco", classes=list(train_set.classes),
                    train_ann_files=[s.ann_file for s in train_sets],
                    val_ann_file=val_set.ann_file,
                    train_image_count=len(train_set), val_image_count=len(val_set), stage="train",
                    mean=list(args.mean), std=list(args.std))
    loader = (_backbone_loader(args.backbone_file, backbone_config) if args.backbone_params
              else None)
    return fit(_task(args, train_set, val_set, loader), net,
               run_config(args, settings, IDENTITY,
                          export_name(args.model, vars(args), args.data_shape)))


def _union(sets):
    """trainval35k-style union of several COCO-format sets (same categories)."""
    union = sets[0]
    for other in sets[1:]:
        union.items = union.items + other.items
    return union


if __name__ == "__main__":
    sys.exit(main())
