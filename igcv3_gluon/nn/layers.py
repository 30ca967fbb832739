"""Small shared building pieces: ReLU6, the channel permutation P, BatchNorm forms, the
initialiser and the conv+BN helper.

Every convolution in the IGCV3 family is followed by BatchNorm (fix_gamma=False, eps=1e-5)
and has no bias (reference.md, "The IGCV3 block"); ``add_conv_bn`` is the one place that
says so, and every block and network uses it.
"""
import re

import mxnet as mx
import numpy as np
from mxnet.gluon import nn
from mxnet.gluon.contrib.nn import SyncBatchNorm

__all__ = ["ReLU6", "ChannelShuffle", "FlatBatchNorm", "add_conv_bn", "BN_EPS", "he_normal",
           "init_like_trained", "shuffle_permutation", "norm_layer_for", "resolve_norm"]

BN_EPS = 1e-5


def he_normal():
    """"We initialize the weights similar to [He et al.]" (Sec. 4.1), as the authors' scripts
    do: ``Xavier(rnd_type='gaussian', factor_type='in', magnitude=2)``, i.e. N(0, 2 / fan_in)."""
    return mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2)


_ONES = r".*(gamma|running_var|moving_var)$"
_ZEROS = r".*(beta|bias|running_mean|moving_mean)$"


def init_like_trained(net, seed=0, ctx=None):
    """Random weights (``he_normal``) and random, non-trivial BatchNorm parameters and running
    statistics (gamma and var in [0.5, 1.5], beta and mean in [-0.2, 0.2]), so that a
    comparison of outputs (export, folding, conversion, timing) exercises every parameter.
    Works for zoo networks and for ``SymbolBlock``s (MXNet's ``moving_*`` names too)."""
    mx.random.seed(seed)
    rng = np.random.RandomState(seed)
    for name, param in net.collect_params().items():
        init = (mx.init.One() if re.match(_ONES, name) else
                mx.init.Zero() if re.match(_ZEROS, name) else he_normal())
        param.initialize(init=init, ctx=ctx, force_reinit=True)
    for name, param in net.collect_params().items():
        low, high = ((0.5, 1.5) if re.match(_ONES, name) else
                     (-0.2, 0.2) if re.match(_ZEROS, name) and "bias" not in name else
                     (None, None))
        if low is not None:
            param.set_data(mx.nd.array(rng.uniform(low, high, param.shape)))
    return net


