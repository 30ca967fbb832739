"""The embedded digits set as a trained digits run sees it: preprocessed NCHW arrays, for
calibrating and checking deployed models (``deploy quantize`` / ``openvino --digits-config``)."""
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
    if config.get("dataset") != "digits" or "mean" not in config:
        raise ValueError("%s is not the config of a digits run" % config_path)
    train_x, train_y, test_x, test_y, _ = load_dataset("digits")
    mean = np.array(config["mean"], np.float32)
    std = np.array(config["std"], np.float32)

    def prep(x):
        return np.ascontiguousarray(((x.astype(np.float32) - mean) / std).transpose(0, 3, 1, 2))
    return (prep(train_x), np.asarray(train_y)), (prep(test_x), np.asarray(test_y))


def digits_batches(config_path, batch):
    """Calibration batches of ``batch`` digits training images (whole batches only) and the
    test images and labels, preprocessed as the digits run of ``config_path`` saw them."""
    (train_x, _), (test_x, test_y) = digits_arrays(config_path)
    calib = [train_x[i:i + batch] for i in range(0, len(train_x) - batch + 1, batch)]
    return calib, test_x, test_y
