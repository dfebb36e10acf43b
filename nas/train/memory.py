"""Where a CPU training's memory comes from and when it goes back (glibc's allocator).

By default glibc maps every block over 32 MiB afresh and unmaps it when freed, so each CPU training step
faulted its large activations in again, page by page; :func:`keep_large_blocks_in_heap` serves them from
the heap instead. A heap keeps what is freed, fragmented, so :func:`release_freed_memory` hands it back,
which the loop does only when :func:`memory_is_short`. Elsewhere than glibc these do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["release_freed_memory", "memory_is_short", "available_memory_share", "SHORT_BELOW",
           "keep_large_blocks_in_heap", "HEAP_BLOCKS_UP_TO"]

#: glibc serves allocations up to this size from its heap once :func:`keep_large_blocks_in_heap` ran.
HEAP_BLOCKS_UP_TO = 1 << 30

#: Memory counts as short when less than this share of it is available (:func:`memory_is_short`).
SHORT_BELOW = 0.25
#: Where the machine's and the cgroup's (v2, then v1) memory figures are read.
MEMINFO = Path("/proc/meminfo")
CGROUP_FILES = ((Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")),
                (Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"), Path("/sys/fs/cgroup/memory/memory.usage_in_bytes")))

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


@functools.lru_cache(maxsize=None)
def _libc_function(name: str) -> Callable[..., int] | None:
    library = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(library), name) if library else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to call
        return None


@functools.lru_cache(maxsize=1)
def keep_large_blocks_in_heap() -> bool:
    """Have glibc serve blocks up to :data:`HEAP_BLOCKS_UP_TO` from its heap (``mallopt(M_MMAP_THRESHOLD)``) and
    keep up to as much free at its top (``M_TRIM_THRESHOLD``), once per process; False where that is not glibc,
    or when ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` is set (the user's choice).

    By default glibc maps every block over 32 MiB afresh and unmaps it when freed, so each training step
    faults all its large activations in again, page by page, zeroed by the kernel. On the same 8 steps of the
    full CIFAR-10 supernet run (batch 128, 2 threads, twice each), page faults fell from 33 to 3 million, system
    time from 57-73 to 6-7 s, and steps from 16.2 to 13.5 s (README). The heap then holds freed blocks, which
    :func:`release_freed_memory` hands back when memory is short. Process-wide and not undone: it only changes
    where memory comes from.
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    mallopt = _libc_function("mallopt")
    return bool(mallopt is not None and mallopt(_M_MMAP_THRESHOLD, HEAP_BLOCKS_UP_TO) == 1
                and mallopt(_M_TRIM_THRESHOLD, HEAP_BLOCKS_UP_TO) == 1)


def release_freed_memory() -> bool:
    """Hand the C heap's freed memory back to the operating system (glibc's ``malloc_trim``); False elsewhere.

    A CPU training step frees gigabytes of activations; glibc keeps much of it in its heaps, fragmented, so
    the process can grow step after step (the supernet's sandwich step on CIFAR-10 at batch 128 grew from 8
    to over 23 GB and nearly met the kernel's OOM killer). Trimming brings it back to one step's peak, but
    the next steps fault the pages in again (the kernel zeroes them), so the loop trims only when
    :func:`memory_is_short`. About 1 ms a call on tiny steps.
    """
    trim = _libc_function("malloc_trim")
    if trim is None:
        return False
    trim(0)
    return True


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):  # absent, or "max" (no limit)
        return None


def available_memory_share(meminfo: Path | None = None,
                           cgroups: tuple[tuple[Path, Path], ...] | None = None) -> float | None:
    """The share of memory still available: the machine's (``MemAvailable`` / ``MemTotal``), or the process's
    cgroup's (limit - usage) / limit when that is smaller; None when neither can be read (not Linux). The
    files default to :data:`MEMINFO` and :data:`CGROUP_FILES`."""
    meminfo = MEMINFO if meminfo is None else meminfo
    cgroups = CGROUP_FILES if cgroups is None else cgroups
    shares: list[float] = []
    try:
        fields = dict(line.split(":", 1) for line in meminfo.read_text().splitlines() if ":" in line)
        total = int(fields["MemTotal"].split()[0]) * 1024
        shares.append(int(fields["MemAvailable"].split()[0]) * 1024 / total)
    except (OSError, KeyError, ValueError, IndexError, ZeroDivisionError):
        total = None
    for limit_file, usage_file in cgroups:
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit and usage is not None and (total is None or limit < total):  # v1 writes a huge number for none
            shares.append(max(0.0, (limit - usage) / limit))
    return min(shares) if shares else None


def memory_is_short(below: float = SHORT_BELOW) -> bool:
    """Whether less than ``below`` of the memory is available (:func:`available_memory_share`); True when that
    cannot be read, so that a loop trimming on it trims as before."""
    share = available_memory_share()
    return share is None or share < below
