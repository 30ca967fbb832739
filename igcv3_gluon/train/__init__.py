"""The training toolkit shared by train_cifar.py, train_imagenet.py and train_ssdlite.py:
one run engine (``engine.fit``) driven by a task per kind of model (``classifier``,
``detector``), lr schedules, atomic checkpoints, run logs and curves, devices / kvstore /
Horovod, the optimiser, mixed precision, and the command-line layer."""
from .checkpoint import CheckpointManager
from .classifier import ClassifierTask, topk_accuracy
from .context import Cluster, make_cluster
from .engine import RunConfig, Task, fit
from .logbook import RunLog, plot_curves
from .optim import SGDConfig, apply_wd_rule, make_trainer
from .schedule import LRSchedule

__all__ = ["CheckpointManager", "ClassifierTask", "topk_accuracy", "Cluster", "make_cluster",
           "RunConfig", "Task", "fit", "RunLog", "plot_curves", "SGDConfig", "apply_wd_rule",
           "make_trainer", "LRSchedule"]
