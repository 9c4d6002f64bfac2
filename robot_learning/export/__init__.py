"""Export zoo checkpoints to self-contained bundles (ONNX graph + policy.json [+ TensorRT engine])."""

from robot_learning.export.exporter import FORMATS, ExportConfig, ExportError, export_checkpoint

__all__ = ["FORMATS", "ExportConfig", "ExportError", "export_checkpoint"]
