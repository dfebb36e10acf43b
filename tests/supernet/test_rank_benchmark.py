"""benchmarks/supernet_rank.py: the comparison of two supernet training runs (``--against``)."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_benchmark("supernet_rank")


def _truth(n: int = 60) -> dict[str, float]:
    return {f"k{i:02d}": 0.5 + i / 200 for i in range(n)}


def test_the_same_scores_do_not_move(bench: ModuleType) -> None:
    truth = _truth()
    noisy = {k: v + np.random.default_rng(0).normal(0, 0.05) * (i % 3) for i, (k, v) in enumerate(truth.items())}
    r = bench.against(noisy, dict(noisy), list(truth), truth, np.random.default_rng(0))
    assert r["n"] == 60 and r["mine"] == r["theirs"] < 1.0
    assert r["difference"] == 0.0 and r["ci"] == [0.0, 0.0] and r["between_runs"] == pytest.approx(1.0)


def test_a_better_run_is_told_apart_with_its_interval(bench: ModuleType) -> None:
    truth = _truth()
    rng = np.random.default_rng(1)
    good = {k: v + rng.normal(0, 0.01) for k, v in truth.items()}
    poor = {k: v + rng.normal(0, 0.2) for k, v in truth.items()}
    r = bench.against(good, poor, list(truth), truth, np.random.default_rng(0))
    assert r["mine"] > 0.8 > r["theirs"]
    assert r["difference"] == pytest.approx(r["mine"] - r["theirs"]) and 0 < r["ci"][0] < r["difference"] < r["ci"][1]
    assert r["between_runs"] < r["mine"]
    opposite = bench.against(poor, good, list(truth), truth, np.random.default_rng(0))
    assert opposite["difference"] == pytest.approx(-r["difference"]) and opposite["ci"][1] < 0


def test_another_runs_file_without_these_networks_is_one_clear_error(bench: ModuleType) -> None:
    truth = _truth(10)
    theirs = {k: v for k, v in truth.items() if k != "k03"}
    with pytest.raises(SystemExit, match=r"--against: the other run scored no k03 \(and 0 more\); expected a results"):
        bench.against(dict(truth), theirs, list(truth), truth, np.random.default_rng(0))


def test_the_report_shows_the_comparison(bench: ModuleType) -> None:
    truth = _truth()
    cell = {"value": 0.5, "ci": [0.4, 0.6]}
    stats = {"n": 60, "kendall": cell, "spearman": cell}
    res = {"machine": "m", "command": "c", "band_ms": [1.0, 1.2], "proxy_rank": {},
           "supernet": {"epochs": 5, "train_minutes": 136.0, "settings": {"rule": "sandwich", "random_subnets": 2},
                        "data": "d", "images": {"train": 45000}},
           "scoring": {"calibration_images": 256, "val_images": 1000}, "seconds_per_candidate": 2.5,
           "results": {"sample, all": {"supernet": stats, "flops": stats}},
           "against": {"file": "other.json", "fingerprint": "not recorded",
                       "supernet": {"epochs": 5, "train_minutes": 85.0},
                       "groups": {"sample, all": bench.against(truth, truth, list(truth), truth,
                                                               np.random.default_rng(0))}}}
    text = bench.report(res)
    assert "## Against another training run: `other.json`" in text
    assert "5 epochs, 85 min of training, scores `not recorded`" in text
    assert "| sample, all (n=60) | +1.00 | +1.00 | +0.00 [+0.00, +0.00] | +1.00 |" in text


def test_another_runs_file_is_checked_before_any_work(bench: ModuleType, tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SystemExit, match=r"--against .*bad.json: cannot read it as a results JSON"):
        bench._other_run(bad)
    with pytest.raises(SystemExit, match=r"--against .*missing.json: cannot read it"):
        bench._other_run(tmp_path / "missing.json")
    partial = tmp_path / "partial.json"
    partial.write_text('{"scores": {}, "supernet": {}}')
    with pytest.raises(SystemExit, match=r"partial.json: no 'scoring' in it; expected a results JSON of supernet_rank"):
        bench._other_run(partial)


def test_another_run_scored_otherwise_or_on_other_networks_is_refused(bench: ModuleType, tmp_path) -> None:  # type: ignore[no-untyped-def]
    scoring = {"calibration_images": 256, "val_images": 1000, "batch_size": 256, "seed": 0, "supernet": "here"}
    other = {"scoring": {**scoring, "supernet": "there"}, "scores": {"a": 0.5, "b": 0.6}}
    bench._same_scoring(other, scoring, ["a", "b"], tmp_path / "o.json")  # another directory is fine
    with pytest.raises(SystemExit, match=r"scored with val_images 500, this run with 1000; expected the same"):
        bench._same_scoring({**other, "scoring": {**scoring, "val_images": 500}}, scoring, ["a"], tmp_path / "o.json")
    with pytest.raises(SystemExit, match=r"the other run scored no c \(and 0 more\)"):
        bench._same_scoring(other, scoring, ["a", "c"], tmp_path / "o.json")
