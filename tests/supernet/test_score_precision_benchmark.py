"""benchmarks/supernet_score_precision.py: the three arms' seconds, paired differences and score agreement."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_benchmark("supernet_score_precision")


def _run(arm: str, rep: int, seconds: list[float], scores: list[float]) -> dict[str, Any]:
    return {"arm": arm, "rep": rep, "sizes": [{"val_images": 1000, "seconds": seconds, "scores": scores}],
            "space": "s", "input_size": 32, "epochs": 3}


SCORES = [0.30, 0.50, 0.40, 0.20]


def _runs() -> list[dict[str, Any]]:
    return [
        _run("unfolded", 0, [2.0, 2.0, 2.0, 2.0], SCORES), _run("fp32", 0, [1.5, 1.5, 1.5, 1.5], SCORES),
        _run("bf16", 0, [1.0, 1.0, 0.5, 0.5], [0.30, 0.41, 0.52, 0.20]),
        _run("unfolded", 1, [2.0, 1.0, 2.0, 1.0], SCORES), _run("fp32", 1, [1.5, 0.5, 1.5, 0.5], SCORES),
        _run("bf16", 1, [0.5, 0.5, 0.5, 0.5], [0.30, 0.41, 0.52, 0.21]),  # one score not reproduced
    ]


def test_seconds_are_averaged_over_repetitions_and_paired_network_by_network(bench: ModuleType) -> None:
    (row,) = bench._rows(_runs())
    assert row["unfolded"]["seconds"] == pytest.approx([2.0, 1.5, 2.0, 1.5])
    assert row["fp32"]["mean_s"] == pytest.approx(1.25) and row["bf16"]["mean_s"] == pytest.approx(0.625)
    gain = row["unfolded-fp32"]
    assert gain["mean"] == pytest.approx(0.5) and gain["ci"] == pytest.approx([0.5, 0.5]) and gain["n"] == 4
    assert gain["by_repetition"] == pytest.approx([0.5, 0.5])
    bf16 = row["fp32-bf16"]  # per network 0.75, 0.25, 1.0, 0.5
    assert bf16["mean"] == pytest.approx(0.625) and bf16["by_repetition"] == pytest.approx([0.75, 0.5])
    assert bf16["ci"] == pytest.approx([0.625 - 0.5133, 0.625 + 0.5133], abs=1e-3)  # sd 0.3227, t(3) 3.182
    assert row["goal_met"] == {"unfolded": False, "fp32": False, "bf16": True}


def test_scores_are_compared_with_the_unfolded_arm(bench: ModuleType) -> None:
    (row,) = bench._rows(_runs())
    same = row["agreement"]["fp32"]
    assert same == {"differ": 0, "mean_points": 0.0, "mean_points_ci": [0.0, 0.0], "mean_abs_points": 0.0,
                    "max_abs_points": 0.0, "kendall_tau": 1.0, "best_rank": 1}
    bf16 = row["agreement"]["bf16"]  # the first repetition's scores: 0.30, 0.41, 0.52, 0.20
    assert bf16["differ"] == 2 and bf16["mean_abs_points"] == pytest.approx((9 + 12) / 4)
    assert bf16["mean_points"] == pytest.approx((-9 + 12) / 4)  # signed: bf16 - unfolded
    assert bf16["mean_points_ci"] == pytest.approx([0.75 - 13.711, 0.75 + 13.711], abs=1e-3)  # sd 8.617, t(3) 3.182
    assert bf16["max_abs_points"] == pytest.approx(12.0)
    assert bf16["kendall_tau"] == pytest.approx(4 / 6)  # one discordant pair of six
    assert bf16["best_rank"] == 2  # unfolded's best (0.50) is second by bf16's scores
    assert row["fp32"]["deterministic"] and not row["bf16"]["deterministic"]


def test_the_report_gives_each_arm_the_differences_and_the_agreement(bench: ModuleType) -> None:
    runs = _runs()
    res = {"machine": "m", "command": "python x", "supernet": "sn", "networks": 4, "reps": 2,
           "calibration_images": 256, "rows": bench._rows(runs), "runs": runs}
    text = bench.report(res)
    assert "| 1000 | 1.75 [1.29, 2.21] | 1.25 [0.79, 1.71] | 0.62 [0.40, 0.85] |" in text
    assert "| +0.50 [+0.50, +0.50] (+0.50 / +0.50) | +0.62 [+0.11, +1.14] (+0.75 / +0.50) | missed / met |" in text
    assert "| 1000 | fp32 | 0 of 4 | +0.00 [+0.00, +0.00] | 0.00 | 0.00 | 1.000 | 1 | yes |" in text
    assert "| 1000 | bf16 | 2 of 4 | +0.75 [-12.96, +14.46] | 5.25 | 12.00 | 0.667 | 2 | NO |" in text
    assert "in the order unfolded, fp32, bf16; fp32, bf16, unfolded (not every arm in every place" in text
