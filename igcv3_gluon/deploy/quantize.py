"""INT8 post-training quantization with MXNet's oneDNN (MKLDNN) flow.

``quantize(prefix, out_prefix, calib_batches)`` loads an export (best: the output of
``optimize``, BatchNorms folded, shuffles folded), calibrates the activation ranges on a few
batches (``calib_mode`` ``naive``: min/max; ``entropy``: KL-optimal thresholds), and writes the
quantized graph as symbol/params (oneDNN-fused INT8 convolutions; it loads with
``SymbolBlock.imports`` in a CPU build of MXNet with oneDNN).

Presets (measured on the digits model, docs/benchmarks.md):

* ``accurate`` (default): the convolutions whose output is *linear* (no ReLU6 after them:
  the projection convs of every inverted block, the linear bottlenecks of MobileNetV2
  Sec. 3.2 / IGCV3 Sec. 3.2) and the residual additions stay in FP32. Their signed,
  unbounded outputs are what INT8 loses accuracy on; everything else runs in INT8.
* ``fast``: every convolution and addition in INT8.

``quantize_gated`` is the same flow behind the accuracy gate of ``deploy/gate.py`` (what
``deploy quantize`` runs): the model is written under its name only when it loses at most
``max_drop`` points, else as ``OUT-REJECTED``.
"""
import contextlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass

import mxnet as mx
import numpy as np
from mxnet.contrib import quantization

from ..utils import deferred_interrupts, refuse_overwrite, staged, write_stopped
from .accuracy import accuracy, predict
from .export import (
    EXPORT_SUFFIXES,
    artifact_paths,
    copy_meta,
    export_files,
    export_inputs,
    load_symbolblock,
    read_meta,
)
from .gate import REJECTED_SUFFIX, GateResult, check_gate_data, check_images, normalisation_of

__all__ = ["PRESETS", "linear_layers", "quantize", "quantize_net", "quantize_gated",
           "QuantizeResult"]

PRESETS = ("accurate", "fast")


@contextlib.contextmanager
def _quiet_logging(level=logging.WARNING):
    """The root logger at ``level`` inside the block, restored after (no global change)."""
    root = logging.getLogger()
    old = root.level
    root.setLevel(max(level, old))
    try:
        yield
    finally:
        root.setLevel(old)


def linear_layers(sym):
    """Names of the convolutions not followed by an activation, and of the additions."""
    graph = json.loads(sym.tojson())
    nodes = graph["nodes"]
    users = {}
    for nid, node in enumerate(nodes):
        for inp in node["inputs"]:
            users.setdefault(inp[0], []).append(nodes[nid]["op"])
    names = []
    for nid, node in enumerate(nodes):
        if node["op"] == "Convolution":
            after = users.get(nid, [])
            if not after or not all(op in ("clip", "Activation", "relu") for op in after):
                names.append(node["name"])
        elif node["op"] in ("elemwise_add", "_Plus", "broadcast_add", "_plus"):
            names.append(node["name"])
    return names


def quantize_net(net, sym, calib_batches, preset="accurate", calib_mode="naive", ctx=None):
    """Quantize the Gluon ``net`` (whose graph is ``sym``); returns the INT8 SymbolBlock."""
    if preset not in PRESETS:
        raise ValueError("preset must be one of %s, got %r" % (", ".join(PRESETS), preset))
    exclude = linear_layers(sym) if preset == "accurate" else []
    calib = [[b] for b in calib_batches]
    examples = sum(b.shape[0] for b in calib_batches)
    return quantization.quantize_net_v2(
        net, quantized_dtype="auto", exclude_layers=exclude or None,
        exclude_operators=["Flatten", "Concat"], calib_data=calib, calib_mode=calib_mode,
        num_calib_examples=examples, ctx=ctx or mx.cpu())


