"""The embedded digits set as a trained digits run sees it: preprocessed NCHW arrays, for
calibrating and checking deployed models (``deploy quantize`` / ``openvino --digits-config``)."""
import json
import os

import numpy as np

from ..utils import read_json_object
from .cifar import load_dataset

__all__ = ["digits_arrays", "digits_batches"]


def digits_arrays(config_path):
    """``((train_x, train_y), (test_x, test_y))`` of the digits set (3x32x32 float32, NCHW),
    normalised with the mean/std recorded in a digits run's ``config.json``. ValueError
    (naming the file) when it is not such a config."""
    if not os.path.isfile(config_path):
        raise ValueError("%s does not exist (the config.json of a digits run, e.g. "
                         "runs/demo/config.json)" % config_path)
    try:
        config = read_json_object(config_path)
    except ValueError:
        raise ValueError("%s is not a JSON file (the config.json of a digits run)"
                         % config_path) from None
    if config.get("dataset") != "digits":
        raise ValueError("%s is not the config of a digits run" % config_path)
    mean, std = (_channel_values(config.get(key)) for key in ("mean", "std"))
    if mean is None or std is None or std.min() <= 0:
        raise ValueError("%s holds mean %s and std %s; a digits run's config.json has three "
                         "numbers each (std > 0): repair it, or give the config.json the run "
                         "wrote" % (config_path, json.dumps(config.get("mean")),
                                    json.dumps(config.get("std"))))
    train_x, train_y, test_x, test_y, _ = load_dataset("digits")

    def prep(x):
        return np.ascontiguousarray(((x.astype(np.float32) - mean) / std).transpose(0, 3, 1, 2))
    return (prep(train_x), np.asarray(train_y)), (prep(test_x), np.asarray(test_y))


def _channel_values(value):
    """Three finite numbers (one per colour channel) as float32, or None."""
    try:
        values = np.array(value, np.float64)
    except (TypeError, ValueError):
        return None
    if values.shape != (3,) or not np.isfinite(values).all():
        return None
    return values.astype(np.float32)


def digits_batches(config_path, batch):
    """Calibration batches of ``batch`` digits training images (whole batches only) and the
    test images and labels, preprocessed as the digits run of ``config_path`` saw them."""
    (train_x, _), (test_x, test_y) = digits_arrays(config_path)
    calib = [train_x[i:i + batch] for i in range(0, len(train_x) - batch + 1, batch)]
    return calib, test_x, test_y
