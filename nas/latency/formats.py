"""The model files a runtime times: ONNX (onnxruntime) or LiteRT's .tflite, made from timing models.

:class:`ModelFormat` turns a PyTorch module with timing weights into the bytes one runtime loads;
:func:`model_format` gives ``"onnx"`` or ``"tflite"``. A format also makes the three kinds of timing
models a table needs (a part, a whole network, the one-ReLU overhead model) and keeps what it made
in a :class:`ModelCache`: zlib-compressed in memory (constant timing weights shrink ~100x), and,
when a build gives it a folder, also on disk, one file per model written atomically, so an
interrupted build does not convert again what it converted before (an ONNX export takes ~20 ms,
a LiteRT conversion ~0.5-1 s: the default space's ~1,800 models take ~15-30 minutes to convert).

Layouts: ONNX models take NCHW inputs as PyTorch does. LiteRT models take and give NHWC tensors
(the head gives ``(batch, classes)``), the layout LiteRT's kernels work in: a part then hands its
output on as it would inside a whole network, with no transpose at its boundaries
(:mod:`nas.export.tflite`).
"""

from __future__ import annotations

import hashlib
import shutil
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

from torch import nn

from nas.arch import ArchSpec, build_model
from nas.atomic import atomic_write_bytes
from nas.errors import ExportError, LatencyTableError
from nas.interrupt import check_interrupt
from nas.latency.signature import Part

__all__ = ["FORMATS", "ModelFormat", "ModelCache", "model_format", "cache_folder", "convert_ahead"]

#: the model formats, by name
FORMATS: tuple[str, ...] = ("onnx", "tflite")


class ModelCache:
    """Models by key, zlib-compressed in memory and, with ``folder``, on disk (written atomically, read back on
    the next run). ``tag`` (the format and its converter's version) is part of every key, so a cache folder
    never hands out a model another converter made."""

    def __init__(self, tag: str, folder: Path | None = None) -> None:
        self.tag, self.folder = tag, folder
        self._memory: dict[str, bytes] = {}
        self.made = 0  # models made (not found in the cache) since this cache was created

    def path_of(self, key: str) -> Path | None:
        """Where the on-disk copy of ``key`` lives (None without a folder)."""
        if self.folder is None:
            return None
        digest = hashlib.sha256(f"{self.tag}\n{key}".encode()).hexdigest()[:32]
        return self.folder / f"{digest}.z"

    def get(self, key: str, make: Callable[[], bytes]) -> bytes:
        """The model stored under ``key``; made with ``make()`` (and stored) when there is none."""
        packed = self._memory.get(key)
        path = self.path_of(key)
        if packed is None and path is not None and path.is_file():
            try:
                packed = path.read_bytes()
                data = zlib.decompress(packed)
            except (OSError, zlib.error):  # a file cut short by a crash: make it again
                packed = None
            else:
                self._memory[key] = packed
                return data
        if packed is not None:
            return zlib.decompress(packed)
        data = make()
        self.made += 1
        packed = zlib.compress(data, 1)
        self._memory[key] = packed
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(path, packed)
            except OSError:  # a full disk: the cache is only a saving, the build goes on
                pass
        return data

    def remove_folder(self) -> None:
        """Delete the on-disk copies (after a finished build) and keep using memory only."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None


def _part_key(part: Part) -> str:
    return f"part {part.signature}"


def _network_key(arch: ArchSpec) -> str:
    from nas.arch import to_compact

    return f"network {to_compact(arch)}"


class ModelFormat(ABC):
    """One runtime's model format: timing models (and any module) to the bytes that runtime loads."""

    name: str
    suffix: str

    def __init__(self) -> None:
        self.cache = ModelCache(self.tag())

    @abstractmethod
    def tag(self) -> str:
        """The format and its converter's version (cache keys; tables and bundles record it)."""

    @abstractmethod
    def export(self, module: nn.Module, input_shape: tuple[int, ...]) -> bytes:
        """``module`` (its weights as they are) for an NCHW ``input_shape``, in this format."""

    @abstractmethod
    def describe(self) -> dict[str, str]:
        """What a table's ``metadata.measurement`` records about the models (format, converter, layout)."""

    def part_model(self, part: Part) -> bytes:
        from nas.latency.measure import part_module

        return self.cache.get(_part_key(part), lambda: self.export(part_module(part), part.input_shape))

    def network_model(self, arch: ArchSpec) -> bytes:
        from nas.latency.measure import timing_weights

        shape = (1, arch.in_ch, arch.input_size, arch.input_size)
        return self.cache.get(_network_key(arch), lambda: self.export(timing_weights(build_model(arch)), shape))

    def overhead_model(self, input_shape: tuple[int, ...]) -> bytes:
        """The per-call overhead model: one ReLU on an input of this (NCHW) shape."""
        return self.cache.get(f"overhead {list(input_shape)}", lambda: self.export(nn.ReLU(), input_shape))


