"""Writing what ``nas lut`` makes (tables, bundles): refuse an unwritable ``-o`` path before any work, turn an
OS error while writing (a full disk, a read-only file system) into one message, and lock a table while a build
or ``nas lut add`` writes it.

Every writer here writes a temporary file beside its target and renames it into place (:mod:`nas.atomic`), so an
error leaves the earlier file as it was. The lock is ``TABLE.lock`` beside the table, held with ``fcntl.flock``
(released by the kernel when the process ends, also on ``kill -9``) and holding the owner's pid; it is removed
when the run ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from nas.errors import LatencyTableError

try:  # POSIX; elsewhere builds are not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["check_output", "writing", "table_lock", "lock_path"]


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not (probe.exists() or probe.is_symlink()) and probe != probe.parent:
        probe = probe.parent
    return probe


def check_output(path: Path, *, what: str, option: str = "-o") -> None:
    """Refuse ``path`` (an ``-o`` option) when a folder on its way is a file, or the nearest existing folder cannot
    be written (a read-only file system, no permission)."""
    parent = path.parent
    probe = _nearest_existing(parent)
    if not probe.is_dir():
        raise LatencyTableError(f"{path}: cannot write {what} there: {probe} is a file, not a folder; choose another "
                                f"{option} path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise LatencyTableError(f"{path}: cannot write {what} there: {probe}/ is not writable (read-only file system "
                                f"or no permission); choose another {option} path")


@contextmanager
def writing(path: Path, what: str, *, after: str | None = None) -> Iterator[None]:
    """Turn an ``OSError`` raised in the block (while writing ``what`` to ``path``) into one message; ``after`` says
    what was kept (default: nothing was written, any earlier file is as it was)."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        kept = after or ("nothing was written there and any earlier file is as it was: free some space or choose "
                         "another -o path")
        raise LatencyTableError(f"{path}: cannot write {what} ({reason}); {kept}") from None


def lock_path(table: Path) -> Path:
    return table.with_name(table.name + ".lock")


def _holder(fd: int) -> int | None:
    with suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode().strip() or "x")
    return None


def _acquire(lock: Path, table: Path) -> int:
    """An open, flock-ed descriptor of ``lock`` (the file at that path now, not one its last holder removed)."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            os.close(fd)
            who = f" (pid {pid})" if pid else ""
            raise LatencyTableError(f"{table}: another nas process{who} is writing this table ('nas lut build' or "
                                    f"'nas lut add'; it holds {lock}); wait for it to finish or stop it, or choose "
                                    "another -o path") from None
        with suppress(FileNotFoundError):
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                return fd
        os.close(fd)  # the previous holder removed the file between our open and our lock: lock the new one


@contextmanager
def table_lock(table: Path) -> Iterator[None]:
    """Hold ``TABLE.lock`` for the block; refuses with one message (naming the holder's pid) when another process
    holds it."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    lock = lock_path(table)
    with writing(lock, "the lock file"):
        fd = _acquire(lock, table)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        with suppress(OSError):
            lock.unlink()
        os.close(fd)
