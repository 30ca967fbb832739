"""Deployment: symbol/params and ONNX export, reloading, weights, export metadata."""
from .export import (WeightsError, artifact_paths, copy_meta, export, export_detector,
                     export_onnx, load_module, load_symbolblock, load_weights, read_meta,
                     read_params, write_meta)

__all__ = ["WeightsError", "artifact_paths", "copy_meta", "export", "export_detector",
           "export_onnx", "load_module", "load_symbolblock", "load_weights", "read_meta",
           "read_params", "write_meta"]
