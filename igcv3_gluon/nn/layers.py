"""Small shared building pieces: ReLU6, the channel permutation P, and conv+BN helpers.

Every convolution in the IGCV3 family is followed by BatchNorm (fix_gamma=False, eps=1e-5)
and has no bias (reference.md, "The IGCV3 block"); ``add_conv_bn`` is the one place that
says so, and every block and network uses it.
"""
import mxnet as mx
from mxnet.gluon import nn

__all__ = ["ReLU6", "ChannelShuffle", "FlatBatchNorm", "add_conv_bn", "BN_EPS"]

BN_EPS = 1e-5


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
    IGCV3 networks use it for every BatchNorm; dense MobileNetV2 keeps oneDNN's.
    """

    def hybrid_forward(self, F, x, gamma, beta, running_mean, running_var):
        flat = F.reshape(x, shape=(0, 0, -1))
        out = super().hybrid_forward(F, flat, gamma, beta, running_mean, running_var)
        # swapaxes(0, 0) is an identity that returns a copy: handed a reshaped *view*, the
        # next oneDNN op fails in a static-alloc graph ("Check failed: !is_view")
        return F.swapaxes(F.reshape_like(out, x), 0, 0)


def add_conv_bn(seq, channels, kernel=1, stride=1, groups=1, act=False, in_channels=0,
                flat_bn=False):
    """Append Conv2D (no bias) -> BatchNorm [-> ReLU6] to the HybridSequential ``seq``.

    ``kernel`` 3 gets padding 1; ``groups`` is the number of branches G of eq. (2)/(8)
    (``groups == channels == in_channels`` is the channel-wise convolution W^0).
    ``flat_bn`` selects ``FlatBatchNorm`` (networks with group convolutions).
    """
    seq.add(nn.Conv2D(channels, kernel, strides=stride, padding=kernel // 2, groups=groups,
                      use_bias=False, in_channels=in_channels))
    norm = FlatBatchNorm if flat_bn else nn.BatchNorm
    seq.add(norm(epsilon=BN_EPS, in_channels=channels))
    if act:
        seq.add(ReLU6())
    return seq
