"""Detection inputs: the SSD training transforms, made reproducible, and the inference
preprocessing.

GluonCV's ``SSDDefaultTrainTransform`` draws its colour distortion, expansion, crop and flip
from Python's and NumPy's global random generators, so which loader process runs a sample
(and what ran there before) decides its augmentation. ``SeededSamples`` seeds both
generators from ``(seed, epoch, index)`` before transforming sample ``index``: an epoch's
augmentation is fixed, which makes a resumed run repeat exactly the batches it would have
seen (the engine's exact-resume guarantee).
"""
import random

import mxnet as mx
import numpy as np
from mxnet import gluon

from .sampler import sample_seed

__all__ = ["SeededSamples", "seeded_keys", "LightTrainTransform", "ssd_train_transform",
           "resize_normalise", "PIXEL_MEAN", "PIXEL_STD", "AUTHORS_MEAN", "AUTHORS_STD",
           "BOX_VARIANCES"]

# The box encoding of SSD's training targets and its decoding, one value for both (the
# network's decoder, models/ssdlite.py, and so the exports' graph, take it from here):
# centre offsets / 0.1 of the anchor's size, log size ratios / 0.2, as the authors' MultiBoxTarget
# and MultiBoxDetection (homles11/IGCV3 detection/symbol/symbol_builder.py:79, 103, 174).
BOX_VARIANCES = (0.1, 0.1, 0.2, 0.2)

# Normalisation is (pixel - mean) / std on 0-255 pixels, as the ImageNet recipes write it:
# the authors' SSD subtracts (123, 117, 104) and divides by nothing (std 1); GluonCV's SSD
# uses the ImageNet statistics (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225) of [0, 1] pixels.
AUTHORS_MEAN, AUTHORS_STD = (123.0, 117.0, 104.0), (1.0, 1.0, 1.0)
PIXEL_MEAN, PIXEL_STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


def seeded_keys(order, epoch, rng):
    """``EpochBatches`` keys for ``SeededSamples``: ``(index, epoch)``."""
    return [(int(i), int(epoch)) for i in order]


class SeededSamples(gluon.data.Dataset):
    """``transform(*dataset[i])`` with the global random generators seeded from
    ``(seed, epoch, i)``; indexed by the ``(i, epoch)`` keys of ``seeded_keys``."""

    def __init__(self, dataset, transform, seed=0):
        self.dataset, self.transform, self.seed = dataset, transform, seed

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        index, epoch = key
        value = sample_seed(self.seed, epoch, index)
        random.seed(value)
        np.random.seed(value)
        return self.transform(*self.dataset[index])


def _in_unit_range(mean, std):
    """GluonCV's transforms normalise [0, 1] pixels: (x / 255 - m / 255) / (s / 255)."""
    return tuple(m / 255.0 for m in mean), tuple(v / 255.0 for v in std)


def _to_tensor(img, mean, std):
    """HWC uint8 -> CHW float32 ``(pixel - mean) / std`` (0-255 units)."""
    mean, std = _in_unit_range(mean, std)
    return mx.nd.image.normalize(mx.nd.image.to_tensor(img), mean=mean, std=std)


def resize_normalise(img, size, mean=PIXEL_MEAN, std=PIXEL_STD):
    """Inference preprocessing: resize to size x size, normalise, add the batch axis."""
    return _to_tensor(mx.image.imresize(img, size, size, interp=1), mean, std).expand_dims(0)


class LightTrainTransform:
    """``--augment light``: resize + horizontal flip only, then SSD's training targets (the
    same matching as GluonCV's transform). For small, clean data sets where the full SSD
    augmentation (expansion up to 4x, constrained crops) needs far more epochs."""

    def __init__(self, size, anchors, mean=PIXEL_MEAN, std=PIXEL_STD):
        from gluoncv.model_zoo.ssd.target import SSDTargetGenerator
        self.size, self.anchors, self.mean, self.std = size, anchors, mean, std
        self.targets = SSDTargetGenerator(iou_thresh=0.5, stds=BOX_VARIANCES,
                                          negative_mining_ratio=-1)

    def __call__(self, src, label):
        from gluoncv.data.transforms import bbox as tbbox
        from gluoncv.data.transforms import image as timage
        h, w = src.shape[:2]
        img = timage.imresize(src, self.size, self.size, interp=1)
        bbox = tbbox.resize(label, (w, h), (self.size, self.size))
        img, flips = timage.random_flip(img, px=0.5)
        bbox = tbbox.flip(bbox, (self.size, self.size), flip_x=flips[0])
        x = _to_tensor(img, self.mean, self.std)
        gt_bboxes = mx.nd.array(bbox[np.newaxis, :, :4])
        gt_ids = mx.nd.array(bbox[np.newaxis, :, 4:5])
        cls_targets, box_targets, _ = self.targets(self.anchors, None, gt_bboxes, gt_ids)
        return x, cls_targets[0], box_targets[0]


def ssd_train_transform(kind, size, anchors, mean=PIXEL_MEAN, std=PIXEL_STD):
    """``kind`` "ssd" (GluonCV's SSD augmentation, the paper's) or "light"; ``mean``/``std``
    in 0-255 units (GluonCV's random expansion fills with the mean pixel)."""
    if kind == "light":
        return LightTrainTransform(size, anchors, mean, std)
    from gluoncv.data.transforms.presets.ssd import SSDDefaultTrainTransform
    mean, std = _in_unit_range(mean, std)
    return SSDDefaultTrainTransform(size, size, anchors, mean=mean, std=std,
                                    box_norm=BOX_VARIANCES)
