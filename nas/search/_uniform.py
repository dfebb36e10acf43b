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
from typing import TYPE_CHECKING, Any

from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import FrozenTrial

from nas.search._chooser import TrialFreeChooser, single_value

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


class UniformChooser(TrialFreeChooser):
    """Choices drawn as :class:`UniformSampler` draws them in an Optuna trial, without the trial: the
    sampler draws :func:`uniform_value` from its generator; this chooser does the same with the same
    generator (see :class:`~nas.search._chooser.TrialFreeChooser`)."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self._rng = rng

    def _ask(self, name: str, distribution: BaseDistribution) -> Any:
        return uniform_value(distribution, self._rng)
