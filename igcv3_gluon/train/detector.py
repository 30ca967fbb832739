"""The detection task for the run engine (SSDLite / SSDLite2, paper Table 4): GluonCV's SSD
targets, the loss normalised as the authors' (``ssd_loss.AuthorsMultiBoxLoss``, hard negative
mining 3:1) or GluonCV's ``SSDMultiBoxLoss``, COCO mAP evaluation with pycocotools,
inference-mode export."""
import contextlib
import io

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from ..data.detection import (
    PIXEL_MEAN,
    PIXEL_STD,
    SeededSamples,
    resize_normalise,
    seeded_keys,
    ssd_train_transform,
)
from ..data.sampler import EpochBatches, LoaderBatches
from ..deploy import WeightsError, export_detector, load_weights, read_params
from ..models import build
from ..models.spec import ModelSpec
from ..utils import progress_bar
from .engine import Task
from .ssd_loss import make_loss

__all__ = ["DetectorTask", "detect", "evaluate_coco", "load_backbone", "NMS"]

NMS = dict(nms_thresh=0.45, nms_topk=400, post_nms=100)
COCO_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def detect(net, img, ctx, size, mean=PIXEL_MEAN, std=PIXEL_STD):
    """Detections of one HWC uint8 image: ``(ids, scores, boxes)`` numpy arrays, boxes in the
    image's own pixels and clipped to it."""
    h, w = img.shape[:2]
    x = resize_normalise(img, size, mean, std)
    ids, scores, boxes = [a[0].astype("float32").asnumpy() for a in net(x.as_in_context(ctx))]
    keep = ids[:, 0] >= 0
    boxes = boxes[keep] * np.array([w / size, h / size, w / size, h / size])
    boxes = np.clip(boxes, 0, [w, h, w, h])
    return ids[keep, 0].astype(int), scores[keep, 0], boxes


