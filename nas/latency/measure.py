"""Timing models with a runtime (onnxruntime, or LiteRT with XNNPACK), and turning parts/networks into timing models.

Backends (:data:`BACKENDS`): ``ort-cpu`` and ``ort-cuda`` time ONNX models with onnxruntime
(:class:`OrtBackend`); ``litert`` times LiteRT (.tflite) models with ``ai-edge-litert``'s interpreter
and its default XNNPACK CPU delegate (:class:`LiteRTBackend`, the optional ``[litert]`` extra), the
runtime Android phones run models with. Each backend has a :class:`~nas.latency.formats.ModelFormat`
that makes its timing models (:meth:`Backend.part_model`, :meth:`Backend.network_model`,
:meth:`Backend.overhead_model`).

Measurement protocol (recorded in every table's metadata), the same for every backend. One *pass*
over a model (:meth:`Backend.time_pass`): a new session (onnxruntime: ``intra_op_num_threads =
threads``, one inter-op thread, sequential execution, all graph optimisations on; LiteRT: an
interpreter with ``num_threads = threads`` and XNNPACK, its input set once to the pass's data);
``warmup`` untimed runs; then timed runs (``time.perf_counter_ns`` around ``session.run``, or around
``interpreter.invoke()`` as LiteRT's ``benchmark_model`` times) until both ``min_repeats`` runs and
``min_seconds`` have passed, at most ``max_repeats``; the pass's median and 10th/90th
percentiles. A model's latency is the *minimum over* ``passes`` *passes of the per-pass
median* (:meth:`Timing.best_of`): the CPU of a shared host switches between speed regimes for
stretches of ~0.3 s to seconds, so one pass's median depends on the stretch it fell in, while
the fastest of several passes is reproducible. Over a set of models the passes are
interleaved (:func:`nas.latency.passes.time_interleaved`: pass 1 over every model, then
pass 2, ...), so one slow stretch cannot spoil every pass of one model; a single model
(:meth:`Backend.time_onnx`, e.g. an entry measured on demand) gets its passes back to back.

While a model is being timed (session creation included, so onnxruntime's and XNNPACK's worker
threads inherit it), the calling thread is pinned to ``threads`` CPUs when the OS allows it, so the
scheduler does not migrate it mid-run; :func:`pinned` restores the previous affinity
afterwards, so a search or NetAdapt run that measures a missing entry keeps all its cores for
training.

Timing models carry deterministic weights (every tensor filled with 1 / fan-in, BN at
identity), not trained ones: on these backends the time of a float convolution does not
depend on its values, the activations stay bounded through a whole network, and the ONNX
files compress ~1000x, which keeps device bundles small.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.arch import ArchSpec, BlockSpec, HeadSpec, StemSpec, build_block, build_model, build_stem
from nas.arch.builder import Head
from nas.errors import LatencyTableError
from nas.interrupt import check_interrupt
from nas.latency.bundle_runner import cpu_name  # standalone on the device; the one definition
from nas.latency.formats import ModelFormat, model_format
from nas.latency.signature import Part

__all__ = ["CLOCKS", "DEFAULT_PASSES", "Timing", "MeasureSettings", "Backend", "OrtBackend", "LiteRTBackend",
           "get_backend", "table_backend", "backend_available", "BACKENDS", "ORT_BACKENDS", "LITERT_BACKEND",
           "timing_weights", "part_module", "part_onnx", "arch_onnx", "cpu_name", "pinned", "usable_cpus"]

ORT_BACKENDS: tuple[str, ...] = ("ort-cpu", "ort-cuda")
LITERT_BACKEND = "litert"
#: every backend ``nas lut build`` can time with on this machine (given its packages)
BACKENDS: tuple[str, ...] = (*ORT_BACKENDS, LITERT_BACKEND)
#: what LiteRT tables record as their ``execution_provider``: the delegate that runs the model
XNNPACK = "XNNPACK"


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

    @classmethod
    def best_of(cls, passes: Sequence[Timing]) -> Timing:
        """The protocol's statistic over passes: the pass with the lowest median gives ``median``, ``p10`` and
        ``p90`` (so ``p10 <= median <= p90`` holds); ``repeats`` counts the timed runs of all passes."""
        if not passes:
            raise ValueError("best_of needs at least one pass")
        best = min(passes, key=lambda t: t.median)
        return cls(best.median, best.p10, best.p90, sum(t.repeats for t in passes))

    def to_dict(self) -> dict[str, Any]:
        return {"median": self.median, "p10": self.p10, "p90": self.p90, "repeats": self.repeats}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Timing:
        return cls(float(raw["median"]), float(raw["p10"]), float(raw["p90"]), int(raw["repeats"]))


CLOCKS: tuple[str, ...] = ("wall", "thread")


#: Longest ``min_seconds`` taken: an hour of timing per part is already far more than any table needs.
MAX_MIN_SECONDS = 3600.0


@dataclass(frozen=True)
class MeasureSettings:
    """How each model is timed (see the module doc). ``passes``: a latency is the minimum over this many
    passes of each pass's median; 1 (the default here, and what a table without ``passes`` in its
    metadata was measured with) is a single pass; ``nas lut build`` uses :data:`DEFAULT_PASSES`.
    ``clock``: ``wall`` (``perf_counter``, the latency a user sees) or ``thread`` (the timing
    thread's CPU time: on a shared machine it leaves out the time other processes take the CPU
    away mid-run, though not their effect on caches; 1-thread CPU only)."""

    warmup: int = 10
    min_repeats: int = 30
    max_repeats: int = 300
    min_seconds: float = 0.05
    statistic: str = "median"
    clock: str = "wall"
    passes: int = 1

    def __post_init__(self) -> None:
        if self.clock not in CLOCKS:
            raise LatencyTableError(f"--clock: expected one of {list(CLOCKS)}, got {self.clock!r}")
        if isinstance(self.passes, bool) or not isinstance(self.passes, int) or self.passes < 1:
            raise LatencyTableError(f"--passes: expected an integer >= 1, got {self.passes!r}")
        if not 0 <= self.min_seconds <= MAX_MIN_SECONDS:  # NaN and infinity too: a table must be strict JSON
            raise LatencyTableError(f"--min-seconds: expected a number of seconds from 0 to {MAX_MIN_SECONDS:g}, "
                                    f"got {self.min_seconds!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_metadata(cls, measurement: Mapping[str, Any]) -> MeasureSettings:
        """The settings a table's ``metadata.measurement`` records; keys it lacks take their defaults (a table
        written before ``passes`` existed was measured in one pass, the default)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in measurement.items() if k in known})

    def protocol(self) -> str:
        """One sentence for ``metadata.measurement.protocol``."""
        if self.passes == 1:
            return "one pass per model: the median of its timed runs (p10/p90: of the same runs)"
        return (f"the minimum over {self.passes} passes of each pass's median; the passes over a set of models are "
                "interleaved (pass 1 over every model, then pass 2, ...), those of a single model measured on its "
                "own run back to back; p10/p90: of the pass with the minimum median; repeats: timed runs of all "
                "passes")


