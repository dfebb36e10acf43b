"""benchmarks/goal_power.py: the spread estimates and the verdict's probability."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_benchmark("goal_power")


def test_spreads_separate_seed_noise_from_network_differences(bench: ModuleType) -> None:
    # seed variance 4 points^2 in each network; means 52 and 62 (variance 50), of which 4/3 is seed noise
    sigma_w, sigma_b = bench.spreads([[0.50, 0.52, 0.54], [0.60, 0.62, 0.64]])
    assert sigma_w == pytest.approx(2.0)
    assert sigma_b == pytest.approx(math.sqrt(50 - 4 / 3))
    # networks no further apart than seed noise explains: no true spread left
    assert bench.spreads([[0.50, 0.60], [0.55, 0.55]])[1] == 0.0


def test_spreads_refuse_unequal_or_single_seeds(bench: ModuleType) -> None:
    with pytest.raises(ValueError, match="same number"):
        bench.spreads([[0.5, 0.6, 0.7], [0.5, 0.6]])
    with pytest.raises(ValueError, match=">= 2 networks"):
        bench.spreads([[0.5, 0.6]])
    with pytest.raises(ValueError):
        bench.spreads([[0.5], [0.6]])


def test_goal_probability_grows_with_the_true_advantage(bench: ModuleType) -> None:
    rng = np.random.default_rng(0)
    ps = [bench.p_goal(d, 1.0, 3, 50_000, rng) for d in (0.0, 1.0, 2.0, 10.0)]
    assert ps == sorted(ps)
    assert 0.05 < ps[0] < 0.2  # no advantage: a lucky draw still passes sometimes
    assert ps[-1] > 0.99


def test_expected_max_of_normals(bench: ModuleType) -> None:
    rng = np.random.default_rng(0)
    assert bench.expected_max(1, 100_000, rng) == pytest.approx(0.0, abs=0.02)
    assert bench.expected_max(24, 100_000, rng) == pytest.approx(1.95, abs=0.02)  # tabulated: 1.948


def test_main_reads_results_files_and_writes_the_table(bench: ModuleType, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [{"network": "search, tpe sampler", "compact": "A", "predicted_ms": 1.0, "test_acc": [0.58, 0.60, 0.62]},
            {"network": "search, random sampler", "compact": "B", "predicted_ms": 1.0, "test_acc": [0.55, 0.56, 0.57]},
            {"network": "mobilenetv2-cifar x width", "compact": "W", "predicted_ms": 1.0, "test_acc": [0.1, 0.2, 0.3]}]
    path = tmp_path / "search_vs_baselines_x.json"
    path.write_text(json.dumps({"config": {"retrain_epochs": 10, "retrain_subset": 5000}, "test_images": 10000,
                                "rows": rows}))
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    monkeypatch.setattr(bench, "publish", lambda stem, text, res: (tmp_path / f"{stem}.md").write_text(text))
    assert bench.main(["--results", str(path), "--sims", "2000"]) == 0
    text = (tmp_path / "goal_power.md").read_text()
    assert "From 2 searched networks" in text  # the width row is not a searched network
    assert "sigma_w = 1.58 points" in text  # variances 4 and 1 points^2, pooled: sqrt(2.5)
    assert text.count("\n| ") == 1 + len(bench.DELTAS)
