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
* Anchors as data (``anchor_boxes``): per map, the (size, aspect ratio) of every anchor at
  each position, ``BoxAnchors`` lays them on the map's grid. Two presets:

  - ``authors`` (default): the authors' SSDLite2 (their MXNet SSD ``symbol_factory.py``):
    scales s_k = 0.2 + 0.14 (k - 1), k = 1..7, rounded to 2 decimals (0.2 ... 0.9, 1.04);
    map k: s_k and sqrt(s_k s_k+1) at ratio 1, then s_k at ratios 2, 1/2 (maps 1, 5, 6) or
    2, 1/2, 3, 1/3 (maps 2-4), as MXNet's ``MultiBoxPrior``: 4, 6, 6, 6, 4, 4 anchors.
  - ``ssdlite``: the MobileNetV2 paper's (TF object detection API): scales 0.2-0.95 linear
    over the 6 maps (then 1.0); map 1: 0.1 at 1:1, 0.2 at 2:1 and 1:2; the others s_k at
    1, 2, 1/2, 3, 1/3 plus sqrt(s_k s_k+1) at 1:1: 3, 6, 6, 6, 6, 6 anchors.
"""
import math

import numpy as np
from mxnet import gluon
from mxnet.gluon import nn

from ..nn import ChannelShuffle, ReLU6, add_conv_bn, resolve_norm
from .builder import build, resolve_config

__all__ = ["SSDLiteFeatures", "SeparablePredictor", "BoxAnchors", "ssdlite", "SSDLITE_EXTRAS",
           "ANCHOR_PRESETS", "anchor_boxes", "anchor_steps", "feature_map_sizes"]

SSDLITE_EXTRAS = (512, 256, 256, 128)
ANCHOR_PRESETS = ("authors", "ssdlite")


def anchor_boxes(preset="authors", num_maps=6):
    """Per feature map, the anchors of one position as ``(size, aspect ratio)`` pairs, sizes
    as fractions of the input side (module doc)."""
    if num_maps != 6:
        raise ValueError("the anchor presets are defined for 6 feature maps, not %d" % num_maps)
    if preset == "authors":
        scales = [round(0.2 + (0.9 - 0.2) * k / 5, 2) for k in range(6)] + [round(0.2 + 0.14 * 6, 2)]
        more = [(2, 0.5), (2, 0.5, 3, 1 / 3), (2, 0.5, 3, 1 / 3), (2, 0.5, 3, 1 / 3), (2, 0.5),
                (2, 0.5)]
        return [[(scales[k], 1), (math.sqrt(scales[k] * scales[k + 1]), 1)]
                + [(scales[k], r) for r in more[k]] for k in range(6)]
    if preset == "ssdlite":
        scales = [0.2 + (0.95 - 0.2) * k / 5 for k in range(6)] + [1.0]
        boxes = [[(0.1, 1), (scales[0], 2), (scales[0], 0.5)]]
        for k in range(1, 6):
            boxes.append([(scales[k], r) for r in (1, 2, 0.5, 3, 1 / 3)]
                         + [(math.sqrt(scales[k] * scales[k + 1]), 1)])
        return boxes
    raise ValueError("unknown anchor preset %r: choose one of %s"
                     % (preset, ", ".join(ANCHOR_PRESETS)))


class BoxAnchors(gluon.HybridBlock):
    """The anchors of one feature map: ``boxes`` ((size, ratio) pairs, sizes as fractions of
    ``im_size``) at every position of a grid with spacing ``step`` pixels, centres at
    ``(i + 0.5) * step``; as (cx, cy, w, h) pixels, ``w = size sqrt(ratio)``, ``h = size /
    sqrt(ratio)``. A drop-in for GluonCV's ``SSDAnchorGenerator`` (precomputed for
    ``alloc_size`` and cut to the map's size)."""

    def __init__(self, index, im_size, boxes, step, alloc_size=(128, 128), offsets=(0.5, 0.5),
                 **kwargs):
        super().__init__(**kwargs)
        self.boxes = [(float(s), float(r)) for s, r in boxes]
        side = float(im_size[0])
        rows, cols = np.meshgrid(np.arange(alloc_size[0]), np.arange(alloc_size[1]),
                                 indexing="ij")
        cy, cx = (rows + offsets[0]) * step, (cols + offsets[1]) * step
        per_box = [np.stack([cx, cy, np.full(cx.shape, s * side * math.sqrt(r)),
                             np.full(cx.shape, s * side / math.sqrt(r))], axis=-1)
                   for s, r in self.boxes]
        anchors = np.stack(per_box, axis=2).reshape(1, 1, alloc_size[0], alloc_size[1], -1)
        self.anchors = self.params.get_constant("anchor_%d" % index, anchors)

    @property
    def num_depth(self):
        return len(self.boxes)

    def hybrid_forward(self, F, x, anchors):
        return F.slice_like(anchors, x * 0, axes=(2, 3)).reshape((1, -1, 4))


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


class _ExtraLayer(nn.HybridBlock):
    """1x1 to ``mid`` -> Dw3x3 stride 2 -> 1x1 to ``channels``, each + BN + ReLU6; with
    ``groups > 1`` the 1x1 convs are group convs interleaved by a shuffle (SSDLite2)."""

    def __init__(self, in_channels, channels, groups=1, norm_layer=None, norm_kwargs=None,
                 **kwargs):
        super().__init__(**kwargs)
        mid = channels // 2
        norm = resolve_norm(norm_layer, groups > 1)
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            # ReLU6 after the shuffle: the same function (a permutation commutes with an
            # element-wise activation), and deploy.optimize can fold a shuffle that directly
            # follows its convolution
            add_conv_bn(self.body, mid, 1, 1, groups, False, in_channels, norm, norm_kwargs)
            if groups > 1:
                self.body.add(ChannelShuffle(groups, mid))
            self.body.add(ReLU6())
            add_conv_bn(self.body, mid, 3, 2, mid, True, mid, norm, norm_kwargs)
            add_conv_bn(self.body, channels, 1, 1, groups, True, mid, norm, norm_kwargs)

    def hybrid_forward(self, F, x):
        return self.body(x)


