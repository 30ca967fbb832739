"""SSDLite / SSDLite2 training, COCO evaluation and prediction (paper Sec. 4.3, Table 4).

Entry point: ``train_ssdlite.py``. The recipe, as defaults: SGD momentum 0.9, weight decay
4e-5, lr 0.004 divided by 10 every 60 epochs, 240 epochs, 320x320 input, GluonCV's SSD
train transform (photometric distortion, random expansion, random crop, flip) and
``SSDMultiBoxLoss`` (hard negative mining 3:1, loss normalised by the positives).
Checkpoints, resume, logs, curves, progress bars and devices come from the shared toolkit.
"""
import os
import sys
import time

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from .data.coco import COCOFormat, coco_split_paths
from .errors import UsageError, exit_on_usage_error
from .train.checkpoint import atomic_write, atomic_write_json
from .train.context import parse_devices
from .train.logbook import say
from .train.loop import progress_bar
from .train.runner import RunSetup, kaiming_init, seed_everything, sigterm_as_interrupt

__all__ = ["DEFAULTS", "build_parser", "main", "evaluate_coco", "predict_images"]

# Sec. 4.3: lr 0.004, /10 every 60 epochs, 240 epochs, 320x320.
DEFAULTS = dict(model="ssdlite_320_igcv3_w_coco", epochs=240, batch_size=64, lr=0.004,
                lr_mode="step", lr_steps="60,120,180", lr_factor=0.1, wd=4e-5,
                out_dir="runs/ssdlite", kvstore="device")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def build_parser():
    from .train.cli import parser_for
    parser = parser_for("Train / evaluate an SSDLite detector (paper Table 4) on COCO or any "
                        "COCO-format data set.", DEFAULTS)
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
    g.add_argument("--val-interval", type=int, default=1, help="evaluate every N epochs")
    g.add_argument("--augment", default="ssd", choices=["ssd", "light"],
                   help="ssd: GluonCV's SSD train transform (the paper's); light: resize + "
                        "flip (small clean sets)")
    g = parser.add_argument_group("evaluation and prediction")
    g.add_argument("--eval-only", action="store_true", help="COCO mAP of --params on val")
    g.add_argument("--params", help="weights (.params) for --eval-only / --predict")
    g.add_argument("--predict", nargs="+", metavar="IMAGE", help="draw detections into PNGs")
    g.add_argument("--threshold", type=float, default=0.5, help="--predict score threshold")
    return parser


def _datasets(args, need_train=True):
    sets = []
    if args.train_ann or args.val_ann:
        pairs = [(args.train_ann, args.train_images)] if need_train else []
        val = (args.val_ann, args.val_images)
    elif args.data_dir:
        if not os.path.isdir(args.data_dir):
            raise UsageError("--data-dir %s does not exist" % args.data_dir)
        pairs = ([coco_split_paths(args.data_dir, s) for s in args.train_sets.split(",")]
                 if need_train else [])
        val = coco_split_paths(args.data_dir, args.val_sets)
    else:
        raise UsageError("give --data-dir (COCO layout) or --train-ann/--train-images/"
                         "--val-ann/--val-images (any COCO-format set)")
    for ann, images in pairs:
        if not ann or not images:
            raise UsageError("--train-ann and --train-images go together")
        sets.append(COCOFormat(ann, images, skip_empty=True))
    if not val[0] or not val[1]:
        raise UsageError("--val-ann and --val-images go together")
    val_set = COCOFormat(val[0], val[1], skip_empty=False)
    if sets and any(s.classes != val_set.classes for s in sets):
        raise UsageError("training and validation sets have different categories")
    return sets, val_set


