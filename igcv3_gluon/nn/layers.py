"""Small shared building pieces: ReLU6, the channel permutation P, and conv+BN helpers.

Every convolution in the IGCV3 family is followed by BatchNorm (fix_gamma=False, eps=1e-5)
and has no bias (reference.md, "The IGCV3 block"); ``add_conv_bn`` is the one place that
says so, and every block and network uses it.
"""
import mxnet as mx
from mxnet.gluon import nn

__all__ = ["ReLU6", "ChannelShuffle", "PlainLayout", "add_conv_bn", "needs_plain_layout",
           "BN_EPS"]

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


class PlainLayout(nn.HybridBlock):
    """Identity that hands the next op its input in plain NCHW layout (a view through
    ``reshape``; ONNX: two Reshapes, which the runtime drops).

    Why: oneDNN (MKLDNN) gives a group convolution whose per-group channel count is not a
    multiple of 8 (e.g. 24 channels in 2 groups) a 4-channel-blocked output layout
    (``aBcd4b``), and has no optimised BatchNorm for that layout: MXNet 1.9.1 then runs
    oneDNN's *reference* BatchNorm, measured here at 560 ms forward + 660 ms backward for one
    64x144x32x32 tensor (vs 60 ms in plain layout). One reorder to plain layout costs ~15 ms.
    """

    def hybrid_forward(self, F, x):
        return F.reshape_like(F.reshape(x, shape=(0, 0, -1)), x)


def needs_plain_layout(in_channels, channels, groups):
    """True for a group conv (not channel-wise, not dense) with a per-group channel count
    that is not a multiple of 8 (see ``PlainLayout``)."""
    if groups in (1, channels) or not in_channels:
        return False
    return bool((in_channels // groups) % 8 or (channels // groups) % 8)


def add_conv_bn(seq, channels, kernel=1, stride=1, groups=1, act=False, in_channels=0):
    """Append Conv2D (no bias) -> BatchNorm [-> ReLU6] to the HybridSequential ``seq``.

    ``kernel`` 3 gets padding 1; ``groups`` is the number of branches G of eq. (2)/(8)
    (``groups == channels == in_channels`` is the channel-wise convolution W^0). A
    ``PlainLayout`` goes between conv and BN where oneDNN would otherwise fall back to its
    reference BatchNorm.
    """
    seq.add(nn.Conv2D(channels, kernel, strides=stride, padding=kernel // 2, groups=groups,
                      use_bias=False, in_channels=in_channels))
    if needs_plain_layout(in_channels, channels, groups):
        seq.add(PlainLayout())
    seq.add(nn.BatchNorm(epsilon=BN_EPS, in_channels=channels))
    if act:
        seq.add(ReLU6())
    return seq
