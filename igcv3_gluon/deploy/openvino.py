"""OpenVINO, the fastest CPU runtime for these networks (issue 16).

``to_openvino(prefix, out)`` turns an export into an OpenVINO IR (``out.xml`` + ``out.bin``,
and ``out-meta.json``): the graph is optimised first when it is not already (BatchNorms and
shuffles folded: in OpenVINO the as-trained graph takes about 8x MobileNetV2's time, the
optimised one 1.3-1.6x, docs/benchmarks.md), converted to ONNX with a free batch axis (kept
as ``out.onnx``) and read by OpenVINO; the weights stay float32 in the file.
``compile_ir`` compiles it for the CPU at a chosen inference precision: OpenVINO's CPU
plugin computes in bfloat16 by default on CPUs that have it (AVX512-BF16, AMX), which
changes the digits model's logits by 1e-2 relative; ``"f32"`` is exact to float rounding.
``quantize_ir`` is NNCF's post-training INT8 quantization, every convolution's weights INT8.

Detectors: the IR holds the network up to the per-class decoded candidates (ids, scores,
boxes, no NMS), and ``DetectorIR`` applies MXNet's own ``box_nms`` to them, with the
settings the MXNet model uses, so the detections are MXNet's (mx2onnx's exported NMS is
class-agnostic, which MXNet's is not).
"""
import os
import tempfile

import numpy as np

__all__ = ["PRECISIONS", "to_openvino", "strip_nms", "compile_ir", "quantize_ir", "DetectorIR",
           "detection_difference", "ir_paths"]

PRECISIONS = ("f32", "bf16", "default")


def ir_paths(out):
    return out + ".xml", out + ".bin"


def _is_optimized(prefix):
    from .export import read_meta
    return bool(read_meta(prefix).get("optimized"))


def strip_nms(prefix, out_prefix):
    """Copy the export ``prefix`` without its non-maximum suppression (MXNet's ``box_nms``
    and the ``post_nms`` slice after it): the graph then ends with every per-class
    candidate. Returns the NMS settings (None if the graph has no NMS)."""
    import mxnet as mx
    from .export import copy_meta
    from .optimize import _Graph
    sym, args, aux = mx.model.load_checkpoint(prefix, 0)
    g = _Graph(sym, args, aux)
    found = [i for i, n in enumerate(g.nodes) if n["op"] == "_contrib_box_nms"]
    if not found:
        return None
    nid = found[0]
    attrs = g.nodes[nid].get("attrs", {})
    nms = dict(nms_thresh=float(attrs.get("overlap_thresh", 0.5)),
               nms_topk=int(attrs.get("topk", -1)), post_nms=-1,
               valid_thresh=float(attrs.get("valid_thresh", 0.0)),
               force_suppress=attrs.get("force_suppress", "False") in ("True", "true", "1"))
    source = g.nodes[nid]["inputs"][0][0]
    tail = nid
    users = g.consumers(nid)
    if (len(users) == 1 and g.op(users[0][0]) == "slice_axis"
            and g.attr(users[0][0], "axis") == "1"):
        tail = users[0][0]
        nms["post_nms"] = int(g.attr(tail, "end"))
    g.redirect(tail, source)
    sym, args, aux = g.to_symbol()
    mx.model.save_checkpoint(out_prefix, 0, sym, args, aux)
    copy_meta(prefix, out_prefix, nms=nms)
    return nms


