"""Gluon building blocks of the IGCV3 family (paper Sec. 3)."""
from . import complementary
from .baselines import IGCV1Block, IGCV2Block
from .blocks import RELU_PLACEMENTS, IGCV3Block, InterleavedPointwise, MobileNetV2Block
from .layers import (
                     BN_EPS,
                     ChannelShuffle,
                     FlatBatchNorm,
                     ReLU6,
                     add_conv_bn,
                     he_normal,
                     init_like_trained,
                     norm_layer_for,
                     resolve_norm,
                     shuffle_permutation,
)

__all__ = ["BN_EPS", "ChannelShuffle", "FlatBatchNorm", "ReLU6", "add_conv_bn", "he_normal",
           "init_like_trained", "norm_layer_for", "resolve_norm", "shuffle_permutation",
           "RELU_PLACEMENTS", "IGCV3Block", "InterleavedPointwise", "IGCV1Block", "IGCV2Block",
           "MobileNetV2Block", "complementary"]
