"""The SSD loss normalised as the authors' MXNet symbol normalises it.

The authors' ``detection/symbol/symbol_builder.py:85-97`` (homles11/IGCV3) ends the network
with ``SoftmaxOutput(cls_preds, cls_target, use_ignore=True, multi_output=True,
normalization='valid')`` and ``MakeLoss(smooth_l1(loc_target_mask * (loc_preds - loc_target),
scalar=1), normalization='valid')``, and ``detection/train/train_net.py:50`` sets
``rescale_grad = 1 / len(ctx)``. In MXNet (``src/operator/softmax_output-inl.h``, Backward,
``multi_output`` with ``kValid``: the gradient is divided by the count of labels that are not
``ignore_label``; ``src/operator/make_loss-inl.h``, Backward with ``kValid``: divided by the
count of input elements above ``valid_thresh`` = 0, at least 1) that is, per device::

    L = sum over valid anchors of CE / N_valid  +  sum of smooth-L1 elements / N_nonzero

where the valid anchors are the positives and the mined negatives (``MultiBoxTarget`` with
``negative_mining_ratio=3``; every other anchor is labelled -1), and N_nonzero counts the
smooth-L1 elements above 0: the 4 box coordinates of each positive anchor. The device losses
are then averaged (``rescale_grad``). GluonCV's ``SSDMultiBoxLoss`` instead divides both sums
by the positives of the whole batch, so its box term is about 4 times the authors' and its
class term (1 + 3) times: at the authors' lr 0.004 it would take a several-times larger
step. The hard negatives are mined as GluonCV mines them (3 per positive, per image, by
their background loss), the only difference left from ``MultiBoxTarget`` (which also keeps
``minimum_negative_samples`` = 3 negatives in images without positives, ``train.py:92``).
"""
from mxnet import gluon, nd

__all__ = ["AuthorsMultiBoxLoss", "LOSSES", "make_loss"]


class AuthorsMultiBoxLoss(gluon.Block):
    """``(sum_losses, cls_losses, box_losses)``, one scalar of each per device, the device
    loss divided by the number of devices (module doc). Targets as GluonCV's
    ``SSDTargetGenerator`` writes them: class targets > 0 for positives, 0 for negatives,
    -1 ignored; box targets encoded with variances (0.1, 0.1, 0.2, 0.2)."""

    def __init__(self, negative_mining_ratio=3, rho=1.0, **kwargs):
        super().__init__(**kwargs)
        self.negative_mining_ratio = float(negative_mining_ratio)
        self.rho = float(rho)

    def forward(self, cls_preds, box_preds, cls_targets, box_targets):
        devices = len(cls_preds)
        sums, clss, boxes = [], [], []
        for cp, bp, ct, bt in zip(cls_preds, box_preds, cls_targets, box_targets):
            ce = -nd.pick(nd.log_softmax(cp, axis=-1), nd.maximum(ct, 0), axis=-1)
            pos = ct > 0
            negative = ct == 0
            # GluonCV's mining: rank the negatives by their loss, keep 3 per positive
            key = nd.where(negative, -ce, nd.ones_like(ce) * 1e9)     # others rank last
            rank = key.argsort(axis=1).argsort(axis=1)
            hard = (rank < (pos.sum(axis=1) * self.negative_mining_ratio).expand_dims(-1)) \
                * negative
            valid = nd.stop_gradient(pos + hard)
            n_valid = nd.maximum(valid.sum(), 1.0)
            cls_loss = nd.sum(ce * valid) / n_valid
            diff = nd.abs(nd.reshape_like(bp, bt) - bt) * pos.expand_dims(-1)
            sl1 = nd.where(diff > self.rho, diff - 0.5 * self.rho,
                           (0.5 / self.rho) * nd.square(diff))
            n_nonzero = nd.maximum(nd.stop_gradient((sl1 > 0).sum()), 1.0)
            box_loss = nd.sum(sl1) / n_nonzero
            clss.append(cls_loss / devices)
            boxes.append(box_loss / devices)
            sums.append((cls_loss + box_loss) / devices)
        return sums, clss, boxes


def make_loss(kind):
    """The detector's loss: "authors" (``AuthorsMultiBoxLoss``) or "gluoncv" (GluonCV's
    ``SSDMultiBoxLoss``: both terms over the batch's positives)."""
    if kind == "authors":
        return AuthorsMultiBoxLoss()
    if kind == "gluoncv":
        from gluoncv.loss import SSDMultiBoxLoss
        return SSDMultiBoxLoss()
    raise ValueError("unknown loss %r: choose one of %s" % (kind, ", ".join(LOSSES)))


LOSSES = ("authors", "gluoncv")
