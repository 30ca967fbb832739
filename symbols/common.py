"""Module-API symbols derived from the Gluon networks (the Gluon code is the one source of
truth: nothing here re-types an architecture)."""
import mxnet as mx
import numpy as np

from igcv3_gluon.models import build

__all__ = ["symbol_from_config"]

# configuration keys the builder takes (the paper's ablations, widths, depths, CIFAR form)
_BUILD_KEYS = {"cifar", "depths", "dropout", "groups", "relu", "p1", "p2", "inverted",
               "strict", "divisor", "norm_layer", "norm_kwargs"}


def symbol_from_config(config, num_classes=1000, multiplier=1.0, dtype="float32", **kwargs):
    """Trace ``igcv3_gluon.models.build(config, ...)`` on ``mx.sym.var('data')`` and add a
    ``SoftmaxOutput`` named ``softmax`` (label ``softmax_label``), as MXNet's
    ``example/image-classification`` expects.

    ``dtype='float16'`` casts the graph as that example's symbols do: the data is cast to
    float16 after the input and the logits back to float32 before the softmax, so MXNet
    infers float16 convolutions and FC (BatchNorm keeps float32 parameters); train it with
    ``multi_precision``. That example calls ``get_symbol(**vars(args))``: keys the builder
    does not take (``image_shape``, ``num_layers``, ``batch_size``, ...) are ignored."""
    if dtype not in ("float32", "float16"):
        raise ValueError("dtype %r: the Module-API symbols are float32 or float16" % dtype)
    known = {k: v for k, v in kwargs.items() if k in _BUILD_KEYS}
    net = build(config, classes=num_classes, multiplier=multiplier, **known)
    if dtype == "float16":
        net.cast("float16")              # the variables carry their dtype; BatchNorm's stay
    data = mx.sym.var("data")            # float32 (Gluon's BatchNorm.cast)
    if dtype == "float16":
        data = mx.sym.Cast(data, dtype=np.float16)
    logits = net(data)
    if dtype == "float16":
        logits = mx.sym.Cast(logits, dtype=np.float32)
    return mx.sym.SoftmaxOutput(logits, name="softmax")

