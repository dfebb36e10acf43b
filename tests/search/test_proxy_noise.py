"""benchmarks/proxy_noise.py: which networks it takes from the results files."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import load_benchmark


def _results(path: Path, epochs: int, rows: list[tuple[str, str, list[float]]]) -> Path:
    path.write_text(json.dumps({
        "config": {"retrain_epochs": epochs, "retrain_subset": 5000}, "test_images": 10000,
        "rows": [{"network": n, "compact": c, "predicted_ms": 1.0, "test_acc": acc} for n, c, acc in rows]}))
    return path


def test_networks_are_deduplicated_and_other_recipes_skipped(tmp_path: Path) -> None:
    bench = load_benchmark("proxy_noise")
    a = _results(tmp_path / "search_vs_baselines.json", 10, [("tpe", "A", [0.5, 0.6]), ("width", "W", [0.4])])
    b = _results(tmp_path / "search_vs_baselines_run4.json", 10, [("tpe", "B", [0.7]), ("width", "W", [0.4])])
    c = _results(tmp_path / "search_vs_baselines_short.json", 5, [("tpe", "C", [0.3])])
    nets = bench.networks([a, b, c])
    assert [(n["network"], n["compact"]) for n in nets] == [("tpe (defaults)", "A"), ("width (defaults)", "W"),
                                                           ("tpe (run4)", "B")]
    assert nets[1]["from"] == ["search_vs_baselines.json", "search_vs_baselines_run4.json"]
    assert nets[0]["test_acc"] == [0.5, 0.6]


def test_report_gives_the_within_and_between_network_spread() -> None:
    bench = load_benchmark("proxy_noise")
    nets = [{"network": "x", "predicted_ms": 1.0, "proxy_acc": [0.30, 0.34], "test_acc": [0.5]},
            {"network": "y", "predicted_ms": 1.2, "proxy_acc": [0.40, 0.40], "test_acc": [0.6]}]
    text = bench.report({"config": {"epochs": 3, "train_images": 2000, "val_images": 500, "seeds": [0, 1],
                                    "threads": 1, "results": ["r.json"]}, "networks": nets, "seconds": 60,
                         "machine": "m"})
    assert "| x | 1.000 | 32.0 +- 2.8 | 30.0-34.0 | 50.0 |" in text
    # within: mean of the two stdevs (0.0283, 0) = 1.4 points; between: stdev of means (0.32, 0.40) = 5.7 points
    assert "proxy accuracy: 1.4 points" in text and "mean proxy accuracies: 5.7 points" in text


def test_with_val_images_keeps_training_images_and_enlarges_validation() -> None:
    import numpy as np
    import pytest

    from nas.data import load_dataset

    bench = load_benchmark("proxy_noise")
    splits = load_dataset("digits", input_size=8, seed=0, subset=200, progress=False)
    full = load_dataset("digits", input_size=8, seed=0, progress=False)
    out = bench.with_val_images(splits, full, 100)
    assert len(splits.val) == 50 and len(out.val) == 100
    assert out.train is splits.train and out.mean == splits.mean
    assert np.bincount(out.val.labels).max() - np.bincount(out.val.labels).min() <= 1  # stratified
    # the search's validation images come from the same held-out split: none is a training image
    train = {img.tobytes() for img in full.train.images}
    assert not any(img.tobytes() in train for img in out.val.images)
    assert len(bench.with_val_images(splits, full, len(full.val)).val) == len(full.val)
    with pytest.raises(SystemExit, match="--val-images"):
        bench.with_val_images(splits, full, len(full.val) + 1)
