"""Which trials may win or stand on the front (:mod:`nas.search.outputs`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from nas.arch import ArchSpec
from nas.latency import TableEstimator, load_table
from nas.search import Evaluation, SearchConfig, extreme_arch, run_search
from nas.search.budget import extreme_params
from nas.search.outputs import best_trial, front
from nas.space import load_space
from tests.conftest import TINY_SPACE
from tests.search.conftest import FakeEvaluator


def _trial(status: str, acc: float, latency: float) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(
        state=TrialState.COMPLETE, values=[acc, latency], params={"x": 0}, distributions={"x": CategoricalDistribution([0])},
        user_attrs={"status": status, "val_acc": acc, "latency_ms": latency, "hash": f"{status}-{acc}-{latency}"})


def test_a_diverged_trial_neither_wins_nor_stands_on_the_front() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(_trial("trained", 0.60, 1.0))
    study.add_trial(_trial("diverged", 0.90, 0.5))  # its accuracy is an earlier epoch's: it would dominate all
    study.add_trial(_trial("duplicate", 0.70, 1.2))
    assert best_trial(study, 2.0, "pareto", confirmed=False).number == 2
    assert [t.number for t in front(study, 2.0)] == [0, 2]


def test_a_duplicate_of_a_diverged_network_is_never_a_winner(tmp_path: Path, search_table: Path) -> None:
    space = load_space(TINY_SPACE)
    est = TableEstimator(load_table(search_table), on_missing="error", save=False)
    budget = est.latency_ms(extreme_arch(space, est, fastest=False))

    class _Diverges(FakeEvaluator):
        def evaluate(self, arch: ArchSpec, *, report: Callable[[int, float], None] | None = None) -> Evaluation:
            return Evaluation(0.9, (0.9,), "diverged", 0.0)  # 0.9: the epoch before the loss became NaN

    def search(n: int) -> optuna.Study:
        config = SearchConfig(n_trials=n, budget_ms=budget, run_dir=tmp_path, sampler="random", prune=False)
        return run_search(config, space, est, _Diverges(epochs=1), fingerprint={},
                          warm_start=extreme_params(space, est))

    first = search(1).trials[0]
    assert first.user_attrs["status"] == "diverged"
    optuna.load_study(study_name="search", storage=f"sqlite:///{tmp_path / 'study.db'}").enqueue_trial(first.params)
    twin = search(2).trials[1]  # the same network again: its result is reused, not trained
    assert twin.user_attrs["status"] == "duplicate_diverged" and twin.user_attrs["hash"] == first.user_attrs["hash"]
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert best_trial(study, budget, "reward", confirmed=False) is None and front(study, budget) == []
