"""One description of a model, carried with its weights (timm's ``pretrained_cfg``).

A ``ModelSpec`` says which network the weights fit (zoo name and the architecture keys of the
paper's ablations: width, depths, groups (Table 7), ReLU placement (Table 6), P2), what it
classifies (a class count, or the class names of a detector) and how its input is prepared
(normalisation ``(pixel - mean) / std`` on 0-255 pixels, input size, the eval resize
``input_size / crop_ratio`` and centre crop). It is written as JSON with every weight file
the project writes (a run's ``config.json``, an export's ``-meta.json``, the ``-meta.json``
beside converted and published weights) and read back from any of them:

    spec = ModelSpec.from_dict(json.load(open("runs/demo/config.json")))
    net = spec.build()                       # the same network, the same parameter names
    meta = spec.to_dict()                    # what is written beside the weights

Keys this class does not know (the data set, the detector's anchors and recipe, the
publisher's figures) travel unchanged in ``extra``.
"""
import math
from dataclasses import dataclass, field, fields

from .configs import CONFIGS, MAX_MULTIPLIER
from .registry import create, model_info

__all__ = ["ModelSpec", "ARCH_KEYS", "INPUT_KEYS", "MAX_INPUT_VALUES"]

# the architecture keys (command-line flags --multiplier, --depths, --groups, --relu, --p2:
# cli.MODEL_FLAGS is this list)
ARCH_KEYS = ("multiplier", "depths", "groups", "relu", "p2")
# how the input is prepared
INPUT_KEYS = ("input_size", "mean", "std", "crop_ratio")
# the largest input a command takes: 2^28 values (1 GiB of float32 per array)
MAX_INPUT_VALUES = 2 ** 28


def _ints(value, key):
    """``"1,2,3"``, ``[1, 2, 3]`` or ``(1, 2, 3)`` -> ``(1, 2, 3)``; None stays None."""
    if value is None or value == "":
        return None
    try:
        items = value.split(",") if isinstance(value, str) else list(value)
        numbers = [float(v) for v in items if str(v).strip() != ""]
        if not all(math.isfinite(v) and v == int(v) for v in numbers):
            raise ValueError
        return tuple(int(v) for v in numbers)
    except (TypeError, ValueError):
        raise ValueError("%s takes integers such as 1,2,3; got %r" % (key, value)) from None


def _floats(value, key):
    if value is None:
        return None
    try:
        items = value.split(",") if isinstance(value, str) else list(value)
        values = tuple(float(v) for v in items)
        if not values or not all(math.isfinite(v) for v in values):
            raise ValueError
        return values
    except (TypeError, ValueError):
        raise ValueError("%s takes finite numbers such as 123,117,104; got %r"
                         % (key, value)) from None


def _flag(value, key):
    """A yes/no value as JSON or text writes it (``"false"`` is no)."""
    if isinstance(value, str):
        if value.strip().lower() in ("", "0", "false", "no", "off"):
            return False
        if value.strip().lower() in ("1", "true", "yes", "on"):
            return True
        raise ValueError("%s takes true or false; got %r" % (key, value))
    return bool(value)


