"""Timing ONNX models with onnxruntime, and turning parts/networks into timing models.

Measurement protocol (recorded in every table's metadata): one onnxruntime session per model
with ``intra_op_num_threads = threads`` and sequential execution, all graph optimisations on;
``warmup`` untimed runs; then timed runs (``time.perf_counter_ns`` around ``session.run``)
until both ``min_repeats`` runs and ``min_seconds`` have passed, at most ``max_repeats``.
The entry is the median, with the 10th/90th percentiles as its spread. While a model is
being timed (session creation included, so onnxruntime's worker threads inherit it), the
calling thread is pinned to ``threads`` CPUs when the OS allows it, so the scheduler does
not migrate it mid-run; :func:`pinned` restores the previous affinity afterwards, so a
search or NetAdapt run that measures a missing entry keeps all its cores for training.

Timing models carry deterministic weights (every tensor filled with 1 / fan-in, BN at
identity), not trained ones: on these backends the time of a float convolution does not
depend on its values, the activations stay bounded through a whole network, and the ONNX
files compress ~1000x, which keeps device bundles small.
"""

from __future__ import annotations

import os
import platform
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.arch import ArchSpec, BlockSpec, HeadSpec, StemSpec, build_block, build_model, build_stem
from nas.arch.builder import Head
from nas.errors import LatencyTableError
from nas.latency.signature import Part

__all__ = ["CLOCKS", "Timing", "MeasureSettings", "Backend", "OrtBackend", "get_backend", "BACKENDS", "timing_weights",
           "part_module", "part_onnx", "arch_onnx", "cpu_name", "pinned"]

BACKENDS: tuple[str, ...] = ("ort-cpu", "ort-cuda")


@dataclass(frozen=True)
class Timing:
    median: float
    p10: float
    p90: float
    repeats: int

    @classmethod
    def from_samples(cls, samples_ms: np.ndarray) -> Timing:
        p10, median, p90 = np.percentile(samples_ms, [10, 50, 90])
        return cls(float(median), float(p10), float(p90), int(len(samples_ms)))


CLOCKS: tuple[str, ...] = ("wall", "thread")


