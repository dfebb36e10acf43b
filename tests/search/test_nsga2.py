"""NSGA-II with one search space per study draws exactly what Optuna's NSGA-II draws."""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import TrialState

from nas.search._nsga2 import NSGAIIPerStudySpace


def _draws(sampler_class: type[optuna.samplers.NSGAIISampler], n: int, min_depth: int, seed: int
           ) -> list[dict[str, object]]:
    """``n`` trials of a new study, each asked with a fresh sampler (as the proposer does).

    A conditional parameter (``depth``: ``k1``, ``k2`` exist only in deeper networks), refusals told
    as FAIL or PRUNED, and finished trials copied in with ``add_trial`` (as the proposer's copy gets them).
    """
    study = optuna.create_study(directions=["maximize", "minimize"])
    kernels = CategoricalDistribution([3, 5, 7])
    drawn = []
    for i in range(n):
        study.sampler = sampler_class(seed=seed + i, population_size=6)
        trial = study.ask()
        depth = trial.suggest_int("depth", min_depth, 3)
        x = {f"k{j}": trial.suggest_categorical(f"k{j}", [3, 5, 7]) for j in range(depth)}
        drawn.append({"depth": depth, **x})
        if i % 7 == 3:
            study.tell(trial, state=TrialState.FAIL)
        elif i % 5 == 2:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, [sum(x.values()) + depth, depth * 1.5])
        if i % 9 == 4:
            study.add_trial(optuna.trial.create_trial(
                params={"depth": 3, "k0": 3, "k1": 5, "k2": 7}, values=[1.0, 4.5],
                distributions={"depth": IntDistribution(min_depth, 3), "k0": kernels, "k1": kernels, "k2": kernels}))
    return drawn


def _two_studies(sampler_class: type[optuna.samplers.NSGAIISampler]) -> list[list[dict[str, object]]]:
    """Two studies one after the other, with other search spaces (the proposer rebuilds its copy so)."""
    return [_draws(sampler_class, 40, 2, 0), _draws(sampler_class, 40, 1, 100)]


def test_same_draws_as_optunas_nsga2() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    ours, theirs = _two_studies(NSGAIIPerStudySpace), _two_studies(optuna.samplers.NSGAIISampler)
    assert ours == theirs
    for drawn in ours:  # the draws are not all alike (the test can tell samplers apart)
        assert len({tuple(d.items()) for d in drawn}) > 10
