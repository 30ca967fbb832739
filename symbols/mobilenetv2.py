"""MobileNetV2 (the paper's baseline) as an MXNet symbol for the Module API."""
from symbols.common import symbol_from_config


def get_symbol(num_classes=1000, multiplier=1.0, **kwargs):
    """``SoftmaxOutput`` symbol of ``mobilenetv2``; ``kwargs`` reach
    ``igcv3_gluon.models.build`` (e.g. ``cifar=True``, ``groups=(2, 4)``)."""
    return symbol_from_config("mobilenetv2", num_classes=num_classes, multiplier=multiplier, **kwargs)
