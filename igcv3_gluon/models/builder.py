"""The one builder: a config table (``configs.py``) -> a Gluon HybridBlock with ``features``
and ``output`` children, in GluonCV's style."""
import copy
import numbers

from mxnet.gluon import nn

from ..nn import (
    IGCV1Block,
    IGCV2Block,
    IGCV3Block,
    InterleavedPointwise,
    MobileNetV2Block,
    add_conv_bn,
    resolve_norm,
)
from .configs import CIFAR_STRIDES, CONFIGS, MAX_MULTIPLIER

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


# the keys a caller may override (Table 6 relu=, Table 7 groups=, Sec. 3.2/3.3 inverted=,
# p1=/p2=, strict=, and the plan itself)
OVERRIDES = ("groups", "relu", "p1", "p2", "inverted", "strict", "expand_t1", "divisor",
             "last_groups", "stages", "stem", "last", "block", "branch", "cifar_strides")


# the keys that change IGCV3 blocks only (the other block kinds ignore them)
IGCV3_ONLY = ("groups", "relu", "p1", "p2", "inverted", "strict")


def _whole_numbers(value):
    return (isinstance(value, (tuple, list))
            and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value))


def _check_arguments(name, multiplier, depths, overrides):
    """ValueError naming the argument for a width, depths or groups no network has, and for
    an IGCV3 key given to a network of other blocks (it would be built unchanged)."""
    if isinstance(multiplier, bool) or not isinstance(multiplier, numbers.Real) \
            or not 0 < multiplier <= MAX_MULTIPLIER:                # also NaN
        raise ValueError("multiplier must be a number in (0, %g]; got %r"
                         % (MAX_MULTIPLIER, multiplier))
    if depths is not None and not _whole_numbers(depths):
        raise ValueError("depths takes whole numbers, one per stage, e.g. (1, 2, 3, 4, 3, 3, "
                         "1); got %r" % (depths,))
    groups = overrides.get("groups")
    if groups is not None and not (_whole_numbers(groups) and len(groups) == 2
                                   and min(groups) >= 0):
        raise ValueError("groups takes (G1, G2), two whole numbers >= 1 (0: the smallest that "
                         "fits); got %r" % (groups,))
    if groups is not None and 0 in groups and not overrides.get("strict"):
        raise ValueError("groups (0, 0) lets each block take the smallest G1 that fits "
                         "Condition 1: it needs strict=True; got %r" % (tuple(groups),))
    block = CONFIGS[name]["block"]
    unused = [k for k in IGCV3_ONLY if k in overrides]
    if block != "igcv3" and unused:
        raise ValueError("%s changes IGCV3 blocks; %s has %s blocks" % (unused[0], name, block))


def resolve_config(name, multiplier=1.0, cifar=False, depths=None, **overrides):
    """The config ``name`` with the width multiplier applied and ``overrides`` merged in;
    returns a fresh dict (a copy: the tables stay untouched)."""
    if name not in CONFIGS:
        raise ValueError("unknown network config %r; known: %s" % (name, ", ".join(CONFIGS)))
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        hint = (" (published weights: igcv3_gluon.get_model(NAME, pretrained=True))"
                if "pretrained" in unknown else "")
        raise TypeError("unknown keyword%s %s; the architecture takes %s, and classes, "
                        "multiplier, depths, cifar, dropout, prefix, norm_layer, "
                        "norm_kwargs%s" % ("s" if len(unknown) > 1 else "",
                                           ", ".join(unknown), ", ".join(OVERRIDES), hint))
    _check_arguments(name, multiplier, depths, overrides)
    cfg = copy.deepcopy(CONFIGS[name])
    cfg.update(overrides)
    groups = tuple(cfg["groups"])
    divisor = cfg.get("divisor") or (8 if max(groups) <= 8 else max(groups))
    stages = [list(row) for row in cfg["stages"]]
    if depths is not None:
        if len(depths) != len(stages) or min(depths) < 1:
            raise ValueError("%s has %d stages: depths must be %d numbers >= 1, got %s"
                             % (name, len(stages), len(stages), list(depths)))
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


