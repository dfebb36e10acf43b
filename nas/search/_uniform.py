"""Uniform random sampling at the cost of a few Python calls a parameter.

Optuna's :class:`~optuna.samplers.RandomSampler` seeds a NumPy ``RandomState`` when it is made and
maps every draw through a search-space transform: about 0.14 ms to make and 0.05 ms a parameter.
The proposer makes a fresh, re-seeded sampler for every candidate it screens (so a draw depends
only on the study and its seed), and a tight budget screens several candidates a trial: in the
search-regret grid those two costs were a third of a random search's time. This sampler draws the
same distribution (every choice, or every integer of the range, equally likely) from Python's own
generator. Float and log-scaled distributions, which no space file declares, go to Optuna's sampler.

Since the sampler reads nothing of the study, a network can even be drawn without an Optuna
trial: :meth:`UniformSampler.chooser` makes the same choices (same values, same order) as an
Optuna trial driven by this sampler would, at a tenth of the cost (a trial's ``suggest_*``
checks and stores every parameter, about 25 microseconds each).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import FrozenTrial

if TYPE_CHECKING:
    from optuna.study import Study

__all__ = ["UniformSampler", "UniformChooser", "uniform_value", "single_value"]


def uniform_value(distribution: BaseDistribution, rng: random.Random) -> Any:
    """A uniform draw from a categorical or a linear int distribution; ``ValueError`` for any other."""
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[rng.randrange(len(distribution.choices))]
    if isinstance(distribution, IntDistribution) and not distribution.log:
        count = (distribution.high - distribution.low) // distribution.step + 1
        return distribution.low + distribution.step * rng.randrange(count)
    raise ValueError(f"uniform_value: only categorical and linear int distributions, got {distribution!r}")


def single_value(distribution: BaseDistribution) -> Any:
    """The one value of a single-valued distribution, which an Optuna trial takes without asking its sampler."""
    assert distribution.single(), distribution
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[0]
    assert isinstance(distribution, (IntDistribution, FloatDistribution)), distribution
    return distribution.low


class UniformSampler(BaseSampler):
    """Independent uniform sampling, seeded (see the module docstring); the drop-in for ``RandomSampler``."""

    def __init__(self, seed: int | None = None) -> None:
        self._seed = seed
        self._rng = random.Random(seed)
        self._fallback: RandomSampler | None = None

    def chooser(self) -> UniformChooser:
        """A :class:`~nas.space.Chooser` drawing from this sampler's generator as its trials would."""
        return UniformChooser(self._rng)

    def reseed_rng(self) -> None:
        self._rng.seed()
        if self._fallback is not None:
            self._fallback.reseed_rng()

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        try:
            return uniform_value(param_distribution, self._rng)
        except ValueError:
            if self._fallback is None:
                self._fallback = RandomSampler(seed=None if self._seed is None else self._seed % 2**32)
            return self._fallback.sample_independent(study, trial, param_name, param_distribution)


class UniformChooser:
    """Choices drawn as :class:`UniformSampler` draws them in an Optuna trial, without the trial.

    A trial asks its sampler once per parameter, in the order the space asks, except for a
    distribution of one value, which it takes without asking; the sampler draws
    :func:`uniform_value` from its generator. This chooser does the same with the same generator.
    :attr:`params` and :attr:`distributions` are what the trial would hold.
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.params: dict[str, Any] = {}
        self.distributions: dict[str, BaseDistribution] = {}

    def choose(self, name: str, options: Sequence[Any]) -> Any:
        distribution = CategoricalDistribution(list(options))
        return self._keep(name, distribution, self._draw(distribution))

    def choose_int(self, name: str, low: int, high: int) -> int:
        distribution = IntDistribution(low, high)
        return int(self._keep(name, distribution, self._draw(distribution)))

    def _draw(self, distribution: CategoricalDistribution | IntDistribution) -> Any:
        return single_value(distribution) if distribution.single() else uniform_value(distribution, self._rng)

    def _keep(self, name: str, distribution: BaseDistribution, value: Any) -> Any:
        assert name not in self.params, f"{name} asked twice"  # a space asks each parameter once
        self.params[name], self.distributions[name] = value, distribution
        return value