class _Onnx(ModelFormat):
    name, suffix = "onnx", ".onnx"

    def tag(self) -> str:
        from nas.export import OPSET

        return f"onnx opset {OPSET}"

    def export(self, module: nn.Module, input_shape: tuple[int, ...]) -> bytes:
        from nas.export import to_onnx_bytes

        return to_onnx_bytes(module, input_shape)

    def describe(self) -> dict[str, str]:
        from nas.export import OPSET

        return {"opset": OPSET}  # type: ignore[dict-item]


class _Tflite(ModelFormat):
    name, suffix = "tflite", ".tflite"

    def __init__(self) -> None:
        from nas.export.tflite import require_litert

        try:
            require_litert()
        except ExportError as exc:
            raise LatencyTableError(str(exc)) from None
        super().__init__()

    def tag(self) -> str:
        from nas.export.tflite import litert_versions

        return f"tflite litert-torch {litert_versions()['litert-torch']} nhwc"

    def export(self, module: nn.Module, input_shape: tuple[int, ...]) -> bytes:
        from nas.export.tflite import to_tflite_bytes

        return to_tflite_bytes(module, input_shape, layout="nhwc")

    def describe(self) -> dict[str, str]:
        from nas.export.tflite import litert_versions

        return {"model_format": "tflite", "converter": f"litert-torch {litert_versions()['litert-torch']}",
                "layout": "NHWC inputs and outputs (the head: batch x classes)"}


def model_format(name: str) -> ModelFormat:
    """``"onnx"`` or ``"tflite"`` (which needs the ``[litert]`` extra: a one-line error says how to install it)."""
    if name == "onnx":
        return _Onnx()
    if name == "tflite":
        return _Tflite()
    raise LatencyTableError(f"model format {name!r}: expected one of {list(FORMATS)}")


def cache_folder(table_path: Path) -> Path:
    """Where a build keeps its converted models until it finishes: ``TABLE.models/`` beside the table."""
    return table_path.with_name(table_path.name + ".models")


_WORKER: ModelFormat | None = None  # the format of a conversion worker process (see convert_ahead)


def _start_worker(name: str, folder: Path) -> None:
    global _WORKER
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the main process's to handle: it stops the pool
    torch.set_num_threads(1)  # the workers share the CPUs among themselves
    _WORKER = model_format(name)
    _WORKER.cache.folder = folder


def _convert_one(item: Part | ArchSpec) -> None:
    assert _WORKER is not None
    if isinstance(item, Part):
        _WORKER.part_model(item)
    else:
        _WORKER.network_model(item)


def convert_ahead(fmt: ModelFormat, items: Sequence[Part | ArchSpec], workers: int, *, progress: bool = True,
                  desc: str = "converting") -> int:
    """Convert the timing models of ``items`` (parts and whole networks) in ``workers`` processes into
    ``fmt``'s cache folder, so that asking ``fmt`` for them later reads them from disk; returns how many
    were converted (those already in the folder are skipped).

    For slow converters (LiteRT: about 1.5 s a part on one core, single-threaded) on a machine with
    several CPUs. Nothing is timed meanwhile. Needs ``fmt.cache.folder``; with ``workers <= 1`` it does
    nothing (the models are then made one by one when first asked for). Every file is written
    atomically by the worker that made it: a Ctrl-C keeps the finished ones."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm import tqdm

    if workers <= 1 or fmt.cache.folder is None:
        return 0
    cache, folder = fmt.cache, fmt.cache.folder
    todo: dict[str, Part | ArchSpec] = {}  # by key: a part shared by several networks is converted once
    for item in items:
        key = _part_key(item) if isinstance(item, Part) else _network_key(item)
        path = cache.path_of(key)
        if path is not None and not path.is_file():
            todo.setdefault(key, item)
    if not todo:
        return 0
    pool = ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=(fmt.name, folder))
    try:
        futures = [pool.submit(_convert_one, item) for item in todo.values()]
        with tqdm(total=len(todo), desc=f"{desc} ({workers} processes)", unit="model", disable=not progress,
                  smoothing=0.05) as bar:
            for future in as_completed(futures):
                check_interrupt()
                future.result()
                bar.update()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return len(todo)