def to_openvino(prefix, out, input_shape=None, optimize_first=True, grouped=False):
    """Export ``prefix`` (symbol/params) as OpenVINO IR ``out.xml``/``.bin``; returns the
    two paths and the folding report (None when the export was optimised already). The
    ONNX file the IR is read from (optimised, free batch axis) is kept as ``out.onnx``:
    ``quantize_ir`` starts from it. A detector's NMS is left out of the IR (``DetectorIR``
    applies MXNet's); its settings go to ``out-meta.json``."""
    import openvino as ov
    from .export import export_onnx, read_meta, write_meta
    from .optimize import optimize_files
    meta = read_meta(prefix)
    shape = tuple(input_shape or (1,) + tuple(meta.get("input_shape", (3, 224, 224))))
    report = None
    with tempfile.TemporaryDirectory() as tmp:
        source = prefix
        nms = strip_nms(prefix, os.path.join(tmp, "no-nms"))
        if nms is not None:
            source = os.path.join(tmp, "no-nms")
            meta["nms"] = nms
        if optimize_first and not _is_optimized(prefix):
            optimized = os.path.join(tmp, "optimized")
            _, report = optimize_files(source, optimized, grouped=grouped)
            source = optimized
        onnx_path = export_onnx(source, out + ".onnx", shape, dynamic=True)
    _save_ir(ov.convert_model(onnx_path), out)
    write_meta(out, dict(meta, optimized=True, runtime="openvino"))
    return ir_paths(out), report


def _save_ir(model, out):
    import openvino as ov
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    xml, _ = ir_paths(out)
    # the weights stay float32 in the file: the precision is chosen at compile time
    ov.save_model(model, xml, compress_to_fp16=False)


def compile_ir(xml, precision="f32", threads=None):
    """The IR compiled for the CPU: ``precision`` "f32" (exact), "bf16" or "default" (the
    plugin's choice: bf16 where the CPU has it)."""
    import openvino as ov
    if precision not in PRECISIONS:
        raise ValueError("precision %r: choose one of %s" % (precision, ", ".join(PRECISIONS)))
    config = {}
    if precision != "default":
        config["INFERENCE_PRECISION_HINT"] = precision
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    core = ov.Core()
    return core.compile_model(core.read_model(xml), "CPU", config)


def quantize_ir(onnx_path, out, calibration, preset="mixed", subset_size=None):
    """NNCF post-training INT8 quantization (issue 16): the float ONNX file ``to_openvino``
    kept (``OUT.onnx``) is quantized with ``calibration`` (a list of float32 NCHW arrays,
    preprocessed as the model's inputs) into a QDQ graph, which OpenVINO compiles to INT8
    kernels (VNNI where the CPU has it); written as ``out.xml``/``.bin``. ``preset``
    "mixed" (symmetric weights, asymmetric activations: the linear, ReLU-free projections
    of the inverted blocks are signed) or "performance" (symmetric everywhere).
    ``subset_size``: how many of the images NNCF collects statistics on (default: all).
    NNCF quantizes ONNX models rather than OpenVINO ones because NNCF 2.14 does not
    recognise OpenVINO 2026's model objects."""
    import logging
    import warnings

    import onnx
    import openvino as ov
    logging.disable(logging.INFO)            # NNCF's import and its notes on dynamic shapes
    try:
        import nncf
    finally:
        logging.disable(logging.NOTSET)
    logging.getLogger("nncf").setLevel(logging.WARNING)
    model = onnx.load(onnx_path)
    name = model.graph.input[0].name
    presets = {"mixed": nncf.QuantizationPreset.MIXED,
               "performance": nncf.QuantizationPreset.PERFORMANCE}
    # one image per item: NNCF's statistics (and its subset_size) count items
    images = [np.asarray(image, dtype=np.float32)[None] for batch in calibration
              for image in batch]
    if not images:
        raise ValueError("no calibration images")
    dataset = nncf.Dataset(images, lambda x: {name: x})
    with warnings.catch_warnings():
        # NNCF's range tuning evaluates both branches of a where(): 0 * inf in the unused one
        warnings.simplefilter("ignore", RuntimeWarning)
        quantized = nncf.quantize(model, dataset, preset=presets[preset],
                                  subset_size=min(subset_size or len(images), len(images)))
    _quantize_conv_weights(quantized)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "int8.onnx")
        onnx.save(quantized, path)
        _save_ir(ov.convert_model(path), out)
    return ir_paths(out)


