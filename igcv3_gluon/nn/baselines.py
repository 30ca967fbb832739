"""The paper's baselines on the MobileNetV1 skeleton (Sec. 4.2, Table 1): IGCV1 and IGCV2
blocks, each replacing one MobileNetV1 layer pair (Dw3x3 + 1x1)."""
import math

from mxnet.gluon import nn

from .layers import BN_EPS, ChannelShuffle, resolve_norm

__all__ = ["IGCV1Block", "IGCV2Block"]


def _check(what, channels, groups):
    if groups < 1 or channels % groups:
        raise ValueError("%s: %d channels are not divisible by %d groups"
                         % (what, channels, groups))


class IGCV1Block(nn.HybridBlock):
    """Interleaved group convolutions, y = P2 W2 P1 W1 x (eq. 1-2):

        group 3x3 conv W1 (G1 = C_in / 2 branches of 2 channels, stride) -> P1
        -> group 1x1 conv W2 (G2 = 2 branches, C_in -> C_out) -> P2 -> BN -> ReLU

    as the IGCV1 authors' MXNet code has it (no BN between the two convolutions; P2 is the
    interleave of W2's two branches).
    """
    interleaved = True

    def __init__(self, in_channels, channels, stride=1, branch_channels=2, secondary_groups=2,
                 norm_layer=None, norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        norm = resolve_norm(norm_layer, True)
        g1 = in_channels // branch_channels
        _check("IGCV1 W1", in_channels, g1)
        _check("IGCV1 W2", channels, secondary_groups)
        self.in_channels, self.channels = in_channels, channels
        self.groups = (g1, secondary_groups)
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            self.body.add(nn.Conv2D(in_channels, 3, stride, 1, groups=g1, use_bias=False,
                                    in_channels=in_channels),
                          ChannelShuffle(g1, in_channels),
                          nn.Conv2D(channels, 1, groups=secondary_groups, use_bias=False,
                                    in_channels=in_channels),
                          ChannelShuffle(secondary_groups, channels),
                          norm(epsilon=BN_EPS, in_channels=channels, **(norm_kwargs or {})),
                          nn.Activation("relu"))

    def hybrid_forward(self, F, x):
        return self.body(x)


class IGCV2Block(nn.HybridBlock):
    """Interleaved structured sparse convolutions, y = P_L W_L ... P_1 W_1 x (eq. 3-4), L = 3:

        Dw3x3 W1 (stride) -> BN -> group 1x1 W2 (G2 = gcd(C_in / K, C_out) branches of at least
        K = ``branch_channels`` input channels, C_in -> C_out)
        -> P -> group 1x1 W3 (C_out / G2 branches) -> BN -> ReLU

    W3's branches hold G2 channels, one from every branch of W2: the strict complementary
    condition, so W3 P W2 is dense (checked by ``igcv3_gluon.nn.complementary``).
    """
    interleaved = True

    def __init__(self, in_channels, channels, stride=1, branch_channels=8, norm_layer=None,
                 norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        norm = resolve_norm(norm_layer, True)
        norm_kwargs = norm_kwargs or {}
        g2 = math.gcd(in_channels // branch_channels, channels)
        _check("IGCV2 W2 input", in_channels, g2)
        _check("IGCV2 W2 output", channels, g2)
        g3 = channels // g2
        _check("IGCV2 W3", channels, g3)
        self.in_channels, self.channels, self.groups = in_channels, channels, (g2, g3)
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            self.body.add(nn.Conv2D(in_channels, 3, stride, 1, groups=in_channels,
                                    use_bias=False, in_channels=in_channels),
                          norm(epsilon=BN_EPS, in_channels=in_channels, **norm_kwargs),
                          nn.Conv2D(channels, 1, groups=g2, use_bias=False,
                                    in_channels=in_channels),
                          ChannelShuffle(g2, channels),
                          nn.Conv2D(channels, 1, groups=g3, use_bias=False,
                                    in_channels=channels),
                          norm(epsilon=BN_EPS, in_channels=channels, **norm_kwargs),
                          nn.Activation("relu"))

    def hybrid_forward(self, F, x):
        return self.body(x)
