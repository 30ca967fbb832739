"""The training toolkit shared by train_cifar.py, train_imagenet.py and train_ssdlite.py:
lr schedules, atomic checkpoints and resume, run logs and curves, devices and kvstore,
the classification epoch loop and run."""
from .checkpoint import CheckpointManager, atomic_write
from .context import make_kvstore, parse_devices, split_global_batch
from .logbook import RunLog, plot_curves, say
from .loop import evaluate, train_epoch
from .schedule import LRSchedule, parse_steps

__all__ = ["CheckpointManager", "atomic_write", "make_kvstore", "parse_devices",
           "split_global_batch", "RunLog", "plot_curves", "say", "evaluate", "train_epoch",
           "LRSchedule", "parse_steps"]
