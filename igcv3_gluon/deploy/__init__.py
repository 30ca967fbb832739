"""Deployment: symbol/params and ONNX export (checked in ONNX Runtime on request), reloading,
weights, export metadata, and one accuracy for every runtime."""
from .accuracy import accuracy, predict
from .export import (
                     CheckedPath,
                     WeightsError,
                     artifact_paths,
                     copy_meta,
                     export,
                     export_detector,
                     export_onnx,
                     load_module,
                     load_symbolblock,
                     load_weights,
                     onnx_difference,
                     read_meta,
                     read_params,
                     write_meta,
)

__all__ = ["WeightsError", "CheckedPath", "accuracy", "predict", "artifact_paths", "copy_meta",
           "export", "export_detector", "export_onnx", "onnx_difference", "load_module",
           "load_symbolblock", "load_weights", "read_meta", "read_params", "write_meta"]
