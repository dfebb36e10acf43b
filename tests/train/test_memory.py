"""When CPU training hands freed memory back: only when memory is short, read from real /proc-style files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import nas.train.memory as memory
import nas.train.loop as loop
from nas.train import TrainConfig, train_model
from nas.train.memory import available_memory_share, memory_is_short
from tests.train.fakes import FakeBatches, Splits, make_model

GIB = 1 << 30


def _meminfo(tmp_path: Path, total_kb: int, available_kb: int) -> Path:
    path = tmp_path / "meminfo"
    path.write_text(f"MemTotal:       {total_kb} kB\nMemFree:         1024 kB\nMemAvailable:   {available_kb} kB\n")
    return path


def _cgroup(tmp_path: Path, name: str, limit: str, usage: str) -> tuple[Path, Path]:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "limit").write_text(limit + "\n")
    (folder / "usage").write_text(usage + "\n")
    return folder / "limit", folder / "usage"


def test_the_machines_share_is_read_from_meminfo(tmp_path: Path) -> None:
    assert available_memory_share(_meminfo(tmp_path, 24 * 1024 ** 2, 6 * 1024 ** 2), ()) == pytest.approx(0.25)


def test_a_tighter_cgroup_limit_wins_and_no_limit_is_ignored(tmp_path: Path) -> None:
    meminfo = _meminfo(tmp_path, 24 * 1024 ** 2, 18 * 1024 ** 2)  # the machine: 75 % available
    v2 = _cgroup(tmp_path, "v2", str(8 * GIB), str(7 * GIB))  # the container: 1 of 8 GiB left
    assert available_memory_share(meminfo, (v2,)) == pytest.approx(0.125)
    unlimited_v2 = _cgroup(tmp_path, "v2max", "max", str(7 * GIB))
    unlimited_v1 = _cgroup(tmp_path, "v1", "9223372036854771712", str(7 * GIB))
    assert available_memory_share(meminfo, (unlimited_v2, unlimited_v1)) == pytest.approx(0.75)


def test_nothing_readable_is_unknown_and_then_memory_counts_as_short(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert available_memory_share(tmp_path / "missing", ((tmp_path / "a", tmp_path / "b"),)) is None
    monkeypatch.setattr(memory, "MEMINFO", tmp_path / "missing")
    monkeypatch.setattr(memory, "CGROUP_FILES", ())
    assert memory_is_short()  # so the loop trims, as it always did
    monkeypatch.setattr(memory, "MEMINFO", _meminfo(tmp_path, 1000, 300))
    assert not memory_is_short() and memory_is_short(below=0.5)


@pytest.mark.parametrize("short", [False, True])
def test_the_loop_trims_only_when_memory_is_short(short: bool, splits: Splits,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    trims: list[int] = []
    monkeypatch.setattr(loop, "TRIM_EVERY_S", 0.0)  # check after every step
    monkeypatch.setattr(loop, "memory_is_short", lambda: short)
    monkeypatch.setattr(loop, "release_freed_memory", lambda: trims.append(1) or True)
    train_model(make_model(), splits, TrainConfig(epochs=1, batch_size=32, device="cpu"), progress=False,
                batches_factory=FakeBatches)
    assert len(trims) == (8 if short else 0)  # 256 images / 32: 8 steps


_REFAULTS = """
import resource, sys, torch
from nas.train.memory import keep_large_blocks_in_heap

def faults_of_a_second_block() -> int:
    torch.ones(16 << 20).sum()  # 64 MiB, touched, then freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(16 << 20).sum()  # the same size again
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

mapped = faults_of_a_second_block()
kept = keep_large_blocks_in_heap()
print(mapped, kept, faults_of_a_second_block(), faults_of_a_second_block())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_large_blocks_come_back_from_the_heap_without_page_faults() -> None:
    """A fresh process (the setting is process-wide): a freed 64 MiB block is mapped afresh and faulted in page by
    page (16,384 pages of 4 KiB) until the setting, then reused, also at the heap's top (nothing above it)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    out = subprocess.run([sys.executable, "-c", _REFAULTS], capture_output=True, text=True, env=env, check=True)
    mapped, kept, _, reused = out.stdout.split()
    assert kept == "True"
    assert int(mapped) > 8000 and int(reused) < 1000, out.stdout


@pytest.mark.parametrize("variable", ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"])
def test_a_users_own_threshold_is_left_alone(variable: str) -> None:
    code = "from nas.train.memory import keep_large_blocks_in_heap; print(keep_large_blocks_in_heap())"
    env = {**os.environ, variable: "131072"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"
