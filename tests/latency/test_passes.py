"""The measurement protocol: the minimum over passes of the per-pass median, passes interleaved
over a set of models, resumable from passes measured earlier (no real timing: a scripted backend)."""

from __future__ import annotations

from typing import Any

import pytest

from nas.errors import LatencyTableError
from nas.latency.measure import Backend, MeasureSettings, Timing
from nas.latency.passes import TimingJob, time_interleaved


class Scripted(Backend):
    """A backend whose pass ``k`` over model ``m`` takes ``medians[m][k]`` ms; records the order of the calls."""

    name, threads = "scripted", 1

    def __init__(self, medians: dict[str, list[float]], passes: int) -> None:
        self.medians = medians
        self.settings = MeasureSettings(passes=passes)
        self.calls: list[str] = []

    def info(self) -> dict[str, Any]:
        return {}

    def time_pass(self, model: bytes, input_shape: tuple[int, ...]) -> Timing:
        key = model.decode()
        median = self.medians[key][sum(c == key for c in self.calls)]
        self.calls.append(key)
        return Timing(median, median * 0.9, median * 1.2, 7)


def jobs(keys: list[str], exported: list[str]) -> list[TimingJob]:
    def export(key: str) -> bytes:
        exported.append(key)
        return key.encode()

    return [TimingJob(k, (1, 3, 8, 8), lambda k=k: export(k)) for k in keys]


def test_best_of_takes_the_fastest_pass_and_counts_every_run() -> None:
    passes = [Timing(2.0, 1.9, 2.4, 30), Timing(1.5, 1.4, 1.7, 40), Timing(1.8, 1.2, 3.0, 50)]
    best = Timing.best_of(passes)
    assert best == Timing(1.5, 1.4, 1.7, 120)  # the pass with the lowest median, its own spread, all runs
    assert best.p10 <= best.median <= best.p90
    assert Timing.best_of(passes[:1]) == passes[0]
    with pytest.raises(ValueError):
        Timing.best_of([])
    assert Timing.from_dict(best.to_dict()) == best


def test_passes_are_interleaved_and_each_model_exported_once() -> None:
    medians = {"a": [3.0, 1.0, 2.0], "b": [1.0, 1.0, 5.0], "c": [4.0, 4.5, 3.5]}
    backend, exported = Scripted(medians, passes=3), []
    seen: list[tuple[str, int, float]] = []
    finished: dict[str, Timing] = {}
    out = time_interleaved(backend, jobs(["a", "b", "c"], exported), progress=False,
                           on_pass=lambda k, n, t: seen.append((k, n, t.median)),
                           on_done=lambda k, t: finished.update({k: t}))
    assert exported == ["a", "b", "c"]  # once each, before the first pass
    assert backend.calls == ["a", "b", "c"] * 3  # round robin: pass 1 over every model, then pass 2, ...
    assert [s[:2] for s in seen] == [(k, n) for n in (1, 2, 3) for k in "abc"]
    assert {k: [t.median for t in v] for k, v in out.items()} == medians
    assert {k: t.median for k, t in finished.items()} == {"a": 1.0, "b": 1.0, "c": 3.5}
    assert finished["a"].repeats == 21


def test_resume_measures_only_the_missing_passes() -> None:
    done = {"a": [Timing(2.0, 1.8, 2.4, 7)],  # one of three passes
            "b": [Timing(1.0, 0.9, 1.2, 7)] * 3,  # all three: nothing to measure, not even an export
            "c": [Timing(9.0, 8.0, 9.5, 7)] * 2}
    medians = {"a": [1.5, 2.5], "c": [8.0], "d": [4.0, 3.0, 5.0]}
    backend, exported = Scripted(medians, passes=3), []
    seen: list[tuple[str, int]] = []
    finished: dict[str, float] = {}
    out = time_interleaved(backend, jobs(["a", "b", "c", "d"], exported), done=done, progress=False,
                           on_pass=lambda k, n, t: seen.append((k, n)),
                           on_done=lambda k, t: finished.update({k: t.median}))
    assert exported == ["a", "c", "d"]
    # round 1: only d lacks a first pass; round 2: a, d; round 3: a, c, d
    assert backend.calls == ["d", "a", "d", "a", "c", "d"]
    assert sorted(seen) == sorted([("d", 1), ("a", 2), ("d", 2), ("a", 3), ("c", 3), ("d", 3)])
    assert [t.median for t in out["a"]] == [2.0, 1.5, 2.5] and len(out["b"]) == 3
    assert finished == {"a": 1.5, "b": 1.0, "c": 8.0, "d": 3.0}


def test_passes_setting() -> None:
    assert MeasureSettings().passes == 1
    assert MeasureSettings.from_metadata({"warmup": 3, "statistic": "median", "opset": 17}).passes == 1  # older tables
    assert MeasureSettings.from_metadata({"passes": 4, "protocol": "..."}) == MeasureSettings(passes=4)
    assert "minimum over 4 passes" in MeasureSettings(passes=4).protocol()
    for bad in (0, -1, 2.5, True):
        with pytest.raises(LatencyTableError, match=r"--passes: expected an integer >= 1"):
            MeasureSettings(passes=bad)  # type: ignore[arg-type]


def test_one_model_gets_its_passes_back_to_back() -> None:
    backend = Scripted({"m": [2.0, 1.0, 3.0]}, passes=3)
    assert backend.time_onnx(b"m", (1, 3, 8, 8)) == Timing(1.0, 0.9, 1.2, 21)
    assert backend.calls == ["m"] * 3
