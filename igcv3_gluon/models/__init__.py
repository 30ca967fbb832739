"""Networks of the IGCV3 paper, built from config tables by one builder, and the zoo."""
from .configs import CONFIGS
from .builder import ClassificationNet, build, resolve_config, scale_channels
from .zoo import get_model, list_models, register_model, model_info

__all__ = ["CONFIGS", "ClassificationNet", "build", "resolve_config", "scale_channels",
           "get_model", "list_models", "register_model", "model_info"]
