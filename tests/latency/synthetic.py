"""Helpers for tests on small spaces: a synthetic latency table (from multiply-adds, not measured) and every
network of a space."""

from __future__ import annotations

from typing import Any

from nas.arch import ArchSpec
from nas.latency import Correction, Entry, LatencyTable, Part
from nas.latency.predict import part_macs
from nas.space import SearchSpace, sample_arch

__all__ = ["synthetic_table", "all_networks"]


def synthetic_table(parts: list[Part], *, correction: Correction | None = None, **meta: Any) -> LatencyTable:
    """A table with an entry for every part: 1 us + 1 ns per multiply-add (not measured; for predictions)."""
    entries = {}
    for p in parts:
        ms = 0.001 + part_macs(p) * 1e-6
        entries[p.signature] = Entry(ms, ms * 0.9, ms * 1.1, 10)
    metadata = {"device": "test box", "cpu": "none", "backend": "ort-cpu", "threads": 1, "input_size": 8, "in_ch": 3,
                "num_classes": 4, "space": {"name": "test", "file": "test.yaml", "digest": "x"}, **meta}
    return LatencyTable(metadata=metadata, entries=entries,
                        correction=correction or Correction(scale=1.1, offset_ms=0.05, per_part_overhead_ms=0.002,
                                                            boundary_ms_per_kelement=0.0001))


class _Index:
    """Chooses option ``picks[name]`` (default 0) and records every choice's options."""

    def __init__(self, picks: dict[str, int]) -> None:
        self.picks = picks
        self.asked: dict[str, int] = {}

    def choose(self, name: str, options: list[Any]) -> Any:
        self.asked[name] = len(options)
        return options[self.picks.get(name, 0)]

    def choose_int(self, name: str, low: int, high: int) -> int:
        self.asked[name] = high - low + 1
        return low + self.picks.get(name, 0)


def all_networks(space: SearchSpace) -> list[ArchSpec]:
    """Every network of a small space, by walking its choices define-by-run."""
    out: dict[ArchSpec, None] = {}
    todo: list[dict[str, int]] = [{}]
    while todo:
        picks = todo.pop()
        chooser = _Index(picks)
        out.setdefault(sample_arch(space, chooser), None)
        for name, n in chooser.asked.items():
            if name not in picks:
                todo += [{**picks, name: i} for i in range(1, n)]
                picks = {**picks, name: 0}
    return list(out)
