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
import mxnet as mx

from ..models.builder import resolve_config

__all__ = ["authors_symbol", "authors_block", "authors_net"]


def _conv_bn(x, name, channels, kernel=1, stride=1, groups=1, relu6=False):
    x = mx.sym.Convolution(x, num_filter=channels, kernel=(kernel, kernel),
                           stride=(stride, stride), pad=(kernel // 2, kernel // 2),
                           num_group=groups, no_bias=True, name=name + "_conv")
    x = mx.sym.BatchNorm(x, fix_gamma=False, eps=1e-5, name=name + "_bn")
    return mx.sym.clip(x, 0, 6, name=name + "_relu6") if relu6 else x


def _shuffle(x, groups, name):
    x = mx.sym.reshape(x, shape=(0, -4, groups, -1, -2), name=name + "_reshape0")
    x = mx.sym.swapaxes(x, 1, 2, name=name + "_swap")
    return mx.sym.reshape(x, shape=(0, -3, -2), name=name + "_reshape1")


def authors_block(x, name, in_c, out_c, t, stride, groups):
    """One inverted IGCV3 block as the authors wrote it (P1 only, ReLU6 after Dw3x3)."""
    g1, g2 = groups
    mid = in_c * t
    y = _conv_bn(x, name + "_expand", mid, 1, 1, g1)
    y = _shuffle(y, g1, name + "_shuffle")
    y = _conv_bn(y, name + "_dw", mid, 3, stride, mid, relu6=True)
    y = _conv_bn(y, name + "_project", out_c, 1, 1, g2)
    return y + x if stride == 1 and in_c == out_c else y


def authors_symbol(config="igcv3_d", classes=1000, multiplier=1.0):
    """The whole network (logits, input ``data``) in the authors' style."""
    cfg = resolve_config(config, multiplier)
    if cfg["block"] != "igcv3" or not cfg.get("inverted", True):
        raise ValueError("authors_symbol builds inverted IGCV3 networks; %s is not one" % config)
    x = _conv_bn(mx.sym.var("data"), "stem", cfg["stem"], 3, cfg["stem_stride"], relu6=True)
    in_c, k = cfg["stem"], 0
    for t, c, n, s in cfg["stages"]:
        for i in range(n):
            x = authors_block(x, "block%d" % k, in_c, c, t, s if i == 0 else 1, cfg["groups"])
            in_c, k = c, k + 1
    x = _conv_bn(x, "last", cfg["last"], 1, 1, 1, relu6=True)
    x = mx.sym.Pooling(x, kernel=(1, 1), global_pool=True, pool_type="avg", name="pool")
    x = mx.sym.FullyConnected(mx.sym.flatten(x), num_hidden=classes, name="fc")
    return x


def authors_net(config="igcv3_d", classes=1000, multiplier=1.0, ctx=None):
    """``authors_symbol`` as an initialised ``gluon.SymbolBlock`` (random weights; BN
    gamma/var 1, beta/mean 0), ready to time."""
    import warnings
    sym = authors_symbol(config, classes, multiplier)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        net = mx.gluon.SymbolBlock(sym, mx.sym.var("data"))
    arg_shapes, _, aux_shapes = sym.infer_shape(data=(1, 3, 224, 224))
    shapes = dict(zip(sym.list_arguments(), arg_shapes))
    shapes.update(zip(sym.list_auxiliary_states(), aux_shapes))
    weight = mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2)
    for name, param in net.collect_params().items():
        param.shape = shapes[name]
        init = (mx.init.One() if name.endswith(("gamma", "var")) else
                mx.init.Zero() if name.endswith(("beta", "mean", "bias")) else weight)
        param.initialize(init=init, ctx=ctx or mx.cpu())
    return net
