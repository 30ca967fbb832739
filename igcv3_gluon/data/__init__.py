"""Data sets and input pipelines."""
from .cifar import DATASETS, load_cifar, load_dataset, load_digits32, write_cifar_binary
from .loader import AugmentedImages, EpochSampler, channel_stats, make_loader

__all__ = ["DATASETS", "load_cifar", "load_dataset", "load_digits32", "write_cifar_binary",
           "AugmentedImages", "EpochSampler", "channel_stats", "make_loader"]
