"""Fixtures for the NetAdapt tests: tiny networks, handmade latency tables, briefly trained weights."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pytest
import torch

from nas.arch import ArchSpec, arch_cost, build_model, parse_compact
from nas.latency import Correction, Entry, LatencyTable, arch_parts, part_macs, save_table

REPO = Path(__file__).resolve().parents[2]

#: A small residual network for 16x16 digits: three groups (stem/residual, stride 2, stride 1 residual).
TINY = parse_compact("in16x3-stem_k3_s1_c16_re-ir_e3_k3_s1_c16_re-ir_e4_k3_s2_c24_re-ir_e3_k3_s1_c24_re-"
                     "head_c64_re-cls10")
#: The smallest useful network: one residual block; its widths bottom out after a few iterations.
MICRO = parse_compact("in16x3-stem_k3_s1_c16_re-ir_e2_k3_s1_c16_re-head_c16_re-cls10")

#: Fast timing for tables that measure on demand in tests (the figures are not the point).
FAST_TIMING = {"warmup": 2, "min_repeats": 5, "max_repeats": 20, "min_seconds": 0.0}


def _version() -> str:
    import onnxruntime

    return f"onnxruntime {onnxruntime.__version__}"


def make_table(path: Path, archs: Iterable[ArchSpec], *, local: bool = False, input_size: int = 16,
               space_digest: str = "handmade", ms_per_mmac: float = 1.0, overhead_ms: float = 0.01) -> Path:
    """A valid table whose entries (the parts of ``archs``) cost ``overhead + MMACs * ms_per_mmac``.

    ``local=False``: recorded as measured on another device, so missing entries are interpolated.
    ``local=True``: recorded as this machine's onnxruntime CPU table, so missing entries are measured.
    """
    from nas.latency.measure import cpu_name

    entries = {}
    for arch in archs:
        for part in arch_parts(arch):
            ms = overhead_ms + part_macs(part) / 1e6 * ms_per_mmac
            entries[part.signature] = Entry(ms, ms * 0.95, ms * 1.05, 10, "measured")
    meta = {"device": "this machine" if local else "a handmade test device", "cpu": cpu_name() if local else "none",
            "gpu": None, "backend": "ort-cpu", "backend_version": _version() if local else "onnxruntime (test)",
            "execution_provider": "CPUExecutionProvider", "threads": 1, "batch_size": 1, "input_size": input_size,
            "in_ch": 3, "num_classes": 10,
            "space": {"name": "handmade", "file": "", "digest": space_digest},
            "created": "2026-01-01T00:00:00+00:00", "units": "ms", "measurement": dict(FAST_TIMING)}
    save_table(LatencyTable(meta, entries, Correction()), path)
    return path


def macs_ms(arch: ArchSpec) -> float:
    return arch_cost(arch).macs / 1e6


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The tiny networks here gain nothing from two threads, and on a busy 2-core machine OpenMP
    threads that wait for each other make every step ~10x slower; restored after each test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """TINY and MICRO trained briefly on 300 digits: ``{name}.pt`` weights and ``{name}-run/checkpoint.pt``."""
    from nas.data import load_dataset
    from nas.train import TrainConfig, save_weights, train_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("adapt_trained")
    splits = load_dataset("digits", input_size=16, subset=300, progress=False)
    out: dict[str, Path] = {}
    for name, arch in (("tiny", TINY), ("micro", MICRO)):
        torch.manual_seed(0)
        model = build_model(arch)
        train_model(model, splits, TrainConfig(epochs=1, batch_size=32, lr=0.05, seed=0, device="cpu"),
                    out_dir=root / f"{name}-run", progress=False)
        out[name] = save_weights(model, root / f"{name}.pt")
        out[f"{name}-checkpoint"] = root / f"{name}-run" / "checkpoint.pt"
    torch.set_num_threads(threads)
    return out


def nas_command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "nas", *args]
