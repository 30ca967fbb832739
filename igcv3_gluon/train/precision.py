"""Mixed precision through MXNet's own AMP (``mxnet.contrib.amp``).

Why AMP rather than ``net.cast('float16')`` + ``multi_precision`` SGD (GluonCV's way): AMP
keeps the network's parameters in float32 (they *are* the master weights, so checkpoints
are float32 and resume under any ``--dtype``), it runs each operator in the precision MXNet
lists as safe for it (convolutions and FC in float16/bfloat16; BatchNorm, softmax and the
loss in float32, so BatchNorm statistics stay float32), it inserts the casts when the
hybridized graph is bound (exported graphs stay plain float32), and it brings dynamic loss
scaling for float16. bfloat16 has float32's exponent range and needs no loss scaling.

* ``float16``: GPUs (tensor cores). MXNet's CPU build has no float16 convolution.
* ``bfloat16``: CPUs with oneDNN (fast with AVX512-BF16 or AMX; AVX-512 emulates it).
"""
import contextlib
import subprocess
import sys

from mxnet.contrib import amp

__all__ = ["DTYPES", "check_dtype", "enable", "init_trainer", "scale_loss"]

DTYPES = ("float32", "float16", "bfloat16")

_PROBE = """
import mxnet as mx
from mxnet.contrib import amp
amp.init(target_dtype='bfloat16')
from mxnet import autograd, gluon
net = gluon.nn.HybridSequential()
net.add(gluon.nn.Conv2D(8, 3, padding=1, in_channels=8), gluon.nn.BatchNorm(in_channels=8),
        gluon.nn.Dense(2, in_units=8 * 8 * 8))
net.initialize()
net.hybridize(static_alloc=True, static_shape=True)
x = mx.nd.ones((2, 8, 8, 8))
with autograd.record():
    y = net(x)
y.backward()
mx.nd.waitall()
"""


def check_dtype(dtype, contexts, probe=_PROBE):
    """Raise ValueError (one line) when ``dtype`` cannot train on ``contexts``. bfloat16 is
    tried for real in a child process (a CPU without the instructions may abort MXNet)."""
    if dtype not in DTYPES:
        raise ValueError("unknown dtype %r: choose one of %s" % (dtype, ", ".join(DTYPES)))
    gpu = any(c.device_type == "gpu" for c in contexts)
    if dtype == "float16" and not gpu:
        raise ValueError("float16 needs GPUs: MXNet's CPU build has no float16 convolution "
                         "(use bfloat16 on a CPU with AVX-512)")
    if dtype == "bfloat16" and gpu:
        raise ValueError("bfloat16 is MXNet's CPU (oneDNN) mixed precision; use float16 on GPUs")
    if dtype == "bfloat16":
        proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                              timeout=300)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["exit code %d" % proc.returncode])[-1]
            raise ValueError("this CPU cannot train in bfloat16 with MXNet's oneDNN (%s); "
                             "use float32" % last[:200])


def enable(dtype):
    """Switch AMP on for ``dtype`` (before the network is built). float32: nothing."""
    if dtype != "float32":
        amp.init(target_dtype=dtype)


def init_trainer(trainer, dtype):
    """Dynamic loss scaling for float16 (bfloat16 does not need it)."""
    if dtype == "float16":
        amp.init_trainer(trainer)


@contextlib.contextmanager
def scale_loss(losses, trainer, dtype):
    """``losses`` scaled for the backward pass (float16), else unchanged."""
    if dtype == "float16":
        with amp.scale_loss(losses, trainer) as scaled:
            yield scaled
    else:
        yield losses
