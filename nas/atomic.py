"""Atomic file writes: a reader (or a crash, ``kill -9``, Ctrl-C) sees the old file or the new one, never half.

Everything ``nas`` stores (tables, checkpoints, trial outputs, results, reports) is written into a
temporary file beside its target, flushed to disk, then renamed onto the target with
``os.replace`` (atomic on POSIX and Windows). On any error the temporary file is removed and
the old target is left as it was.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nas.errors import NASError

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "check_out_dir", "ensure_dir"]


def _head(name: str, max_bytes: int) -> str:
    """The longest start of ``name`` that is at most ``max_bytes`` bytes in UTF-8."""
    return name.encode()[:max_bytes].decode(errors="ignore")


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so writers that go by it still work)
    to write to; when the block ends without error, flush it to disk and rename it onto ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The name is shortened so that a target name near the file system's limit (255 bytes) still has
    # room for the temporary one; a suffix that long is no file type, so it is dropped.
    suffix = target.suffix if len(target.suffix.encode()) <= 16 else ""
    fd, name = tempfile.mkstemp(prefix=f".{_head(target.name, 64)}.", suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; these are plain data files
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:  # KeyboardInterrupt too: never leave the temporary file behind
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` as UTF-8, newlines as given (no platform translation)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike[str], data: Any, *, indent: int | None = 2,
                      sort_keys: bool = True) -> Path:
    """``data`` as JSON with a final newline."""
    return atomic_write_text(path, json.dumps(data, indent=indent, sort_keys=sort_keys) + "\n")


def check_out_dir(path: str | os.PathLike[str], option: str) -> Path:
    """``path`` as the output directory of ``option``, checked without creating anything: refused (a
    :class:`~nas.errors.NASError`) when it is an existing file or a path the file system refuses (a name
    too long)."""
    target = Path(path)
    try:  # os.stat, not Path.exists: only the former reports a name too long on every Python version
        is_file = not stat.S_ISDIR(os.stat(target).st_mode)
    except FileNotFoundError:
        is_file = False
    except NotADirectoryError:  # a file on the way: refused when the directory is made
        is_file = False
    except OSError as exc:
        raise NASError(f"{option} {target}: not a usable directory path ({exc.strerror or exc}); pass a shorter "
                       "or other directory path") from None
    if is_file:
        raise NASError(f"{option} {target}: is an existing file, not a directory; pass a directory path "
                       f"(a new one is created)")
    return target


def ensure_dir(path: str | os.PathLike[str], option: str) -> Path:
    """Create the output directory ``path`` (with its parents) given by the command-line ``option``.

    Raises :class:`~nas.errors.NASError` naming ``option`` and the path when it is an existing
    file (or a parent is) or cannot be created (permissions, read-only file system).
    """
    target = check_out_dir(path, option)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NASError(f"{option} {target}: cannot create the directory ({exc.strerror or exc}); pass a directory "
                       f"path that can be created (no existing file in the way, write permission)") from None
    return target
