"""Canonical JSON form, a stable hash, and files.

The canonical JSON has sorted keys and no insignificant whitespace, so the same network
always gives the same bytes; :func:`arch_hash` is the first 16 hex digits of its SHA-256 and
identifies an architecture across trials, runs and machines.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from nas.arch.spec import ArchSpec
from nas.atomic import atomic_write_text
from nas.errors import SpecError

__all__ = ["to_json", "from_json", "arch_hash", "save_arch", "load_arch_file"]


def to_json(arch: ArchSpec, *, indent: int | None = None) -> str:
    """Canonical JSON (``indent=None``) or the same content pretty-printed for files."""
    if indent is None:
        return json.dumps(arch.to_dict(), sort_keys=True, separators=(",", ":"))
    return json.dumps(arch.to_dict(), sort_keys=True, indent=indent) + "\n"


def from_json(text: str, *, source: str = "arch JSON") -> ArchSpec:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    try:
        return ArchSpec.from_dict(data)
    except SpecError as exc:
        raise SpecError(f"{source}: {exc}") from None


def arch_hash(arch: ArchSpec) -> str:
    return hashlib.sha256(to_json(arch).encode()).hexdigest()[:16]


def save_arch(arch: ArchSpec, path: str | os.PathLike) -> Path:
    """Write the pretty canonical JSON atomically."""
    return atomic_write_text(path, to_json(arch, indent=2))


def load_arch_file(path: str | os.PathLike) -> ArchSpec:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read architecture file ({exc.strerror})") from None
    data_text = text
    # Accept files that wrap the arch, e.g. best_arch.json = {"arch": {...}, ...}.
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict) and "arch" in data and "blocks" not in data:
        data_text = json.dumps(data["arch"])
    return from_json(data_text, source=str(path))
