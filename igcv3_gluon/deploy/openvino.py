"""OpenVINO, the fastest CPU runtime for these networks.

``to_openvino(prefix, out)`` turns an export into an OpenVINO IR (``out.xml`` + ``out.bin``,
and ``out-meta.json``): the graph is optimised first when it is not already (BatchNorms and
shuffles folded: in OpenVINO the as-trained graph takes about 8x MobileNetV2's time, the
optimised one 1.3-1.6x, docs/benchmarks.md), converted to ONNX with a free batch axis (kept
as ``out.onnx``) and read by OpenVINO; the weights stay float32 in the file.
``compile_ir`` compiles it for the CPU at a chosen inference precision: OpenVINO's CPU
plugin computes in bfloat16 by default on CPUs that have it (AVX512-BF16, AMX), which
changes the digits model's logits by 1e-2 relative; ``"f32"`` is exact to float rounding.
``quantize_ir`` (``deploy/int8.py``) is NNCF's post-training INT8 quantization, every
convolution INT8, weights in 7 bits so that CPUs without VNNI compute the same, behind an
accuracy gate.

Detectors: the IR holds the network up to the per-class decoded candidates (ids, scores,
boxes, no NMS), and ``DetectorIR`` applies MXNet's own ``box_nms`` to them, with the
settings the MXNet model uses, so the detections are MXNet's (mx2onnx's exported NMS is
class-agnostic, which MXNet's is not).
"""
import os
import tempfile

import numpy as np

from .int8 import quantize_ir  # noqa: F401  (re-exported: the INT8 step of this module)

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


IR_TOLERANCE = 1e-3


def ir_difference(prefix, xml, meta, shape, batches):
    """Max difference of the IR ``xml`` (f32) and the MXNet export ``prefix`` on random
    batches of each size in ``batches``: relative to the logits' scale for a classifier,
    ``detection_difference`` (boxes in pixels of ``shape``) for a detector."""
    import mxnet as mx
    from .export import load_symbolblock
    reference = load_symbolblock(prefix)
    reference.hybridize()
    detector = "nms" in meta
    ir = DetectorIR(xml, meta["nms"]) if detector else compile_ir(xml, "f32")
    worst = 0.0
    for batch in batches:
        x = np.random.RandomState(batch).uniform(-1, 1, (batch,) + tuple(shape[1:]))
        x = x.astype(np.float32)
        want = reference(mx.nd.array(x))
        if detector:
            worst = max(worst, detection_difference(want, ir(x), scale=x.shape[-1]))
        else:
            want, got = want.asnumpy(), ir(x)[0]
            worst = max(worst, float(np.abs(want - got).max())
                        / max(1.0, float(np.abs(want).max())))
    return worst


def to_openvino(prefix, out, input_shape=None, optimize_first=True, grouped=False,
                check_batches=(1, 4)):
    """Export ``prefix`` (symbol/params) as OpenVINO IR ``out.xml``/``.bin``; returns the
    two paths and the folding report (None when the export was optimised already). The
    ONNX file the IR is read from (optimised, free batch axis) is kept as ``out.onnx``:
    ``quantize_ir`` starts from it. A detector's NMS is left out of the IR (``DetectorIR``
    applies MXNet's); its settings go to ``out-meta.json``.

    The IR is checked against the MXNet export at each batch size of ``check_batches``
    (``ir_difference``; an empty tuple skips it): the result is recorded as ``check`` in
    ``out-meta.json``, and above 1e-3 nothing is kept and ``CheckFailed`` is raised."""
    import openvino as ov
    from .export import _require, artifact_paths, check_output, export_onnx, read_meta, write_meta
    from .optimize import optimize_files
    _require(artifact_paths(prefix))
    check_output(out, prefix)
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
    meta = dict(meta, optimized=True, runtime="openvino")
    if check_batches:
        worst = ir_difference(prefix, ir_paths(out)[0], meta, shape, check_batches)
        meta["check"] = dict(batches=list(check_batches), max_rel_diff=worst)
        if worst > IR_TOLERANCE:
            from ..utils import remove_files
            remove_files(*ir_paths(out), out + ".onnx")
            from ..errors import CheckFailed
            raise CheckFailed("the IR of %s differs from the MXNet export by %.1e at batch "
                              "%s (limit %g): not written" % (
                                  prefix, worst, ",".join(map(str, check_batches)),
                                  IR_TOLERANCE), worst, IR_TOLERANCE)
    write_meta(out, meta)
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
    from .int8 import warn_if_vnni_ir_on_this_cpu
    warn_if_vnni_ir_on_this_cpu(xml)
    core = ov.Core()
    return core.compile_model(core.read_model(xml), "CPU", config)


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