def _quantized(prefix, calib_batches, preset, calib_mode, epoch=0):
    """The export ``prefix`` quantized (an INT8 SymbolBlock, traced once)."""
    net = load_symbolblock(prefix, epoch)
    sym, _, _ = mx.model.load_checkpoint(prefix, epoch)
    # The calibration reads each layer's output in a ctypes callback, where a KeyboardInterrupt
    # is printed and swallowed (the run went on and wrote its model): Ctrl-C and SIGTERM are
    # held until the calibration returns, then raised.
    with _quiet_logging(), deferred_interrupts():     # the flow logs every layer at INFO
        try:
            qnet = quantize_net(net, sym, calib_batches, preset, calib_mode)
        except mx.MXNetError as err:       # it saves the float model to a temporary folder
            stopped = write_stopped(err, os.path.join(tempfile.gettempdir(), "model.params"))
            if stopped is None:
                raise
            stopped.filename = "the float model in %s (MXNet's quantization saves it there " \
                "first)" % tempfile.gettempdir()
            raise stopped from None
    qnet.hybridize(static_alloc=True, static_shape=True)
    qnet(calib_batches[0])
    return qnet


def _write(qnet, prefix, out_prefix, preset, **meta):
    """``out_prefix``'s symbol/params/-meta.json of the quantized ``qnet`` (under ``staged``
    names: nothing is named before the caller's checks)."""
    os.makedirs(os.path.dirname(os.path.abspath(out_prefix)), exist_ok=True)
    with staged(out_prefix, EXPORT_SUFFIXES) as stage:
        qnet.export(stage)
        copy_meta(prefix, stage, quantized="int8 (%s)" % preset, **meta)


def quantize(prefix, out_prefix, calib_batches, preset="accurate", calib_mode="naive",
             epoch=0):
    """Quantize the export ``prefix`` into ``out_prefix-symbol.json`` / ``-0000.params``;
    ``calib_batches`` is a list of float32 NCHW NDArrays (preprocessed like the inputs).
    Returns the two paths and the quantized SymbolBlock. Outputs that are the input's own
    files are refused before anything is written."""
    refuse_overwrite(export_files(out_prefix), export_inputs(prefix, epoch))
    qnet = _quantized(prefix, calib_batches, preset, calib_mode, epoch)
    _write(qnet, prefix, out_prefix, preset)
    return artifact_paths(out_prefix, 0), qnet


@dataclass
class QuantizeResult(GateResult):
    """``quantize_gated``'s gate and the prefix it wrote (``OUT`` or ``OUT-REJECTED``)."""
    prefix: str = ""


def _gate_data(fp32, calib_batches, validation, normalisation):
    """``((images, labels), float top-1, labelled)``: the gate's data checked
    (``gate.check_gate_data``), or without labels the float model's predictions on the
    calibration images."""
    if validation is None:
        x = np.concatenate([c.asnumpy() for c in calib_batches])
        return (x, predict(fp32, x)), 1.0, False
    x, y, top1 = check_gate_data(fp32, validation[0], validation[1], normalisation)
    return (x, y), top1, True


def quantize_gated(prefix, out_prefix, calib_batches, validation=None, max_drop=1.0,
                   preset="accurate", calib_mode="naive"):
    """``quantize`` behind the accuracy gate: the top-1 of the float export and of the INT8
    model on ``validation`` (``(images, labels)``; None: the float model's predictions on the
    calibration images), checked first (``gate``); the INT8 model is written as
    ``out_prefix`` when it lost at most ``max_drop`` points, else as ``out_prefix-REJECTED``
    (``result.accepted`` False). Returns a ``QuantizeResult``."""
    refuse_overwrite(export_files(out_prefix) + export_files(out_prefix + REJECTED_SUFFIX),
                     export_inputs(prefix))
    normalisation = normalisation_of(read_meta(prefix))
    for batch in calib_batches:
        check_images(batch.asnumpy(), normalisation, "the calibration images")
    fp32 = load_symbolblock(prefix)
    (x, y), fp32_accuracy, labelled = _gate_data(fp32, calib_batches, validation,
                                                 normalisation)
    qnet = _quantized(prefix, calib_batches, preset, calib_mode)
    result = QuantizeResult(fp32_accuracy=fp32_accuracy, int8_accuracy=accuracy(qnet, x, y)[0],
                            labelled=labelled, images=len(y), max_drop=float(max_drop))
    result.prefix = out_prefix if result.accepted else out_prefix + REJECTED_SUFFIX
    _write(qnet, prefix, result.prefix, preset,
           gate=dict(fp32=result.fp32_accuracy, int8=result.int8_accuracy,
                     images=result.images, labelled=labelled, max_drop=result.max_drop,
                     accepted=result.accepted))
    return result
