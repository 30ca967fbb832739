"""Module-API symbols derived from the Gluon networks (the Gluon code is the one source of
truth: nothing here re-types an architecture)."""
import mxnet as mx

from igcv3_gluon.models import build

__all__ = ["symbol_from_config"]


def symbol_from_config(config, num_classes=1000, multiplier=1.0, cifar=False, **kwargs):
    """Trace ``igcv3_gluon.models.build(config, ...)`` on ``mx.sym.var('data')`` and add a
    ``SoftmaxOutput`` named ``softmax`` (label ``softmax_label``), as MXNet's
    ``example/image-classification`` expects."""
    net = build(config, classes=num_classes, multiplier=multiplier, cifar=cifar, **kwargs)
    logits = net(mx.sym.var("data"))
    return mx.sym.SoftmaxOutput(logits, name="softmax")