#: passes ``nas lut build`` / ``nas lut bundle`` use by default (chosen from measurements, see latency_tables/README.md)
DEFAULT_PASSES = 5




def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


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
    """Times models in its :attr:`format` on one device/runtime configuration."""

    name: str
    threads: int
    settings: MeasureSettings
    format: ModelFormat

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """Metadata describing the device and runtime (goes into the table)."""

    @abstractmethod
    def time_pass(self, model: bytes, input_shape: tuple[int, ...]) -> Timing:
        """One timing pass over ``model`` (in :attr:`format`): median/p10/p90 in ms of its timed runs.
        ``input_shape`` is the NCHW shape of the PyTorch module the model was made from."""

    def part_model(self, part: Part) -> bytes:
        """The timing model of one part, in this backend's format (made once, then cached)."""
        return self.format.part_model(part)

    def network_model(self, arch: ArchSpec) -> bytes:
        """The timing model of a whole network, in this backend's format."""
        return self.format.network_model(arch)

    def overhead_model(self, input_shape: tuple[int, ...]) -> bytes:
        """The per-call overhead model (one ReLU), in this backend's format."""
        return self.format.overhead_model(input_shape)

    def measurement_info(self) -> dict[str, Any]:
        """What ``metadata.measurement`` records about the models beside the settings (opset, or converter)."""
        return self.format.describe()

    def time_model(self, model: bytes, input_shape: tuple[int, ...]) -> Timing:
        """The latency of one model under the protocol: ``settings.passes`` passes back to back, the best
        (:meth:`Timing.best_of`). Several models are better timed together, with interleaved passes
        (:func:`nas.latency.passes.time_interleaved`)."""
        return Timing.best_of([self.time_pass(model, input_shape) for _ in range(self.settings.passes)])

    def time_onnx(self, model: bytes, input_shape: tuple[int, ...]) -> Timing:
        """:meth:`time_model` under its name from when every backend timed ONNX: ``model`` must be in this
        backend's format (an ONNX model for ``ort-*``; a LiteRT backend refuses ONNX bytes in one line)."""
        return self.time_model(model, input_shape)


