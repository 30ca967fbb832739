"""Deployment: symbol/params and ONNX export, reloading."""
from .export import (artifact_paths, export, export_onnx, load_module, load_symbolblock,
                     load_weights)

__all__ = ["artifact_paths", "export", "export_onnx", "load_module", "load_symbolblock",
           "load_weights"]
