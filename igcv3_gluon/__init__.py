"""igcv3-gluon: IGCV3 (Sun, Li, Liu, Wang, BMVC 2018) in MXNet/Gluon."""
from .version import __version__
from . import nn, models
from .models import get_model, list_models

__all__ = ["__version__", "nn", "models", "get_model", "list_models"]
