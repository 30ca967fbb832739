"""Who trains: this process's devices, the kvstore (or Horovod) joining the workers, this
worker's rank. ``make_cluster(kvstore, contexts)`` is the one place that knows the engines:

* ``local`` / ``device`` / ``nccl``: one process, gradients summed over its devices;
* ``dist_sync`` / ``dist_device_sync``: MXNet's parameter server (ps-lite), one process per
  machine (or per worker), gradients summed over all workers (``train.launch`` starts them);
* ``horovod``: one process per device (``horovodrun -np N``), gradients *averaged* over the
  ranks by ring allreduce (Gloo on CPUs, NCCL on GPUs).
"""
import os

import mxnet as mx

__all__ = ["KVSTORES", "Cluster", "make_cluster", "is_distributed", "available_gpus"]

KVSTORES = ("local", "device", "nccl", "dist_sync", "dist_device_sync", "horovod")


def is_distributed(kvstore):
    return kvstore.startswith("dist") or kvstore == "horovod"


def available_gpus():
    """GPUs visible to MXNet (0 on a CPU build)."""
    return mx.context.num_gpus()


class Cluster:
    """This worker's place in the run. ``kv`` is the kvstore (None for one device, or for
    Horovod), ``rank``/``num_workers`` the worker's index and count, ``contexts`` its devices."""

    def __init__(self, kind, contexts, kv=None, rank=0, num_workers=1):
        self.kind, self.contexts, self.kv = kind, list(contexts), kv
        self.rank, self.num_workers = rank, num_workers

    @property
    def horovod(self):
        return self.kind == "horovod"

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def distributed(self):
        return is_distributed(self.kind)

    def worker_batch(self, global_batch):
        """This worker's share of a global batch (split again over its devices)."""
        devices = self.num_workers * len(self.contexts)
        if global_batch % devices:
            raise ValueError("a global batch of %d does not split over %d device(s) (%d "
                             "worker(s) x %d context(s)): use a multiple of %d"
                             % (global_batch, devices, self.num_workers, len(self.contexts),
                                devices))
        return global_batch // self.num_workers

    def gradient_divisor(self, divisor):
        """What to pass ``trainer.step`` for gradients divided by ``divisor`` once summed over
        every worker: Horovod averages over the ranks itself, the kvstores sum."""
        return divisor / self.num_workers if self.horovod else divisor

    def hosts(self, host):
        """The host of every worker, in rank order, given this one's: one process's own;
        every rank's under Horovod (gathered); None for a parameter-server job, whose
        workers' hosts the engine does not gather (``num_workers`` says how many)."""
        if self.horovod and self.num_workers > 1:
            import horovod.mxnet as hvd
            return list(hvd.allgather_object(host))
        return None if self.num_workers > 1 else [host]

    def broadcast(self, net):
        """Make every worker start from rank 0's parameters (the kvstores do it when the
        Trainer initialises its keys; Horovod needs it said)."""
        if self.horovod and self.num_workers > 1:
            import horovod.mxnet as hvd
            hvd.broadcast_parameters(net.collect_params(), root_rank=0)


_STORES = {}           # one parameter-server connection per process (a retraining stage
                       # reuses the first stage's)


def make_cluster(kind, contexts):
    """The ``Cluster`` for kvstore ``kind`` over ``contexts`` (see the module doc)."""
    if kind not in KVSTORES:
        raise ValueError("unknown kvstore %r: choose one of %s" % (kind, ", ".join(KVSTORES)))
    gpu = contexts[0].device_type == "gpu"
    if kind == "nccl" and not gpu:
        raise ValueError("the nccl kvstore needs GPUs; use device or local on CPU contexts")
    if kind == "horovod":
        try:
            import horovod.mxnet as hvd
        except ImportError:
            raise ValueError("Horovod is not installed: pip install -e .[horovod] "
                             "(docs/training.md, Distributed training)")
        hvd.init()
        if len(contexts) > 1 and hvd.size() > 1:
            contexts = [contexts[hvd.local_rank() % len(contexts)]]   # one device per rank
        elif len(contexts) > 1:
            raise ValueError("Horovod runs one device per process: start %d processes with "
                             "horovodrun -np %d instead of giving one process %d devices"
                             % (len(contexts), len(contexts), len(contexts)))
        return Cluster(kind, contexts, None, hvd.rank(), hvd.size())
    if kind.startswith("dist"):
        if "DMLC_ROLE" not in os.environ:
            raise ValueError("kvstore %s needs MXNet's parameter-server environment (DMLC_ROLE, "
                             "DMLC_PS_ROOT_URI, ...): start the workers with "
                             "`python -m igcv3_gluon.train.launch` (docs/training.md, "
                             "Distributed training)" % kind)
        if kind not in _STORES:
            _STORES[kind] = mx.kv.create(kind)
        kv = _STORES[kind]
        return Cluster(kind, contexts, kv, kv.rank, kv.num_workers)
    if len(contexts) == 1:
        return Cluster(kind, contexts)                 # one device: nothing to aggregate
    return Cluster(kind, contexts, mx.kv.create(kind))
