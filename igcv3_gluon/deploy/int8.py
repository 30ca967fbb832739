"""OpenVINO INT8 with NNCF that keeps its accuracy on every x86 CPU, behind an accuracy gate.

``quantize_ir(onnx_path, out, calibration, validation=...)`` quantizes the float ONNX file
``to_openvino`` keeps (``OUT.onnx``) and writes ``out.xml``/``.bin``/``-meta.json`` (and
``out.onnx``, the QDQ graph, which ONNX Runtime also runs):

* **Target.** ``target="any"`` (default) keeps the weights of every convolution that sums
  over channels within 7 bits: NNCF's ``OverflowFix.ENABLE`` (|q| <= 64) for the weights it
  quantizes, |q| <= 63 for the grouped projections we quantize ourselves; depthwise
  convolutions keep 8 bits (oneDNN's int8 depthwise kernels cannot saturate). Such an IR
  computes the same on CPUs with and without
  VNNI (``deploy/cpu.py``: without VNNI, u8 x s8 pairs are summed in saturating 16 bits;
  a full 8-bit digits model lost 1 to 20 points there). ``target="vnni"`` uses all 8 bits,
  for CPUs known to have VNNI/AMX; compiling such an IR on a CPU without VNNI warns.
  The 7-bit rule cost nothing measurable on a VNNI CPU (docs/benchmarks.md), hence the default.
* **Gate.** The accuracy of the INT8 IR, run in OpenVINO, is compared with the float IR's on
  ``validation`` (images, labels); without labels, the float model's own top-1 on the
  calibration images stands in for them (the drop is then the disagreement). NNCF's
  ``quantize_with_accuracy_control`` (its validation function runs OpenVINO, the runtime that
  will serve the model) returns the most sensitive layers to float until the drop is at most
  ``max_drop`` points, at most ``max_restore`` of them. A result whose drop still exceeds
  ``max_drop`` is written as ``out-REJECTED.xml`` and reported with ``accepted=False``.
"""
import logging
import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from typing import List

import numpy as np

from ..utils import refuse_overwrite, staged
from .accuracy import predict
from .export import write_meta
from .gate import REJECTED_SUFFIX, GateResult, check_gate_data, check_images, normalisation_of
from .ir import IR_SUFFIXES, compile_ir, ir_accuracy, ir_from_onnx, warn_if_vnni_ir_on_this_cpu

__all__ = ["INT8_TARGETS", "Int8Result", "quantize_ir", "quantize_conv_weights",
           "float_convolutions", "weight_levels", "warn_if_vnni_ir_on_this_cpu",
           "ir_accuracy", "REJECTED_SUFFIX"]

INT8_TARGETS = ("any", "vnni")


@dataclass
class Int8Result(GateResult):
    """What ``quantize_ir`` wrote (``xml``) and measured (the gate's accuracies as fractions,
    ``drop`` in points, ``accepted``), the weights' ``target`` and bits, and the
    convolutions accuracy control kept in float."""
    xml: str = ""
    target: str = "any"
    weight_bits: int = 7
    float_layers: List[str] = field(default_factory=list)

    def record(self):
        """What the IR's ``-meta.json`` says of its quantization."""
        record = {k: v for k, v in asdict(self).items() if k != "xml"}
        record["accepted"] = self.accepted
        return record


def _nncf():
    logging.disable(logging.INFO)            # NNCF's import and its notes on dynamic shapes
    try:
        import nncf
    finally:
        logging.disable(logging.NOTSET)
    logging.getLogger("nncf").setLevel(logging.WARNING)
    return nncf


def _producers(model):
    return {out: node for node in model.graph.node for out in node.output}


def _quantized_input(node, producers):
    """Whether ``node``'s first input comes out of a DequantizeLinear (INT8 activations)."""
    return bool(node.input) and \
        getattr(producers.get(node.input[0]), "op_type", None) == "DequantizeLinear"


def float_convolutions(model):
    """The convolutions whose input activations are not quantized (run in float), named by
    their weights (the MXNet parameter names, e.g. ``features.3.project.weight``)."""
    producers = _producers(model)
    return [node.input[1].split("_nncf")[0] for node in model.graph.node
            if node.op_type == "Conv" and not _quantized_input(node, producers)]