@dataclass(frozen=True)
class MeasureSettings:
    """How each model is timed. ``clock``: ``wall`` (``perf_counter``, the latency a user sees) or
    ``thread`` (the timing thread's CPU time: on a shared machine it leaves out the time other
    processes take the CPU away mid-run, though not their effect on caches; 1-thread CPU only)."""

    warmup: int = 10
    min_repeats: int = 30
    max_repeats: int = 300
    min_seconds: float = 0.05
    statistic: str = "median"
    clock: str = "wall"

    def __post_init__(self) -> None:
        if self.clock not in CLOCKS:
            raise LatencyTableError(f"--clock: expected one of {list(CLOCKS)}, got {self.clock!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@contextmanager
def pinned(threads: int, *, enabled: bool = True) -> Iterator[frozenset[int] | None]:
    """Pin the calling thread to ``threads`` of its allowed CPUs for the ``with`` body, then restore.

    Yields the CPUs pinned to, or ``None`` when nothing was changed (disabled, no
    ``sched_setaffinity`` on this OS, or no more CPUs allowed than ``threads``). Threads
    started inside the body (onnxruntime's pool) inherit the pinning; the caller's previous
    affinity is restored on exit, also when the body raises or is interrupted.
    """
    if not enabled or not hasattr(os, "sched_setaffinity"):
        yield None
        return
    previous = os.sched_getaffinity(0)
    allowed = sorted(previous)
    if len(allowed) <= threads:
        yield None
        return
    target = frozenset(allowed[-threads:])
    os.sched_setaffinity(0, target)
    try:
        yield target
    finally:
        os.sched_setaffinity(0, previous)


class Backend(ABC):
    """Times ONNX models on one device/runtime configuration."""

    name: str
    threads: int
    settings: MeasureSettings

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """Metadata describing the device and runtime (goes into the table)."""

    @abstractmethod
    def time_onnx(self, model: bytes, input_shape: tuple[int, ...]) -> Timing:
        """Median/p10/p90 latency in milliseconds of one forward pass."""


class OrtBackend(Backend):
    def __init__(self, name: str = "ort-cpu", *, threads: int = 1, settings: MeasureSettings | None = None,
                 pin: bool = True) -> None:
        import onnxruntime as ort

        if name not in BACKENDS:
            raise LatencyTableError(f"unknown backend {name!r}; choose one of {list(BACKENDS)}")
        self.name, self.threads = name, threads
        self.settings = settings or MeasureSettings()
        self.provider = "CUDAExecutionProvider" if name == "ort-cuda" else "CPUExecutionProvider"
        if self.provider not in ort.get_available_providers():
            raise LatencyTableError(
                f"backend {name!r} needs onnxruntime's {self.provider}, but this onnxruntime offers "
                f"{ort.get_available_providers()}; install onnxruntime-gpu on a CUDA machine, or use --backend ort-cpu")
        if threads < 1:
            raise LatencyTableError(f"--threads: expected >= 1, got {threads}")
        if self.settings.clock == "thread" and (threads != 1 or name != "ort-cpu"):
            raise LatencyTableError(
                f"--clock thread: the timing thread's CPU time misses onnxruntime's other threads and the GPU; it is "
                f"valid only for --backend ort-cpu --threads 1, got --backend {name} --threads {threads}; use --clock wall")
        self._ort = ort
        self.pin = pin  # applied only while timing (see pinned), never to the whole process

    def info(self) -> dict[str, Any]:
        gpu = None
        if self.provider == "CUDAExecutionProvider" and torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
        cpu = cpu_name()
        device = f"{gpu} (CUDA)" if gpu else f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.machine()}"
        return {
            "device": device, "cpu": cpu, "gpu": gpu, "backend": self.name,
            "backend_version": f"onnxruntime {self._ort.__version__}", "execution_provider": self.provider,
            "threads": self.threads,
        }

    def session(self, model: bytes) -> Any:
        so = self._ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = self._ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        return self._ort.InferenceSession(model, so, providers=[self.provider])

    def time_onnx(self, model: bytes, input_shape: tuple[int, ...]) -> Timing:
        feed_data = np.random.default_rng(0).standard_normal(input_shape).astype(np.float32)
        s = self.settings
        clock = time.thread_time_ns if s.clock == "thread" else time.perf_counter_ns
        samples: list[int] = []
        with pinned(self.threads, enabled=self.pin):
            sess = self.session(model)
            feed = {sess.get_inputs()[0].name: feed_data}
            for _ in range(s.warmup):
                sess.run(None, feed)
            start = time.perf_counter()
            while len(samples) < s.max_repeats and (len(samples) < s.min_repeats
                                                    or time.perf_counter() - start < s.min_seconds):
                t0 = clock()
                sess.run(None, feed)
                samples.append(clock() - t0)
            del sess  # its worker threads (pinned) end with it
        return Timing.from_samples(np.asarray(samples, dtype=np.float64) / 1e6)


def get_backend(name: str, *, threads: int = 1, settings: MeasureSettings | None = None, pin: bool = True) -> Backend:
    return OrtBackend(name, threads=threads, settings=settings, pin=pin)


# ------------------------------------------------------------------------- timing models
@torch.no_grad()
def timing_weights(module: nn.Module) -> nn.Module:
    """Give ``module`` deterministic, bounded weights (see module docstring); returns it in eval mode."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.fill_(1.0 / (m.weight[0].numel()))
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.Linear):
            m.weight.fill_(1.0 / m.in_features)
            m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.fill_(1.0)
            m.bias.zero_()
            m.running_mean.zero_()
            m.running_var.fill_(1.0)
    return module.eval()


def part_module(part: Part) -> nn.Module:
    spec = part.spec
    if isinstance(spec, StemSpec):
        module = build_stem(spec, in_ch=part.in_ch)
    elif isinstance(spec, BlockSpec):
        module = build_block(spec, resolution=part.resolution)
    else:
        assert isinstance(spec, HeadSpec)
        module = Head(head=spec, in_ch=part.in_ch, num_classes=part.num_classes)
    return timing_weights(module)


def part_onnx(part: Part) -> bytes:
    from nas.export import to_onnx_bytes

    return to_onnx_bytes(part_module(part), part.input_shape)


def arch_onnx(arch: ArchSpec) -> bytes:
    from nas.export import to_onnx_bytes

    return to_onnx_bytes(timing_weights(build_model(arch)), (1, arch.in_ch, arch.input_size, arch.input_size))
