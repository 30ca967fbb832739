"""The accuracy gate of an INT8 model (``deploy quantize`` in MXNet, ``deploy openvino --int8``
in OpenVINO): the float model's top-1 and the INT8 model's on the same labelled images, and
the INT8 model is kept only if it lost at most ``max_drop`` points.

A gate proves something only on data the model was trained for, so the data are checked
before anything is quantized: labels that are whole class numbers of the model
(``check_labels``), images preprocessed as the model's inputs are (``check_images``: float, in
the range ``(pixel - mean) / std`` gives 0-255 pixels, when the export says its
normalisation), and a float model that does better than chance on them
(``check_reference``): labels of another data set, or raw pixels fed to a model trained on
normalised ones, give a float top-1 at chance, where "int8 lost 0 points" means nothing.
"""
import math
from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from .accuracy import accuracy, logits

__all__ = ["REJECTED_SUFFIX", "GateResult", "drop_points", "accepts", "check_labels",
           "check_images", "check_reference", "check_gate_data", "normalisation_of"]

# a model the gate refuses is kept under OUT + this, for inspection
REJECTED_SUFFIX = "-REJECTED"


def drop_points(fp32_accuracy, int8_accuracy):
    """The INT8 model's loss in percentage points (accuracies are fractions)."""
    return 100.0 * (float(fp32_accuracy) - float(int8_accuracy))


def accepts(fp32_accuracy, int8_accuracy, max_drop):
    """Whether the gate keeps an INT8 model: it lost at most ``max_drop`` points (a loss equal
    to the limit is kept; 1e-9 absorbs the float rounding of the two fractions)."""
    return drop_points(fp32_accuracy, int8_accuracy) <= float(max_drop) + 1e-9


@dataclass
class GateResult:
    """What a gate measured: accuracies as fractions on ``images`` images (``labelled``:
    real labels; otherwise the float model's own predictions stand in for them), the limit
    ``max_drop`` in points."""
    fp32_accuracy: float
    int8_accuracy: float
    labelled: bool
    images: int
    max_drop: float

    @property
    def drop(self):
        return drop_points(self.fp32_accuracy, self.int8_accuracy)

    @property
    def accepted(self):
        return accepts(self.fp32_accuracy, self.int8_accuracy, self.max_drop)


def normalisation_of(meta):
    """``(mean, std)`` on 0-255 pixels from an export's description, or None when it does not
    say (or says something that is not three finite numbers each, std > 0)."""
    try:
        mean = [float(v) for v in meta["mean"]]
        std = [float(v) for v in meta.get("std") or (1.0, 1.0, 1.0)]
    except (KeyError, TypeError, ValueError):
        return None
    if not (len(mean) == len(std) and all(map(math.isfinite, mean + std)) and min(std) > 0):
        return None
    return mean, std


def check_labels(labels, classes, what="the gate's labels"):
    """``labels`` as int64 class numbers, or ``DataError``: they must be whole numbers in
    ``0 .. classes - 1`` (labels 50-59 of a 10-class model, or 2.5, are another data set's,
    not this model's)."""
    y = np.asarray(labels)
    if y.ndim != 1 or not len(y) or not np.issubdtype(y.dtype, np.number):
        raise DataError("%s must be a list of class numbers; got shape %s of %s"
                        % (what, y.shape, y.dtype))
    values = y.astype(np.float64)
    whole = np.isfinite(values) & (values == np.round(values))
    if not whole.all():
        raise DataError("%s must be whole class numbers; label %d is %s" % (
            what, int(np.flatnonzero(~whole)[0]), values[~whole][0]))
    if values.min() < 0 or values.max() >= classes:
        raise DataError("%s range %d..%d; the model has %d classes (0..%d): give labels of "
                        "the data set the model was trained for" % (
                            what, values.min(), values.max(), classes, classes - 1))
    return values.astype(np.int64)


def check_images(images, normalisation=None, what="the gate's images"):
    """``images`` as float32, or ``DataError`` when they cannot be the model's input: integers
    (raw pixels: the model takes preprocessed float32), values that are not finite, or, when
    the model's ``normalisation`` ``(mean, std)`` on 0-255 pixels is known, values beyond the
    range ``(pixel - mean) / std`` gives (by more than a quarter of that range)."""
    x = np.asarray(images)
    if x.dtype == bool or np.issubdtype(x.dtype, np.integer):
        raise DataError("%s are %s integers (raw pixels?); the model takes float32 images "
                        "preprocessed as its training did%s" % (
                            what, x.dtype, _formula(normalisation)))
    x = x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        raise DataError("%s hold %d values that are not finite numbers" % (what, bad.sum()))
    if normalisation is not None and x.size:
        mean, std = (np.asarray(v, np.float64) for v in normalisation)
        low, high = float(((0 - mean) / std).min()), float(((255 - mean) / std).max())
        margin = 0.25 * (high - low)
        if x.min() < low - margin or x.max() > high + margin:
            raise DataError("%s span %.3g..%.3g; the model's inputs%s span %.3g..%.3g: "
                            "preprocess the images as its training did" % (
                                what, x.min(), x.max(), _formula(normalisation), low, high))
    return x


def _formula(normalisation):
    if normalisation is None:
        return ""
    mean, std = normalisation
    return " ((pixel - %s) / %s of 0-255 pixels)" % (",".join("%g" % v for v in mean),
                                                      ",".join("%g" % v for v in std))


def check_reference(fp32_accuracy, classes, images):
    """``DataError`` when the float model's top-1 on the gate's labelled images is not above
    chance (``1 / classes``) by three standard errors: the labels or the images'
    preprocessing are not the model's, and a gate on them proves nothing."""
    if classes < 2 or images < 1:
        return
    chance = 1.0 / classes
    fewest = int(math.floor(9 * chance / (1 - chance))) + 1    # where 100% clears the bar
    if images < fewest:
        raise DataError("the gate's %d labelled image(s) are too few to tell a %d-class model "
                        "from chance (three standard errors above %.2f%% need at least %d "
                        "images even at 100%%): give more labelled images"
                        % (images, classes, 100 * chance, fewest))
    margin = 3 * math.sqrt(chance * (1 - chance) / images)
    if fp32_accuracy <= chance + margin:
        raise DataError("the float model scores %.2f%% on the gate's %d labelled images, no "
                        "better than chance (%.2f%% for %d classes): the labels or the "
                        "images' preprocessing are not the model's, and a gate on them proves "
                        "nothing; give data of the set the model was trained for"
                        % (100 * fp32_accuracy, images, 100 * chance, classes))


def check_gate_data(model, images, labels, normalisation=None):
    """The gate's labelled images checked against the float ``model`` (an MXNet block or an
    OpenVINO compiled model): ``check_images``, ``check_labels`` (the class count read off
    the model's output) and ``check_reference``. Returns ``(images, labels, the model's
    top-1)``; ``DataError`` for data a gate cannot judge on."""
    x = check_images(images, normalisation)
    classes = int(logits(model, x[:1]).shape[-1])
    y = check_labels(labels, classes)
    top1 = accuracy(model, x, y)[0]
    check_reference(top1, classes, len(y))
    return x, y, top1
