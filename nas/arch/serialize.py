"""Canonical JSON form, a stable hash, and files.

The canonical JSON has sorted keys and no insignificant whitespace, so the same network
always gives the same bytes; :func:`arch_hash` is the first 16 hex digits of its SHA-256 and
identifies an architecture across trials, runs and machines.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from nas._json import refuse_repeated_keys
from nas.arch.spec import ArchSpec
from nas.atomic import atomic_write_text
from nas.errors import SpecError
from nas.write_errors import storing

__all__ = ["to_json", "from_json", "arch_hash", "save_arch", "load_arch_file"]


def to_json(arch: ArchSpec, *, indent: int | None = None) -> str:
    """Canonical JSON (``indent=None``) or the same content pretty-printed for files."""
    if indent is None:
        return json.dumps(arch.to_dict(), sort_keys=True, separators=(",", ":"))
    return json.dumps(arch.to_dict(), sort_keys=True, indent=indent) + "\n"


_UNIQUE_KEYS = refuse_repeated_keys(lambda key: SpecError(f"key {key!r} appears twice in one object; keep one"))


def _parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_UNIQUE_KEYS)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except SpecError as exc:
        raise SpecError(f"{source}: {exc}") from None
    except ValueError:  # int() refuses a number of more than sys.get_int_max_str_digits() digits
        raise SpecError(f"{source}: not a usable architecture JSON (a number has too many digits)") from None
    except RecursionError:
        raise SpecError(f"{source}: not a usable architecture JSON (nested too deeply)") from None


def _from_data(data: Any, source: str) -> ArchSpec:
    try:
        return ArchSpec.from_dict(data)
    except SpecError as exc:
        raise SpecError(f"{source}: {exc}") from None


def from_json(text: str, *, source: str = "arch JSON") -> ArchSpec:
    return _from_data(_parse_json(text, source), source)


@functools.lru_cache(maxsize=8192)
def arch_hash(arch: ArchSpec) -> str:
    """The first 16 hex digits of the SHA-256 of the canonical JSON (remembered: searches ask again and again)."""
    return hashlib.sha256(to_json(arch).encode()).hexdigest()[:16]


def save_arch(arch: ArchSpec, path: str | os.PathLike) -> Path:
    """Write the pretty canonical JSON atomically; a full disk is one line naming ``path``."""
    with storing(path):
        return atomic_write_text(path, to_json(arch, indent=2))


def load_arch_file(path: str | os.PathLike) -> ArchSpec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark, as editors on Windows write it
    except OSError as exc:
        raise SpecError(f"{path}: cannot read architecture file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a text file (not UTF-8); expected an architecture JSON file") from None
    data = _parse_json(text, str(path))
    # Accept files that wrap the arch, e.g. best_arch.json = {"arch": {...}, ...}.
    if isinstance(data, dict) and "arch" in data and "blocks" not in data:
        data = data["arch"]
    return _from_data(data, str(path))
