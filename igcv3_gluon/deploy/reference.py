"""The authors' way of writing an IGCV3 network, as a speed and size reference.

The authors' released MXNet graph (and imgclsmob's Gluon port) build every block as
grouped 1x1 conv -> BatchNorm -> shuffle -> Dw3x3 -> BatchNorm -> ReLU6 -> grouped 1x1 conv ->
BatchNorm (-> + x), the shuffle written with MXNet's special reshape value -4::

    reshape(0, -4, g, -1, -2) -> swapaxes(1, 2) -> reshape(0, -3, -2)

and plain oneDNN BatchNorm. ``authors_symbol`` rebuilds that graph from our config table
(``models.configs``: nothing re-typed), so benchmarks can compare our networks with it side by
side. It has the same parameters (3,491,688 for IGCV3-D 1.0) and computes the same function,
but it cannot be exported to ONNX (the -4 reshape).
"""
import warnings

import mxnet as mx

from ..models.builder import resolve_config
from ..nn import init_like_trained

__all__ = ["authors_symbol", "authors_block", "authors_net", "save_authors_checkpoint"]


def _conv_bn(x, name, channels, kernel=1, stride=1, groups=1, relu6=False, suffix=""):
    x = mx.sym.Convolution(x, num_filter=channels, kernel=(kernel, kernel),
                           stride=(stride, stride), pad=(kernel // 2, kernel // 2),
                           num_group=groups, no_bias=True, name=name + "-conv2d")
    x = mx.sym.BatchNorm(x, fix_gamma=False, eps=1e-5, use_global_stats=False,
                         name=name + "-batchnorm")
    return mx.sym.clip(x, a_min=0, a_max=6, name=name + "-relu6") if relu6 else x


def _shuffle(x, groups, k):
    """The authors' shuffle, with the names their script's symbol counters gave it (each
    block built a second, unused shuffle, so the counters advance by 4 and 2)."""
    x = mx.sym.reshape(x, shape=(0, -4, groups, -1, -2), name="reshape%d" % (4 * k))
    x = mx.sym.swapaxes(x, dim1=1, dim2=2, name="swapaxes%d" % (2 * k))
    return mx.sym.reshape(x, shape=(0, -3, -2), name="reshape%d" % (4 * k + 1))


def authors_block(x, name, k, in_c, out_c, t, stride, groups):
    """Block ``k`` of the network as the authors wrote it (P1 only, ReLU6 after Dw3x3)."""
    g1, g2 = groups
    mid = in_c * t
    y = _conv_bn(x, name + "-exp", mid, 1, 1, g1)
    y = _shuffle(y, g1, k)
    y = _conv_bn(y, name + "-depthwise", mid, 3, stride, mid, relu6=True)
    y = _conv_bn(y, name + "-linear", out_c, 1, 1, g2)
    if stride == 1 and in_c == out_c:
        y = mx.sym.elemwise_add(x, y, name=name + "-shortcut")
    return y


def authors_symbol(config="igcv3_d", classes=1000, multiplier=1.0, softmax=False):
    """The whole network in the authors' style and names (``first-3x3-conv``,
    ``seq-S-blockB-{exp,depthwise,linear}``, ``last-1x1-conv``, ``fc``); the logits, or with
    ``softmax=True`` the released graph's ``SoftmaxOutput`` head."""
    cfg = resolve_config(config, multiplier)
    if cfg["block"] != "igcv3" or not cfg.get("inverted", True):
        raise ValueError("authors_symbol builds inverted IGCV3 networks; %s is not one" % config)
    x = _conv_bn(mx.sym.var("data"), "first-3x3-conv", cfg["stem"], 3, cfg["stem_stride"],
                 relu6=True)
    in_c, k = cfg["stem"], 0
    for stage, (t, c, n, s) in enumerate(cfg["stages"]):
        for i in range(n):
            x = authors_block(x, "seq-%d-block%d" % (stage, i), k, in_c, c, t,
                              s if i == 0 else 1, cfg["groups"])
            in_c, k = c, k + 1
    x = _conv_bn(x, "last-1x1-conv", cfg["last"], 1, 1, 1, relu6=True)
    x = mx.sym.Pooling(x, kernel=(7, 7), stride=(1, 1), global_pool=True, pool_type="avg",
                       name="global_pool")
    x = mx.sym.FullyConnected(mx.sym.Flatten(x, name="flatten"), num_hidden=classes, name="fc")
    return mx.sym.SoftmaxOutput(x, name="softmax") if softmax else x


def authors_net(config="igcv3_d", classes=1000, multiplier=1.0, ctx=None, seed=0):
    """``authors_symbol`` (logits) as a ``gluon.SymbolBlock`` with random weights and
    non-trivial BatchNorm statistics (``nn.init_like_trained``)."""
    sym = authors_symbol(config, classes, multiplier)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        net = mx.gluon.SymbolBlock(sym, mx.sym.var("data"))
    arg_shapes, _, aux_shapes = sym.infer_shape(data=(1, 3, 224, 224))
    shapes = dict(zip(sym.list_arguments(), arg_shapes))
    shapes.update(zip(sym.list_auxiliary_states(), aux_shapes))
    for name, param in net.collect_params().items():
        param.shape = shapes[name]
    return init_like_trained(net, seed, ctx or mx.cpu())


def save_authors_checkpoint(net, prefix, config="igcv3_d", classes=1000, multiplier=1.0):
    """Write ``authors_net``'s weights as the authors released theirs: ``prefix-symbol.json``
    (with the ``SoftmaxOutput`` head) + ``prefix-0000.params`` (``arg:``/``aux:`` names)."""
    sym = authors_symbol(config, classes, multiplier, softmax=True)
    values = {name: p.data() for name, p in net.collect_params().items()}
    args = {k: v for k, v in values.items() if k in set(sym.list_arguments())}
    aux = {k: v for k, v in values.items() if k in set(sym.list_auxiliary_states())}
    mx.model.save_checkpoint(prefix, 0, sym, args, aux)
    return "%s-symbol.json" % prefix, "%s-0000.params" % prefix