def quantize_conv_weights(model, bits=8):
    """Give every convolution whose input is quantized but whose weights NNCF left in float32
    symmetric per-output-channel weights of ``bits`` bits (QuantizeLinear -> DequantizeLinear
    on axis 0, scale max|w| / (2**(bits-1) - 1), as NNCF writes its own). NNCF's ONNX backend
    skips the weights of group convolutions that are not depthwise, i.e. IGCV3's grouped
    projections; OpenVINO then runs them in bfloat16 between INT8 layers (2.08 ms instead of
    1.36 ms at batch 1, docs/benchmarks.md). Convolutions NNCF kept in float (accuracy
    control) stay float. Returns how many were quantized."""
    from onnx import helper, numpy_helper
    weights = {t.name: t for t in model.graph.initializer}
    producers = _producers(model)
    top = float(2 ** (bits - 1) - 1)
    nodes, count = [], 0
    for node in model.graph.node:
        if node.op_type == "Conv" and node.input[1] in weights and \
                _quantized_input(node, producers):
            name = node.input[1]
            w = numpy_helper.to_array(weights[name])
            scale = np.abs(w.reshape(w.shape[0], -1)).max(axis=1) / top
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


def weight_levels(model):
    """``{conv weight name: (largest |q|, depthwise)}`` of every quantized convolution weight
    in the QDQ ``model``: 127 for 8-bit weights, <= 64 for 7-bit ones. NNCF's overflow fix
    leaves depthwise convolutions at 8 bits: oneDNN's int8 depthwise kernels multiply without
    the pairwise 16-bit sums, so they cannot saturate."""
    from onnx import helper, numpy_helper
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producers = _producers(model)
    levels = {}
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        dq = producers.get(node.input[1])
        if getattr(dq, "op_type", None) != "DequantizeLinear":
            continue
        q = producers.get(dq.input[0])
        scale = init[dq.input[1]]
        if dq.input[0] in init:                         # int8 constant already
            values = init[dq.input[0]].astype(np.float64)
        elif getattr(q, "op_type", None) == "QuantizeLinear" and q.input[0] in init:
            w = init[q.input[0]]
            s = scale.reshape((-1,) + (1,) * (w.ndim - 1)) if scale.ndim else scale
            values = np.clip(np.round(w / s), -128, 127)
        else:
            continue
        group = next((helper.get_attribute_value(a) for a in node.attribute
                      if a.name == "group"), 1)
        depthwise = group > 1 and values.shape[1] == 1 and values.shape[0] == group
        levels[node.input[1]] = (int(np.abs(values).max()), bool(depthwise))
    return levels


def _validation_fn(bits):
    """NNCF's validation function: the candidate ONNX model with our weight rule applied,
    converted and run in OpenVINO; returns (accuracy, correctness of every image)."""
    def validate(model, items):
        import onnx
        items = list(items)
        images = np.stack([x for x, _ in items]).astype(np.float32)
        labels = np.array([y for _, y in items])
        candidate = onnx.ModelProto()
        candidate.CopyFrom(model)
        quantize_conv_weights(candidate, bits)
        with tempfile.TemporaryDirectory() as tmp:
            acc, correct = ir_accuracy(ir_from_onnx(candidate, os.path.join(tmp, "m")),
                                       images, labels)
        return acc, list(correct)
    return validate


def _nncf_quantize(nncf, model, images, validation, preset, target, subset_size, max_drop,
                   max_restore):
    name = model.graph.input[0].name
    presets = {"mixed": nncf.QuantizationPreset.MIXED,
               "performance": nncf.QuantizationPreset.PERFORMANCE}
    from nncf.quantization.advanced_parameters import (
        AdvancedAccuracyRestorerParameters,
        AdvancedQuantizationParameters,
        OverflowFix,
    )
    advanced = AdvancedQuantizationParameters(
        overflow_fix=OverflowFix.ENABLE if target == "any" else OverflowFix.DISABLE)
    calibration = nncf.Dataset(images, lambda x: {name: x})
    common = dict(preset=presets[preset], subset_size=min(subset_size or len(images),
                                                          len(images)),
                  advanced_quantization_parameters=advanced)
    with warnings.catch_warnings():
        # NNCF's range tuning evaluates both branches of a where(): 0 * inf in the unused one
        warnings.simplefilter("ignore", RuntimeWarning)
        if max_restore == 0:
            common["advanced_parameters"] = common.pop("advanced_quantization_parameters")
            return nncf.quantize(model, calibration, **common)
        x, y = validation
        items = nncf.Dataset(list(zip(x, y)), lambda item: {name: item[0][None]})
        restorer = AdvancedAccuracyRestorerParameters(
            max_num_iterations=sys.maxsize if max_restore is None else int(max_restore))
        return nncf.quantize_with_accuracy_control(
            model, calibration, items, _validation_fn(7 if target == "any" else 8),
            max_drop=max_drop / 100.0, drop_type=nncf.DropType.ABSOLUTE,
            advanced_accuracy_restorer_parameters=restorer, **common)


