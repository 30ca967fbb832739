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
           "resize_normalise", "PIXEL_MEAN", "PIXEL_STD"]

# GluonCV's SSD normalisation (ImageNet statistics of [0, 1] pixels)
PIXEL_MEAN, PIXEL_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


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


def _to_tensor(img, mean, std):
    """HWC uint8 -> normalised CHW float32. ``std`` None: mean subtraction on 0-255 pixels
    (the authors' MXNet SSD), else GluonCV's ``(x / 255 - mean) / std``."""
    if std is None:
        x = img.astype("float32").transpose((2, 0, 1))
        return x - mx.nd.array(mean).reshape((3, 1, 1))
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
        self.targets = SSDTargetGenerator(iou_thresh=0.5, stds=(0.1, 0.1, 0.2, 0.2),
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
    """``kind`` "ssd" (GluonCV's SSD augmentation, the paper's) or "light"."""
    if kind == "light":
        return LightTrainTransform(size, anchors, mean, std)
    from gluoncv.data.transforms.presets.ssd import SSDDefaultTrainTransform
    if std is None:     # mean-only on 0-255 pixels: GluonCV computes (x / 255 - m) / s, and
        mean, std = tuple(m / 255.0 for m in mean), (1 / 255.0,) * 3     # this is x - mean
    return SSDDefaultTrainTransform(size, size, anchors, mean=mean, std=std)
