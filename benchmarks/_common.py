"""What the benchmark scripts share: paths, the machine description, logging, a cache of finished pieces,
mean and spread, stratified data subsets, measured latency and writing a results table.

The scripts import it as ``from _common import ...`` (a script's own folder is on ``sys.path`` when it
runs); ``nas`` itself comes from the installed package (``pip install -e .``).
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from nas.arch import ArchSpec
from nas.atomic import atomic_write_json, atomic_write_text
from nas.data import DatasetSplits, ImageArrays
from nas.data.splits import stratified_subset
from nas.errors import NASError
from nas.latency import DEFAULT_PASSES, MeasureSettings, get_backend
from nas.latency.measure import arch_onnx, cpu_name

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SHARED = REPO.parent / "shared"
CIFAR10 = SHARED / "datasets" / "cifar10"
#: the shipped onnxruntime CPU table (1 thread), the default of every script that predicts latency
CPU_TABLE = REPO / "latency_tables" / "ort-cpu-1t.json"


# ------------------------------------------------------------------------------------ the machine
def machine_info() -> dict[str, str]:
    """The machine as fields: CPU model, logical cores, torch (and its threads), Python, OS; GPU and CUDA if any."""
    info = {"cpu": cpu_name(), "logical cores": str(os.cpu_count()), "torch": str(torch.__version__),
            "torch threads": str(torch.get_num_threads()), "python": platform.python_version(),
            "os": f"{platform.system()} {platform.release()}"}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = str(torch.version.cuda)
    return info


def cpu_identity() -> str:
    """The CPU model as precisely as ``/proc/cpuinfo`` gives it: the model name with vendor, family, model and
    stepping (a VM's model name alone can be as vague as ``AMD EPYC``, shared by several generations); the model
    name alone where that file is missing."""
    try:
        first = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        return cpu_name()
    fields = dict(line.split(":", 1) for line in first.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    parts = [fields.get(k, "?") for k in ("vendor_id", "cpu family", "model", "stepping")]
    return f"{cpu_name()} ({'/'.join(parts)})"


def machine() -> str:
    """The machine in one line: ``CPU (N logical CPUs)[, GPU], torch VERSION, OS``."""
    info = machine_info()
    gpu = f", {info['gpu']}" if "gpu" in info else ""
    return f"{info['cpu']} ({info['logical cores']} logical CPUs){gpu}, torch {info['torch']}, {platform.system()}"


# ------------------------------------------------------------------------------------ output
def log(msg: str) -> None:
    """Print ``msg`` after the time of day, flushed (progress of a long run)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def stem(base: str, *parts: str) -> str:
    """A results file's stem: ``base`` and each non-empty part joined by ``_`` (``stem("x", "run2", "")`` is ``x_run2``)."""
    return "_".join([base, *(p for p in parts if p)])


def _plain(value: Any) -> Any:
    """What ``json`` cannot write itself: numpy scalars and arrays as numbers and lists, anything else as text."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def publish(stem: str, text: str, res: dict[str, Any], *, indent: int = 2) -> None:
    """Print the table and write it as ``results/STEM.md``, with the raw figures in ``results/STEM.json``."""
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)  # atomically: a kill never leaves a truncated results file
    atomic_write_text(RESULTS / f"{stem}.md", text)
    atomic_write_text(RESULTS / f"{stem}.json", json.dumps(res, indent=indent, default=_plain) + "\n")
    print(f"wrote {RESULTS / stem}.md and .json")


def run_main(main: Callable[[], int]) -> NoReturn:
    """Exit with ``main()``'s status; a :class:`~nas.errors.NASError` is printed as ``error: ...`` and exits 2."""
    try:
        sys.exit(main())
    except NASError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


# ------------------------------------------------------------------------------------ statistics
def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def pct(values: Sequence[float], digits: int = 2) -> str:
    """Fractions as ``mean +- std`` in percent points (one value: just it; none: ``-``)."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{100 * values[0]:.{digits}f}"
    mean, std = mean_std(values)
    return f"{100 * mean:.{digits}f} +- {100 * std:.{digits}f}"


# ------------------------------------------------------------------------------------ cache
SECONDS = "_seconds"  # the cache file's entry of the seconds each value took


class Cache:
    """JSON values in ``root/NAME`` (default ``cache.json``), written atomically after every new value.

    Several invocations may share ``root`` (e.g. runs side by side with disjoint ``--only``
    sets): each write holds a lock, re-reads the file and adds its value to what is there; a
    value stored first by another invocation wins. The seconds each value took are kept under
    the file's ``_seconds`` entry (:attr:`seconds`).
    """

    def __init__(self, root: Path, name: str = "cache.json") -> None:
        self.root = root
        self.path = root / name
        root.mkdir(parents=True, exist_ok=True)
        self.data: dict[str, Any] = self._read()

    @property
    def seconds(self) -> dict[str, float]:
        """Seconds each stored value took to make, by key."""
        return dict(self.data.get(SECONDS, {}))

    def _read(self) -> dict[str, Any]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def get(self, key: str, make: Callable[[], Any]) -> Any:
        """The value stored under ``key``; made with ``make()`` and stored when there is none."""
        if key not in self.data:
            self.data = self._read()  # another invocation may have stored it meanwhile
        if key not in self.data:
            start = time.perf_counter()
            value = make()
            self._store(key, value, round(time.perf_counter() - start, 1))
        return self.data[key]

    def _store(self, key: str, value: Any, seconds: float) -> None:
        with open(self.path.with_name(f".{self.path.stem}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            stored = self._read()
            if key not in stored:  # a value stored first by another invocation wins
                stored[key] = value
                stored.setdefault(SECONDS, {})[key] = seconds
                atomic_write_json(self.path, stored, indent=1, sort_keys=False)
            self.data = stored


# ------------------------------------------------------------------------------------ data
def stratified(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` indices of ``labels`` (sorted), class proportions kept, drawn with ``seed``; all when ``n >= len``."""
    return stratified_subset(np.asarray(labels), n, np.random.default_rng(seed))


def subset_of(arrays: ImageArrays, n: int, seed: int) -> ImageArrays:
    """A stratified ``n`` of ``arrays`` (see :func:`stratified`); ``arrays`` itself when ``n`` is 0 or not below its size."""
    return arrays.subset(stratified(arrays.labels, n, seed)) if 0 < n < len(arrays) else arrays


def with_test_images(splits: DatasetSplits, n: int, seed: int) -> DatasetSplits:
    """``splits`` with a stratified ``n`` of its test images (all of them when ``n`` is 0 or not below their number)."""
    if splits.test is None:
        raise SystemExit(f"{splits.source}: no test split; this benchmark reports test accuracy (expected test/<class>/)")
    return replace(splits, test=subset_of(splits.test, n, seed))


# ------------------------------------------------------------------------------------ latency
def measured_ms(arch: ArchSpec, seconds: float) -> float:
    """``arch`` exported to ONNX and timed end to end with onnxruntime on the CPU, 1 thread, batch 1.

    The minimum over ``DEFAULT_PASSES`` passes of each pass's median, about ``seconds`` of timing in all.
    """
    settings = MeasureSettings(warmup=20, min_repeats=50, max_repeats=5000, passes=DEFAULT_PASSES,
                               min_seconds=seconds / DEFAULT_PASSES)
    return float(get_backend("ort-cpu", threads=1, settings=settings).time_onnx(
        arch_onnx(arch), (1, arch.in_ch, arch.input_size, arch.input_size)).median)
