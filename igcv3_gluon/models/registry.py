"""The zoo's registry: named models as data (``ModelInfo``: which config, width, input, the
paper's figures), registered by ``zoo.py``, and ``create`` which builds one without weights
(``zoo.get_model`` adds the published weights; timm's ``_registry.py`` and ``_builder.py``)."""
from collections import OrderedDict
from dataclasses import dataclass, field

from .builder import build

__all__ = ["ModelInfo", "register_model", "list_models", "model_info", "create"]


@dataclass
class ModelInfo:
    name: str
    config: str
    multiplier: float = 1.0
    cifar: bool = False
    depths: tuple = None
    classes: int = 1000
    paper: dict = field(default_factory=dict)   # params, madds, with_fc, source
    kwargs: dict = field(default_factory=dict)
    constructor: object = None                  # callable(classes=, **kwargs) -> Block
    task: str = "classification"                # or "detection"
    input_size: int = None                      # default: 32 for CIFAR models, else 224

    @property
    def input_shape(self):
        side = self.input_size or (32 if self.cifar else 224)
        return (1, 3, side, side)


_MODELS = OrderedDict()


def register_model(info):
    """Add a ``ModelInfo`` to the zoo (an entry with ``constructor`` set is built by it,
    others by the config builder)."""
    if info.name in _MODELS:
        raise ValueError("model %r is registered already" % info.name)
    _MODELS[info.name] = info
    return info


def list_models(task=None):
    """Names of the zoo models (of ``task``: "classification" or "detection"; default all),
    in registration order."""
    return [name for name, info in _MODELS.items() if task is None or info.task == task]


def model_info(name):
    if name not in _MODELS:
        raise ValueError("unknown model %r; known models: %s" % (name, ", ".join(_MODELS)))
    return _MODELS[name]


def create(name, classes=None, **kwargs):
    """Zoo model ``name`` built (parameters created, not initialised): ``classes`` defaults
    to the entry's, other keyword arguments reach its constructor or the config builder."""
    info = model_info(name)
    classes = info.classes if classes is None else classes
    args = dict(info.kwargs, **kwargs)
    if info.constructor is not None:
        return info.constructor(classes=classes, **args)
    args = dict(dict(multiplier=info.multiplier, cifar=info.cifar, depths=info.depths), **args)
    return build(info.config, classes=classes, **args)
