"""The classification task for the run engine (CIFAR, digits, ImageNet): softmax
cross-entropy (optionally label-smoothed), accuracy tallies, top-k evaluation, export."""
import numpy as np
from mxnet import gluon

from ..deploy import export
from ..utils import progress_bar
from .engine import Task

__all__ = ["ClassifierTask", "SmoothedLoss", "topk_accuracy", "split"]


def split(data, contexts):
    """``data`` sliced over ``contexts`` (fewer contexts than samples: one sample each)."""
    contexts = contexts[:max(1, min(len(contexts), data.shape[0]))]
    return gluon.utils.split_and_load(data, contexts, even_split=False)


class SmoothedLoss(gluon.loss.Loss):
    """Cross-entropy against label-smoothed one-hot targets."""

    def __init__(self, classes, eps, **kwargs):
        super().__init__(None, 0, **kwargs)
        self.classes, self.eps = classes, eps

    def hybrid_forward(self, F, pred, label):
        target = F.one_hot(label, self.classes, on_value=1 - self.eps + self.eps / self.classes,
                           off_value=self.eps / self.classes)
        return -F.sum(F.log_softmax(pred) * target, axis=-1)


def topk_accuracy(net, loader, contexts, topk=(1,), progress=False, check_stop=None):
    """Top-k accuracies (``{"acc": top-1, "top5": ...}``) of ``net`` over ``loader`` (batches of
    ``(data, label)``); every image counts once, whatever the last batch's size."""
    hits = {k: 0 for k in topk}
    total = 0
    bar = progress_bar(len(loader) if hasattr(loader, "__len__") else None, 0, "validation",
                       progress)
    try:
        for data, label in loader:
            if check_stop is not None:
                check_stop()
            for x, y in zip(split(data, contexts), split(label, contexts)):
                scores = net(x).astype("float32").asnumpy()
                truth = y.asnumpy().astype(np.int64)
                order = np.argsort(-scores, axis=1)
                for k in topk:
                    hits[k] += int((order[:, :k] == truth[:, None]).any(axis=1).sum())
                total += len(truth)
            bar.update(1)
            bar.set_postfix({"top%d" % k: "%.3f" % (hits[k] / max(total, 1)) for k in topk})
    finally:
        bar.close()
    return {("acc" if k == 1 else "top%d" % k): hits[k] / max(total, 1) for k in topk}


class ClassifierTask(Task):
    """``make_train_data(rank, num_workers, global_batch)`` returns the worker's batches
    (``set_epoch``, ``batches_per_epoch``, iteration over ``(data, label)``); ``val_data``
    is re-iterable over ``(data, label)``."""
    best_key = "val_acc"
    curves = (("train_loss",), ("train_acc", "val_acc", "val_top5"))

    def __init__(self, make_train_data, val_data, classes, input_shape, label_smoothing=0.0,
                 topk=(1,), title="", meta=None):
        self.make_train_data, self.val_data = make_train_data, val_data
        self.meta = dict(meta or {}, classes=classes)   # for the export's -meta.json
        self.classes, self.input_shape, self.topk, self.title = classes, input_shape, topk, title
        self.loss = (SmoothedLoss(classes, label_smoothing) if label_smoothing
                     else gluon.loss.SoftmaxCrossEntropyLoss())

    def train_data(self, net, rank, num_workers, global_batch, contexts):
        return self.make_train_data(rank, num_workers, global_batch)

    def forward(self, net, batch, contexts):
        data, label = batch
        xs, ys = split(data, contexts), split(label, contexts)
        outs = [net(x) for x in xs]
        losses = [self.loss(o, y) for o, y in zip(outs, ys)]
        return losses, (losses, outs, ys)

    def tally(self, what):
        losses, outs, ys = what
        correct = sum(int((o.astype("float32").argmax(axis=1) == y).sum().asscalar())
                      for o, y in zip(outs, ys))
        return {"loss": sum(float(part.sum().asscalar()) for part in losses), "correct": correct,
                "images": sum(y.shape[0] for y in ys)}

    def gradient_divisor(self, global_batch, num_workers):
        return global_batch                  # per-sample losses summed over the global batch

    def row(self, sums):
        images = max(sums.get("images", 0), 1)
        return {"train_loss": sums.get("loss", 0.0) / images,
                "train_acc": sums.get("correct", 0) / images}

    def evaluate(self, net, contexts, progress, check_stop):
        return topk_accuracy(net, self.val_data, contexts, self.topk, progress, check_stop)

    def epoch_line(self, row):
        val = "  val acc %.4f" % row["val_acc"] if "val_acc" in row else ""
        top5 = "  top-5 %.4f" % row["val_top5"] if "val_top5" in row else ""
        return "loss %.4f  train acc %.4f%s%s" % (row["train_loss"], row["train_acc"], val, top5)

    def export(self, net, prefix, ctx):
        return export(net, prefix, self.input_shape, ctx=ctx, meta=self.meta)
