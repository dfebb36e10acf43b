"""The batched categorical Parzen estimator against Optuna's own: the same numbers, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.samplers import TPESampler
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator

from nas.search._parzen import CategoricalParzenEstimator
from nas.search._tpe import GroupedTPESampler


def _space(sizes: list[int]) -> dict[str, BaseDistribution]:
    return {f"p{i}": CategoricalDistribution(list(range(size))) for i, size in enumerate(sizes)}


def _observations(space: dict[str, BaseDistribution], n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {name: rng.integers(len(d.choices), size=n).astype(float) for name, d in space.items()}  # type: ignore[attr-defined]


def _both(space: dict[str, BaseDistribution], observations: dict[str, np.ndarray],
          weights: np.ndarray | None = None, prior_weight: float = 1.0) -> tuple[_ParzenEstimator, _ParzenEstimator]:
    parameters = TPESampler(seed=0)._parzen_estimator_parameters._replace(prior_weight=prior_weight)
    return (CategoricalParzenEstimator(observations, space, parameters, weights),
            _ParzenEstimator(observations, space, parameters, weights))


@pytest.mark.parametrize("sizes", [[3] * 8, [2, 5, 3, 2, 7, 3], [4], [12, 2, 9], [9, 3, 9, 16, 9]])
@pytest.mark.parametrize("n", [0, 1, 7, 40, 300])
def test_samples_and_densities_are_optunas(sizes: list[int], n: int) -> None:
    rng = np.random.default_rng(n * 100 + len(sizes))
    space = _space(sizes)
    ours, theirs = _both(space, _observations(space, n, rng))
    assert ours._batched
    for seed in range(5):
        mine, optunas = ours.sample(np.random.RandomState(seed), 24), theirs.sample(np.random.RandomState(seed), 24)
        assert list(mine) == list(optunas)
        for name in mine:
            assert mine[name].dtype == optunas[name].dtype and np.array_equal(mine[name], optunas[name])
        # scored under both, as TPE scores the candidates under its two estimators
        other = _both(space, _observations(space, n // 2 + 3, rng))
        for a, b in ((ours, theirs), other):
            assert np.array_equal(a.log_pdf(mine), b.log_pdf(optunas))


@pytest.mark.parametrize("prior_weight", [1.0, 0.37, 0.0])
def test_predetermined_weights_and_other_priors_as_optuna(prior_weight: float) -> None:
    rng = np.random.default_rng(5)
    space = _space([3, 9, 3, 2, 9])
    for weights in (rng.random(12), None):
        ours, theirs = _both(space, _observations(space, 12, rng), weights, prior_weight)
        mine, optunas = ours.sample(np.random.RandomState(1), 24), theirs.sample(np.random.RandomState(1), 24)
        assert all(np.array_equal(mine[k], optunas[k]) for k in space)
        with np.errstate(divide="ignore"):  # prior weight 0: choices never observed have density 0
            assert np.array_equal(ours.log_pdf(mine), theirs.log_pdf(optunas))


def test_other_parameters_left_to_optuna() -> None:
    space: dict[str, BaseDistribution] = {"a": CategoricalDistribution([0, 1]), "depth": IntDistribution(1, 4)}
    observations = {"a": np.array([0.0, 1.0, 1.0]), "depth": np.array([1.0, 3.0, 4.0])}
    ours, theirs = _both(space, observations)
    assert not ours._batched
    samples = ours.sample(np.random.RandomState(2), 24)
    assert all(np.array_equal(samples[k], v) for k, v in theirs.sample(np.random.RandomState(2), 24).items())
    assert np.array_equal(ours.log_pdf(samples), theirs.log_pdf(samples))


def test_a_negative_prior_weight_is_optunas_error() -> None:
    parameters = TPESampler(seed=0)._parzen_estimator_parameters._replace(prior_weight=-1.0)
    with pytest.raises(ValueError, match="prior_weight"):
        CategoricalParzenEstimator({"a": np.array([0.0])}, {"a": CategoricalDistribution([0, 1])}, parameters)


def test_the_sampler_uses_it() -> None:
    assert GroupedTPESampler(seed=0)._parzen_estimator_cls is CategoricalParzenEstimator
