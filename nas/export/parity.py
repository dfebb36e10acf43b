"""The parity check: run an ONNX model in onnxruntime and compare it with PyTorch.

onnxruntime runs on the CPUExecutionProvider with one thread and all graph optimisations on,
i.e. the graph as deployed (fused Conv+BN, constant-folded shapes), on the same input as the
PyTorch model in float32 eval mode. The result is the maximum absolute difference of the
outputs; NaN where only one side is NaN counts as an infinite difference.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors
from torch import nn

from nas.errors import ExportError
from nas.export.convert import export_copy

__all__ = ["ort_session", "run_onnx", "max_abs_diff", "onnx_max_abs_diff"]

_ORT_ERRORS: tuple[type[Exception], ...] = (
    ort_errors.Fail, ort_errors.InvalidArgument, ort_errors.InvalidGraph, ort_errors.InvalidProtobuf,
    ort_errors.NoSuchFile, ort_errors.RuntimeException, ort_errors.NotImplemented,
)


def _describe(onnx_model: bytes | str | os.PathLike) -> str:
    return "the ONNX model bytes" if isinstance(onnx_model, bytes) else str(onnx_model)


def ort_session(onnx_model: bytes | str | os.PathLike) -> ort.InferenceSession:
    """A single-threaded CPU session for a file path or serialised model bytes."""
    if not isinstance(onnx_model, bytes) and not Path(onnx_model).is_file():
        raise ExportError(f"{onnx_model}: no such ONNX file; export the model first or check the path")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    source = onnx_model if isinstance(onnx_model, bytes) else str(onnx_model)
    try:
        return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
    except _ORT_ERRORS as exc:
        raise ExportError(f"{_describe(onnx_model)}: onnxruntime cannot load it ({exc}); re-export the model") \
            from None


def run_onnx(session: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    """The first output for ``x`` fed to the first input."""
    try:
        return np.asarray(session.run([session.get_outputs()[0].name], {session.get_inputs()[0].name: x})[0])
    except _ORT_ERRORS as exc:
        raise ExportError(f"onnxruntime failed on an input of shape {tuple(x.shape)}: {exc}") from None


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    diff[np.isnan(a) & np.isnan(b)] = 0.0
    diff[np.isnan(diff)] = np.inf
    return float(diff.max()) if diff.size else 0.0


def onnx_max_abs_diff(model: nn.Module, onnx_model: bytes | str | os.PathLike, x: torch.Tensor) -> float:
    """Max |PyTorch(x) - onnxruntime(x)| with the model in float32 eval mode on the CPU (a copy)."""
    x32 = x.detach().to("cpu", torch.float32).contiguous()
    with torch.inference_mode():
        expected = export_copy(model)(x32)
    if not isinstance(expected, torch.Tensor):
        raise ExportError(f"{type(model).__name__} returns a {type(expected).__name__}; only models with a single "
                          f"tensor output can be checked")
    want = expected.numpy()
    if not np.isfinite(want).all():
        # NaN on both sides would count as agreement: the check must not pass a network that computes nothing.
        bad = next((name for name, t in export_copy(model).state_dict().items()
                    if t.is_floating_point() and not bool(torch.isfinite(t).all())), None)
        cause = f"its weights hold NaN or infinity (first: {bad!r})" if bad else "its activations overflow"
        raise ExportError(f"{type(model).__name__} outputs NaN or infinity for an N(0, 1) input of shape "
                          f"{tuple(x32.shape)}: {cause}; export trained weights that are finite (a diverged "
                          f"training leaves none)")
    got = run_onnx(ort_session(onnx_model), x32.numpy())
    if got.shape != want.shape:
        raise ExportError(f"{_describe(onnx_model)}: onnxruntime output has shape {got.shape}, PyTorch {want.shape}, "
                          f"for an input of shape {tuple(x32.shape)}; re-export with this input shape")
    return max_abs_diff(got, want)
