"""Choosing the winners of a run, the recipes, and the final training data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nas.arch import arch_hash, reference_arch, to_compact
from nas.data import load_dataset
from nas.retrain import RetrainError, SearchRun, final_splits, make_recipe, select_winners
from nas.retrain.source import data_from_source

NAMES = ["mobilenetv2-cifar@0.35", "mobilenetv2-cifar@0.5", "mobilenetv2-cifar@0.75", "cse-mix-cifar"]


def _row(number: int, name: str, *, objective: float, latency: float, status: str = "trained",
         state: str = "COMPLETE") -> dict[str, object]:
    arch = reference_arch(name)
    return {"number": number, "state": state, "status": status, "latency_ms": latency, "val_acc": objective,
            "objective": objective, "hash": arch_hash(arch), "compact": to_compact(arch)}


def _run(rows: list[dict[str, object]], *, objective: str = "reward", front: tuple = ()) -> SearchRun:
    return SearchRun(path=Path("run"), objective=objective, budget_ms=5.0, table=None, data="digits",
                     data_recorded=None, trials=pd.DataFrame(rows), front=front, header={})


def test_reward_run_best_by_objective_within_budget_one_per_architecture() -> None:
    rows = [
        _row(0, NAMES[0], objective=0.50, latency=1.0),
        _row(1, NAMES[1], objective=0.70, latency=2.0),
        _row(2, NAMES[1], objective=0.70, latency=2.0, status="duplicate"),  # same architecture as trial 1
        _row(3, NAMES[2], objective=0.90, latency=9.0),  # over the 5 ms budget
        _row(4, NAMES[3], objective=0.95, latency=3.0, status="pruned", state="PRUNED"),  # stopped early
        _row(5, NAMES[3], objective=0.60, latency=3.0),
    ]
    winners = select_winners(_run(rows), 3)
    assert [w.trial for w in winners] == [1, 5, 0]
    assert winners[0].arch == reference_arch(NAMES[1]) and winners[0].proxy_val_acc == 0.70
    assert [w.trial for w in select_winners(_run(rows), 1)] == [1]


def test_pareto_run_spreads_top_k_along_the_front() -> None:
    front = tuple({"trial": i, "hash": arch_hash(reference_arch(n)), "arch": reference_arch(n).to_dict(),
                   "val_acc": 0.5 + 0.1 * i, "latency_ms": 1.0 + i} for i, n in enumerate(NAMES))
    rows = [_row(i, n, objective=0.5, latency=1.0 + i) for i, n in enumerate(NAMES)]
    run = _run(rows, objective="pareto", front=front)
    assert [w.trial for w in select_winners(run, 2)] == [0, 3]  # both ends
    assert [w.trial for w in select_winners(run, 3)] == [0, 2, 3]
    assert [w.trial for w in select_winners(run, 10)] == [0, 1, 2, 3]  # at most the front
    assert [w.trial for w in select_winners(run, 1)] == [3]  # the most accurate end


def test_tampered_trials_csv_is_refused() -> None:
    row = _row(0, NAMES[0], objective=0.5, latency=1.0)
    row["hash"] = "0" * 16
    with pytest.raises(RetrainError, match="does not give the stored hash"):
        select_winners(_run([row]), 1)


def test_data_source_texts() -> None:
    assert data_from_source("digits (embedded scikit-learn 8x8)") == "digits"
    assert data_from_source("image folder /data/cifar10") == "/data/cifar10"
    assert data_from_source("CIFAR python batches /x/cifar-10-batches-py") == "/x/cifar-10-batches-py"
    assert data_from_source("something else") is None
    # a supernet search records its data with the split it shares with the supernet's training
    assert data_from_source("image folder /d/cifar (split as the supernet's training: val fraction 0.1, seed 0, "
                            "subset none)") == "/d/cifar"
    assert data_from_source("digits (embedded scikit-learn 8x8) (split as the supernet's training: val fraction "
                            "0.1, seed 0, subset 150)") == "digits"


def test_recipes_and_tags() -> None:
    full = make_recipe("full")
    assert (full.epochs, full.batch_size, full.lr, full.label_smoothing, full.augment) == (200, 128, 0.1, 0.1,
                                                                                          "crop+flip")
    assert full.tag == "full-200ep" and make_recipe("short", epochs=3).tag == "short-3ep"
    assert make_recipe("full", batch_size=256, lr=0.2).tag == "full-200ep-b256-lr0.2"
    config = make_recipe("short", epochs=2).train_config(seed=3)
    assert (config.epochs, config.seed, config.weight_decay) == (2, 3, 5e-4)


def test_nearby_learning_rates_get_different_tags_and_printable_ones_keep_theirs() -> None:
    near = make_recipe("short", lr=0.1234567).tag, make_recipe("short", lr=0.1234568).tag
    assert near == ("short-5ep-lr0.1234567", "short-5ep-lr0.1234568")
    assert make_recipe("short", lr=1 / 3).tag == f"short-5ep-lr{1 / 3!r}"
    for lr, text in ((0.2, "0.2"), (1e-05, "1e-05"), (0.123457, "0.123457"), (2.0, "2"), (1.5e-7, "1.5e-07")):
        assert make_recipe("short", lr=lr).tag == f"short-5ep-lr{text}"  # the tags of results stored before


def test_final_training_data_is_train_plus_validation_and_the_whole_test_split() -> None:
    loaded = load_dataset("digits", input_size=8, seed=0, progress=False)
    splits = final_splits("digits", input_size=8, loaded=loaded)
    assert len(splits.train) == len(loaded.train) + len(loaded.val)
    assert splits.test is loaded.test and len(splits.val) == len(loaded.val)
    small = final_splits("digits", input_size=8, subset=50, test_subset=40, loaded=loaded)
    again = final_splits("digits", input_size=8, subset=50, test_subset=40, loaded=loaded)
    assert len(small.train) == 50 and len(small.test) == 40
    assert np.array_equal(small.train.labels, again.train.labels)  # the same images for every seed
    assert np.bincount(small.train.labels).min() >= 4  # stratified
