"""PyTorch -> ONNX with the TorchScript-based exporter.

Why the TorchScript exporter (``dynamo=False``): it traces a small block in ~10-50 ms, while
the ``torch.export``-based one takes seconds, and latency tables export thousands of blocks.
The blocks of this project are static graphs (no data-dependent control flow), which is
exactly what tracing handles; PyTorch marks the exporter deprecated, so its deprecation
warnings are silenced here, locally, and nowhere else.

The model is exported from a *copy*, on the CPU, in float32 and eval mode (BatchNorm uses its
running statistics, dropout is off), so the caller's module (its device, dtype, memory format
and train/eval mode) is never touched. The batch dimension is traced at the given size
(normally 1) and marked dynamic, so the file accepts any batch.
"""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Sequence

import torch
from torch import nn

from nas.errors import ExportError

__all__ = ["OPSET", "INPUT_NAME", "OUTPUT_NAME", "to_onnx_bytes", "export_copy", "check_input_shape",
           "example_input"]

#: ONNX opset. 17 is supported by the TorchScript exporter and by every onnxruntime release this
#: project accepts (>= 1.17), and covers every operator the blocks use. It is part of a latency
#: table's metadata: tables measured with different opsets are not mixed.
OPSET: int = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def check_input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(input_shape)
    if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise ExportError(f"input_shape must be a non-empty tuple of positive integers including the batch, e.g. "
                          f"(1, 3, 32, 32); got {input_shape!r}")
    return shape


def example_input(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """A float32 N(0, 1) tensor from its own generator (the global RNG is left alone)."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def export_copy(model: nn.Module) -> nn.Module:
    """A CPU, float32, contiguous, eval-mode copy of ``model`` with gradients off."""
    clone = copy.deepcopy(model).to("cpu", torch.float32).to(memory_format=torch.contiguous_format).eval()
    clone.requires_grad_(False)
    return clone


def _reason(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def to_onnx_bytes(model: nn.Module, input_shape: tuple[int, ...], *, opset: int = OPSET) -> bytes:
    """The ONNX model (input ``input``, output ``logits``, dynamic batch) as bytes."""
    shape = check_input_shape(input_shape)
    clone = export_copy(model)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        try:
            torch.onnx.export(clone, (example_input(shape, seed=0),), buffer, dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], do_constant_folding=True,
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
        except (RuntimeError, TypeError, ValueError, IndexError) as exc:
            # RuntimeError covers torch.onnx.errors.OnnxExporterError and a forward pass that
            # rejects the input shape.
            raise ExportError(f"exporting {type(model).__name__} to ONNX (opset {opset}, input {shape}) failed: "
                              f"{_reason(exc)}; check that the input shape fits the model and that every "
                              f"operator is supported at this opset") from exc
    return buffer.getvalue()
