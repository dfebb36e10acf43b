"""ONNX export (TorchScript exporter, dynamic batch) with an onnxruntime parity check."""

from __future__ import annotations

from nas.export.convert import INPUT_NAME, OPSET, OUTPUT_NAME, to_onnx_bytes
from nas.export.onnx_file import ExportReport, check_output_path, export_onnx
from nas.export.parity import onnx_max_abs_diff

__all__ = ["OPSET", "INPUT_NAME", "OUTPUT_NAME", "ExportReport", "to_onnx_bytes", "export_onnx",
           "check_output_path", "onnx_max_abs_diff"]
