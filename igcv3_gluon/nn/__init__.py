"""Gluon building blocks of the IGCV3 family (paper Sec. 3)."""
from .layers import BN_EPS, ChannelShuffle, FlatBatchNorm, ReLU6, add_conv_bn
from .blocks import RELU_PLACEMENTS, IGCV3Block, InterleavedPointwise, MobileNetV2Block
from .baselines import IGCV1Block, IGCV2Block
from . import complementary

__all__ = ["BN_EPS", "ChannelShuffle", "FlatBatchNorm", "ReLU6", "add_conv_bn", "RELU_PLACEMENTS",
           "IGCV3Block", "InterleavedPointwise", "IGCV1Block", "IGCV2Block", "MobileNetV2Block", "complementary"]
