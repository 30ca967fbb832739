"""Which samples every worker reads in every epoch: one sampler for all tasks.

An epoch is a permutation of the whole set drawn from ``(seed, epoch)``, cut into *global*
batches; worker ``rank`` of ``num_parts`` takes the ``rank``-th slice of every global batch
(and ``split_and_load`` then gives each of its devices a slice of that). So the images of a
step are the same whether one process with N devices or N workers with one device each run
it, an epoch is reproducible, and an interrupted epoch resumes by skipping the batches done.

``keys`` attaches per-sample data drawn from the same ``(seed, epoch)`` to the indices (the
CIFAR crop offsets and flips, the detector's augmentation seed), so augmentation is decided
in the main process and does not depend on which loader worker runs it.
"""
import numpy as np
from mxnet import gluon

__all__ = ["EpochBatches", "LoaderBatches", "sample_seed"]


def sample_seed(seed, epoch, index):
    """A 32-bit seed for sample ``index`` in ``epoch`` of a run seeded ``seed``."""
    return int(np.random.default_rng([seed, epoch, index, 7]).integers(0, 2 ** 31 - 1))


class EpochBatches(gluon.data.Sampler):
    """Batches of sample keys for one worker and one epoch (``set_epoch(epoch, start)``).

    Training (``shuffle=True``): full global batches of ``global_batch`` samples, worker
    ``rank`` taking its ``global_batch // num_parts`` share of each. Evaluation
    (``shuffle=False``): every sample once, in order, in batches of ``global_batch`` (the
    last one short), the same on every worker.

    ``keys(order, epoch, rng)``, if given, returns one key per position of ``order`` (the
    epoch's permutation) from ``rng`` (seeded by ``seed, epoch``); by default a key is the
    sample index. ``len`` is the number of batches the iterator yields (after ``start``);
    ``batches_per_epoch`` the whole epoch's.
    """

    def __init__(self, num_samples, global_batch, shuffle=True, seed=0, rank=0, num_parts=1,
                 keys=None):
        if global_batch % num_parts:
            raise ValueError("a global batch of %d does not split over %d workers"
                             % (global_batch, num_parts))
        self.num_samples, self.global_batch, self.shuffle = num_samples, global_batch, shuffle
        self.seed, self.rank, self.num_parts, self.keys = seed, rank, num_parts, keys
        self.share = global_batch // num_parts
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch, start_batch=0):
        self.epoch, self.start = epoch, start_batch

    @property
    def batches_per_epoch(self):
        if self.shuffle:
            return self.num_samples // self.global_batch
        return -(-self.num_samples // self.global_batch)

    def __len__(self):
        return max(0, self.batches_per_epoch - self.start)

    def __iter__(self):
        if not self.shuffle:
            order = np.arange(self.num_samples)
            keys = order.tolist() if self.keys is None else self.keys(order, self.epoch, None)
            for b in range(self.start, self.batches_per_epoch):
                yield keys[b * self.global_batch:(b + 1) * self.global_batch]
            return
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.num_samples)
        if self.keys is None:
            keys = order.tolist()
        else:
            keys = self.keys(order, self.epoch, np.random.default_rng([self.seed, self.epoch, 1]))
        for b in range(self.start, self.batches_per_epoch):
            first = b * self.global_batch + self.rank * self.share
            yield keys[first:first + self.share]


class LoaderBatches:
    """A DataLoader driven by an ``EpochBatches`` sampler, as the run engine takes batches:
    ``set_epoch(epoch, start_batch)``, ``batches_per_epoch``, iteration."""

    def __init__(self, loader, sampler):
        self.loader, self.sampler = loader, sampler

    def set_epoch(self, epoch, start_batch=0):
        self.sampler.set_epoch(epoch, start_batch)

    @property
    def batches_per_epoch(self):
        return self.sampler.batches_per_epoch

    def __len__(self):
        return len(self.sampler)

    def __iter__(self):
        return iter(self.loader)
