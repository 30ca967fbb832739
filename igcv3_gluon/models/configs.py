"""Network plans as data: one row per stage, ``(t, c, n, s)`` = expansion, output channels,
number of blocks, stride of the first block (MobileNetV2's table; paper Sec. 3.3 and
reference.md "Networks"). The builder (``builder.py``) is the only code that reads them.

Keys of a config
----------------
stem : channels of the first 3x3/2 conv.   last : channels of the last 1x1 conv.
stages : list of (t, c, n, s).             block : "igcv3" or "mobilenetv2".
groups : (G1, G2) of every IGCV3 block.    last_groups : 1 = dense last 1x1 conv, G > 1 =
                                           two interleaved G-group convs (authors' IGCV3-W).
expand_t1 : keep the 1x1 expand conv of the t = 1 block.
cifar_strides : for the 32x32 variants, (stem stride, stage strides...) replacing the
                ImageNet ones (default ``CIFAR_STRIDES``: only the stem and the first
                stride-2 stage change).
branch : channels per branch of the first group conv of IGCV1 (2) / IGCV2 (8) blocks.
divisor : channel counts of a width multiplier round to multiples of this (default 8, as
                MobileNetV2's code; 2 reproduces imgclsmob's even rounding).
inverted, relu, p1, p2, strict : IGCV3 block options (``nn.IGCV3Block``); normal
                (``inverted=False``) networks keep the wide ``t * c`` channels between blocks.
"""

# the widest multiplier a network accepts: the paper's widest is 1.4; far beyond this the
# layer sizes only overflow MXNet's
MAX_MULTIPLIER = 16.0

MOBILENETV2_STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                      (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

# CIFAR (32x32): stem stride 1 and the 24-channel stage stride 1, so the 32, 64 and 160
# stages downsample 32 -> 16 -> 8 -> 4 (the common CIFAR adaptation of MobileNetV2).
CIFAR_STRIDES = (1, 1, 1, 2, 2, 1, 2, 1)

CONFIGS = {
    # MobileNetV2 (Sandler et al.), as in GluonCV: no expand conv in the t = 1 block.
    "mobilenetv2": dict(
        block="mobilenetv2", stem=32, last=1280, groups=(1, 1), last_groups=1,
        expand_t1=False, stages=MOBILENETV2_STAGES),
    # IGCV3-D: MobileNetV2 widths, about twice the blocks, G1 = G2 = 2 (authors' release).
    "igcv3_d": dict(
        block="igcv3", stem=32, last=1280, groups=(2, 2), last_groups=1, expand_t1=True,
        stages=[(1, 16, 1, 1), (6, 24, 4, 2), (6, 32, 6, 2), (6, 64, 8, 2),
                (6, 96, 6, 1), (6, 160, 6, 2), (6, 320, 1, 1)]),
    # IGCV3-W: MobileNetV2 depth, wider plan, G1 = G2 = 4 (C_s = 4, Sec. 3.3); the last 1x1
    # conv as two interleaved 4-group convs, as in the authors' wide release.
    "igcv3_w": dict(
        block="igcv3", stem=32, last=1280, groups=(4, 4), last_groups=4, expand_t1=True,
        stages=[(1, 32, 1, 1), (6, 48, 2, 2), (6, 64, 3, 2), (6, 128, 4, 2),
                (6, 192, 3, 1), (6, 320, 3, 2), (6, 640, 1, 1)]),
}

# MobileNetV1 skeleton (13 Dw3x3 + 1x1 layer pairs) for the IGCV1 / IGCV2 baselines of Table 1
# ("the models of IGCV1 and IGCV2 replace the blocks in MobileNetV1"). CIFAR: stem stride 1
# and the 64 and 1024 stages stride 1, so the maps are 32 -> 16 -> 8 -> 4.
MOBILENETV1_STAGES = [(1, 64, 1, 1), (1, 128, 2, 2), (1, 256, 2, 2), (1, 512, 6, 2),
                      (1, 1024, 2, 2)]
MOBILENETV1_CIFAR_STRIDES = (1, 1, 2, 2, 2, 1)
CONFIGS["igcv1"] = dict(block="igcv1", stem=32, last=None, groups=(2, 2), last_groups=1,
                        expand_t1=False, branch=2, stages=MOBILENETV1_STAGES,
                        cifar_strides=MOBILENETV1_CIFAR_STRIDES)
CONFIGS["igcv2"] = dict(block="igcv2", stem=32, last=None, groups=(8, 8), last_groups=1,
                        expand_t1=False, branch=8, stages=MOBILENETV1_STAGES,
                        cifar_strides=MOBILENETV1_CIFAR_STRIDES)

# Table 2: the smaller CIFAR IGCV3-D models remove blocks at the same widths ("s x" = s times
# the parameters of 1.0x). The authors never published their depths; these are ours:
# 0.5x has MobileNetV2's 17 blocks (the paper: "IGCV3 with 50% parameters ... has the same
# depth as MobileNetV2"), one block moved from the 160 to the 64 stage to reach 1.2M.
CIFAR_DEPTHS = {
    "igcv3_d_0.5": [1, 2, 3, 5, 3, 2, 1],
    "igcv3_d_0.7": [1, 3, 4, 6, 4, 4, 1],
}