def _check_threads_and_clock(name: str, threads: int, settings: MeasureSettings) -> None:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise LatencyTableError(f"--threads: expected >= 1, got {threads}")
    if settings.clock == "thread" and (threads != 1 or name not in ("ort-cpu", LITERT_BACKEND)):
        raise LatencyTableError(
            f"--clock thread: the timing thread's CPU time misses the runtime's other threads and the GPU; it is "
            f"valid only for --backend ort-cpu or {LITERT_BACKEND} with --threads 1, got --backend {name} "
            f"--threads {threads}; use --clock wall")


def _device(cpu: str, gpu: str | None) -> str:
    return f"{gpu} (CUDA)" if gpu else f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.machine()}"


class OrtBackend(Backend):
    def __init__(self, name: str = "ort-cpu", *, threads: int = 1, settings: MeasureSettings | None = None,
                 pin: bool = True) -> None:
        import onnxruntime as ort

        if name not in ORT_BACKENDS:
            raise LatencyTableError(f"unknown backend {name!r}; choose one of {list(BACKENDS)}")
        self.name, self.threads = name, threads
        self.settings = settings or MeasureSettings()
        self.provider = "CUDAExecutionProvider" if name == "ort-cuda" else "CPUExecutionProvider"
        if self.provider not in ort.get_available_providers():
            raise LatencyTableError(
                f"backend {name!r} needs onnxruntime's {self.provider}, but this onnxruntime offers "
                f"{ort.get_available_providers()}; install onnxruntime-gpu on a CUDA machine, or use --backend ort-cpu")
        _check_threads_and_clock(name, threads, self.settings)
        self._ort = ort
        self.format = model_format("onnx")
        self.pin = pin  # applied only while timing (see pinned), never to the whole process

    def info(self) -> dict[str, Any]:
        gpu = None
        if self.provider == "CUDAExecutionProvider" and torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
        cpu = cpu_name()
        return {
            "device": _device(cpu, gpu), "cpu": cpu, "gpu": gpu, "backend": self.name,
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

    def samples_ms(self, model: bytes, input_shape: tuple[int, ...]) -> np.ndarray:
        """The timed runs of one pass, in milliseconds, in the order they ran."""
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
        return np.asarray(samples, dtype=np.float64) / 1e6

    def time_pass(self, model: bytes, input_shape: tuple[int, ...]) -> Timing:
        check_interrupt()  # a Ctrl-C swallowed by a finalizer stops the measurement before the next pass
        return Timing.from_samples(self.samples_ms(model, input_shape))


class LiteRTBackend(Backend):
    """LiteRT (TensorFlow Lite) on the CPU with its default XNNPACK delegate, as Android phones run models: each
    pass creates an ``ai_edge_litert`` interpreter (``num_threads = threads``), sets its input once (float32
    N(0, 1), as ``benchmark_model`` fills inputs once) and times ``invoke()``. Needs the ``[litert]`` extra."""

    def __init__(self, name: str = LITERT_BACKEND, *, threads: int = 1, settings: MeasureSettings | None = None,
                 pin: bool = True) -> None:
        if name != LITERT_BACKEND:
            raise LatencyTableError(f"unknown backend {name!r}; choose one of {list(BACKENDS)}")
        self.name, self.threads = name, threads
        self.settings = settings or MeasureSettings()
        _check_threads_and_clock(name, threads, self.settings)
        try:
            self.format = model_format("tflite")
        except LatencyTableError as exc:
            raise LatencyTableError(f"backend {name!r}: {exc}") from None
        self.pin = pin

    def info(self) -> dict[str, Any]:
        from nas.export.tflite import litert_versions

        cpu = cpu_name()
        return {"device": _device(cpu, None), "cpu": cpu, "gpu": None, "backend": self.name,
                "backend_version": f"ai-edge-litert {litert_versions()['ai-edge-litert']}",
                "execution_provider": XNNPACK, "threads": self.threads}

    def samples_ms(self, model: bytes, input_shape: tuple[int, ...]) -> np.ndarray:
        """The timed runs of one pass, in milliseconds, in the order they ran."""
        from nas.errors import ExportError
        from nas.export.tflite import tflite_interpreter

        s = self.settings
        clock = time.thread_time_ns if s.clock == "thread" else time.perf_counter_ns
        samples: list[int] = []
        with pinned(self.threads, enabled=self.pin):
            try:
                interpreter = tflite_interpreter(model, threads=self.threads)
            except ExportError as exc:
                raise LatencyTableError(f"backend {self.name!r}: {exc}") from None
            detail = interpreter.get_input_details()[0]
            shape = tuple(int(v) for v in detail["shape"])
            if int(np.prod(shape)) != int(np.prod(input_shape)):
                raise LatencyTableError(f"backend {self.name!r}: the model takes {shape}, not a tensor of "
                                        f"{list(input_shape)}'s size")
            data = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
            interpreter.set_tensor(detail["index"], data)
            invoke = interpreter.invoke
            for _ in range(s.warmup):
                invoke()
            start = time.perf_counter()
            while len(samples) < s.max_repeats and (len(samples) < s.min_repeats
                                                    or time.perf_counter() - start < s.min_seconds):
                t0 = clock()
                invoke()
                samples.append(clock() - t0)
            del interpreter  # its XNNPACK threads (pinned) end with it
        return np.asarray(samples, dtype=np.float64) / 1e6

    def time_pass(self, model: bytes, input_shape: tuple[int, ...]) -> Timing:
        check_interrupt()
        return Timing.from_samples(self.samples_ms(model, input_shape))


def get_backend(name: str, *, threads: int = 1, settings: MeasureSettings | None = None, pin: bool = True) -> Backend:
    """The backend called ``name`` (:data:`BACKENDS`); one LatencyTableError when it is unknown or not installed."""
    if name == LITERT_BACKEND:
        return LiteRTBackend(name, threads=threads, settings=settings, pin=pin)
    return OrtBackend(name, threads=threads, settings=settings, pin=pin)


def backend_available(backend: str, execution_provider: str | None) -> bool:
    """Whether this machine can time with ``backend`` (and, for onnxruntime, ``execution_provider``)."""
    if backend == LITERT_BACKEND:
        from nas.export.tflite import litert_versions

        return execution_provider == XNNPACK and "not installed" not in litert_versions().values()
    if backend not in ORT_BACKENDS:
        return False
    import onnxruntime as ort

    return execution_provider in ort.get_available_providers()


def installed_version(backend: str) -> str | None:
    """What a table built here with ``backend`` records as its ``backend_version`` (None: not installed)."""
    if backend == LITERT_BACKEND:
        from nas.export.tflite import litert_versions

        version = litert_versions()["ai-edge-litert"]
        return None if version == "not installed" else f"ai-edge-litert {version}"
    if backend not in ORT_BACKENDS:
        return None
    import onnxruntime as ort

    return f"onnxruntime {ort.__version__}"


def table_backend(metadata: Mapping[str, Any], *, clock: str | None = None, passes: int | None = None) -> Backend:
    """The backend and measurement protocol a table's ``metadata`` records, to time networks as the table did.

    ``clock`` and ``passes`` replace the recorded ones (``nas lut validate --clock/--passes``).
    """
    settings = MeasureSettings.from_metadata(metadata["measurement"])
    if clock:
        settings = dataclasses.replace(settings, clock=clock)
    if passes is not None:
        settings = dataclasses.replace(settings, passes=passes)
    return get_backend(metadata["backend"], threads=metadata["threads"], settings=settings)


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
