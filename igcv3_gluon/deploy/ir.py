"""OpenVINO IR files, shared by the float conversion (``openvino.py``) and INT8 (``int8.py``):
their names, writing one from an ONNX model, compiling it for the CPU at a chosen precision,
its top-1, and the warning for an IR quantized for VNNI on a CPU without it.

OpenVINO's CPU plugin computes in bfloat16 by default on CPUs that have it (AVX512-BF16,
AMX), which changes the digits model's logits by 1e-2 relative; ``"f32"`` is exact to float
rounding. The weights stay float32 in the file: the precision is chosen at compile time.
"""
import os
import tempfile
import warnings

from ..utils import deferred_interrupts
from .accuracy import accuracy
from .cpu import has_vnni
from .export import read_meta

__all__ = ["PRECISIONS", "IR_SUFFIXES", "ir_paths", "save_ir", "convert_onnx", "ir_from_onnx",
           "compile_ir",
           "ir_accuracy", "warn_if_vnni_ir_on_this_cpu"]

PRECISIONS = ("f32", "bf16", "default")
# the files of an IR output OUT (the ONNX file it was read from is kept beside it)
IR_SUFFIXES = (".xml", ".bin", ".onnx", "-meta.json")


def ir_paths(out):
    return out + ".xml", out + ".bin"


def save_ir(model, out):
    """An OpenVINO model as ``out.xml`` + ``out.bin``, weights in float32."""
    import openvino as ov
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    ov.save_model(model, ir_paths(out)[0], compress_to_fp16=False)


def convert_onnx(path):
    """``ov.convert_model`` of the ONNX file ``path``, with Ctrl-C and SIGTERM held until it
    returns: the conversion forks a process (OpenVINO's telemetry sender) that inherits the
    handlers, so a Ctrl-C on the terminal no longer prints that child's traceback; the
    command stops right after the conversion (and removes what it staged)."""
    import openvino as ov
    with deferred_interrupts():
        return ov.convert_model(path)


def ir_from_onnx(model, out, onnx_path=None):
    """ONNX ModelProto -> OpenVINO IR ``out.xml`` (float32 weights in the file), through
    ``onnx_path`` (kept) or a temporary file."""
    import onnx
    with tempfile.TemporaryDirectory() as tmp:
        path = onnx_path or os.path.join(tmp, "model.onnx")
        onnx.save(model, path)
        save_ir(convert_onnx(path), out)
    return out + ".xml"


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
    warn_if_vnni_ir_on_this_cpu(xml)
    core = ov.Core()
    return core.compile_model(core.read_model(xml), "CPU", config)


def ir_accuracy(xml, images, labels):
    """Top-1 of the IR ``xml`` in OpenVINO (f32 hint: INT8 layers still run INT8) and the
    per-image correctness (``accuracy.accuracy``)."""
    return accuracy(compile_ir(xml, "f32"), images, labels)


def warn_if_vnni_ir_on_this_cpu(xml):
    """A warning when ``xml`` is an INT8 IR built for VNNI (8-bit weights) and this CPU's
    int8 kernels have no VNNI: its pairwise 16-bit sums saturate. Returns whether it warned."""
    if not xml.endswith(".xml"):
        return False
    int8 = read_meta(xml[:-len(".xml")]).get("int8")
    if not isinstance(int8, dict):
        return False
    if int8.get("target") == "vnni" and not has_vnni("openvino"):
        warnings.warn("%s was quantized for VNNI CPUs (8-bit weights) and this CPU's int8 "
                      "kernels have no VNNI: results may saturate; quantize it again for any "
                      "CPU (7-bit weights)" % xml, RuntimeWarning, stacklevel=3)
        return True
    return False
