"""Devices and kvstore: ``--gpus 0,1`` / ``--cpus N`` -> contexts; ``--kvstore`` -> store."""
import os

import mxnet as mx

from ..errors import UsageError

__all__ = ["KVSTORES", "parse_devices", "make_kvstore", "split_global_batch", "is_distributed"]

KVSTORES = ("local", "device", "nccl", "dist_sync", "dist_device_sync", "dist_async")


def parse_devices(gpus=None, cpus=None):
    """Contexts for ``--gpus "0,1"`` (mx.gpu) or ``--cpus N`` (N CPU contexts, for testing
    data parallelism without GPUs); default: one CPU context."""
    if gpus:
        try:
            ids = [int(g) for g in str(gpus).split(",") if g.strip() != ""]
        except ValueError:
            raise UsageError("--gpus takes comma-separated GPU ids such as 0,1,2,3; got %r"
                             % gpus)
        available = mx.context.num_gpus()
        if available == 0:
            raise UsageError("--gpus %s: no GPU is visible to MXNet (CPU build, or no driver); "
                             "install mxnet-cu112 on a GPU machine or use --cpus N" % gpus)
        bad = [i for i in ids if i < 0 or i >= available]
        if bad or not ids:
            raise UsageError("--gpus %s: this machine has GPUs 0..%d" % (gpus, available - 1))
        return [mx.gpu(i) for i in ids]
    n = 1 if cpus is None else int(cpus)
    if n < 1:
        raise UsageError("--cpus must be at least 1, got %d" % n)
    return [mx.cpu(i) for i in range(n)]


def is_distributed(kvstore):
    return kvstore.startswith("dist")


def make_kvstore(name, contexts):
    """Create the kvstore (None for a single device without a ``dist_*`` store). ``dist_*`` needs the
    DMLC_* environment of MXNet's parameter-server launcher (see ``train.launch``)."""
    if name not in KVSTORES:
        raise UsageError("--kvstore %s: choose one of %s" % (name, ", ".join(KVSTORES)))
    if name == "nccl" and contexts[0].device_type != "gpu":
        raise UsageError("--kvstore nccl needs --gpus; use device or local on CPU contexts")
    if is_distributed(name) and "DMLC_ROLE" not in os.environ:
        raise UsageError("--kvstore %s needs MXNet's parameter-server environment (DMLC_ROLE, "
                         "DMLC_PS_ROOT_URI, ...): start the workers with "
                         "`python -m igcv3_gluon.train.launch` (README, Distributed)" % name)
    if not is_distributed(name) and len(contexts) == 1:
        return None                  # one device: nothing to aggregate
    if is_distributed(name):         # one parameter-server connection per process (a
        if name not in _DIST_STORES:  # retraining stage reuses it)
            _DIST_STORES[name] = mx.kv.create(name)
        return _DIST_STORES[name]
    return mx.kv.create(name)


_DIST_STORES = {}


def split_global_batch(global_batch, num_workers, contexts):
    """Per-worker batch for a global batch over ``num_workers`` x ``len(contexts)``."""
    devices = num_workers * len(contexts)
    if global_batch % devices:
        raise UsageError("--batch-size %d does not split over %d device(s) (%d worker(s) x %d "
                         "context(s)): use a multiple of %d"
                         % (global_batch, devices, num_workers, len(contexts), devices))
    return global_batch // num_workers