class _EpochBatches(gluon.data.Sampler):
    """Seeded shuffled batches of one worker's shard; ``set_epoch(epoch, start_batch)``."""

    def __init__(self, n, batch, seed, rank=0, parts=1):
        self.n, self.batch, self.seed, self.rank, self.parts = n, batch, seed, rank, parts
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch, start_batch=0):
        self.epoch, self.start = epoch, start_batch

    def __len__(self):
        return (self.n // self.parts) // self.batch

    def __iter__(self):
        order = np.random.RandomState(self.seed + self.epoch).permutation(self.n)
        order = order[self.rank::self.parts][:len(self) * self.batch]
        for b in range(self.start, len(self)):
            yield order[b * self.batch:(b + 1) * self.batch].tolist()


class LightTrainTransform:
    """``--augment light``: resize + horizontal flip only, then SSD's training targets (the
    same matching as GluonCV's transform). For small, clean data sets where the full SSD
    augmentation (expansion up to 4x, constrained crops) needs far more epochs."""

    def __init__(self, size, anchors):
        from gluoncv.model_zoo.ssd.target import SSDTargetGenerator
        self.size, self.anchors = size, anchors
        self.targets = SSDTargetGenerator(iou_thresh=0.5, stds=(0.1, 0.1, 0.2, 0.2),
                                          negative_mining_ratio=-1)

    def __call__(self, src, label):
        from gluoncv.data.transforms import bbox as tbbox
        from gluoncv.data.transforms import image as timage
        h, w = src.shape[:2]
        img = timage.imresize(src, self.size, self.size, interp=1)
        bbox = tbbox.resize(label, (w, h), (self.size, self.size))
        img, flips = timage.random_flip(img, px=0.5)
        bbox = tbbox.flip(bbox, (self.size, self.size), flip_x=flips[0])
        x = mx.nd.image.normalize(mx.nd.image.to_tensor(img), mean=MEAN, std=STD)
        gt_bboxes = mx.nd.array(bbox[np.newaxis, :, :4])
        gt_ids = mx.nd.array(bbox[np.newaxis, :, 4:5])
        cls_targets, box_targets, _ = self.targets(self.anchors, None, gt_bboxes, gt_ids)
        return x, cls_targets[0], box_targets[0]


def _train_loader(dataset, net, args, worker_batch, rank, parts, ctx):
    from gluoncv.data.batchify import Stack, Tuple
    from gluoncv.data.transforms.presets.ssd import SSDDefaultTrainTransform
    size = args.data_shape
    with autograd.train_mode():                 # the anchors, computed where the net lives
        _, _, anchors = net(mx.nd.zeros((1, 3, size, size), ctx=ctx))
    anchors = anchors.as_in_context(mx.cpu())
    transform = (LightTrainTransform(size, anchors) if args.augment == "light" else
                 SSDDefaultTrainTransform(size, size, anchors, mean=MEAN, std=STD))
    sampler = _EpochBatches(len(dataset), worker_batch, args.seed, rank, parts)
    loader = gluon.data.DataLoader(dataset.transform(transform), batch_sampler=sampler,
                                   batchify_fn=Tuple(Stack(), Stack(), Stack()),
                                   num_workers=args.workers)
    return loader, sampler


def _detect(net, images, contexts, size):
    """Run the detector on a list of HWC uint8 NDArrays; returns per image
    ``(ids, scores, boxes)`` numpy arrays in the image's own pixel coordinates."""
    out = []
    for img in images:
        h, w = img.shape[:2]
        x = _resize_normalise(img, size)
        ids, scores, boxes = [a[0].asnumpy() for a in net(x.as_in_context(contexts[0]))]
        keep = ids[:, 0] >= 0
        boxes = boxes[keep] * np.array([w / size, h / size, w / size, h / size])
        out.append((ids[keep, 0].astype(int), scores[keep, 0], boxes))
    return out


def _resize_normalise(img, size):
    """What GluonCV's SSD val transform does: resize to size x size, to CHW [0, 1], mean/std."""
    x = mx.nd.image.to_tensor(mx.image.imresize(img, size, size, interp=1))
    return mx.nd.image.normalize(x, mean=MEAN, std=STD).expand_dims(0)


def evaluate_coco(net, val_set, contexts, size, progress=False):
    """COCO mAP of ``net`` on ``val_set`` via pycocotools: AP, AP50, AP75, APs, APm, APl."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    net.set_nms(nms_thresh=0.45, nms_topk=400, post_nms=100)
    net.hybridize(static_alloc=True, static_shape=True)
    results = []
    bar = progress_bar(len(val_set), 0, "COCO eval", progress)
    for i in range(len(val_set)):
        img, _ = val_set[i]
        ids, scores, boxes = _detect(net, [img], contexts, size)[0]
        for c, s, (x1, y1, x2, y2) in zip(ids, scores, boxes):
            results.append({"image_id": val_set.items[i][0], "category_id": val_set.cat_ids[c],
                            "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                            "score": float(s)})
        bar.update(1)
    bar.close()
    names = ["AP", "AP50", "AP75", "APs", "APm", "APl"]
    if not results:
        return dict.fromkeys(names, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(val_set.ann_file)
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.imgIds = val_set.image_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {n: float(max(v, 0.0)) for n, v in zip(names, ev.stats[:6])}


def _build_net(args, classes):
    from .models import get_model
    return get_model(args.model, classes=list(classes), multiplier=args.multiplier or 1.0,
                     base_size=args.data_shape)


def fit_detector(args, net, train_set, val_set):
    """The training run: devices, resume, epochs with progress, COCO eval, checkpoints."""
    from gluoncv.loss import SSDMultiBoxLoss
    run = RunSetup(args)
    contexts, rank, parts = run.contexts, run.rank, run.num_workers
    worker_batch, is_main, log, ckpts = run.worker_batch, run.is_main, run.log, run.ckpts
    schedule = run.schedule
    seed_everything(args.seed)
    net.initialize(kaiming_init, ctx=contexts)
    net.hybridize(static_alloc=True, static_shape=True)
    loader, sampler = _train_loader(train_set, net, args, worker_batch, rank, parts,
                                    contexts[0])
    if len(sampler) == 0:
        raise UsageError("the training set has %d usable images: fewer than the batch (%d)"
                         % (len(train_set), worker_batch))
    trainer = run.make_trainer(net, args)
    loss_fn = SSDMultiBoxLoss()
    done, start, best = run.resume(net, trainer, args, {"AP": -1.0, "epoch": 0})
    if is_main:
        log.save_config(dict(vars(args), classes=train_set.classes, num_workers=parts,
                             train_images=len(train_set), val_images=len(val_set),
                             schedule=schedule.describe()))
    progress = not args.no_progress and is_main
    try:
        with sigterm_as_interrupt():
            for epoch in range(done, args.epochs):
                sampler.set_epoch(epoch, start)
                net.hybridize(static_alloc=True, static_shape=True)      # back to training mode
                tic, seen, sums, b = time.time(), 0, np.zeros(2), start
                bar = progress_bar(len(sampler), start, "epoch %d/%d" % (epoch + 1, args.epochs),
                                progress)
                try:
                    for data, cls_t, box_t in loader:
                        trainer.set_learning_rate(schedule(epoch + b / len(sampler)))
                        xs = gluon.utils.split_and_load(data, contexts, even_split=False)
                        cs = gluon.utils.split_and_load(cls_t, contexts, even_split=False)
                        bs = gluon.utils.split_and_load(box_t, contexts, even_split=False)
                        with autograd.record():
                            preds = [net(x) for x in xs]
                            total, cls_l, box_l = loss_fn([p[0] for p in preds],
                                                          [p[1] for p in preds], cs, bs)
                        autograd.backward(total)
                        trainer.step(parts)          # mean over workers of per-worker losses
                        sums += [sum(float(l.mean().asscalar()) for l in cls_l),
                                 sum(float(l.mean().asscalar()) for l in box_l)]
                        if not np.isfinite(sums).all():
                            raise UsageError("loss is not finite at epoch %d, batch %d: lower --lr "
                                             "or add --warmup-epochs" % (epoch + 1, b + 1), code=3)
                        seen += data.shape[0]
                        b += 1
                        bar.update(1)
                        bar.set_postfix(cls="%.3f" % (sums[0] / (b - start)),
                                        box="%.3f" % (sums[1] / (b - start)))
                except KeyboardInterrupt:
                    mx.nd.waitall()
                    if is_main:
                        ckpts.save(net, trainer, epoch, b, best=best, seed=args.seed)
                    raise UsageError("interrupted in epoch %d after %d batch(es); saved to %s: run "
                                     "the same command again to continue"
                                     % (epoch + 1, b, ckpts.directory), code=130)
                finally:
                    bar.close()
                steps = max(b - start, 1)
                start = 0
                row = dict(epoch=epoch + 1, lr=trainer.learning_rate, cls_loss=sums[0] / steps,
                           box_loss=sums[1] / steps, train_loss=sums.sum() / steps,
                           images=seen, img_per_s=seen / max(time.time() - tic, 1e-9))
                if (epoch + 1) % args.val_interval == 0 or epoch + 1 == args.epochs:
                    coco = evaluate_coco(net, val_set, contexts, args.data_shape, progress)
                    row.update({"val_" + k: v for k, v in coco.items()})
                    row["val_acc"] = coco["AP"]            # the curve plotter's "val" column
                    if coco["AP"] > best["AP"] and is_main:
                        best = {"AP": coco["AP"], "epoch": epoch + 1}
                        atomic_write(os.path.join(args.out_dir, "best.params"), net.save_parameters)
                log.append(row)
                if is_main:
                    ckpts.save(net, trainer, epoch + 1, 0, best=best, seed=args.seed)
                    say("epoch %d/%d  cls %.3f  box %.3f  %s %.0f img/s  lr %.3g" % (
                        epoch + 1, args.epochs, row["cls_loss"], row["box_loss"],
                        " ".join("%s %.3f" % (k, row["val_" + k]) for k in ("AP", "AP50", "AP75")
                                 if "val_" + k in row), row["img_per_s"], row["lr"]))
                    log.plot(title="%s on %s" % (args.model, os.path.basename(val_set.ann_file)))
    except KeyboardInterrupt:
        raise UsageError("interrupted; the last checkpoint in %s is complete: run the same "
                         "command again to continue" % ckpts.directory, code=130)
    summary = dict(model=args.model, best_AP=best["AP"], best_epoch=best["epoch"],
                   out_dir=args.out_dir)
    if parts > 1:                     # every worker's final weights, to compare
        net.save_parameters(os.path.join(args.out_dir, "final-rank%d.params" % rank))
    if is_main:
        summary["export"] = _export(net, args, contexts)
        atomic_write_json(os.path.join(args.out_dir, "summary.json"), summary)
    return summary


def _export(net, args, contexts):
    from .deploy import export
    best = os.path.join(args.out_dir, "best.params")
    if os.path.isfile(best):
        net.load_parameters(best, ctx=contexts)
    net.set_nms(nms_thresh=0.45, nms_topk=400, post_nms=100)
    net.hybridize()
    size = args.data_shape
    net(mx.nd.zeros((1, 3, size, size), ctx=contexts[0]))     # inference-mode trace
    sym, params = export(net, os.path.join(args.out_dir, "export", args.model),
                         (1, 3, size, size), ctx=contexts[0])
    return {"symbol": sym, "params": params}


def predict_images(net, classes, paths, out_dir, size, threshold, contexts):
    """Detect on image files and write ``<name>-detections.png`` with boxes and labels."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for path in paths:
        if not os.path.isfile(path):
            raise UsageError("--predict: %s does not exist" % path)
        try:
            img = mx.image.imread(path)
        except mx.MXNetError:
            raise UsageError("--predict: %s is not an image" % path)
        ids, scores, boxes = _detect(net, [img], contexts, size)[0]
        fig, ax = plt.subplots(figsize=(6, 6 * img.shape[0] / img.shape[1]))
        ax.imshow(img.asnumpy())
        ax.axis("off")
        for c, s, (x1, y1, x2, y2) in zip(ids, scores, boxes):
            if s < threshold:
                continue
            colour = plt.cm.tab10(c % 10)
            ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=2,
                                       edgecolor=colour))
            ax.text(x1, y1 - 2, "%s %.2f" % (classes[c], s), color="white", fontsize=8,
                    bbox=dict(facecolor=colour, alpha=0.8, pad=1, lw=0))
        out = os.path.join(out_dir, os.path.splitext(os.path.basename(path))[0]
                           + "-detections.png")
        fig.savefig(out, bbox_inches="tight", dpi=100)
        plt.close(fig)
        written.append((out, int((scores >= threshold).sum())))
    return written