def shuffle_permutation(channels, groups):
    """``perm`` with ``out[:, j] = x[:, perm[j]]`` for ``ChannelShuffle(groups)`` (the P of
    eq. 1/7): output channel ``i * groups + k`` is input channel ``k * (C / groups) + i``."""
    if channels % groups:
        raise ValueError("%d channels do not split into %d groups" % (channels, groups))
    return np.arange(channels).reshape(groups, channels // groups).T.reshape(-1)


class ReLU6(nn.HybridBlock):
    """min(max(x, 0), 6), written as ``clip`` so that it converts to ONNX ``Clip``."""

    def hybrid_forward(self, F, x):
        return F.clip(x, 0, 6, name="relu6")


class ChannelShuffle(nn.HybridBlock):
    """The permutation matrix P of eq. (1) and eq. (7): interleave ``groups`` channel groups.

    Output channel ``i * groups + k`` is input channel ``k * (C / groups) + i``: the same
    permutation as the authors' ``reshape(0, -4, g, -1, -2) -> swapaxes(1, 2) -> reshape``.
    That form uses MXNet's special reshape value -4, which ``mx.onnx.export_model`` cannot
    convert, so this block works on a 4-D view instead::

        (N, C, H, W) -> reshape (N, g, C/g, H*W) -> swapaxes (1, 2) -> reshape_like x

    Every step maps to a plain ONNX op (Reshape, Transpose, Reshape of Shape).
    ``swapaxes`` rather than ``transpose``: in MXNet 1.9.1 the MKLDNN ``transpose`` backward
    breaks when a channel-wise conv follows it (the gradient of the conv before the shuffle
    can no longer be read: "could not create a primitive descriptor for a reorder
    primitive"); ``swapaxes`` computes the same permutation without that path
    (tests/test_shuffle.py::test_gradients_hybridized_equal_imperative).

    Parameters
    ----------
    groups : int
        Number of groups g to interleave (G1 for P1). ``groups == 1`` is the identity.
    channels : int, optional
        Number of input channels C. Needed to write the exportable graph; when omitted it is
        taken from the first NDArray the block sees.
    """

    def __init__(self, groups, channels=None, **kwargs):
        super().__init__(**kwargs)
        if groups < 1:
            raise ValueError("ChannelShuffle: groups must be >= 1, got %r" % (groups,))
        if channels is not None and channels % groups:
            raise ValueError("ChannelShuffle: %d channels do not split into %d groups"
                             % (channels, groups))
        self.groups = int(groups)
        self.channels = None if channels is None else int(channels)

    def forward(self, x, *args):
        if self.channels is None and isinstance(x, mx.nd.NDArray):
            if x.shape[1] % self.groups:
                raise ValueError("ChannelShuffle: %d channels do not split into %d groups"
                                 % (x.shape[1], self.groups))
            self.channels = int(x.shape[1])
        return super().forward(x, *args)

    def hybrid_forward(self, F, x):
        if self.groups == 1:
            return x
        if self.channels is None:
            raise ValueError("ChannelShuffle(groups=%d) needs `channels` to build a symbolic "
                             "graph: pass channels=C or run one forward pass first" % self.groups)
        y = F.reshape(x, shape=(0, self.groups, self.channels // self.groups, -1))
        y = F.swapaxes(y, 1, 2)
        return F.reshape_like(y, x)

    def __repr__(self):
        return "%s(groups=%d, channels=%s)" % (type(self).__name__, self.groups, self.channels)


class FlatBatchNorm(nn.BatchNorm):
    """BatchNorm computed on the (N, C, H*W) view of its input: the same parameters, the same
    numbers, but MXNet's native kernel instead of oneDNN's.

    Why: oneDNN (MKLDNN) gives group convolutions small channel-blocked layouts (``aBcd4b``
    for 24 channels in 2 groups, ``aBcd8b`` at 16 channels per group) and has no optimised
    BatchNorm for them, so in MXNet 1.9.1 a BatchNorm next to a group conv runs oneDNN's
    *reference* kernel, forward or backward (measured: 560 ms forward + 660 ms backward for
    one 64x144x32x32 tensor, against 70 ms). The 3-D view keeps BatchNorm off oneDNN (which
    takes 4-D inputs only) and in plain layout: 78 ms for the same tensor
    (tests/test_train_cifar.py::test_no_reference_batchnorm_in_any_cifar_model).
    IGCV3 networks use it for every BatchNorm on the CPU; dense MobileNetV2 keeps oneDNN's.
    On a GPU there is no such defect and the reshapes and the copy cost a pass over every
    activation for nothing: networks built for GPUs take plain ``nn.BatchNorm``
    (``norm_layer_for``). Parameter names are BatchNorm's (``..._batchnorm0_gamma``), so
    weights move freely between the two forms.
    """

    def _alias(self):
        return "batchnorm"

    def hybrid_forward(self, F, x, gamma, beta, running_mean, running_var):
        flat = F.reshape(x, shape=(0, 0, -1))
        out = super().hybrid_forward(F, flat, gamma, beta, running_mean, running_var)
        # swapaxes(0, 0) is an identity that returns a copy: handed a reshaped *view*, the
        # next oneDNN op fails in a static-alloc graph ("Check failed: !is_view")
        return F.swapaxes(F.reshape_like(out, x), 0, 0)


def norm_layer_for(contexts, sync=False):
    """``get_model`` keyword arguments choosing the BatchNorm form for ``contexts``: the
    default (``FlatBatchNorm`` in grouped blocks, where oneDNN runs) on CPUs, MXNet's plain
    ``nn.BatchNorm`` everywhere on GPUs, or with ``sync`` on several GPUs
    ``SyncBatchNorm`` (statistics over all of them: small per-GPU batches, detection)."""
    gpus = [ctx for ctx in contexts if ctx.device_type == "gpu"]
    if sync and len(gpus) > 1:
        return {"norm_layer": SyncBatchNorm, "norm_kwargs": {"num_devices": len(gpus)}}
    if gpus:
        return {"norm_layer": nn.BatchNorm}
    return {}


def resolve_norm(norm_layer, grouped):
    """The BatchNorm class a block uses: ``norm_layer`` when given (``nn.BatchNorm``,
    ``SyncBatchNorm``, ...), else ``FlatBatchNorm`` next to group convolutions and
    ``nn.BatchNorm`` otherwise (see ``FlatBatchNorm``)."""
    if norm_layer is not None:
        return norm_layer
    return FlatBatchNorm if grouped else nn.BatchNorm


def add_conv_bn(seq, channels, kernel=1, stride=1, groups=1, act=False, in_channels=0,
                norm=nn.BatchNorm, norm_kwargs=None, eps=None):
    """Append Conv2D (no bias) -> BatchNorm [-> ReLU6] to the HybridSequential ``seq``.

    ``kernel`` 3 gets padding 1; ``groups`` is the number of branches G of eq. (2)/(8)
    (``groups == channels == in_channels`` is the channel-wise convolution W^0).
    ``norm`` is the BatchNorm class (``resolve_norm``), ``norm_kwargs`` its extra arguments,
    ``eps`` its epsilon (default ``BN_EPS``).
    """
    seq.add(nn.Conv2D(channels, kernel, strides=stride, padding=kernel // 2, groups=groups,
                      use_bias=False, in_channels=in_channels))
    seq.add(norm(epsilon=BN_EPS if eps is None else eps, in_channels=channels,
                 **(norm_kwargs or {})))
    if act:
        seq.add(ReLU6())
    return seq
