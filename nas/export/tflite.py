"""PyTorch -> LiteRT (.tflite) with Google's ``litert-torch``, checked with ``ai-edge-litert``'s interpreter.

Why ``litert-torch`` (the ``[litert]`` extra, pinned in ``pyproject.toml``): it is Google's maintained PyTorch
route to LiteRT, it converts ``torch.export`` graphs with its own MLIR pipeline (``litert-converter``) and needs
neither TensorFlow nor a second ONNX stack, and it works with this project's torch 2.13. ``onnx2tf`` (the ONNX
route) pins an older onnxruntime, onnx and numpy and pulls TensorFlow: installing it would replace the
onnxruntime the latency tables are measured with. See README.md, *LiteRT*.

Layout. PyTorch networks are NCHW; LiteRT's kernels (XNNPACK) are NHWC. ``litert-torch`` rewrites the graph to
NHWC and, with :func:`litert_torch.to_channel_last_io`, takes NHWC inputs (and gives NHWC 4-D outputs) without a
transpose at the boundary. ``layout="nhwc"`` (the default) does that: it is what a phone's camera pipeline feeds
and what the latency tables time (the parts of a network hand NHWC tensors to each other, as inside a whole
network). ``layout="nchw"`` keeps PyTorch's layout at the model's boundary (a transpose inside the model).

A known converter problem is worked around here: litert-torch 0.10 rewrites ``Tensor.repeat`` to NHWC without
permuting its repeat counts, so the CSE block's channel tiling (``x.repeat(1, reps, 1, 1)``) would repeat along
the height. :func:`conversion_copy` replaces that tiling with the identical ``torch.cat`` along the channels
before converting. The parity check (:func:`tflite_max_abs_diff`) catches any other such problem: a model that
disagrees with PyTorch is never written.

The converter's progress lines and its C++ logging are silenced while it runs (they would tear ``nas lut
build``'s progress bar) and shown only when the conversion fails.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.atomic import atomic_write_bytes
from nas.errors import ExportError
from nas.export.convert import check_input_shape, example_input, export_copy
from nas.export.parity import max_abs_diff

__all__ = ["LAYOUTS", "LITERT_INSTALL", "TfliteReport", "litert_versions", "require_litert", "conversion_copy",
           "to_tflite_bytes", "tflite_interpreter", "run_tflite", "tflite_max_abs_diff", "export_tflite",
           "is_tflite", "quiet_native_output"]

LAYOUTS: tuple[str, ...] = ("nhwc", "nchw")
#: How to get the converter and the interpreter (the optional ``[litert]`` extra).
LITERT_INSTALL = 'pip install -e ".[litert]"'
#: The parity-check input's seed (the conversion's sample input uses seed 0), as for ONNX.
CHECK_SEED = 1


@contextlib.contextmanager
def quiet_native_output() -> Iterator[list[str]]:
    """Send file descriptors 1 and 2 (where native libraries and the converter print) to a temporary file for the
    ``with`` body; yields a list that holds the captured text afterwards."""
    captured: list[str] = []
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no such descriptors (an embedded interpreter): nothing to silence
        yield captured
        return
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            captured.append(sink.read().decode("utf-8", "replace"))


def _import(name: str) -> ModuleType:
    try:
        with quiet_native_output():
            return importlib.import_module(name)
    except ImportError as exc:
        raise ExportError(f"LiteRT needs the optional packages litert-torch and ai-edge-litert ({exc}); install them "
                          f"with: {LITERT_INSTALL}") from None


def require_litert() -> tuple[ModuleType, ModuleType]:
    """``(litert_torch, ai_edge_litert.interpreter)``, or one ExportError saying how to install them."""
    converter = _import("litert_torch")
    interpreter = _import("ai_edge_litert.interpreter")
    return converter, interpreter


def litert_versions() -> dict[str, str]:
    """The converter's and the interpreter's versions (for tables and reports)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("litert-torch", "ai-edge-litert"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


class _ConcatTile(nn.Module):
    """:class:`nas.arch.blocks.ChannelFold` for ``in_ch < out_ch`` with ``torch.cat`` instead of ``Tensor.repeat``
    (the same values; see the module doc)."""

    def __init__(self, fold: nn.Module) -> None:
        super().__init__()
        self.fold = fold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        in_ch, out_ch = self.fold.in_ch, self.fold.out_ch
        if in_ch >= out_ch:
            return self.fold(x)
        reps = -(-out_ch // in_ch)
        return torch.cat([x] * reps, dim=1)[:, :out_ch]


def conversion_copy(model: nn.Module) -> nn.Module:
    """An export copy of ``model`` (CPU, float32, eval) with the converter's known problems worked around."""
    from nas.arch.blocks import ChannelFold

    clone = export_copy(model)
    for parent in list(clone.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, ChannelFold):
                setattr(parent, name, _ConcatTile(child))
    if isinstance(clone, ChannelFold):
        clone = _ConcatTile(clone)
    return clone


def _to_layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).contiguous() if layout == "nhwc" and x.dim() == 4 else x


def _reason(text: str, exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if lines:
        return lines[-1] if len(lines) > 1 and lines[0].startswith("While executing") else lines[0]
    native = [line.strip() for line in text.splitlines() if "error" in line.lower()]
    return native[-1] if native else type(exc).__name__


def to_tflite_bytes(model: nn.Module, input_shape: tuple[int, ...], *, layout: str = "nhwc") -> bytes:
    """The float32 LiteRT model of ``model`` for an NCHW ``input_shape`` (batch fixed: LiteRT shapes are static);
    its input is NHWC (``layout="nhwc"``) or NCHW."""
    if layout not in LAYOUTS:
        raise ExportError(f"layout: expected one of {list(LAYOUTS)}, got {layout!r}")
    shape = check_input_shape(input_shape)
    if len(shape) != 4:
        raise ExportError(f"input_shape: expected (batch, channels, height, width), got {shape}")
    litert_torch, _ = require_litert()
    clone = conversion_copy(model)
    sample = example_input(shape, seed=0)
    with torch.no_grad():
        out = clone(sample)
    if not isinstance(out, torch.Tensor):
        raise ExportError(f"{type(model).__name__} returns a {type(out).__name__}; only models with a single tensor "
                          "output can be converted")
    if layout == "nhwc":
        clone = litert_torch.to_channel_last_io(clone, args=[0], outputs=[0] if out.dim() == 4 else [])
    show = litert_torch.config.show_progress
    litert_torch.config.show_progress = False
    try:
        with quiet_native_output() as native, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.export's and the converter's deprecation chatter
            try:
                converted = litert_torch.convert(clone.eval(), (_to_layout(sample, layout),))
                data = bytes(converted.model_content())
            except Exception as exc:  # the converter raises whatever torch.export, MLIR or flatbuffers raise
                error: BaseException | None = exc
            else:
                error = None
    finally:
        litert_torch.config.show_progress = show
    if error is not None:
        raise ExportError(f"converting {type(model).__name__} to LiteRT (litert-torch "
                          f"{litert_versions()['litert-torch']}, input {shape}, layout {layout}) failed: "
                          f"{_reason(''.join(native), error)}") from error
    return data


def is_tflite(data: bytes) -> bool:
    """Whether ``data`` is a LiteRT flatbuffer (file identifier ``TFL3`` at bytes 4-8)."""
    return len(data) >= 8 and data[4:8] == b"TFL3"


def tflite_interpreter(model: bytes, *, threads: int = 1, xnnpack: bool = True) -> Any:
    """An allocated ``ai_edge_litert`` interpreter for ``model``: the built-in kernels with the XNNPACK delegate
    LiteRT applies by default to float models (``xnnpack=False``: without it)."""
    _, interpreter = require_litert()
    if not is_tflite(model):
        raise ExportError("the model is not a LiteRT (.tflite) flatbuffer (no TFL3 identifier); convert it with "
                          "'nas export --format tflite'")
    resolver = (interpreter.OpResolverType.AUTO if xnnpack
                else interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    try:
        with quiet_native_output():
            it = interpreter.Interpreter(model_content=model, num_threads=threads,
                                         experimental_op_resolver_type=resolver)
            it.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ExportError(f"ai-edge-litert cannot load the model ({_reason('', exc)}); convert it again") from None
    return it


def run_tflite(interpreter: Any, x: np.ndarray) -> np.ndarray:
    """The first output for ``x`` fed to the first input."""
    detail = interpreter.get_input_details()[0]
    if tuple(detail["shape"]) != tuple(x.shape):
        raise ExportError(f"the LiteRT model takes an input of shape {tuple(int(v) for v in detail['shape'])}, "
                          f"not {tuple(x.shape)}; LiteRT shapes are fixed when converting (--batch)")
    interpreter.set_tensor(detail["index"], x.astype(detail["dtype"]))
    interpreter.invoke()
    return np.array(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))


def tflite_max_abs_diff(model: nn.Module, tflite_model: bytes, x: torch.Tensor, *, layout: str = "nhwc") -> float:
    """Max |PyTorch(x) - LiteRT(x)| (``x`` NCHW; fed to LiteRT in ``layout``, its 4-D output compared in it too)."""
    x32 = x.detach().to("cpu", torch.float32).contiguous()
    with torch.inference_mode():
        expected = export_copy(model)(x32)
    want = _to_layout(expected, layout).numpy()
    if not np.isfinite(want).all():
        raise ExportError(f"{type(model).__name__} outputs NaN or infinity for an N(0, 1) input of shape "
                          f"{tuple(x32.shape)}; export trained weights that are finite (a diverged training leaves none)")
    got = run_tflite(tflite_interpreter(tflite_model), _to_layout(x32, layout).numpy())
    if got.shape != want.shape:
        raise ExportError(f"the LiteRT output has shape {got.shape}, PyTorch {want.shape}; convert again")
    return max_abs_diff(got, want)


@dataclass(frozen=True)
class TfliteReport:
    """``max_abs_diff`` is NaN when the check was skipped (``check=False``)."""

    path: str
    layout: str
    input_shape: tuple[int, ...]  # as the LiteRT model takes it (NHWC for layout nhwc)
    max_abs_diff: float
    tflite_bytes: int
    converter: str


def export_tflite(model: nn.Module, path: str | os.PathLike, *, input_shape: tuple[int, ...],
                  layout: str = "nhwc", check: bool = True, atol: float = 1e-4) -> TfliteReport:
    """Convert ``model`` to ``path`` (atomically); with ``check``, raise ExportError (nothing written) when LiteRT's
    output differs from PyTorch's by more than ``atol`` on an N(0, 1) input."""
    from nas.export.onnx_file import check_output_path

    shape = check_input_shape(input_shape)
    check_output_path(path)
    data = to_tflite_bytes(model, shape, layout=layout)
    diff = float("nan")
    if check:
        diff = tflite_max_abs_diff(model, data, example_input(shape, seed=CHECK_SEED), layout=layout)
        if not diff <= atol:
            raise ExportError(
                f"{path}: the LiteRT model disagrees with PyTorch: max abs difference {diff:.3g} > tolerance {atol:g} "
                f"(input {shape}, layout {layout}); the file was not written. Look for input-dependent Python control "
                "flow in forward(), or pass a larger --atol if the difference is float rounding")
    target = Path(path)
    try:
        atomic_write_bytes(target, data)
    except OSError as exc:
        raise ExportError(f"{target}: cannot write the LiteRT file ({exc.strerror or exc}); nothing was written. "
                          "Choose a path in a writable directory with free space") from None
    taken = tuple(shape[i] for i in (0, 2, 3, 1)) if layout == "nhwc" else shape
    return TfliteReport(path=str(target), layout=layout, input_shape=taken, max_abs_diff=diff, tflite_bytes=len(data),
                        converter=f"litert-torch {litert_versions()['litert-torch']}")