def evaluate_coco(net, val_set, contexts, size, progress=False, check_stop=None,
                  mean=PIXEL_MEAN, std=PIXEL_STD):
    """COCO mAP of ``net`` on ``val_set`` via pycocotools: AP, AP50, AP75, APs, APm, APl.
    Each prediction carries the id of its own image (GluonCV's metric pairs predictions
    with ids by position, which misaligns on sets with empty images); the ground truth is
    the json's boxes renumbered (``COCOFormat.ground_truth``)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    net.set_nms(**NMS)
    net.hybridize(static_alloc=True, static_shape=True)
    results = []
    bar = progress_bar(len(val_set), 0, "COCO eval", progress, unit="img")
    try:
        for i in range(len(val_set)):
            if check_stop is not None:
                check_stop()
            img, _ = val_set[i]
            ids, scores, boxes = detect(net, img, contexts[0], size, mean, std)
            for c, s, (x1, y1, x2, y2) in zip(ids, scores, boxes):
                results.append({"image_id": val_set.items[i][0],
                                "category_id": int(c),
                                "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                                "score": float(s)})
            bar.update(1)
    finally:
        bar.close()
    if not results:
        return dict.fromkeys(COCO_METRICS, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {k: v for k, v in val_set.ground_truth.items() if k != "image_index"}
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.imgIds = val_set.image_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {n: float(max(v, 0.0)) for n, v in zip(COCO_METRICS, ev.stats[:6])}


def load_backbone(net, path, contexts=None):
    """Start the detector ``net`` from an ImageNet classifier: copy the classifier's
    ``features`` (``train_imagenet.py``'s best/final ``.params``, an export's ``-0000.params``,
    or the converter's output) into the detector's backbone.

    By structure: a classifier of the detector's own backbone config and width is built,
    the file is loaded into it as a whole (every tensor present, every shape fitting, or
    ``WeightsError``), and its ``features`` are copied tensor for tensor into the backbone,
    which is that same ``features`` block inside the detector. Returns a report: tensors
    loaded, the classifier's classes, and the detector's parts that start fresh."""
    values = read_params(path)
    fcs = [v for v in values.values() if len(v.shape) == 2]
    if len(fcs) != 1:
        raise WeightsError("%s is not an image classifier's weights (it holds %d FC layers, a "
                           "classifier one): give the .params of a train_imagenet.py run or of "
                           "the converter" % (path, len(fcs)))
    donor = build(net.backbone_config, classes=int(fcs[0].shape[0]),
                  multiplier=net.backbone_multiplier)
    try:
        load_weights(donor, path)
    except WeightsError as err:
        raise WeightsError("%s is not a classifier of the detector's backbone (%s, width %g): "
                           "%s" % (path, net.backbone_config, net.backbone_multiplier,
                                   str(err).split(": ", 1)[-1]))
    source = list(donor.features.collect_params().values())
    target = list(net.features.backbone.collect_params().values())
    if [p.shape for p in source] != [p.shape for p in target]:
        raise WeightsError("%s: the classifier's features and the detector's backbone differ "
                           "in structure" % path)
    for src, dst in zip(source, target):
        dst.set_data(src.data())
    fresh = {}
    for part, block in (("extra layers", net.features.extras),
                        ("class predictors", net.class_predictors),
                        ("box predictors", net.box_predictors)):
        params = list(block.collect_params().values())
        fresh[part] = (len(block), sum(p.grad_req != "null" for p in params), len(params))
    return dict(loaded=len(target), classes=int(fcs[0].shape[0]), fresh=fresh)


class DetectorTask(Task):
    """``train_set``/``val_set``: ``data.coco.COCOFormat``; ``augment`` "ssd" or "light";
    ``mean``/``std`` the input normalisation, ``(pixel - mean) / std`` on 0-255 pixels;
    ``on_fresh_start(net, contexts)`` runs once when the run starts from scratch (loading an
    ImageNet backbone)."""
    best_key = "val_AP"
    curves = (("cls_loss", "box_loss", "train_loss"), ("val_AP", "val_AP50"))

    def __init__(self, train_set, val_set, data_shape, augment="ssd", workers=2, seed=0,
                 mean=PIXEL_MEAN, std=PIXEL_STD, on_fresh_start=None, title="", meta=None,
                 loss="authors"):
        self.train_set, self.val_set, self.size = train_set, val_set, data_shape
        self.augment, self.workers, self.seed = augment, workers, seed
        self.mean, self.std, self.on_fresh_start, self.title = mean, std, on_fresh_start, title
        self.meta = dict(meta or {})
        self.loss_kind, self.loss = loss, make_loss(loss)

    def train_data(self, net, rank, num_workers, global_batch, contexts):
        from gluoncv.data.batchify import Stack, Tuple
        with autograd.train_mode():            # the anchors, computed where the net lives
            _, _, anchors = net(mx.nd.zeros((1, 3, self.size, self.size), ctx=contexts[0]))
        anchors = anchors.as_in_context(mx.cpu())
        transform = ssd_train_transform(self.augment, self.size, anchors, self.mean, self.std)
        sampler = EpochBatches(len(self.train_set), global_batch, True, self.seed, rank,
                               num_workers, seeded_keys)
        loader = gluon.data.DataLoader(SeededSamples(self.train_set, transform, self.seed),
                                       batch_sampler=sampler,
                                       batchify_fn=Tuple(Stack(), Stack(), Stack()),
                                       num_workers=self.workers)
        return LoaderBatches(loader, sampler)

    def start_fresh(self, net, contexts):
        if self.on_fresh_start is not None:
            self.on_fresh_start(net, contexts)

    def begin_epoch(self, net):
        net.hybridize(static_alloc=True, static_shape=True)      # back to training mode

    def forward(self, net, batch, contexts):
        data, cls_t, box_t = batch
        xs, cs, bs = (gluon.utils.split_and_load(a, contexts, even_split=False)
                      for a in (data, cls_t, box_t))
        preds = [net(x) for x in xs]
        total, cls_l, box_l = self.loss([p[0] for p in preds], [p[1] for p in preds], cs, bs)
        return total, (cls_l, box_l, data.shape[0])

    def tally(self, what):
        cls_l, box_l, images = what
        cls = sum(float(part.mean().asscalar()) for part in cls_l)
        box = sum(float(part.mean().asscalar()) for part in box_l)
        return {"loss": cls + box, "cls": cls, "box": box, "images": images}

    def gradient_divisor(self, global_batch, num_workers):
        # each worker's loss is normalised already (per device and averaged over its
        # devices: authors; over its positives: gluoncv): the mean over workers
        return num_workers

    def row(self, sums):
        steps = max(sums.get("batches", 0), 1)
        return {"cls_loss": sums.get("cls", 0.0) / steps, "box_loss": sums.get("box", 0.0) / steps,
                "train_loss": sums.get("loss", 0.0) / steps}

    def evaluate(self, net, contexts, progress, check_stop):
        return evaluate_coco(net, self.val_set, contexts, self.size, progress, check_stop,
                             self.mean, self.std)

    def epoch_line(self, row):
        aps = "  ".join("%s %.1f%%" % (k, 100 * row["val_" + k])
                        for k in ("AP", "AP50", "AP75") if "val_" + k in row)
        return "cls %.3f  box %.3f  %s" % (row["cls_loss"], row["box_loss"], aps)

    def export(self, net, prefix, ctx):
        """Inference mode with NMS, the class names and the normalisation in the meta."""
        spec = ModelSpec.from_dict(self.meta, classes=list(self.val_set.classes),
                                   mean=list(self.mean), std=list(self.std))
        return export_detector(net, prefix, self.size, ctx, spec.to_dict(), NMS)
