"""IGCV3-W (G1 = G2 = 4; Table 5) as an MXNet symbol for the Module API."""
from symbols.common import symbol_from_config


def get_symbol(num_classes=1000, multiplier=1.0, dtype="float32", **kwargs):
    """``SoftmaxOutput`` symbol of ``igcv3_w``; ``kwargs`` reach
    ``igcv3_gluon.models.build`` (e.g. ``cifar=True``, ``groups=(2, 4)``); ``dtype='float16'``
    casts the graph (``symbols.common.symbol_from_config``)."""
    return symbol_from_config("igcv3_w", num_classes=num_classes, multiplier=multiplier,
                              dtype=dtype, **kwargs)