def make_block(cfg, in_c, t, c, stride, norm_layer=None, norm_kwargs=None):
    """One block of kind ``cfg["block"]``; returns ``(block, its output channels)``. The normal
    (non-inverted) IGCV3 form keeps the wide channels ``t * c`` between blocks and reduces
    them to ``c`` inside (Sec. 3.2)."""
    kind = cfg["block"]
    norm = dict(norm_layer=norm_layer, norm_kwargs=norm_kwargs)
    if kind == "mobilenetv2":
        return MobileNetV2Block(in_c, c, t, stride, expand_t1=cfg["expand_t1"], **norm), c
    if kind == "igcv1":
        return IGCV1Block(in_c, c, stride, cfg.get("branch", 2), **norm), c
    if kind == "igcv2":
        return IGCV2Block(in_c, c, stride, cfg.get("branch", 8), **norm), c
    if kind != "igcv3":
        raise ValueError("unknown block kind %r" % kind)
    inverted = cfg.get("inverted", True)
    out_c = c if inverted else c * t
    block = IGCV3Block(in_c, out_c, t, stride, groups=cfg["groups"], relu=cfg.get("relu", "dw"),
                       p1=cfg.get("p1", True), p2=cfg.get("p2", False), inverted=inverted,
                       strict=cfg.get("strict", False), expand_t1=cfg["expand_t1"],
                       mid_channels=None if inverted else c, **norm)
    return block, out_c


class ClassificationNet(nn.HybridBlock):
    """Stem -> stages of inverted blocks -> last 1x1 conv -> global pool -> FC.

    ``features`` ends with the pooled, flattened vector; ``output`` is the FC layer
    (GluonCV's convention, so ``net.features`` serves as a backbone).

    ``feature_info`` (as timm's): one dict per feature map the body produces, in order:
    ``index`` (the layer of ``features`` whose output it is), ``kind`` ("stem", "block",
    "last"), ``channels``, ``reduction`` (stride from the input) and ``expansion`` (the
    width of a block's expansion, which ``IGCV3Block.forward_with_expansion`` returns, else
    None). ``body_layers`` counts the layers of ``features`` before the pooling head.
    """

    def __init__(self, cfg, classes=1000, dropout=0.0, norm_layer=None, norm_kwargs=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.config = cfg
        dense = cfg["block"] == "mobilenetv2"
        stem_norm = resolve_norm(norm_layer, not dense)         # see nn.FlatBatchNorm
        info = []

        def note(kind, channels, reduction, expansion=None):
            info.append(dict(index=len(self.features) - 1, kind=kind, channels=channels,
                             reduction=reduction, expansion=expansion))
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="features_")
            with self.features.name_scope():
                reduction = cfg["stem_stride"]
                add_conv_bn(self.features, cfg["stem"], 3, reduction, act=True,
                            in_channels=3, norm=stem_norm, norm_kwargs=norm_kwargs)
                note("stem", cfg["stem"], reduction)
                in_c = cfg["stem"]
                for t, c, n, s in cfg["stages"]:
                    for i in range(n):
                        stride = s if i == 0 else 1
                        block, in_c = make_block(cfg, in_c, t, c, stride, norm_layer,
                                                 norm_kwargs)
                        self.features.add(block)
                        reduction *= stride
                        note("block", in_c, reduction,
                             getattr(block, "mid_channels", None)
                             if getattr(block, "tap_index", None) is not None else None)
                if not cfg["last"]:
                    pass                                     # MobileNetV1 skeleton: no last conv
                elif cfg["last_groups"] > 1:
                    self.features.add(InterleavedPointwise(in_c, cfg["last"], cfg["last_groups"],
                                                           norm_layer, norm_kwargs))
                    note("last", cfg["last"], reduction)
                else:
                    add_conv_bn(self.features, cfg["last"], 1, 1, act=True, in_channels=in_c,
                                norm=stem_norm, norm_kwargs=norm_kwargs)
                    note("last", cfg["last"], reduction)
                self.body_layers = len(self.features)
                self.features.add(nn.GlobalAvgPool2D())
                self.features.add(nn.Flatten())
                if dropout:
                    self.features.add(nn.Dropout(dropout))
            self.num_features = cfg["last"] or in_c
            self.output = nn.Dense(classes, in_units=self.num_features)
        self.feature_info = info

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def build(name, classes=1000, multiplier=1.0, cifar=False, depths=None, dropout=0.0,
          prefix=None, norm_layer=None, norm_kwargs=None, **overrides):
    """Build network config ``name`` (a key of ``CONFIGS``); parameter names start with
    ``prefix`` (default ``"<name>_"``, stable across calls, so exports and symbols match).
    ``overrides`` replace config keys (e.g. ``groups=(2, 4)``, ``relu="pw2"``, ``p2=True``,
    ``inverted=False``); ``norm_layer``/``norm_kwargs`` choose the BatchNorm form
    (``nn.norm_layer_for``)."""
    if isinstance(classes, bool) or not isinstance(classes, numbers.Integral) or classes < 1:
        raise ValueError("classes must be a whole number >= 1; got %r" % (classes,))
    cfg = resolve_config(name, multiplier, cifar, depths, **overrides)
    prefix = "%s_" % name if prefix is None else prefix
    return ClassificationNet(cfg, classes=classes, dropout=dropout, norm_layer=norm_layer,
                             norm_kwargs=norm_kwargs, prefix=prefix)
