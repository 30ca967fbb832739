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
"""
import contextlib
import json
import logging

import mxnet as mx

__all__ = ["PRESETS", "linear_layers", "quantize", "quantize_net"]

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
    from mxnet.contrib import quantization
    if preset not in PRESETS:
        raise ValueError("preset must be one of %s, got %r" % (", ".join(PRESETS), preset))
    exclude = linear_layers(sym) if preset == "accurate" else []
    calib = [[b] for b in calib_batches]
    examples = sum(b.shape[0] for b in calib_batches)
    return quantization.quantize_net_v2(
        net, quantized_dtype="auto", exclude_layers=exclude or None,
        exclude_operators=["Flatten", "Concat"], calib_data=calib, calib_mode=calib_mode,
        num_calib_examples=examples, ctx=ctx or mx.cpu())


def quantize(prefix, out_prefix, calib_batches, preset="accurate", calib_mode="naive",
             epoch=0):
    """Quantize the export ``prefix`` into ``out_prefix-symbol.json`` / ``-0000.params``;
    ``calib_batches`` is a list of float32 NCHW NDArrays (preprocessed like the inputs).
    Returns the two paths and the quantized SymbolBlock."""
    import os

    from .export import artifact_paths, copy_meta, load_symbolblock
    net = load_symbolblock(prefix, epoch)
    sym, _, _ = mx.model.load_checkpoint(prefix, epoch)
    with _quiet_logging():                              # the flow logs every layer at INFO
        qnet = quantize_net(net, sym, calib_batches, preset, calib_mode)
    qnet.hybridize(static_alloc=True, static_shape=True)
    qnet(calib_batches[0])
    os.makedirs(os.path.dirname(os.path.abspath(out_prefix)), exist_ok=True)
    qnet.export(out_prefix)
    copy_meta(prefix, out_prefix, quantized="int8 (%s)" % preset)
    return artifact_paths(out_prefix, 0), qnet
