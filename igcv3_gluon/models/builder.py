"""The one builder: a config table (``configs.py``) -> a Gluon HybridBlock with ``features``
and ``output`` children, in GluonCV's style."""
import copy

from mxnet.gluon import nn

from ..nn import (IGCV1Block, IGCV2Block, IGCV3Block, InterleavedPointwise, MobileNetV2Block,
                  add_conv_bn)
from .configs import CIFAR_STRIDES, CONFIGS

__all__ = ["ClassificationNet", "build", "make_block", "scale_channels", "resolve_config"]


def scale_channels(channels, multiplier, divisor):
    """Width multiplier alpha (Table 3 "Network (alpha)"): ``channels * alpha`` rounded to the
    nearest multiple of ``divisor`` (never below it, never more than 10% down), as in
    MobileNetV2's reference code; ``divisor`` also keeps the counts divisible by the groups."""
    if multiplier == 1.0:
        return channels
    value = channels * multiplier
    scaled = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if scaled < 0.9 * value:
        scaled += divisor
    return scaled


def resolve_config(name, multiplier=1.0, cifar=False, depths=None, **overrides):
    """The config ``name`` with the width multiplier applied and ``overrides`` merged in;
    returns a fresh dict (a copy: the tables stay untouched)."""
    if name not in CONFIGS:
        raise ValueError("unknown network config %r; known: %s" % (name, ", ".join(CONFIGS)))
    cfg = copy.deepcopy(CONFIGS[name])
    cfg.update(overrides)
    groups = tuple(cfg["groups"])
    divisor = 8 if max(groups) <= 8 else max(groups)
    stages = [list(row) for row in cfg["stages"]]
    if depths is not None:
        if len(depths) != len(stages):
            raise ValueError("depths needs %d stage depths, got %d" % (len(stages), len(depths)))
        for row, n in zip(stages, depths):
            row[2] = n
    strides = [2] + [row[3] for row in stages]
    if cifar:
        strides = list(cfg.get("cifar_strides", CIFAR_STRIDES))
    cfg["stem_stride"] = strides[0]
    cfg["stages"] = [(t, scale_channels(c, multiplier, divisor), n, s)
                     for (t, c, n, _), s in zip(stages, strides[1:])]
    cfg["stem"] = scale_channels(cfg["stem"], multiplier, divisor)
    if cfg["last"] and multiplier > 1.0:          # MobileNetV2 keeps 1280 for alpha <= 1
        cfg["last"] = scale_channels(cfg["last"], multiplier, divisor)
    cfg["multiplier"] = multiplier
    return cfg


def make_block(cfg, in_c, t, c, stride):
    """One block of kind ``cfg["block"]``; returns ``(block, its output channels)``. The normal
    (non-inverted) IGCV3 form keeps the wide channels ``t * c`` between blocks and reduces
    them to ``c`` inside (Sec. 3.2)."""
    kind = cfg["block"]
    if kind == "mobilenetv2":
        return MobileNetV2Block(in_c, c, t, stride, expand_t1=cfg["expand_t1"]), c
    if kind == "igcv1":
        return IGCV1Block(in_c, c, stride, cfg.get("branch", 2)), c
    if kind == "igcv2":
        return IGCV2Block(in_c, c, stride, cfg.get("branch", 8)), c
    if kind != "igcv3":
        raise ValueError("unknown block kind %r" % kind)
    inverted = cfg.get("inverted", True)
    out_c = c if inverted else c * t
    block = IGCV3Block(in_c, out_c, t, stride, groups=cfg["groups"], relu=cfg.get("relu", "dw"),
                       p1=cfg.get("p1", True), p2=cfg.get("p2", False), inverted=inverted,
                       strict=cfg.get("strict", False), expand_t1=cfg["expand_t1"],
                       mid_channels=None if inverted else c)
    return block, out_c


class ClassificationNet(nn.HybridBlock):
    """Stem -> stages of inverted blocks -> last 1x1 conv -> global pool -> FC.

    ``features`` ends with the pooled, flattened vector; ``output`` is the FC layer
    (GluonCV's convention, so ``net.features`` serves as a backbone).
    """

    def __init__(self, cfg, classes=1000, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.config = cfg
        flat_bn = cfg["block"] != "mobilenetv2"          # see nn.FlatBatchNorm
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="features_")
            with self.features.name_scope():
                add_conv_bn(self.features, cfg["stem"], 3, cfg["stem_stride"], act=True,
                            in_channels=3, flat_bn=flat_bn)
                in_c = cfg["stem"]
                for t, c, n, s in cfg["stages"]:
                    for i in range(n):
                        block, in_c = make_block(cfg, in_c, t, c, s if i == 0 else 1)
                        self.features.add(block)
                if not cfg["last"]:
                    pass                                     # MobileNetV1 skeleton: no last conv
                elif cfg["last_groups"] > 1:
                    self.features.add(InterleavedPointwise(in_c, cfg["last"], cfg["last_groups"]))
                else:
                    add_conv_bn(self.features, cfg["last"], 1, 1, act=True, in_channels=in_c,
                                flat_bn=flat_bn)
                self.features.add(nn.GlobalAvgPool2D())
                self.features.add(nn.Flatten())
                if dropout:
                    self.features.add(nn.Dropout(dropout))
            self.num_features = cfg["last"] or in_c
            self.output = nn.Dense(classes, in_units=self.num_features)

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def build(name, classes=1000, multiplier=1.0, cifar=False, depths=None, dropout=0.0,
          prefix=None, **overrides):
    """Build network config ``name`` (a key of ``CONFIGS``); parameter names start with
    ``prefix`` (default ``"<name>_"``, stable across calls, so exports and symbols match). ``overrides`` replace config
    keys (e.g. ``groups=(2, 4)``, ``relu="pw2"``, ``p2=True``, ``inverted=False``)."""
    cfg = resolve_config(name, multiplier, cifar, depths, **overrides)
    prefix = "%s_" % name if prefix is None else prefix
    return ClassificationNet(cfg, classes=classes, dropout=dropout, prefix=prefix)
