"""Deployment: symbol/params and ONNX export, reloading, weights."""
from .export import (WeightsError, artifact_paths, export, export_onnx, load_module,
                     load_symbolblock, load_weights, read_params)

__all__ = ["WeightsError", "artifact_paths", "export", "export_onnx", "load_module",
           "load_symbolblock", "load_weights", "read_params"]
