"""SSDLite (MobileNetV2 paper, Sec. 6.3) and SSDLite2 (IGCV3 paper, Sec. 4.3, Table 4) on
GluonCV's SSD machinery (anchors, target generator, box decoding, NMS).

What GluonCV lacks and this module adds:

* ``SSDLiteFeatures``: six feature maps from a zoo backbone. Map 1 is the *expansion* of the
  last stride-16 block (576 channels for MobileNetV2 1.0: after its expand conv, before its
  Dw3x3), map 2 the last 1x1 conv (1280), maps 3-6 extra layers of 512, 256, 256, 128
  channels at strides 64-512. An extra layer of SSDLite is 1x1 conv to half depth -> Dw3x3
  stride 2 -> 1x1 conv up, each + BN + ReLU6; in SSDLite2 (IGCV3 backbone) the extra
  layers are IGCV3-style too: both 1x1 convs are group convolutions (G = the backbone's
  G1), interleaved by a channel shuffle (P1) so the pair stays dense (Condition 2).
* ``SeparablePredictor``: every prediction conv is separable: Dw3x3 + BN + ReLU6 + 1x1 conv
  (with bias), as SSDLite prescribes.
* Anchors: 3 on the first map (sizes s1, sqrt(s1 s2) at ratio 1, and ratio 2), 6 on the
  others (ratios 1, 2, 1/2, 3, 1/3 and the extra ratio-1 size); sizes 0.1, 0.2, 0.35 ... 0.95
  of the input (the TF object detection API's SSDLite scales).
"""
import math

from mxnet.gluon import nn

from ..nn import ChannelShuffle, IGCV3Block, ReLU6, add_conv_bn
from .builder import build, resolve_config

__all__ = ["SSDLiteFeatures", "SeparablePredictor", "ssdlite", "SSDLITE_EXTRAS",
           "anchor_sizes", "anchor_steps", "feature_map_sizes"]

SSDLITE_EXTRAS = (512, 256, 256, 128)
RATIOS_FIRST = (1, 2)                          # 2 sizes + 2 ratios - 1 = 3 anchors
RATIOS_OTHER = (1, 2, 0.5, 3, 1.0 / 3)         # 2 sizes + 5 ratios - 1 = 6 anchors


def anchor_sizes(base_size, num_maps=6, smin=0.2, smax=0.95, first=0.1):
    """``num_maps + 1`` anchor sizes in pixels: ``first`` then ``smin .. smax`` evenly."""
    scales = [first] + [smin + (smax - smin) * k / (num_maps - 1) for k in range(num_maps)]
    return [s * base_size for s in scales]


def feature_map_sizes(base_size, num_maps=6):
    """Side of each feature map: stride 16, then halved (rounding up) by every extra layer:
    20, 10, 5, 3, 2, 1 at 320."""
    sides = [math.ceil(base_size / 16)]
    for _ in range(num_maps - 1):
        sides.append(math.ceil(sides[-1] / 2))
    return sides


def anchor_steps(base_size, num_maps=6):
    """Anchor spacing per map, ``base_size / side``, so that the anchor centres of every map
    cover the image evenly (16, 32, 64, 106.7, 160, 320 at 320; powers of two would put
    the 3x3, 2x2 and 1x1 maps' centres on or beyond the border)."""
    return [base_size / side for side in feature_map_sizes(base_size, num_maps)]


def _expansion_split(block):
    """``(expand, rest)`` HybridSequentials of an inverted block's body: the layers before
    its Dw3x3 (the expansion) and from it on."""
    children = list(block.body._children.values())
    for k, layer in enumerate(children):
        if (isinstance(layer, nn.Conv2D) and layer._kwargs["kernel"] == (3, 3)
                and layer._kwargs["num_group"] == layer._channels):
            return block.body[:k], block.body[k:]
    raise ValueError("%s has no depthwise conv" % block.name)


class _ExtraLayer(nn.HybridBlock):
    """1x1 to ``mid`` -> Dw3x3 stride 2 -> 1x1 to ``channels``, each + BN + ReLU6; with
    ``groups > 1`` the 1x1 convs are group convs interleaved by a shuffle (SSDLite2)."""

    def __init__(self, in_channels, channels, groups=1, **kwargs):
        super().__init__(**kwargs)
        mid = channels // 2
        flat = groups > 1
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            # ReLU6 after the shuffle: the same function (a permutation commutes with an
            # element-wise activation), and deploy.optimize can fold a shuffle that directly
            # follows its convolution
            add_conv_bn(self.body, mid, 1, 1, groups, False, in_channels, flat)
            if groups > 1:
                self.body.add(ChannelShuffle(groups, mid))
            self.body.add(ReLU6())
            add_conv_bn(self.body, mid, 3, 2, mid, True, mid, flat)
            add_conv_bn(self.body, channels, 1, 1, groups, True, mid, flat)

    def hybrid_forward(self, F, x):
        return self.body(x)