def _gate_data(float_xml, images, validation, normalisation):
    """``((images, labels), the float IR's top-1)``: the gate's data checked
    (``gate.check_gate_data``), or without labels the float model's predictions on the
    calibration images, which stand in for them."""
    compiled = compile_ir(float_xml, "f32")
    if validation is None:
        x = np.concatenate(images)
        return (x, predict(compiled, x)), 1.0
    x, y, fp32 = check_gate_data(compiled, validation[0], validation[1], normalisation)
    return (x, y), fp32


def quantize_ir(onnx_path, out, calibration, preset="mixed", subset_size=None, target="any",
                validation=None, max_drop=1.0, max_restore=None, meta=None):
    """Quantize ``onnx_path`` to ``out.xml`` behind the accuracy gate (module docstring).
    ``calibration``: float32 NCHW arrays, preprocessed as the model's inputs;
    ``validation``: ``(images, labels)`` or None (the float model's predictions on the
    calibration images); ``max_restore``: how many layers accuracy control may return to
    float (None: as many as needed, 0: none, plain ``nncf.quantize``); ``meta``: the float
    model's description (its ``mean``/``std`` check the images). The gate's data are checked
    before anything is quantized (``gate``: a ``DataError`` for labels or images that are not
    the model's); the IR is written under a temporary name and named only once judged:
    ``out.xml``, or ``out-REJECTED.xml`` for a model the gate refuses. Returns an
    ``Int8Result``."""
    import onnx
    if target not in INT8_TARGETS:
        raise ValueError("target %r: choose one of %s" % (target, ", ".join(INT8_TARGETS)))
    if not (np.isfinite(max_drop) and max_drop >= 0):
        raise ValueError("max_drop must be a number of points >= 0, got %r" % max_drop)
    if max_restore is not None and max_restore < 0:
        raise ValueError("max_restore must be >= 0, got %r" % max_restore)
    refuse_overwrite([p + s for p in (out, out + REJECTED_SUFFIX) for s in IR_SUFFIXES],
                     [(onnx_path, "the float model")])
    normalisation = normalisation_of(meta or {})
    images = [check_images(image, normalisation, "the calibration images")[None]
              for batch in calibration for image in batch]
    if not images:
        raise ValueError("no calibration images")
    nncf = _nncf()
    model = onnx.load(onnx_path)
    bits = 7 if target == "any" else 8
    with tempfile.TemporaryDirectory() as tmp:
        labelled = validation is not None
        validation, fp32 = _gate_data(ir_from_onnx(model, os.path.join(tmp, "float")),
                                      images, validation, normalisation)
        quantized = _nncf_quantize(nncf, model, images, validation, preset, target,
                                   subset_size, max_drop, max_restore)
        quantize_conv_weights(quantized, bits)
        candidate = os.path.join(tmp, "int8")
        int8, _ = ir_accuracy(ir_from_onnx(quantized, candidate, candidate + ".onnx"),
                              *validation)
        result = Int8Result(fp32_accuracy=fp32, int8_accuracy=int8, labelled=labelled,
                            images=len(validation[1]), max_drop=float(max_drop),
                            target=target, weight_bits=bits,
                            float_layers=float_convolutions(quantized))
        final = out if result.accepted else out + REJECTED_SUFFIX
        with staged(final, IR_SUFFIXES) as stage:
            for suffix in (".xml", ".bin", ".onnx"):
                shutil.move(candidate + suffix, stage + suffix)
            write_meta(stage, dict(meta or {}, optimized=True, runtime="openvino",
                                   int8=result.record()))
    result.xml = final + ".xml"
    return result
