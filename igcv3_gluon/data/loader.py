"""The CIFAR training pipeline: 4-pixel zero pad, random 32x32 crop, horizontal flip,
per-channel mean/std normalisation (paper Sec. 4.1), through a multi-worker Gluon DataLoader.

The random crop offsets and flips of an epoch are drawn in the main process by
``EpochBatches`` (``data/sampler.py``) from ``(seed, epoch)`` and travel with the indices to
the loader's worker processes, so that

* every worker process applies different augmentation (no forked-RNG duplicates),
* an epoch is reproducible, which makes resuming mid-run exact, and
* a distributed worker reads its share of every global batch (``rank``, ``num_parts``).
"""
import numpy as np
from mxnet import gluon

from .sampler import EpochBatches, LoaderBatches

__all__ = ["AugmentedImages", "channel_stats", "crop_flip_keys", "make_loader"]


def channel_stats(images):
    """Per-channel mean and std (0-255 scale) of uint8 NHWC images."""
    flat = images.reshape(-1, images.shape[-1]).astype(np.float64)
    return flat.mean(0).astype(np.float32), np.maximum(flat.std(0), 1e-3).astype(np.float32)


class AugmentedImages(gluon.data.Dataset):
    """uint8 NHWC images + labels; ``self[(i, dy, dx, flip)]`` returns the crop of the padded
    image at offset (dy, dx), flipped if asked, as normalised float32 CHW."""

    def __init__(self, images, labels, mean, std, pad=4):
        self.pad = pad
        self.images = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0))) if pad else images
        self.labels = np.asarray(labels, dtype=np.float32)
        self.size = images.shape[1]
        self.scale = (1.0 / np.asarray(std, np.float32)).reshape(3, 1, 1)
        self.shift = (np.asarray(mean, np.float32) / np.asarray(std, np.float32)).reshape(3, 1, 1)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            i, dy, dx, flip = key
        else:
            i, dy, dx, flip = key, self.pad, self.pad, False
        img = self.images[i, dy:dy + self.size, dx:dx + self.size]
        if flip:
            img = img[:, ::-1]
        chw = img.transpose(2, 0, 1).astype(np.float32) * self.scale - self.shift
        return chw, self.labels[i]


def crop_flip_keys(pad, flip):
    """``keys`` for ``EpochBatches``: ``(index, dy, dx, flip)`` per sample, drawn from the
    epoch's random generator (``AugmentedImages`` reads them)."""
    def keys(order, epoch, rng):
        if rng is None:                                  # evaluation: centre, unflipped
            return [(int(i), pad, pad, False) for i in order]
        offsets = rng.integers(0, 2 * pad + 1, size=(len(order), 2))
        flips = rng.random(len(order)) < 0.5 if flip else np.zeros(len(order), bool)
        return list(zip(order.tolist(), offsets[:, 0].tolist(), offsets[:, 1].tolist(),
                        flips.tolist()))
    return keys


def make_loader(images, labels, mean, std, global_batch, train, seed=0, flip=True, workers=2,
                rank=0, num_parts=1, pad=4):
    """Batches (``LoaderBatches``: a DataLoader driven by ``EpochBatches``) over uint8 NHWC
    ``images``: worker ``rank``'s share of every global batch (training), or every image
    once (evaluation)."""
    pad = pad if train else 0
    dataset = AugmentedImages(images, labels, mean, std, pad=pad)
    sampler = EpochBatches(len(dataset), global_batch, train, seed, rank if train else 0,
                           num_parts if train else 1, crop_flip_keys(pad, flip and train))
    loader = gluon.data.DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                                   thread_pool=False)
    return LoaderBatches(loader, sampler)
