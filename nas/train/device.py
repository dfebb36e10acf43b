"""Where a run executes and in which precision.

CUDA runs use mixed precision: bfloat16 autocast where the GPU supports it (same exponent
range as float32, so no loss scaling is needed), else float16 autocast with a
:class:`torch.amp.GradScaler`, and cuDNN autotuning. CPU runs are plain float32: CPU autocast
(bf16) is slow for these small convolutions and would make CPU results depend on the host's ISA.
Both use channels-last memory (``TrainConfig.channels_last``, on by default): faster depthwise and
1x1 convolutions with cuDNN, and on the CPU too (oneDNN): a training step of a NAS-Bench-Macro
network took 0.60 s instead of 0.99 s, a supernet's sandwich step 2.0 s instead of 3.5 s, a forward
pass 0.8-1.2 s instead of 1.3-2.0 s (batch 128-256, 2 threads, the 2-core AMD EPYC development VM).
Evaluation (:mod:`nas.train.evaluate`) uses the same layout as training, so BatchNorm statistics
re-estimated after training are the ones re-estimated at test time.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from nas.errors import ConfigError, NASError

__all__ = ["resolve_device", "Precision", "choose_precision", "cpu_threads", "use_cpu_threads",
           "release_freed_memory", "memory_is_short", "available_memory_share", "SHORT_BELOW",
           "keep_large_blocks_in_heap", "HEAP_BLOCKS_UP_TO"]

#: glibc serves allocations up to this size from its heap once :func:`keep_large_blocks_in_heap` ran.
HEAP_BLOCKS_UP_TO = 1 << 30

#: Memory counts as short when less than this share of it is available (:func:`memory_is_short`).
SHORT_BELOW = 0.25
#: Where the machine's and the cgroup's (v2, then v1) memory figures are read.
MEMINFO = Path("/proc/meminfo")
CGROUP_FILES = ((Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")),
                (Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"), Path("/sys/fs/cgroup/memory/memory.usage_in_bytes")))


def cpu_threads(requested: int = 0) -> int:
    """Threads for CPU training: ``requested``, or with 0 the cores left idle by other work.

    PyTorch's default (one thread per core) is fastest on an idle machine but several times
    slower than one thread when other processes keep the cores busy, because its threads then
    wait for each other; the 1-minute load average tells which case this is.
    """
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 0:
        raise ConfigError(f"--threads: expected 0 (automatic) or a positive number of threads, got {requested}")
    if requested:
        return requested
    cores = os.cpu_count() or 1
    try:
        busy = round(os.getloadavg()[0])
    except OSError:
        busy = 0
    return max(1, min(cores, cores - busy))


def use_cpu_threads(requested: int = 0) -> int:
    """Set torch's intra-op threads to :func:`cpu_threads` ``(requested)``; returns the number."""
    threads = cpu_threads(requested)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


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


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; an explicit CUDA device must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise NASError(f"unknown device {name!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise NASError(f"device {name!r} was requested but CUDA is not available to this PyTorch "
                           f"({torch.__version__}); use device 'auto' or 'cpu'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise NASError(f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} "
                           f"CUDA device(s); use 'cuda:0'..'cuda:{torch.cuda.device_count() - 1}'")
    elif device.type != "cpu":
        raise NASError(f"device {name!r} is not supported: expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return device


@dataclass(frozen=True)
class Precision:
    """How forward passes run: ``dtype`` None means plain float32."""

    device: torch.device
    dtype: torch.dtype | None
    channels_last: bool

    @property
    def needs_scaler(self) -> bool:
        return self.dtype == torch.float16

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def make_scaler(self) -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler(self.device.type) if self.needs_scaler else None

    def describe(self) -> str:
        dtype = "float32" if self.dtype is None else str(self.dtype).removeprefix("torch.")
        return f"{self.device} {dtype}{' channels-last' if self.channels_last else ''}"


def choose_precision(device: torch.device, *, amp: bool, channels_last: bool) -> Precision:
    """Mixed precision only on CUDA; channels-last as asked, on either (see the module docstring)."""
    if device.type != "cuda":
        return Precision(device, None, channels_last)
    dtype: torch.dtype | None = None
    if amp:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return Precision(device, dtype, channels_last)
