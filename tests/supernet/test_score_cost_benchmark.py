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
            "sys_s": 1.0, "user_s": 2.0, "minor_faults": 3}


def test_each_network_is_averaged_over_repetitions_and_the_arms_are_paired(bench: ModuleType) -> None:
    runs = [_run("glibc-default", 0, [[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]]), _run("heap", 0, [[0.5, 0.9, 1.0], [2.0, 2.0, 2.0]]),
            _run("glibc-default", 1, [[1.0, 2.0, 1.0], [3.0, 4.0, 5.0]]), _run("heap", 1, [[0.5, 0.5, 1.0], [2.0, 2.0, 2.0]])]
    small, large = bench._rows(runs)
    assert small["val_images"] == 150 and small["heap"]["seconds"] == pytest.approx([0.5, 0.7, 1.0])
    assert small["glibc-default"]["seconds"] == pytest.approx([1.0, 2.0, 2.0])
    assert small["difference"]["mean"] == pytest.approx((0.5 + 1.3 + 1.0) / 3) and small["difference"]["n"] == 3
    assert small["goal_met"] and small["heap"]["ci95"][0] < small["heap"]["mean_s"] < small["heap"]["ci95"][1]
    assert not large["goal_met"] and large["difference"]["mean"] == pytest.approx(2.0)
    assert large["difference"]["ci"][0] < 2.0 < large["difference"]["ci"][1]
