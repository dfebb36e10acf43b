"""Weights files: atomic saving, safe loading, and mismatch messages that name the key.

Every file is read with ``torch.load(..., weights_only=True)``: a checkpoint is data, never
code, so loading one from a shared run directory cannot execute anything. That is why
checkpoints hold only tensors and plain Python values (see :mod:`nas.train.checkpoint`).
Files are written to a temporary file in the destination folder and renamed over the target
(``os.replace`` is atomic on POSIX and Windows), so a crash mid-save leaves the old file intact.
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.atomic import atomic_path
from nas.errors import CheckpointError
from nas.write_errors import storing

__all__ = ["atomic_torch_save", "read_torch_file", "state_dict_mismatch", "check_state_dict", "load_weights",
           "save_weights", "CHECKPOINT_FORMAT"]

#: The ``format`` value of a training checkpoint (a plain state_dict has no such key).
CHECKPOINT_FORMAT = "nas.train.checkpoint/1"

_MAX_LISTED = 5
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = b"\x80"


def atomic_torch_save(obj: object, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename over ``path``.

    A failed write (a full disk, which ``torch.save`` reports as a ``RuntimeError``) is a
    one-line :class:`~nas.errors.NASError` naming ``path`` (:mod:`nas.write_errors`); the file
    it would have replaced is intact."""
    with storing(path, torch_save=True), atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def read_torch_file(path: str | os.PathLike, *, what: str = "weights file") -> Any:
    """``torch.load(weights_only=True)`` onto the CPU, with errors turned into CheckpointError.

    A file that is not in PyTorch's format (JSON, text, a zip archive of something else) is
    refused with one line; a PyTorch file holding more than data is refused, never loaded unsafely;
    a truncated or damaged one (any failure of the loader) is one line too.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such {what}; expected a checkpoint.pt written by training or a "
                              f"state_dict saved with save_weights; check the path")
    if not _is_torch_archive(path):
        return _load_foreign(path)
    try:
        return _torch_load(path)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: holds Python objects besides tensors and plain values ({_reason(exc)}); "
                              f"it is read with weights_only=True (data only, never code), so only checkpoints "
                              f"and weights files written by nas train/retrain/adapt are accepted") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"{path}: unreadable or truncated {what} ({_reason(exc)}); "
                              f"re-create it (train again or re-save the weights)") from None
    except MemoryError:
        raise  # not the file's fault
    except Exception as exc:  # noqa: BLE001 - a damaged data.pkl fails in the unpickler in many ways
        raise CheckpointError(f"{path}: damaged {what} (loading it failed with {type(exc).__name__}: "
                              f"{_reason(exc)}); re-create it (train again or re-save the weights)") from None


def _not_a_checkpoint(path: Path) -> CheckpointError:
    return CheckpointError(f"{path}: not a PyTorch checkpoint/weights file written by nas train/retrain/adapt")


def _is_torch_archive(path: Path) -> bool:
    """A file in PyTorch's zip format (``<name>/data.pkl`` inside), or a zip too damaged to tell."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head != _ZIP_MAGIC:
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name == "data.pkl" or name.endswith("/data.pkl") for name in archive.namelist())
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):  # ValueError: e.g. a damaged UTF-8 member name
        return True  # a truncated or damaged archive: let torch.load report it as such


def _load_foreign(path: Path) -> Any:
    """Files outside the zip format: PyTorch's legacy format still loads; anything else is refused."""
    with open(path, "rb") as f:
        if f.read(1) != _PICKLE_PROTO:  # the legacy format starts with a pickled magic number
            raise _not_a_checkpoint(path)
    try:
        return _torch_load(path)
    except Exception:  # noqa: BLE001 - any failure to unpickle a non-archive means it is not ours
        raise _not_a_checkpoint(path) from None


def _torch_load(path: Path) -> Any:
    with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the refusal says enough
        warnings.simplefilter("ignore", UserWarning)
        return torch.load(path, map_location="cpu", weights_only=True)


def _reason(exc: BaseException) -> str:
    """The informative part of a loader error (for weights_only refusals, the unpickler's reason
    without PyTorch's advice to allowlist globals or to load unsafely)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = [line for line in lines if line.startswith("WeightsUnpickler error:")]
    if reason:
        return reason[0].removeprefix("WeightsUnpickler error:").strip().split(" Please use", 1)[0]
    return lines[0].split(". ", 1)[0] if lines else type(exc).__name__


def _listed(keys: list[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_MAX_LISTED])
    return shown + (f" (and {len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else "")


def state_dict_mismatch(model: nn.Module, state: Mapping[str, Any]) -> str | None:
    """Why ``state`` does not fit ``model`` (missing/unexpected keys, shapes), or None if it does."""
    expected = model.state_dict()
    problems: list[str] = []
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing:
        problems.append(f"missing keys {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_listed(unexpected)}")
    wrong: list[str] = []  # one per key whose value is not a tensor of the model's shape
    for key, want in expected.items():
        got = state.get(key)
        if got is None:
            continue
        if not isinstance(got, torch.Tensor):
            wrong.append(f"key {key!r} holds a {type(got).__name__}, not a tensor")
        elif tuple(got.shape) != tuple(want.shape):
            wrong.append(f"shape mismatch for key {key!r}: expected {tuple(want.shape)}, got {tuple(got.shape)}")
    problems += wrong[:_MAX_LISTED]
    if len(wrong) > _MAX_LISTED:
        problems.append(f"{len(wrong) - _MAX_LISTED} more key(s) of another shape or type")
    return "; ".join(problems) if problems else None


def check_state_dict(model: nn.Module, state: Mapping[str, Any], path: str | os.PathLike) -> None:
    mismatch = state_dict_mismatch(model, state)
    if mismatch is not None:
        raise CheckpointError(f"{path}: the weights do not fit this {type(model).__name__}: {mismatch}. "
                              f"They were saved from a different architecture; use the architecture they "
                              f"were trained with (or another weights file)")


def _is_state_dict(obj: object) -> bool:
    return isinstance(obj, Mapping) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                            for k, v in obj.items())


def load_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Load a training checkpoint (its ``model`` entry) or a plain state_dict file into ``model``.

    The whole file is checked first, so on a mismatch the model is left untouched.
    """
    obj = read_torch_file(path)
    if isinstance(obj, Mapping) and obj.get("format") == CHECKPOINT_FORMAT:
        obj = obj.get("model")
    if not _is_state_dict(obj):
        raise CheckpointError(f"{path}: expected a training checkpoint or a state_dict (a mapping of names to "
                              f"tensors), got a {type(obj).__name__}; save weights with nas.train.save_weights")
    check_state_dict(model, obj, path)
    model.load_state_dict(obj, strict=True)


def save_weights(model: nn.Module, path: str | os.PathLike) -> Path:
    """Save ``model.state_dict()`` (moved to the CPU, contiguous) atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return atomic_torch_save(state, path)
