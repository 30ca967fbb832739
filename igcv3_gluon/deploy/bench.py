"""Timing helpers shared by the benchmark scripts and ``python -m igcv3_gluon.deploy bench``.

Every comparison is made side by side in one process: the candidates are timed in
interleaved rounds (A, B, C, A, B, C, ...) and each one's median is kept, so that a noisy
neighbour on the machine slows all of them alike. Only ratios are meant to be read.
"""
import time

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from ..nn import init_like_trained
from .openvino import compile_ir

__all__ = ["interleaved_medians", "mxnet_inference", "mxnet_training", "onnx_inference",
           "openvino_inference", "gluoncv_mobilenetv2", "ratio_table"]


def interleaved_medians(candidates, rounds=20, warmup=3, repeat=1, settle=0):
    """``{name: median seconds per call}`` for ``candidates`` (``{name: fn}``; each ``fn()``
    must block until its work is done), timed in ``rounds`` interleaved rounds after
    ``warmup`` calls each; each round times ``repeat`` consecutive calls, after ``settle``
    untimed ones (they absorb the switch from the previous candidate: its threads still
    spinning, its weights in the caches; OpenVINO needs it on a 2-core machine)."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            for _ in range(settle):
                fn()
            tic = time.perf_counter()
            for _ in range(repeat):
                fn()
            times[name].append((time.perf_counter() - tic) / repeat)
    return {name: float(np.median(t)) for name, t in times.items()}


def mxnet_inference(net, batch, size=224, ctx=None):
    """A blocking forward of ``net`` (hybridized, static alloc/shape) on a random batch."""
    ctx = ctx or mx.cpu()
    net.hybridize(static_alloc=True, static_shape=True)
    x = mx.nd.random.uniform(-1, 1, shape=(batch, 3, size, size), ctx=ctx)

    def run():
        net(x).wait_to_read()
    return run


def mxnet_training(net, batch, size=224, classes=1000, ctx=None):
    """A blocking SGD step (forward, backward, update) of ``net`` on a random batch."""
    ctx = ctx or mx.cpu()
    net.hybridize(static_alloc=True, static_shape=True)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 1e-3,
                                                          "momentum": 0.9})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    x = mx.nd.random.uniform(-1, 1, shape=(batch, 3, size, size), ctx=ctx)
    y = mx.nd.array(np.random.RandomState(0).randint(0, classes, batch), ctx=ctx)

    def step():
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(batch)
        loss.wait_to_read()
    return step


def onnx_inference(path, batch, size=224, threads=None, level="all", spin=False):
    """A forward of the ONNX model ``path`` in ONNX Runtime (CPU) on a random batch.
    ``level``: graph optimisation level ``basic``, ``extended`` or ``all``. ``spin=False``
    stops the session's idle threads from busy-waiting: several sessions timed in turns in
    one process would otherwise steal each other's cores (measured: IGCV3-D 4x slower)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level]
    if threads:
        options.intra_op_num_threads = threads
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.RandomState(0).uniform(-1, 1, (batch, 3, size, size)).astype(np.float32)

    def run():
        session.run(None, {name: x})
    return run


def openvino_inference(xml, batch, size=224, precision="f32", threads=None):
    """A forward of the OpenVINO IR ``xml`` (CPU plugin, ``precision`` "f32", "bf16" or
    "default") on a random batch."""
    compiled = compile_ir(xml, precision, threads)
    request = compiled.create_infer_request()
    x = np.random.RandomState(0).uniform(-1, 1, (batch, 3, size, size)).astype(np.float32)

    def run():
        request.infer({0: x})
    return run


def gluoncv_mobilenetv2(classes=1000, ctx=None, like_trained=False):
    """GluonCV's ``mobilenetv2_1.0`` (random weights, shapes known so that it exports), the
    speed baseline of the paper's comparison; ``like_trained``: non-trivial BatchNorm
    statistics as ``nn.init_like_trained`` gives ours (for folding and output checks)."""
    from gluoncv.model_zoo import get_model
    ctx = ctx or mx.cpu()
    net = get_model("mobilenetv2_1.0", pretrained=False, classes=classes)
    net.initialize(mx.init.Xavier(), ctx=ctx)
    net(mx.nd.zeros((1, 3, 32, 32), ctx=ctx))            # resolve deferred shapes
    if like_trained:
        init_like_trained(net, ctx=ctx)
    return net


def ratio_table(medians, base, unit="ms", header=("what", "time", "ratio")):
    """Markdown rows ``| name | time | time / medians[base] |``."""
    scale = 1e3 if unit == "ms" else 1.0
    lines = ["| %s | %s (%s) | %s to %s |" % (header[0], header[1], unit, header[2], base),
             "|---|---|---|"]
    for name, t in medians.items():
        lines.append("| %s | %.2f | %.2fx |" % (name, t * scale, t / medians[base]))
    return "\n".join(lines)
