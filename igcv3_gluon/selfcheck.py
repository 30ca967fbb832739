"""A two-minute check of a machine before a long run:

    python -m igcv3_gluon.selfcheck --gpus 0,1            # on the GPU machine
    python -m igcv3_gluon.selfcheck --cpus 2 --size 32    # what the tests run here

For each training task (the classifier of train_imagenet.py / train_cifar.py and the
detector of train_ssdlite.py), each precision (float32, and the mixed precision of the
devices: float16 on GPUs, bfloat16 on CPUs) and each kvstore the devices offer (device, and
nccl on GPUs), it builds the network for the given devices (the BatchNorm form they get in
training), runs one forward/backward on a synthetic batch split over them, and compares the
loss and every gradient with the same step computed in float32 on as many CPU contexts
(BatchNorm statistics are per device, so the batch is split the same way), the reference.
Then it times a few training iterations through the run engine's own trainer. One line per
check; exit code 1 when any check fails. Every check runs in its own process (AMP changes
MXNet process-wide).
"""
import argparse
import json
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
from mxnet import autograd

from . import get_model
from .errors import UsageError, exit_on_usage_error
from .nn import he_normal, norm_layer_for
from .train import precision
from .train.classifier import ClassifierTask
from .train.cli import contexts_from_args
from .train.context import make_cluster
from .train.detector import DetectorTask
from .train.optim import SGDConfig, make_trainer
from .train.precision import check_dtype

__all__ = ["build_parser", "main", "run_check"]

TASKS = {"classifier": "igcv3_d_1.0", "detector": "ssdlite_320_igcv3_w_coco"}
# relative error allowed in the loss: float32 through cuDNN / oneDNN against the CPU reference
# (the gradients, as one vector, within twice that); mixed precision coarser. Mixed-precision
# gradients drift from float32's through ~100 BatchNorm backward passes (their mean
# subtraction cancels digits), and SSD's hard negative mining picks other negatives once
# the losses are rounded: for mixed precision the check is the loss and finite gradients
# (their cosine to float32's is printed, for information).
TOLERANCE = {"float32": 2e-3, "float16": 5e-2, "bfloat16": 5e-2}


def _batch(task, net, batch, size, seed=0):
    """A synthetic batch for ``task``: images and labels, or images and SSD targets."""
    rng = np.random.RandomState(seed)
    x = mx.nd.array(rng.uniform(-1, 1, (batch, 3, size, size)))
    if task == "classifier":
        return x, mx.nd.array(rng.randint(0, 10, batch))
    with autograd.train_mode():
        cls, _, _ = net(x[:1])
    anchors = cls.shape[1]
    cls_t = mx.nd.array(rng.choice([0, 0, 0, 1, 2], (batch, anchors)))
    box_t = mx.nd.array(rng.normal(0, 1, (batch, anchors, 4)))
    return x, cls_t, box_t


def _task(task, size):
    """The engine's task object for ``task`` (only its loss, tallies and divisor are used)."""
    if task == "classifier":
        return ClassifierTask(None, [], 10, (1, 3, size, size))
    return DetectorTask(None, None, size)


def _build(task, model, contexts, multiplier, size):
    kwargs = dict(multiplier=multiplier, **norm_layer_for(contexts))
    if task == "classifier":
        return get_model(model, classes=10, **kwargs)
    return get_model(model, classes=["a", "b"], base_size=size, **kwargs)


def _step(task_obj, net, data, contexts):
    """Forward + backward of one batch split over ``contexts``; ``(loss, gradients)``."""
    with autograd.record():
        losses, what = task_obj.forward(net, data, contexts)
    autograd.backward(losses)
    loss = task_obj.tally(what)["loss"]
    grads = {}
    for name, param in net.collect_params().items():
        if param.grad_req != "null":
            grads[name] = sum(g.astype("float32").asnumpy() for g in param.list_grad())
    return loss, grads


def run_check(task, dtype, kvstore, contexts, size, multiplier, batch, iterations):
    """One check in this process; returns a dict (JSON-able)."""
    model = TASKS[task]
    # the reference: the same step on as many CPU contexts (BatchNorm statistics are per
    # device, so the batch is split the same way), float32, before any mixed precision
    cpus = [mx.cpu(i) for i in range(len(contexts))]
    ref = _build(task, model, [mx.cpu()], multiplier, size)
    mx.random.seed(3)
    ref.initialize(he_normal(), ctx=cpus)              # as the first step of a real run
    ref.hybridize(static_alloc=True, static_shape=True)
    data = _batch(task, ref, batch, size)
    task_obj = _task(task, size)
    want_loss, want_grads = _step(task_obj, ref, data, cpus)
    weights = {k: p.data(cpus[0]).asnumpy() for k, p in ref.collect_params().items()}
    precision.enable(dtype)
    net = _build(task, model, contexts, multiplier, size)
    net.initialize(ctx=contexts)
    if task == "detector":                       # anchors and shapes are made by a first call
        with mx.autograd.train_mode():
            net(mx.nd.zeros((1, 3, size, size), ctx=contexts[0]))
    for name, param in net.collect_params().items():
        param.set_data(mx.nd.array(weights[name]))
    net.hybridize(static_alloc=True, static_shape=True)
    loss, grads = _step(task_obj, net, data, contexts)
    found = _differences(loss, grads, want_loss, want_grads)
    seconds = _timed_steps(task_obj, net, data, contexts, kvstore, dtype, batch, iterations)
    if dtype == "float32":
        ok = (found["loss_diff"] <= TOLERANCE[dtype]
              and found["grad_diff"] <= 2 * TOLERANCE[dtype])
    else:
        ok = found.pop("finite") and found["loss_diff"] <= TOLERANCE[dtype]
    found.pop("finite", None)
    return dict(task=task, model=model, dtype=dtype, kvstore=kvstore,
                devices=[str(c) for c in contexts], loss=loss, reference_loss=want_loss,
                **found, img_per_s=iterations * batch / seconds, ok=bool(ok))