class SSDLiteFeatures(nn.HybridBlock):
    """The six SSDLite feature maps of zoo backbone config ``backbone`` (see module doc)."""

    def __init__(self, backbone="mobilenetv2", multiplier=1.0, extras=SSDLITE_EXTRAS,
                 extra_groups=None, **kwargs):
        super().__init__(**kwargs)
        cfg = resolve_config(backbone, multiplier)
        if cfg["block"] not in ("mobilenetv2", "igcv3") or not cfg["last"]:
            raise ValueError("SSDLite needs an inverted-residual backbone with a last 1x1 "
                             "conv; %s is not one" % backbone)
        net = build(backbone, classes=1, multiplier=multiplier, prefix="")
        layers = list(net.features._children.values())[:-2]      # drop pool + flatten
        # the last stride-16 block: the block before the first stride-32 one
        blocks = [i for i, layer in enumerate(layers) if isinstance(layer, IGCV3Block)]
        strides, seen = [], cfg["stem_stride"]
        for t, c, n, s in cfg["stages"]:
            for i in range(n):
                seen *= s if i == 0 else 1
                strides.append(seen)
        last16 = blocks[max(k for k, s in enumerate(strides) if s == 16)]
        expand, rest = _expansion_split(layers[last16])
        groups = cfg["groups"][0] if cfg["block"] == "igcv3" else 1
        groups = groups if extra_groups is None else extra_groups
        with self.name_scope():
            self.stage1 = nn.HybridSequential(prefix="stage1_")
            self.stage1.add(*layers[:last16])
            self.expand = expand
            self.rest = rest
            self.shortcut = layers[last16].use_shortcut
            self.stage2 = nn.HybridSequential(prefix="stage2_")
            self.stage2.add(*layers[last16 + 1:])
            self.extras = nn.HybridSequential(prefix="extras_")
            in_c = cfg["last"]
            for channels in extras:
                self.extras.add(_ExtraLayer(in_c, channels, groups))
                in_c = channels
        self.channels = [self._expansion_channels(expand), cfg["last"]] + list(extras)

    @staticmethod
    def _expansion_channels(expand):
        convs = [l for l in expand._children.values() if isinstance(l, nn.Conv2D)]
        return convs[-1]._channels

    def hybrid_forward(self, F, x):
        x = self.stage1(x)
        e = self.expand(x)
        y = self.rest(e)
        if self.shortcut:
            y = F.elemwise_add(y, x)
        y = self.stage2(y)
        outputs = [e, y]
        for layer in self.extras:
            y = layer(y)
            outputs.append(y)
        return outputs


class SeparablePredictor(nn.HybridBlock):
    """SSDLite prediction layer: Dw3x3 + BN + ReLU6 + 1x1 conv (with bias) to ``channels``."""

    def __init__(self, in_channels, channels, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            add_conv_bn(self.body, in_channels, 3, 1, in_channels, True, in_channels)
            self.body.add(nn.Conv2D(channels, 1, in_channels=in_channels))

    def hybrid_forward(self, F, x):
        return self.body(x)


def ssdlite(backbone="mobilenetv2", classes=None, base_size=320, multiplier=1.0,
            extra_groups=None, prefix=None, **kwargs):
    """An SSDLite detector (GluonCV ``SSD``) with a ``backbone`` zoo config; ``classes`` is the
    list of class names (background excluded; default: the 80 COCO classes)."""
    from gluoncv.model_zoo.ssd import SSD
    if classes is None:
        from gluoncv.data import COCODetection
        classes = list(COCODetection.CLASSES)
    holder = {}

    def features(**_):
        holder["features"] = SSDLiteFeatures(backbone, multiplier, extra_groups=extra_groups)
        return holder["features"]

    sizes = anchor_sizes(base_size)
    steps = anchor_steps(base_size)
    ratios = [list(RATIOS_FIRST)] + [list(RATIOS_OTHER)] * 5
    prefix = prefix or "ssdlite_%d_%s_" % (base_size, backbone)
    net = SSD(network=None, base_size=base_size, features=features, num_filters=None,
              sizes=sizes, ratios=ratios, steps=steps, classes=classes, pretrained=False,
              prefix=prefix, **kwargs)
    channels = holder["features"].channels
    num_classes = len(classes) + 1
    with net.name_scope():
        net.class_predictors = nn.HybridSequential(prefix="class_predictors_")
        net.box_predictors = nn.HybridSequential(prefix="box_predictors_")
        for c, ag in zip(channels, net.anchor_generators):
            net.class_predictors.add(SeparablePredictor(c, ag.num_depth * num_classes))
            net.box_predictors.add(SeparablePredictor(c, ag.num_depth * 4))
    net.channels = channels
    return net