def _quantize_conv_weights(model):
    """Give every convolution whose weights NNCF left in float32 symmetric per-output-channel
    INT8 weights (QuantizeLinear -> DequantizeLinear on axis 0, scale max|w| / 127, as NNCF
    writes the others). NNCF's ONNX backend skips the weights of group convolutions that
    are not depthwise, i.e. IGCV3's grouped projections; OpenVINO then runs those in
    bfloat16 between INT8 layers (the INT8 IGCV3-D took 2.08 ms instead of 1.36 ms at
    batch 1, docs/benchmarks.md). Returns how many were quantized."""
    from onnx import helper, numpy_helper
    weights = {t.name: t for t in model.graph.initializer}
    nodes, count = [], 0
    for node in model.graph.node:
        if node.op_type == "Conv" and node.input[1] in weights:
            name = node.input[1]
            w = numpy_helper.to_array(weights[name])
            scale = np.abs(w.reshape(w.shape[0], -1)).max(axis=1) / 127.0
            scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
            names = ["%s_%s" % (name, k) for k in ("int8_scale", "int8_zero", "int8", "dq")]
            model.graph.initializer.extend([
                numpy_helper.from_array(scale, names[0]),
                numpy_helper.from_array(np.zeros(w.shape[0], np.int8), names[1])])
            nodes.append(helper.make_node("QuantizeLinear", [name, names[0], names[1]],
                                          [names[2]], axis=0))
            nodes.append(helper.make_node("DequantizeLinear", [names[2], names[0], names[1]],
                                          [names[3]], axis=0))
            node.input[1] = names[3]
            count += 1
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return count


def detection_difference(want, got, scale=1.0):
    """How far detections ``got`` are from ``want`` (each ``(ids, scores, boxes)``, batch
    first), independent of the order of near-equal scores: the largest of (a) the
    difference of the sorted scores, (b) for every detection of ``got``, the distance to
    the nearest box of the same class in ``want``, divided by ``scale`` (the image size),
    and (c) 1.0 when the numbers of detections differ."""
    arrays = [[np.asarray(a.asnumpy() if hasattr(a, "asnumpy") else a) for a in d]
              for d in (want, got)]
    worst = 0.0
    for b in range(arrays[0][0].shape[0]):
        (wi, ws, wb), (gi, gs, gb) = ([a[b].reshape(a.shape[1], -1) for a in d]
                                      for d in arrays)
        wv, gv = wi[:, 0] >= 0, gi[:, 0] >= 0
        if wv.sum() != gv.sum():
            return 1.0
        if not wv.any():
            continue
        worst = max(worst, float(np.abs(np.sort(ws[wv, 0]) - np.sort(gs[gv, 0])).max()))
        for cls, box in zip(gi[gv, 0], gb[gv]):
            same = wb[wv][wi[wv, 0] == cls]
            if not len(same):
                return 1.0
            worst = max(worst, float(np.abs(same - box).max(axis=1).min()) / scale)
    return worst


class DetectorIR:
    """An SSD's IR (up to the decoded per-class candidates) + MXNet's ``box_nms``: returns
    ``(ids, scores, boxes)`` as the MXNet detector does."""

    def __init__(self, xml, nms=None, precision="f32"):
        self.compiled = compile_ir(xml, precision)
        self.nms = dict(dict(nms_thresh=0.45, nms_topk=400, post_nms=100, valid_thresh=0.01,
                             force_suppress=False), **(nms or {}))

    def __call__(self, x):
        import mxnet as mx
        outputs = self.compiled(np.asarray(x, dtype=np.float32))
        ids, scores, boxes = (outputs[i] for i in range(3))
        result = mx.nd.array(np.concatenate([ids, scores, boxes], axis=-1))
        result = mx.nd.contrib.box_nms(result, overlap_thresh=self.nms["nms_thresh"],
                                       topk=self.nms["nms_topk"],
                                       valid_thresh=self.nms["valid_thresh"],
                                       id_index=0, score_index=1, coord_start=2,
                                       force_suppress=self.nms["force_suppress"])
        if self.nms["post_nms"] > 0:
            result = result.slice_axis(axis=1, begin=0, end=self.nms["post_nms"])
        return (result.slice_axis(axis=2, begin=0, end=1),
                result.slice_axis(axis=2, begin=1, end=2),
                result.slice_axis(axis=2, begin=2, end=6))
