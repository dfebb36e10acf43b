"""Exporting a model to an ONNX file, checked against PyTorch before the file is written.

The check runs before writing, so a file at ``path`` is always one that passed; the write is
atomic (temporary file in the same folder, then rename). The check input is N(0, 1) from its
own seeded generator: a different tensor from the tracing input, so a trace that baked an
input-dependent value into the graph is caught.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from nas.atomic import atomic_write_bytes
from nas.errors import ExportError
from nas.export.convert import OPSET, check_input_shape, example_input, to_onnx_bytes
from nas.export.parity import onnx_max_abs_diff

__all__ = ["ExportReport", "export_onnx", "check_output_path", "CHECK_SEED"]

#: Seed of the parity-check input (the tracing input uses seed 0).
CHECK_SEED = 1


@dataclass(frozen=True)
class ExportReport:
    """``max_abs_diff`` is NaN when the check was skipped (``check=False``)."""

    path: str | None
    opset: int
    max_abs_diff: float
    input_shape: tuple[int, ...]
    onnx_bytes: int


def check_output_path(path: str | os.PathLike, *, option: str = "") -> Path:
    """Refuse an ONNX path that is an existing directory, or lies under a file, before any work is done.

    ``option`` (e.g. ``"-o/--output"``) prefixes the message, naming where the path came from.
    """
    target = Path(path)
    where = f"{option} {target}".strip()
    try:
        is_dir = target.is_dir()
        blocker = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
    except OSError as exc:  # e.g. a file name longer than the file system allows
        raise ExportError(f"{where}: cannot be used as an ONNX path ({exc.strerror or exc}); choose a shorter or "
                          f"valid file path") from None
    if is_dir:
        raise ExportError(f"{where}: is a directory; the ONNX output must be a file path, e.g. "
                          f"{target / 'model.onnx'}")
    if blocker is not None:
        raise ExportError(f"{where}: cannot be written, {blocker} is a file, not a directory; choose an ONNX "
                          f"path in an existing or new directory")
    return target


def export_onnx(model: nn.Module, path: str | os.PathLike, *, input_shape: tuple[int, ...], opset: int = OPSET,
                check: bool = True, atol: float = 1e-4) -> ExportReport:
    """Export ``model`` to ``path``; with ``check``, raise ExportError if onnxruntime disagrees by > ``atol``."""
    shape = check_input_shape(input_shape)
    check_output_path(path)
    data = to_onnx_bytes(model, shape, opset=opset)
    diff = float("nan")
    if check:
        diff = onnx_max_abs_diff(model, data, example_input(shape, seed=CHECK_SEED))
        if not diff <= atol:
            raise ExportError(
                f"{path}: the ONNX model disagrees with PyTorch: max abs difference {diff:.3g} > tolerance {atol:g} "
                f"(opset {opset}, input {shape}); the file was not written. Look for input-dependent Python "
                f"control flow or state in forward() (tracing freezes it), or pass a larger atol if the "
                f"difference is float rounding")
    target = Path(path)
    try:
        atomic_write_bytes(target, data)
    except OSError as exc:  # read-only or full file system, no permission, a name too long
        raise ExportError(f"{target}: cannot write the ONNX file ({exc.strerror or exc}); nothing was written. "
                          f"Choose a path in a writable directory with free space") from None
    return ExportReport(path=str(target), opset=opset, max_abs_diff=diff, input_shape=shape, onnx_bytes=len(data))
