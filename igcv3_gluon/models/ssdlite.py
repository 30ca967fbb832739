"""SSDLite (MobileNetV2 paper, Sec. 6.3) and SSDLite2 (IGCV3 paper, Sec. 4.3, Table 4) on
GluonCV's SSD machinery (anchors, target generator, box decoding, NMS).

Every structural default follows the authors' detection code (homles11/IGCV3,
``detection/symbol/``), which is what produced Table 4's 22.2 mAP; file and line are cited
where each is used. What GluonCV lacks and this module adds:

* ``SSDLiteFeatures``: six feature maps from a zoo backbone, each after ReLU6
  (``common.py:172-173``, ``multi_layer_feature`` applies ``Relu6`` to every map it takes
  from the body). Map 1 is the *expansion* (W1 -> BN) of the first block of the 1/32 stage,
  still at 1/16 because that block's stride sits after it (``symbol_factory.py:102``
  ``blk13nl_1_bn``: block 13 of IGCV3-W; ``:90`` ``blk13_nl`` for MobileNetV2; TF's
  ``layer_15/expansion_output``): 1152 channels for IGCV3-W, 576 for MobileNetV2. In
  IGCV3 blocks the tap follows P1 (``IGCV3Block.tap_index``): the authors' blob in another
  channel order, the same detector (the head's Dw3x3 and BN work per channel and its 1x1
  conv reads all of them), and the optimised graph stays free of shuffles (a tap before P1
  would give W1 two consumers, and P1 could no longer fold into it). Map 2 is
  the last 1x1 conv (1280, ``final_conv_nl_1_bn`` / ``finalconv``); maps 3-6 extra layers
  of 512, 256, 256, 128 channels (``symbol_factory.py:103``).
* ``_ExtraLayer`` (``common.py:180-185``, ``conv_act_layer`` :43-49 and
  ``conv_act_layer_dw`` :80-88, the same for both backbones): 2-group 1x1 conv to
  ``max(128, C/2)`` (``symbol_builder.py:14`` ``min_filter=128``, which
  ``symbol_factory.get_config`` does not override) + shuffle of 2 groups + BN + ReLU6 ->
  Dw3x3 stride 2 + BN (no ReLU) -> 2-group 1x1 conv to C + shuffle of C/2 groups + BN +
  ReLU6. Every BatchNorm of the extras and heads has eps 1e-3 (``DETECTION_BN_EPS``). Each
  BN here sits right after its conv and the shuffle after the BN: a permutation commutes
  with a per-channel BN (its parameters permute along), so it is the same function, and
  ``deploy.optimize`` folds both.
* ``SeparablePredictor`` (``common.py:307-318`` box, ``:325-336`` class): Dw3x3 + BN +
  ReLU6 + 1x1 conv (with bias) + BN.
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
import numbers

import numpy as np
from mxnet import gluon
from mxnet.gluon import nn

from ..data.detection import BOX_VARIANCES
from ..nn import ChannelShuffle, ReLU6, add_conv_bn, resolve_norm
from .builder import build, resolve_config

__all__ = ["SSDLiteFeatures", "SeparablePredictor", "BoxAnchors", "ssdlite", "SSDLITE_EXTRAS",
           "ANCHOR_PRESETS", "anchor_boxes", "anchor_steps", "feature_map_sizes",
           "DETECTION_BN_EPS", "EXTRA_MIN_FILTER", "EXTRA_GROUPS"]

SSDLITE_EXTRAS = (512, 256, 256, 128)     # symbol_factory.py:103 num_filters[2:]
DETECTION_BN_EPS = 1e-3                   # common.py:47, 82, 87, 311, 317, 329, 335
EXTRA_MIN_FILTER = 128                    # symbol_builder.py:14 (get_symbol_train default)
EXTRA_GROUPS = 2                          # common.py:44, 84 (num_group=2, both backbones)
ANCHOR_PRESETS = ("authors", "ssdlite")


def anchor_boxes(preset="authors", num_maps=6):
    """Per feature map, the anchors of one position as ``(size, aspect ratio)`` pairs, sizes
    as fractions of the input side (module doc)."""
    if num_maps != 6:
        raise ValueError("the anchor presets are defined for 6 feature maps, not %d" % num_maps)
    if preset == "authors":
        scales = [round(0.2 + (0.9 - 0.2) * k / 5, 2) for k in range(6)] + \
            [round(0.2 + 0.14 * 6, 2)]
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
    """The authors' extra layer (module doc): G1x1 (``groups``) -> BN -> P(groups) -> ReLU6
    -> Dw3x3 stride 2 -> BN -> G1x1 (``groups``) -> BN -> P(C / 2) -> ReLU6; the middle
    width is ``max(min_filter, C / 2)``."""

    def __init__(self, in_channels, channels, groups=EXTRA_GROUPS, min_filter=EXTRA_MIN_FILTER,
                 norm_layer=None, norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        mid = max(min_filter, channels // 2)
        norm = resolve_norm(norm_layer, groups > 1)
        eps = DETECTION_BN_EPS
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            add_conv_bn(self.body, mid, 1, 1, groups, False, in_channels, norm, norm_kwargs, eps)
            if groups > 1:
                self.body.add(ChannelShuffle(groups, mid))          # common.py:45
            self.body.add(ReLU6())
            add_conv_bn(self.body, mid, 3, 2, mid, False, mid, norm, norm_kwargs, eps)
            add_conv_bn(self.body, channels, 1, 1, groups, False, mid, norm, norm_kwargs, eps)
            if groups > 1:
                self.body.add(ChannelShuffle(channels // 2, channels))  # common.py:85
            self.body.add(ReLU6())

    def hybrid_forward(self, F, x):
        return self.body(x)


def expansion_tap(feature_info):
    """The ``feature_info`` entry of the block whose expansion is SSDLite's first map: the
    first block whose output is at 1/32 (its expansion is still at 1/16)."""
    for f in feature_info:
        if f["kind"] == "block" and f["reduction"] == 32 and f["expansion"]:
            return f
    return None


class SSDLiteFeatures(nn.HybridBlock):
    """The six SSDLite feature maps of zoo backbone config ``backbone`` (see module doc).

    ``backbone`` holds the classification network's ``features`` whole (same layers, same
    structure), so weights trained by ``train_imagenet.py`` map onto it name for name; the
    tap points come from the builder's ``feature_info``: map 1 is the expansion of the first
    block with reduction 32, map 2 the output of the last body layer (the 1x1 conv); every
    map goes through ReLU6."""

    def __init__(self, backbone="mobilenetv2", multiplier=1.0, extras=SSDLITE_EXTRAS,
                 extra_groups=None, norm_layer=None, norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        cfg = resolve_config(backbone, multiplier)
        if cfg["block"] not in ("mobilenetv2", "igcv3") or not cfg["last"]:
            raise ValueError("SSDLite needs an inverted-residual backbone with a last 1x1 "
                             "conv; %s is not one" % backbone)
        net = build(backbone, classes=1, multiplier=multiplier, prefix="",
                    norm_layer=norm_layer, norm_kwargs=norm_kwargs)
        tap = expansion_tap(net.feature_info)
        if tap is None:
            raise ValueError("%s has no inverted block entering stride 32 to tap" % backbone)
        last = net.feature_info[-1]
        self.tap_layer, self.body_layers = tap["index"], net.body_layers
        groups = EXTRA_GROUPS if extra_groups is None else extra_groups
        with self.name_scope():
            self.backbone = net.features
            self.extras = nn.HybridSequential(prefix="extras_")
            in_c = last["channels"]
            for channels in extras:
                self.extras.add(_ExtraLayer(in_c, channels, groups, norm_layer=norm_layer,
                                            norm_kwargs=norm_kwargs))
                in_c = channels
        self.channels = [tap["expansion"], last["channels"]] + list(extras)

    def hybrid_forward(self, F, x):
        for i in range(self.tap_layer):
            x = self.backbone[i](x)
        y, expanded = self.backbone[self.tap_layer].forward_with_expansion(F, x)
        for i in range(self.tap_layer + 1, self.body_layers):
            y = self.backbone[i](y)
        # common.py:172-173: Relu6 on every map taken from the body (map 2 already ends with
        # one; ReLU6 is idempotent)
        outputs = [F.clip(expanded, 0, 6), F.clip(y, 0, 6)]
        for layer in self.extras:
            y = layer(y)
            outputs.append(y)
        return outputs


class SeparablePredictor(nn.HybridBlock):
    """SSDLite2 prediction layer (``common.py:307-318``): Dw3x3 + BN + ReLU6 + 1x1 conv (with
    bias) + BN, every BN with eps 1e-3."""

    def __init__(self, in_channels, channels, norm_layer=None, norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        norm = resolve_norm(norm_layer, False)
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            add_conv_bn(self.body, in_channels, 3, 1, in_channels, True, in_channels, norm,
                        norm_kwargs, DETECTION_BN_EPS)
            self.body.add(nn.Conv2D(channels, 1, in_channels=in_channels))
            self.body.add(norm(epsilon=DETECTION_BN_EPS, in_channels=channels,
                               **(norm_kwargs or {})))

    def hybrid_forward(self, F, x):
        return self.body(x)


def class_names(classes):
    """A detector's class names (background excluded) from ``classes``: None (the 80 COCO
    classes), a list of distinct non-empty names, or a whole count N >= 1 (``class0`` ..).
    Anything else is a ValueError naming it: a detector built with no class, 2.5 classes, the
    letters of a string or a name twice would fail at its first forward, or mislabel."""
    if classes is None:
        from gluoncv.data import COCODetection
        return list(COCODetection.CLASSES)
    if isinstance(classes, numbers.Integral) and not isinstance(classes, bool):
        if classes < 1:
            raise ValueError("classes=%d: a detector needs at least one class" % classes)
        return ["class%d" % i for i in range(classes)]
    if not isinstance(classes, (list, tuple)):
        raise ValueError("classes=%r: give the list of class names (or their number)"
                         % (classes,))
    names = list(classes)
    if not names:
        raise ValueError("classes=[]: a detector needs at least one class")
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        raise ValueError("classes: %r is not a class name (names are non-empty text)" % (bad[0],))
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError("classes: %s named more than once" % ", ".join(twice[:5]))
    return names


def ssdlite(backbone="mobilenetv2", classes=None, base_size=320, multiplier=1.0,
            extra_groups=None, prefix=None, norm_layer=None, norm_kwargs=None,
            anchors="authors", **kwargs):
    """An SSDLite detector (GluonCV ``SSD``) with a ``backbone`` zoo config; ``classes`` is the
    list of class names (background excluded; default: the 80 COCO classes); ``anchors`` a
    preset of ``anchor_boxes``. ``net.backbone_config`` and ``net.backbone_multiplier`` name
    the classifier whose ``features`` the backbone is (``train.detector.load_backbone``)."""
    from gluoncv.model_zoo.ssd import SSD
    classes = class_names(classes)
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
              stds=BOX_VARIANCES, **kwargs)
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