def _differences(loss, grads, want_loss, want_grads):
    """The loss's relative error; all gradients as one vector: the relative L2 error of the
    step (direction and size) and the cosine of the two directions; whether all is finite."""
    loss_diff = abs(loss - want_loss) / max(abs(want_loss), 1e-6)
    diff = np.sqrt(sum(float(((grads[k] - want_grads[k]) ** 2).sum()) for k in want_grads))
    norm = np.sqrt(sum(float((want_grads[k] ** 2).sum()) for k in want_grads))
    dot = sum(float((grads[k] * want_grads[k]).sum()) for k in want_grads)
    norm2 = np.sqrt(sum(float((grads[k] ** 2).sum()) for k in grads))
    finite = all(np.isfinite(g).all() for g in grads.values()) and np.isfinite(loss)
    return dict(loss_diff=loss_diff, grad_diff=diff / max(norm, 1e-12),
                cosine=dot / max(norm * norm2, 1e-12), finite=bool(finite))


def _timed_steps(task_obj, net, data, contexts, kvstore, dtype, batch, iterations):
    """Seconds of ``iterations`` training steps (forward, backward, update through the
    kvstore) after one untimed step."""
    cluster = make_cluster(kvstore, contexts)
    trainer = make_trainer(net, cluster, SGDConfig(1e-4, 0.9, 4e-5), dtype)
    divisor = task_obj.gradient_divisor(batch, 1)
    for i in range(iterations + 1):
        if i == 1:
            mx.nd.waitall()
            tic = time.time()
        with mx.autograd.record():
            losses, _ = task_obj.forward(net, data, contexts)
        with precision.scale_loss(losses, trainer, dtype) as scaled:
            mx.autograd.backward(scaled)
        trainer.step(divisor)
    mx.nd.waitall()
    return time.time() - tic


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m igcv3_gluon.selfcheck", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", default=None, help="GPU ids, e.g. 0,1")
    parser.add_argument("--cpus", type=int, default=None, help="CPU contexts (no GPU)")
    parser.add_argument("--size", type=int, default=None,
                        help="input side (default: 224 for the classifier, 320 for the "
                             "detector on GPUs; 64 and 128 on CPUs)")
    parser.add_argument("--multiplier", type=float, default=None,
                        help="width (default: 1.0 on GPUs, 0.5 on CPUs)")
    parser.add_argument("--batch-per-device", type=int, default=None,
                        help="default: 32 on GPUs, 4 on CPUs")
    parser.add_argument("--iterations", type=int, default=None,
                        help="timed training iterations (default: 20 on GPUs, 2 on CPUs)")
    parser.add_argument("--tasks", default="classifier,detector")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return parser


@exit_on_usage_error
def main(argv=None):
    args = build_parser().parse_args(argv)
    contexts = contexts_from_args(args)
    gpu = contexts[0].device_type == "gpu"
    multiplier = args.multiplier or (1.0 if gpu else 0.5)
    batch = (args.batch_per_device or (32 if gpu else 4)) * len(contexts)
    iterations = args.iterations or (20 if gpu else 2)
    if args.worker:                                # one check, in this process
        task, dtype, kvstore = args.worker.split(":")
        size = args.size or {"classifier": 224 if gpu else 64,
                             "detector": 320 if gpu else 128}[task]
        print(json.dumps(run_check(task, dtype, kvstore, contexts, size, multiplier, batch,
                                   iterations)))
        return 0
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise UsageError("--tasks: unknown %s; choose from %s" % (unknown, ", ".join(TASKS)))
    mixed = "float16" if gpu else "bfloat16"
    dtypes = ["float32"]
    try:
        check_dtype(mixed, contexts)
        dtypes.append(mixed)
    except ValueError as err:
        print("skip %s: %s" % (mixed, err))
    kvstores = ["device", "nccl"] if gpu else ["device"]
    failed = 0
    for task in tasks:
        for dtype in dtypes:
            for kvstore in kvstores:
                cmd = [sys.executable, "-m", "igcv3_gluon.selfcheck",
                       "--worker", "%s:%s:%s" % (task, dtype, kvstore),
                       "--multiplier", str(multiplier),
                       "--batch-per-device", str(batch // len(contexts)),
                       "--iterations", str(iterations)]
                cmd += ["--gpus", args.gpus] if args.gpus else ["--cpus", str(len(contexts))]
                if args.size:
                    cmd += ["--size", str(args.size)]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                name = "%s %s %s kvstore=%s on %s" % (task, TASKS[task], dtype, kvstore,
                                                       ",".join(str(c) for c in contexts))
                if proc.returncode != 0:
                    last = (proc.stderr.strip().splitlines() or ["exit %d" % proc.returncode])
                    print("FAIL %s: %s" % (name, last[-1][:200]), flush=True)
                    failed += 1
                    continue
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                failed += not r["ok"]
                print("%s %s: loss %.4f vs %.4f on cpu float32 (rel %.1e), gradients rel "
                      "%.1e, cosine %.3f; %.0f img/s"
                      % ("ok  " if r["ok"] else "FAIL", name, r["loss"], r["reference_loss"],
                         r["loss_diff"], r["grad_diff"], r["cosine"], r["img_per_s"]),
                      flush=True)
    print("%d check(s) failed" % failed if failed else "all checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
