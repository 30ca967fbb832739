"""Data sets and input pipelines."""
from .cifar import DATASETS, load_cifar, load_dataset, load_digits32, write_cifar_binary
from .loader import AugmentedImages, channel_stats, crop_flip_keys, make_loader
from .sampler import EpochBatches, LoaderBatches, sample_seed

__all__ = ["DATASETS", "load_cifar", "load_dataset", "load_digits32", "write_cifar_binary",
           "AugmentedImages", "EpochBatches", "LoaderBatches", "channel_stats", "crop_flip_keys",
           "make_loader", "sample_seed"]
