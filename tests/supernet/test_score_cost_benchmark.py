"""benchmarks/supernet_score_cost.py: the two heap arms' figures, network by network over repetitions."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_benchmark("supernet_score_cost")


def _run(arm: str, rep: int, seconds: list[list[float]]) -> dict[str, Any]:
    return {"arm": arm, "rep": rep, "sizes": [{"val_images": n, "seconds": s} for n, s in zip((150, 1000), seconds)],
            "sys_s": 1.0, "user_s": 2.0, "minor_faults": 3, "space": "s", "input_size": 32, "epochs": 5}


def test_each_network_is_averaged_over_repetitions_and_the_arms_are_paired(bench: ModuleType) -> None:
    runs = [_run("glibc-default", 0, [[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]]), _run("heap", 0, [[0.5, 0.9, 1.0], [2.0, 2.0, 2.0]]),
            _run("glibc-default", 1, [[1.0, 2.0, 1.0], [3.0, 4.0, 5.0]]), _run("heap", 1, [[0.5, 0.5, 1.0], [2.0, 2.0, 2.0]])]
    small, large = bench._rows(runs)
    assert small["val_images"] == 150 and small["heap"]["seconds"] == pytest.approx([0.5, 0.7, 1.0])
    assert small["glibc-default"]["seconds"] == pytest.approx([1.0, 2.0, 2.0])
    assert small["difference"]["mean"] == pytest.approx((0.5 + 1.3 + 1.0) / 3) and small["difference"]["n"] == 3
    assert small["goal_met"] and small["heap"]["mean_s"] == pytest.approx(2.2 / 3)
    assert not large["goal_met"] and large["difference"]["mean"] == pytest.approx(2.0)
    assert large["difference"]["ci"] == pytest.approx([-0.484, 4.484], abs=1e-3)  # differences 1, 2, 3: t(2) 4.303
    (small_reps, large_reps) = bench._by_repetition(runs)  # each repetition's mean difference
    assert small_reps == pytest.approx([2.0 - 0.8, 4 / 3 - 2 / 3]) and large_reps == pytest.approx([2.0, 2.0])


def test_the_report_names_the_arms_and_gives_each_repetition(bench: ModuleType) -> None:
    runs = [_run("glibc-default", 0, [[1.0, 2.0], [3.0, 4.0]]), _run("heap", 0, [[0.5, 0.5], [2.0, 2.0]])]
    res = {"machine": "m", "command": "python x", "supernet": "sn", "networks": 2, "reps": 1,
           "calibration_images": 256, "rows": bench._rows(runs), "runs": runs}
    text = bench.report(res)
    assert "| 256 | 150 | 0.50 | [0.50, 0.50] | 1.50 |" in text and "| +1.00 | met |" in text
    assert "| 256 | 1000 | 2.00 |" in text and "| +1.50 | missed |" in text