@dataclass
class ModelSpec:
    model: str
    multiplier: float = None
    depths: tuple = None
    groups: tuple = None
    relu: str = None
    p2: bool = False
    classes: object = None          # a count, or the class names
    input_size: int = None
    mean: tuple = None              # on 0-255 pixels
    std: tuple = None
    crop_ratio: float = None
    source: str = None              # where the weights came from
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.depths = _ints(self.depths, "depths")
        self.groups = _ints(self.groups, "groups")
        self.mean = _floats(self.mean, "mean")
        self.std = _floats(self.std, "std")
        self.p2 = _flag(self.p2, "p2")
        if self.std is not None and min(self.std) <= 0:
            raise ValueError("std must be positive; got %s" % ",".join("%g" % v for v in self.std))
        if self.multiplier is not None:
            try:
                self.multiplier = float(self.multiplier)
            except (TypeError, ValueError):
                raise ValueError("multiplier must be a number; got %r" % (self.multiplier,)) \
                    from None
            if not 0 < self.multiplier <= MAX_MULTIPLIER:      # also NaN
                raise ValueError("multiplier must be in (0, %g]; got %r"
                                 % (MAX_MULTIPLIER, self.multiplier))
        if self.input_size is not None:
            self.input_size = _ints([self.input_size], "input_size")[0]
            if self.input_size < 1:
                raise ValueError("input_size must be >= 1; got %d" % self.input_size)
        if isinstance(self.classes, tuple):
            self.classes = list(self.classes)
        if self.classes is not None and not isinstance(self.classes, list):
            self.classes = _ints([self.classes], "classes")[0]
        if self.classes is not None and (self.classes == [] or (
                not isinstance(self.classes, list) and self.classes < 1)):
            raise ValueError("classes must be a count >= 1 or a list of names; got %r"
                             % (self.classes,))

    @classmethod
    def from_dict(cls, data, **overrides):
        """From a run's ``config.json``, an export's or converted weights' ``-meta.json``
        (``input_shape [C, H, W]`` gives ``input_size``); ``overrides`` that are not None
        replace what the dict says."""
        if data is not None and not isinstance(data, dict):
            raise ValueError("a description is a dict (JSON object); got %s"
                             % type(data).__name__)
        data = dict(data or {})
        data.update({k: v for k, v in overrides.items() if v is not None})
        if data.get("input_size") is None and data.get("input_shape"):
            shape = _ints(data["input_shape"] if isinstance(data["input_shape"], (list, tuple))
                          else None, "input_shape") or ()
            if len(shape) != 3:
                raise ValueError("input_shape takes C,H,W; got %r" % (data["input_shape"],))
            data["input_size"] = shape[-1]
        if not isinstance(data.get("extra") or {}, dict):
            raise ValueError("extra must be a dict; got %r" % (data["extra"],))
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: data[k] for k in names if k in data}
        extra = dict(data.get("extra") or {})
        extra.update({k: v for k, v in data.items() if k not in names and k != "extra"})
        if "model" not in known:
            raise ValueError("the description names no model")
        return cls(extra=extra, **known)

    def to_dict(self):
        """The JSON-ready description: every key that is set, then ``extra``."""
        out = dict(self.extra)
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or value is None or (f.name == "p2" and not value):
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def replace(self, **changes):
        """A copy with ``changes`` (None values are ignored)."""
        data = self.to_dict()
        data.update({k: v for k, v in changes.items() if v is not None})
        return ModelSpec.from_dict(data)

    @property
    def info(self):
        return model_info(self.model)

    def arch_kwargs(self):
        """``get_model`` keyword arguments of the architecture keys, checked against the zoo
        entry's config (its number of stages, its block kind); ValueError naming the key."""
        info = self.info
        config = CONFIGS.get(info.config, {})
        kwargs = {}
        if self.multiplier is not None:
            kwargs["multiplier"] = self.multiplier
        if self.depths is not None:
            if info.task != "classification":
                raise ValueError("depths applies to classification models, not %s"
                                 % self.model)
            stages = len(config["stages"])
            if len(self.depths) != stages or min(self.depths) < 1:
                raise ValueError("depths (%s has %d stages) takes %d numbers >= 1; got %s" % (
                    self.model, stages, stages, ",".join(map(str, self.depths))))
            kwargs["depths"] = self.depths
        if self.groups is not None:
            if len(self.groups) != 2 or min(self.groups) < 1:
                raise ValueError("groups takes G1,G2 (two numbers >= 1); got %s"
                                 % ",".join(map(str, self.groups)))
            kwargs["groups"] = self.groups
        if self.relu:
            kwargs["relu"] = self.relu
        if self.p2:
            kwargs["p2"] = True
        if config and config.get("block") != "igcv3":
            bad = [k for k in ("groups", "relu", "p2") if k in kwargs]
            if bad:
                raise ValueError("%s changes IGCV3 blocks; %s has %s blocks"
                                 % (bad[0], self.model, config.get("block")))
        return kwargs

    def build(self, **kwargs):
        """The network these weights fit (parameters created, not initialised)."""
        return create(self.model, classes=self.classes, **self.arch_kwargs(), **kwargs)

    def export_name(self, input_size=None):
        """The name exports carry: the zoo name, plus the width when a multiplier is given
        (``cifar_igcv3_d_0.5-w0.5``), plus the input size when it is not the one the zoo
        name says (``ssdlite_320_igcv3_w_coco-w0.5-128``)."""
        name = self.model
        if self.multiplier is not None:
            name += "-w%g" % self.multiplier
        if input_size is not None and "_%d_" % input_size not in "_%s_" % self.model:
            name += "-%d" % input_size
        return name
