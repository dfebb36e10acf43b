"""NSGA-II with one search space per study draws exactly what Optuna's NSGA-II draws."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from nas.search._nsga2 import NSGAIIPerStudySpace


def _draws(sampler_class: type[optuna.samplers.NSGAIISampler], n: int) -> list[dict[str, object]]:
    """``n`` trials, each asked with a fresh sampler (as the proposer does); a conditional parameter and failures."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    drawn = []
    for i in range(n):
        study.sampler = sampler_class(seed=i, population_size=6)
        trial = study.ask()
        depth = trial.suggest_int("depth", 1, 3)
        x = {f"k{j}": trial.suggest_categorical(f"k{j}", [3, 5, 7]) for j in range(depth)}
        drawn.append({"depth": depth, **x})
        if i % 7 == 3:  # a refusal: no sampler reads it
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, [sum(x.values()) + depth, depth * 1.5])
    return drawn


def test_same_draws_as_optunas_nsga2() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    ours, theirs = _draws(NSGAIIPerStudySpace, 60), _draws(optuna.samplers.NSGAIISampler, 60)
    assert ours == theirs
    assert len({tuple(d.items()) for d in ours}) > 10  # the draws are not all alike (the test can tell samplers apart)