def _load_params(net, path, contexts):
    from .deploy import load_weights
    if not path or not os.path.isfile(path):
        raise UsageError("--params %s does not exist (use OUT_DIR/best.params)" % path)
    try:
        load_weights(net, path, ctx=contexts)
    except Exception as err:                     # noqa: BLE001 - one line for the user
        raise UsageError("%s does not fit %s (%s)" % (path, net.name,
                                                      str(err).splitlines()[0][:160]))


@exit_on_usage_error
def main(argv=None):
    from .train.cli import validate_common_args
    args = build_parser().parse_args(argv)
    args.task = "detection"
    validate_common_args(args)
    if args.data_shape < 64 or args.data_shape % 32:
        raise UsageError("--data-shape must be a multiple of 32, at least 64")
    contexts = parse_devices(args.gpus, args.cpus)
    train_sets, val_set = _datasets(args, need_train=not (args.eval_only or args.predict))
    net = _build_net(args, val_set.classes)
    if args.predict or args.eval_only:
        _load_params(net, args.params, contexts)
        net.set_nms(nms_thresh=0.45, nms_topk=400, post_nms=100)
        net.hybridize(static_alloc=True, static_shape=True)
        if args.predict:
            for out, n in predict_images(net, val_set.classes, args.predict,
                                         os.path.join(args.out_dir, "predictions"),
                                         args.data_shape, args.threshold, contexts):
                print("%s: %d detection(s) >= %.2f" % (out, n, args.threshold))
        else:
            coco = evaluate_coco(net, val_set, contexts, args.data_shape, not args.no_progress)
            print("COCO mAP on %s (%d images): %s" % (val_set.ann_file, len(val_set), "  ".join(
                "%s %.1f" % (k, 100 * v) for k, v in coco.items())))
        return 0
    train_set = train_sets[0] if len(train_sets) == 1 else _union(train_sets)
    say("training on %d images (%s), validating on %d; classes: %s" % (
        len(train_set), ", ".join(s.ann_file for s in train_sets), len(val_set),
        ", ".join(val_set.classes[:10]) + (" ..." if len(val_set.classes) > 10 else "")))
    summary = fit_detector(args, net, train_set, val_set)
    if summary.get("export"):
        print("best AP %.1f (epoch %d); exported %s" % (100 * summary["best_AP"],
                                                       summary["best_epoch"],
                                                       summary["export"]["symbol"]))
    return 0


def _union(sets):
    """trainval35k-style union of several COCO-format sets (same categories)."""
    union = sets[0]
    for other in sets[1:]:
        union.items = union.items + other.items
    return union


if __name__ == "__main__":
    sys.exit(main())
