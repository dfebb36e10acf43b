"""Where a run executes and in which precision.

CUDA runs use mixed precision: bfloat16 autocast where the GPU supports it (same exponent
range as float32, so no loss scaling is needed), else float16 autocast with a
:class:`torch.amp.GradScaler`, and cuDNN autotuning. CPU runs are plain float32: CPU autocast
(bf16) is slow for these small convolutions where bfloat16 is emulated, and would make CPU results depend
on the host's ISA. The one exception is opt-in: a supernet's scores (``--cpu-bf16``, forward passes only)
on a CPU with native bfloat16 (:func:`cpu_has_native_bf16`), where a score on 2,500 validation images took
1.42 instead of 2.33 s (``benchmarks/results/supernet_score_precision.md``, the 2-core AMD EPYC VM).
Both use channels-last memory (``TrainConfig.channels_last``, on by default): faster depthwise and
1x1 convolutions with cuDNN, and on the CPU too (oneDNN): a training step of a NAS-Bench-Macro
network took 0.60 s instead of 0.99 s, a supernet's sandwich step 2.0 s instead of 3.5 s, a forward
pass 0.8-1.2 s instead of 1.3-2.0 s (batch 128-256, 2 threads, the 2-core AMD EPYC development VM).
Evaluation (:mod:`nas.train.evaluate`) uses the same layout as training, so BatchNorm statistics
re-estimated after training are the ones re-estimated at test time.
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass

import torch

from nas.errors import ConfigError, NASError

__all__ = ["resolve_device", "Precision", "choose_precision", "cpu_threads", "use_cpu_threads",
           "cpu_has_native_bf16"]



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


#: CPU flags (Linux ``/proc/cpuinfo``) of native bfloat16 arithmetic: AVX512-BF16 (AMD Zen 4 and later,
#: Intel Cooper Lake) and AMX-BF16 (Intel Sapphire Rapids and later).
_NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@functools.lru_cache(maxsize=8)
def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes in bfloat16 natively; elsewhere bfloat16 is emulated and slower than float32.

    Read from ``cpuinfo``'s x86 ``flags`` line (an ARM CPU, whose file lists ``Features``, counts as without);
    where that file is missing (not Linux), PyTorch's own AVX512-BF16 check is asked (every CPU with AMX-BF16
    has AVX512-BF16 too)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return not _NATIVE_BF16_FLAGS.isdisjoint(line.split(":", 1)[-1].split())
        return False
    except OSError:
        check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
        return bool(check()) if callable(check) else False
