"""benchmarks/supernet_regret.py: both winner rules side by side, the overall figures and their report."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from scipy import stats

from nas.data import load_dataset
from nas.supernet import SupernetEvaluator, SupernetScoring, load_supernet
from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_benchmark("supernet_regret")


def test_mean_ci_is_the_t_interval(bench: ModuleType) -> None:
    r = bench.mean_ci([0.2, 0.5, 0.8])
    half = stats.t.ppf(0.975, 2) * 0.3 / 3 ** 0.5
    assert r["mean"] == pytest.approx(0.5) and r["ci"] == pytest.approx([0.5 - half, 0.5 + half])


def test_the_rule_before_confirms_on_the_sample(bench: ModuleType, tiny_supernet: Path) -> None:
    loaded = load_supernet(tiny_supernet)
    info = loaded.info["data"]
    splits = load_dataset("digits", input_size=16, val_fraction=info["val_fraction"], seed=info["seed"],
                          subset=info["subset"], progress=False)
    scores = SupernetEvaluator(loaded, splits, SupernetScoring(val_images=10), device="cpu")
    before = bench.OnTheSample(scores)
    assert scores.rescores and not before.rescores
    assert before.confirmer(3).scoring == SupernetScoring(val_images=10, seed=3)  # the same sample, another seed
    assert scores.confirmer(3).scoring == SupernetScoring(val_images=None, seed=3)  # the whole split


def test_the_report_gives_both_rules_and_the_paired_difference(bench: ModuleType) -> None:
    cell = {"mean": 0.4, "ci": [0.3, 0.5]}
    res = {"machine": "m", "command": "c", "supernet": {"directory": "d", "epochs": 5, "fingerprint": "f"},
           "scoring": {"calibration_images": 256, "val_images": 1000}, "scores_kept": 9, "trials": 2000, "seeds": 5,
           "summary": [{"quantile": 0.25, "budget_ms": 0.965, **cell, "median": 0.4, "n": 5,
                        "on_sample": {"mean": 0.6, "ci": [0.5, 0.7]}}],
           "overall": {"whole": cell, "on_sample": {"mean": 0.6, "ci": [0.5, 0.7]},
                       "on_sample_minus_whole": {"mean": 0.2, "ci": [0.1, 0.3]}}}
    text = bench.report(res)
    assert "| 25 % | 0.965 | 0.40 [0.30, 0.50] | 0.40 | 5 | 0.60 [0.50, 0.70] |" in text
    assert "paired difference (on the sample minus whole split) 0.20 [0.10, 0.30] points" in text
    old = {k: v for k, v in res.items() if k != "overall"} | {"summary": [{k: v for k, v in res["summary"][0].items()
                                                                             if k != "on_sample"}]}
    before = bench.report(old)  # a results file from before has one rule, which it names
    assert "on the sample" not in before and "whole validation split" not in before
    assert "mean of the 3 (the rule before 2026-12-05)" in before
