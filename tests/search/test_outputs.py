"""Which trials may win or stand on the front (:mod:`nas.search.outputs`)."""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from nas.search.outputs import best_trial, front


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
