"""One training epoch and one evaluation pass of a classifier over several devices."""
import math
import time

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

__all__ = ["NonFiniteLoss", "Interrupted", "train_epoch", "evaluate", "progress_bar"]


class NonFiniteLoss(Exception):
    """The loss became NaN or infinite."""


class Interrupted(Exception):
    """Ctrl-C inside an epoch; ``batches`` were fully applied before it."""

    def __init__(self, batches):
        super().__init__(batches)
        self.batches = batches


def progress_bar(total, initial, desc, enabled):
    """A tqdm bar on a terminal; nothing when stderr is a file or pipe (logs stay readable:
    the run prints one line per epoch anyway)."""
    import sys
    from tqdm import tqdm
    enabled = enabled and sys.stderr.isatty()
    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, leave=False,
                dynamic_ncols=True, unit="batch")


def train_epoch(net, loader, contexts, trainer, loss_fn, schedule, epoch, batches_per_epoch,
                global_batch, start_batch=0, progress=True, desc="train"):
    """Train ``net`` for one epoch (0-based ``epoch``), setting the lr of every batch from
    ``schedule(epoch + b / batches_per_epoch)``. Returns loss, accuracy, images, seconds."""
    loss_sum, correct, seen = 0.0, 0, 0
    done = start_batch
    tic = time.time()
    bar = progress_bar(batches_per_epoch, start_batch, desc, progress)
    try:
        for data, label in loader:
            trainer.set_learning_rate(schedule(epoch + done / batches_per_epoch))
            xs = gluon.utils.split_and_load(data, contexts, even_split=False)
            ys = gluon.utils.split_and_load(label, contexts, even_split=False)
            with autograd.record():
                outs = [net(x) for x in xs]
                losses = [loss_fn(o, y) for o, y in zip(outs, ys)]
            autograd.backward(losses)
            trainer.step(global_batch)
            batch_loss = sum(float(l.sum().asscalar()) for l in losses)
            if not math.isfinite(batch_loss):
                raise NonFiniteLoss("loss is %s at epoch %d, batch %d"
                                    % (batch_loss, epoch + 1, done + 1))
            correct += sum(int((o.argmax(axis=1) == y.astype(o.dtype)).sum().asscalar())
                           for o, y in zip(outs, ys))
            loss_sum += batch_loss
            seen += data.shape[0]
            done += 1
            bar.update(1)
            bar.set_postfix(loss="%.3f" % (loss_sum / seen), acc="%.3f" % (correct / seen),
                            img_s="%.0f" % (seen / (time.time() - tic)),
                            lr="%.2g" % trainer.learning_rate)
    except KeyboardInterrupt:
        mx.nd.waitall()
        raise Interrupted(done - start_batch)
    finally:
        bar.close()
    seconds = time.time() - tic
    return dict(train_loss=loss_sum / max(seen, 1), train_acc=correct / max(seen, 1),
                images=seen, seconds=seconds, img_per_s=seen / max(seconds, 1e-9))


def evaluate(net, loader, contexts, topk=(1,), progress=False):
    """Top-k accuracies (``{"top1": ..., "top5": ...}``) of ``net`` over ``loader``."""
    hits = {k: 0 for k in topk}
    total = 0
    bar = progress_bar(len(loader) if hasattr(loader, "__len__") else None, 0, "validation",
                    progress)
    for data, label in loader:
        xs = gluon.utils.split_and_load(data, contexts, even_split=False)
        ys = gluon.utils.split_and_load(label, contexts, even_split=False)
        for x, y in zip(xs, ys):
            scores = net(x).asnumpy()
            truth = y.asnumpy().astype(np.int64)
            order = np.argsort(-scores, axis=1)
            for k in topk:
                hits[k] += int((order[:, :k] == truth[:, None]).any(axis=1).sum())
            total += len(truth)
        bar.update(1)
        bar.set_postfix({"top%d" % k: "%.3f" % (hits[k] / max(total, 1)) for k in topk})
    bar.close()
    return {"top%d" % k: hits[k] / max(total, 1) for k in topk}
