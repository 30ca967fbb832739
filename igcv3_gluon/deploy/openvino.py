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

import mxnet as mx
import numpy as np

from ..errors import CheckFailed, OutputConflict
from ..utils import refuse_overwrite, staged
from .export import (
    _require,
    artifact_paths,
    check_output,
    copy_meta,
    export_inputs,
    export_onnx,
    load_symbolblock,
    meta_input_shape,
    read_meta,
    write_meta,
)
from .int8 import quantize_ir  # noqa: F401  (re-exported: the INT8 step of this module)
from .ir import IR_SUFFIXES, PRECISIONS, compile_ir, convert_onnx, ir_paths, save_ir
from .optimize import _Graph, optimize_files

__all__ = ["PRECISIONS", "to_openvino", "strip_nms", "compile_ir", "quantize_ir", "DetectorIR",
           "detection_difference", "ir_paths", "ir_difference", "output_difference",
           "apply_nms", "NMS_DEFAULTS"]


def _is_optimized(prefix):
    return bool(read_meta(prefix).get("optimized"))


def strip_nms(prefix, out_prefix):
    """Copy the export ``prefix`` without its non-maximum suppression (MXNet's ``box_nms``
    and the ``post_nms`` slice after it): the graph then ends with every per-class
    candidate. Returns the NMS settings (None if the graph has no NMS)."""
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


def ir_difference(prefix, xml, shape, batches):
    """Max difference of the IR ``xml`` (f32) and the MXNet export ``prefix`` (the same
    graph: a detector's without its NMS) on random batches of each size in ``batches``: over
    every output, max |IR - MXNet| relative to that output's scale (at least 1). For a
    detector these are the per-class candidates before NMS (class ids, scores, boxes in
    pixels), which are continuous in the weights: comparing detections *after* NMS would
    not be, since near-equal scores of a trained model reorder or drop boxes."""
    reference = load_symbolblock(prefix)
    reference.hybridize()
    compiled = compile_ir(xml, "f32")
    worst = 0.0
    for batch in batches:
        x = np.random.RandomState(batch).uniform(-1, 1, (batch,) + tuple(shape[1:]))
        x = x.astype(np.float32)
        want = reference(mx.nd.array(x))
        want = want if isinstance(want, (list, tuple)) else [want]
        got = compiled(x)
        worst = max(worst, output_difference([w.asnumpy() for w in want],
                                             [got[k] for k in range(len(want))]))
    return worst


def output_difference(want, got):
    """The largest |got - want| over lists of outputs, each relative to its output's scale
    (at least 1): the measure of ``ir_difference``."""
    worst = 0.0
    for w, g in zip(want, got):
        w = np.asarray(w)
        g = np.asarray(g).reshape(w.shape)
        worst = max(worst, float(np.abs(w - g).max()) / max(1.0, float(np.abs(w).max())))
    return worst


def to_openvino(prefix, out, input_shape=None, optimize_first=True, grouped=False,
                check_batches=(1, 4)):
    """Export ``prefix`` (symbol/params) as OpenVINO IR ``out.xml``/``.bin``; returns the
    two paths and the folding report (None when the export was optimised already). The
    ONNX file the IR is read from (optimised, free batch axis) is kept as ``out.onnx``:
    ``quantize_ir`` starts from it. A detector's NMS is left out of the IR (``DetectorIR``
    applies MXNet's); its settings go to ``out-meta.json``.

    The IR is checked against the MXNet export (a detector's: before NMS) at each batch
    size of ``check_batches`` (``ir_difference``; an empty tuple skips it): the result is
    recorded as ``check`` in ``out-meta.json``, and above 1e-3 ``CheckFailed`` is raised.
    The files are written under temporary names and named only once checked; outputs that
    are the export's own files are refused before anything is written."""
    _require(artifact_paths(prefix))
    check_output(out)
    refuse_overwrite([out + suffix for suffix in IR_SUFFIXES], export_inputs(prefix))
    if os.path.isfile(out + "-symbol.json") and os.path.exists(out + "-meta.json"):
        raise OutputConflict("%s-meta.json describes the MXNet export %s (%s-symbol.json): the "
                             "IR's description would replace it; give the IR another prefix "
                             "(e.g. %s-ir)" % (out, out, out, out))
    meta = read_meta(prefix)
    shape = tuple(input_shape or meta_input_shape(prefix) or (1, 3, 224, 224))
    report = None
    with tempfile.TemporaryDirectory() as tmp, staged(out, IR_SUFFIXES) as stage:
        source = prefix
        nms = strip_nms(prefix, os.path.join(tmp, "no-nms"))
        if nms is not None:
            source = os.path.join(tmp, "no-nms")
            meta["nms"] = nms
        reference = source
        if optimize_first and not _is_optimized(prefix):
            optimized = os.path.join(tmp, "optimized")
            _, report = optimize_files(source, optimized, grouped=grouped)
            source = optimized
        save_ir(convert_onnx(export_onnx(source, stage + ".onnx", shape, dynamic=True)), stage)
        meta = dict(meta, optimized=True, runtime="openvino")
        if check_batches:
            worst = ir_difference(reference, ir_paths(stage)[0], shape, check_batches)
            meta["check"] = dict(batches=list(check_batches), max_rel_diff=worst)
            if worst > IR_TOLERANCE:
                raise CheckFailed("the IR of %s differs from the MXNet export by %.1e at batch "
                                  "%s (limit %g): not written" % (
                                      prefix, worst, ",".join(map(str, check_batches)),
                                      IR_TOLERANCE), worst, IR_TOLERANCE)
        write_meta(stage, meta)
    return ir_paths(out), report


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


NMS_DEFAULTS = dict(nms_thresh=0.45, nms_topk=400, post_nms=100, valid_thresh=0.01,
                    force_suppress=False)


def apply_nms(ids, scores, boxes, nms=None):
    """MXNet's ``box_nms`` with a detector's settings (``strip_nms``'s record) on per-class
    candidates (arrays ``(N, A, 1)``, ``(N, A, 1)``, ``(N, A, 4)``): ``(ids, scores, boxes)``
    as the MXNet detector returns them."""
    nms = dict(NMS_DEFAULTS, **(nms or {}))
    result = mx.nd.array(np.concatenate([ids, scores, boxes], axis=-1))
    result = mx.nd.contrib.box_nms(result, overlap_thresh=nms["nms_thresh"],
                                   topk=nms["nms_topk"], valid_thresh=nms["valid_thresh"],
                                   id_index=0, score_index=1, coord_start=2,
                                   force_suppress=nms["force_suppress"])
    if nms["post_nms"] > 0:
        result = result.slice_axis(axis=1, begin=0, end=nms["post_nms"])
    return (result.slice_axis(axis=2, begin=0, end=1),
            result.slice_axis(axis=2, begin=1, end=2),
            result.slice_axis(axis=2, begin=2, end=6))


class DetectorIR:
    """An SSD's IR (up to the decoded per-class candidates) + MXNet's ``box_nms``: returns
    ``(ids, scores, boxes)`` as the MXNet detector does."""

    def __init__(self, xml, nms=None, precision="f32"):
        self.compiled = compile_ir(xml, precision)
        self.nms = dict(NMS_DEFAULTS, **(nms or {}))

    def __call__(self, x):
        outputs = self.compiled(np.asarray(x, dtype=np.float32))
        return apply_nms(*(np.asarray(outputs[i]) for i in range(3)), self.nms)
