"""An on-disk cache of decoded image arrays: ``.npy`` files plus a JSON sidecar, written atomically.

Location: ``cache_dir`` if given, else ``$NAS_CACHE_DIR``, else ``~/.cache/nas/datasets``.
Each entry is a directory ``<label>-<key[:24]>/`` holding one ``<name>.npy`` per array and
``meta.json``. The label (dataset folder name and image size) is only for humans; the key
decides.

Key (:func:`cache_key`): sha256 over a format version, the image size and the sorted list of
``(relative path, size in bytes, mtime in ns)`` of every image, so adding, removing,
renaming, rewriting or touching any image gives a new key, while listing 60,000 files
costs a fraction of a second and no file is read. (An exact copy that preserves
mtimes, e.g. ``cp -p``, maps to the same entry, which is right: the pixels are the same.)

Crash safety: every file is written to a temporary name in the entry directory, fsync'ed
and moved into place with ``os.replace`` (atomic on POSIX and Windows), and ``meta.json``
goes last: it is the commit marker. A crash or Ctrl-C leaves either no ``meta.json`` (a
miss) or complete files. On load every array is checked against the sidecar and the
caller's expected shapes; anything unreadable, truncated or inconsistent is logged and
treated as a miss, and the caller rebuilds and overwrites the entry. Arrays are stored with
``np.save`` and read with ``allow_pickle=False``, so a tampered cache cannot run code.
A cache directory that cannot be written only costs a warning: the data is still returned.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from nas.atomic import atomic_path

__all__ = ["CACHE_FORMAT", "default_cache_dir", "cache_key", "entry_dir", "load_entry", "store_entry"]

CACHE_FORMAT = 1
_META = "meta.json"
_log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$NAS_CACHE_DIR`` when set (and non-empty), else ``~/.cache/nas/datasets``."""
    env = os.environ.get("NAS_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "nas" / "datasets"


def cache_key(relpaths: Sequence[str], sizes: Sequence[int], mtimes_ns: Sequence[int], input_size: int) -> str:
    """sha256 hex digest of the format version, ``input_size`` and the sorted ``(relpath, size, mtime_ns)`` lines.

    Takes parallel sequences (see :class:`nas.data.folder.SplitFiles` for why) in any order.
    """
    order = sorted(range(len(relpaths)), key=relpaths.__getitem__)
    header = f"nas image-folder cache v{CACHE_FORMAT}\ninput_size={input_size}\n"
    lines = "".join([f"{relpaths[i]}\0{sizes[i]}\0{mtimes_ns[i]}\n" for i in order])
    return hashlib.sha256((header + lines).encode("utf-8", "surrogateescape")).hexdigest()


def entry_dir(cache_dir: Path, key: str, label: str) -> Path:
    """The directory of one cache entry; ``label`` is sanitised into a readable prefix."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._") or "dataset"
    return cache_dir / f"{safe[:60]}-{key[:24]}"


def load_entry(entry: Path, key: str, expected: Mapping[str, tuple[tuple[int, ...], str]]) -> dict[str, Any] | None:
    """The cached arrays (plus ``"meta"``) if ``entry`` is complete and matches; None on any miss.

    ``expected`` maps array name to ``(shape, dtype)``; a mismatch means the entry is stale
    or damaged. Arrays come back as read-only memory maps: the caller slices the train
    split out of them anyway, and reading through the page cache instead of into a fresh
    150 MB buffer and then copying saves a quarter of a second per load. A file shorter
    than its header promises fails to map and counts as a miss.
    """
    meta_path = entry / _META
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
            raise ValueError(f"sidecar is for format {meta.get('format')} / key {str(meta.get('key'))[:12]}")
        if set(meta.get("arrays", {})) != set(expected):
            raise ValueError(f"sidecar lists arrays {sorted(meta.get('arrays', {}))}, expected {sorted(expected)}")
        result: dict[str, Any] = {"meta": meta}
        for name, (shape, dtype) in expected.items():
            array = np.load(entry / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            if array.shape != tuple(shape) or array.dtype != np.dtype(dtype):
                raise ValueError(f"{name}.npy holds {array.dtype} {array.shape}, expected {dtype} {tuple(shape)}")
            result[name] = array
        return result
    except (OSError, ValueError, TypeError, AttributeError, EOFError) as exc:  # json errors are ValueErrors
        _log.warning("ignoring unreadable dataset cache %s (%s); rebuilding it", entry, exc)
        return None


def store_entry(entry: Path, key: str, arrays: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> bool:
    """Write ``arrays`` and the sidecar atomically into ``entry``; False (with a warning) if that failed."""
    try:
        entry.mkdir(parents=True, exist_ok=True)
        (entry / _META).unlink(missing_ok=True)  # uncommit first: the old arrays are being replaced
        for name, array in arrays.items():
            _atomic_write(entry / f"{name}.npy", lambda handle, a=array: np.save(handle, a, allow_pickle=False))
        meta = {
            "format": CACHE_FORMAT,
            "key": key,
            "arrays": {name: {"shape": list(a.shape), "dtype": a.dtype.str} for name, a in arrays.items()},
            **info,
        }
        payload = json.dumps(meta, indent=1).encode("utf-8")
        _atomic_write(entry / _META, lambda handle: handle.write(payload))
        return True
    except OSError as exc:
        _log.warning("could not write the dataset cache %s (%s); the next load will decode again", entry, exc)
        return False


def _atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """``write`` into a temporary file beside ``path``, then move it onto ``path`` (:func:`nas.atomic.atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        write(handle)
