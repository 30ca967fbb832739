"""Deployment: symbol/params and ONNX export, reloading."""
from .export import artifact_paths, export, export_onnx, load_module, load_symbolblock

__all__ = ["artifact_paths", "export", "export_onnx", "load_module", "load_symbolblock"]
