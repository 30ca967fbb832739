"""Networks of the IGCV3 paper, built from config tables by one builder, and the zoo."""
from .builder import ClassificationNet, build, resolve_config, scale_channels
from .configs import CONFIGS
from .registry import ModelInfo, create, list_models, model_info, register_model
from .zoo import get_model

__all__ = ["CONFIGS", "ClassificationNet", "build", "resolve_config", "scale_channels",
           "ModelInfo", "create", "get_model", "list_models", "register_model", "model_info"]
