"""Optuna's TPE Parzen estimator for spaces of categorical parameters only, with the parameters batched.

:class:`optuna.samplers.TPESampler` builds two estimators at every draw, samples 24 candidates from
one and scores them under both. Optuna works parameter by parameter, a dozen small NumPy calls each:
with NAS-Bench-Macro's eight choices that was about half of TPE's own time in ``search_regret.py``.
This estimator (``TPESampler._parzen_estimator_cls``, the hook Optuna provides) does the same
arithmetic for all parameters with the same number of choices at once, in the same order, so every
weight, sample and log-density is bit for bit Optuna's: the random numbers are drawn in one call
that yields the same stream as one call per parameter, the kernel rows are normalised as Optuna
normalises them, and the log-densities of the parameters are added one parameter at a time, as
Optuna adds them. A space with any other kind of parameter is left to Optuna's own code.
``tests/search/test_parzen.py`` compares both on random data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator, _ParzenEstimatorParameters

__all__ = ["CategoricalParzenEstimator"]


class CategoricalParzenEstimator(_ParzenEstimator):
    """:class:`_ParzenEstimator` with the categorical parameters batched by their number of choices."""

    def __init__(self, observations: dict[str, np.ndarray], search_space: dict[str, BaseDistribution],
                 parameters: _ParzenEstimatorParameters, predetermined_weights: np.ndarray | None = None) -> None:
        self._batched = bool(search_space) and all(isinstance(d, CategoricalDistribution)
                                                   for d in search_space.values())
        if not self._batched:
            super().__init__(observations, search_space, parameters, predetermined_weights)
            return
        if parameters.prior_weight < 0:
            super().__init__(observations, search_space, parameters, predetermined_weights)  # Optuna's error
        self._search_space = search_space
        obs = self._transform(observations)
        n = len(obs)
        assert predetermined_weights is None or n == len(predetermined_weights)
        weights = predetermined_weights if predetermined_weights is not None \
            else self._call_weights_func(parameters.weights, n)
        weights = np.array([1.0]) if n == 0 else np.append(weights, [parameters.prior_weight])
        weights /= weights.sum()
        self._weights = weights
        # parameters by number of choices
        by_size: dict[int, list[int]] = {}
        for i, d in enumerate(search_space.values()):
            by_size.setdefault(len(d.choices), []).append(i)  # type: ignore[attr-defined]
        # per group: its parameters' positions, kernel weights [kernel, parameter, choice] and their logarithms
        self._groups: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._where: list[tuple[int, int]] = [(0, 0)] * len(search_space)  # parameter -> (group, row in it)
        for g, (size, members) in enumerate(by_size.items()):
            if n == 0:
                kernels = np.full((1, len(members), size), fill_value=1.0 / size)
            else:
                kernels = np.full((n + 1, len(members), size), fill_value=parameters.prior_weight / (n + 1))
                kernels[np.arange(n)[:, None], np.arange(len(members)), obs[:, members].astype(int)] += 1
                sums = kernels.sum(axis=2, keepdims=True)
                kernels /= np.where(sums == 0, 1, sums)
            with np.errstate(divide="ignore"):  # a zero weight (prior_weight 0): -inf, as Optuna's log of it
                logs = np.log(kernels).transpose(1, 2, 0).copy()  # [parameter, choice, kernel]
            self._groups.append((np.asarray(members), kernels, logs))
            for row, i in enumerate(members):
                self._where[i] = (g, row)

    def sample(self, rng: np.random.RandomState, size: int) -> dict[str, np.ndarray]:
        if not self._batched:
            return super().sample(rng, size)
        active = rng.choice(len(self._weights), p=self._weights, size=size)
        quantiles = rng.rand(len(self._search_space), size)  # the stream of one rand(size) per parameter, in order
        out = np.empty((size, len(self._search_space)), dtype=float)
        for members, kernels, _ in self._groups:
            cum = np.cumsum(kernels[active], axis=-1)  # [sample, parameter, choice]
            assert np.isclose(cum[..., -1], 1).all()
            cum[..., -1] = 1  # as Optuna: no rounding error past the last choice
            out[:, members] = np.sum(cum < quantiles[members].T[:, :, None], axis=-1)
        return self._untransform(out)

    def log_pdf(self, samples_dict: dict[str, np.ndarray]) -> np.ndarray:
        if not self._batched:
            return super().log_pdf(samples_dict)
        x = self._transform(samples_dict).astype(np.int64)
        picked = [logs[np.arange(len(members))[None, :], x[:, members]]  # per group: [sample, parameter, kernel]
                  for members, _, logs in self._groups]
        weighted: Any = np.zeros((len(x), len(self._weights)), dtype=np.float64)
        for g, row in self._where:  # one parameter at a time, in order: Optuna's sums exactly
            weighted += picked[g][:, row]
        weighted += np.log(self._weights[np.newaxis])
        max_ = weighted.max(axis=1)
        max_[np.isneginf(max_)] = 0  # no (-inf) - (-inf) where the density is zero
        with np.errstate(divide="ignore"):
            return np.log(np.exp(weighted - max_[:, None]).sum(axis=1)) + max_
