"""The CIFAR training pipeline: 4-pixel zero pad, random 32x32 crop, horizontal flip,
per-channel mean/std normalisation (paper Sec. 4.1), through a multi-worker Gluon DataLoader.

The random crop offsets and flips of an epoch are drawn in the main process by
``EpochSampler`` from ``(seed, epoch)`` and travel with the indices to the workers, so that

* every worker process applies different augmentation (no forked-RNG duplicates),
* an epoch is reproducible, which makes resuming mid-run exact, and
* a distributed worker reads its own shard (``rank``, ``num_parts``).
"""
import numpy as np
from mxnet import gluon

__all__ = ["AugmentedImages", "EpochSampler", "channel_stats", "make_loader"]


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


class EpochSampler(gluon.data.Sampler):
    """Batches of ``(index, dy, dx, flip)`` keys for one epoch, drawn from ``(seed, epoch)``.

    ``train=False`` yields plain indices in order (evaluation: no shuffle, no augmentation).
    ``start_batch`` skips the first batches of the epoch (resuming an interrupted epoch).
    """

    def __init__(self, num_samples, batch_size, train=True, seed=0, pad=4, flip=True,
                 rank=0, num_parts=1):
        self.num_samples, self.batch_size, self.train = num_samples, batch_size, train
        self.seed, self.pad, self.flip = seed, pad, flip
        self.rank, self.num_parts = rank, num_parts
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch, start_batch=0):
        self.epoch, self.start_batch = epoch, start_batch

    def _shard(self):
        if not self.train:
            return np.arange(self.num_samples)[self.rank::self.num_parts]
        rng = np.random.default_rng([self.seed, self.epoch])
        return rng.permutation(self.num_samples)[self.rank::self.num_parts]

    def __len__(self):
        n = len(range(self.rank, self.num_samples, self.num_parts))
        full = n // self.batch_size if self.train else -(-n // self.batch_size)
        return max(0, full - self.start_batch)

    def __iter__(self):
        order = self._shard()
        if not self.train:
            batches = [order[i:i + self.batch_size].tolist()
                       for i in range(0, len(order), self.batch_size)]
            return iter(batches[self.start_batch:])
        rng = np.random.default_rng([self.seed, self.epoch, 1])
        offsets = rng.integers(0, 2 * self.pad + 1, size=(len(order), 2))
        flips = rng.random(len(order)) < 0.5 if self.flip else np.zeros(len(order), bool)
        batches = []
        for b in range(self.start_batch, len(order) // self.batch_size):
            sl = slice(b * self.batch_size, (b + 1) * self.batch_size)
            batches.append(list(zip(order[sl].tolist(), offsets[sl, 0].tolist(),
                                    offsets[sl, 1].tolist(), flips[sl].tolist())))
        return iter(batches)


def make_loader(images, labels, mean, std, batch_size, train, seed=0, flip=True, workers=2,
                rank=0, num_parts=1, pad=4):
    """``(DataLoader, EpochSampler)`` over uint8 NHWC ``images``."""
    dataset = AugmentedImages(images, labels, mean, std, pad=pad if train else 0)
    sampler = EpochSampler(len(dataset), batch_size, train, seed, pad if train else 0, flip,
                           rank, num_parts)
    loader = gluon.data.DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                                   thread_pool=False)
    return loader, sampler