class SSDLiteFeatures(nn.HybridBlock):
    """The six SSDLite feature maps of zoo backbone config ``backbone`` (see module doc).

    ``backbone`` holds the classification network's ``features`` whole (same layers, same
    structure), so weights trained by ``train_imagenet.py`` map onto it name for name; the
    tap points come from the builder's ``feature_info``: map 1 is the expansion of the last
    block with reduction 16, map 2 the output of the last body layer (the 1x1 conv)."""

    def __init__(self, backbone="mobilenetv2", multiplier=1.0, extras=SSDLITE_EXTRAS,
                 extra_groups=None, norm_layer=None, norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        cfg = resolve_config(backbone, multiplier)
        if cfg["block"] not in ("mobilenetv2", "igcv3") or not cfg["last"]:
            raise ValueError("SSDLite needs an inverted-residual backbone with a last 1x1 "
                             "conv; %s is not one" % backbone)
        net = build(backbone, classes=1, multiplier=multiplier, prefix="",
                    norm_layer=norm_layer, norm_kwargs=norm_kwargs)
        taps = [f for f in net.feature_info
                if f["kind"] == "block" and f["reduction"] == 16 and f["expansion"]]
        if not taps:
            raise ValueError("%s has no inverted block at stride 16 to tap" % backbone)
        last = net.feature_info[-1]
        self.tap_layer, self.body_layers = taps[-1]["index"], net.body_layers
        groups = cfg["groups"][0] if cfg["block"] == "igcv3" else 1
        groups = groups if extra_groups is None else extra_groups
        with self.name_scope():
            self.backbone = net.features
            self.extras = nn.HybridSequential(prefix="extras_")
            in_c = last["channels"]
            for channels in extras:
                self.extras.add(_ExtraLayer(in_c, channels, groups, norm_layer, norm_kwargs))
                in_c = channels
        self.channels = [taps[-1]["expansion"], last["channels"]] + list(extras)

    def hybrid_forward(self, F, x):
        for i in range(self.tap_layer):
            x = self.backbone[i](x)
        y, expanded = self.backbone[self.tap_layer].forward_with_expansion(F, x)
        for i in range(self.tap_layer + 1, self.body_layers):
            y = self.backbone[i](y)
        outputs = [expanded, y]
        for layer in self.extras:
            y = layer(y)
            outputs.append(y)
        return outputs


class SeparablePredictor(nn.HybridBlock):
    """SSDLite prediction layer: Dw3x3 + BN + ReLU6 + 1x1 conv (with bias) to ``channels``."""

    def __init__(self, in_channels, channels, norm_layer=None, norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            add_conv_bn(self.body, in_channels, 3, 1, in_channels, True, in_channels,
                        resolve_norm(norm_layer, False), norm_kwargs)
            self.body.add(nn.Conv2D(channels, 1, in_channels=in_channels))

    def hybrid_forward(self, F, x):
        return self.body(x)


def ssdlite(backbone="mobilenetv2", classes=None, base_size=320, multiplier=1.0,
            extra_groups=None, prefix=None, norm_layer=None, norm_kwargs=None,
            anchors="authors", **kwargs):
    """An SSDLite detector (GluonCV ``SSD``) with a ``backbone`` zoo config; ``classes`` is the
    list of class names (background excluded; default: the 80 COCO classes); ``anchors`` a
    preset of ``anchor_boxes``. ``net.backbone_config`` and ``net.backbone_multiplier`` name
    the classifier whose ``features`` the backbone is (``train.detector.load_backbone``)."""
    from gluoncv.model_zoo.ssd import SSD
    if classes is None:
        from gluoncv.data import COCODetection
        classes = list(COCODetection.CLASSES)
    holder = {}

    def features(**_):
        holder["features"] = SSDLiteFeatures(backbone, multiplier, extra_groups=extra_groups,
                                             norm_layer=norm_layer, norm_kwargs=norm_kwargs)
        return holder["features"]

    boxes = anchor_boxes(anchors)
    steps = anchor_steps(base_size)

    def generator(index, im_size, sizes, ratios, step, alloc_size):
        return BoxAnchors(index, im_size, boxes[index], step, alloc_size)
    prefix = prefix or "ssdlite_%d_%s_" % (base_size, backbone)
    # GluonCV's sizes/ratios only count the maps here: BoxAnchors takes the boxes
    net = SSD(network=None, base_size=base_size, features=features, num_filters=None,
              sizes=[0] * (len(boxes) + 1), ratios=[[1]] * len(boxes), steps=steps,
              classes=classes, pretrained=False, prefix=prefix, anchor_generator=generator,
              **kwargs)
    channels = holder["features"].channels
    num_classes = len(classes) + 1
    with net.name_scope():
        net.class_predictors = nn.HybridSequential(prefix="class_predictors_")
        net.box_predictors = nn.HybridSequential(prefix="box_predictors_")
        for c, ag in zip(channels, net.anchor_generators):
            net.class_predictors.add(SeparablePredictor(c, ag.num_depth * num_classes,
                                                        norm_layer, norm_kwargs))
            net.box_predictors.add(SeparablePredictor(c, ag.num_depth * 4, norm_layer,
                                                      norm_kwargs))
    net.channels = channels
    net.anchor_preset, net.backbone_config, net.backbone_multiplier = anchors, backbone, multiplier
    return net
