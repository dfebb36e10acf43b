"""Choosers for the proposer: an Optuna trial (define-by-run, conditional sampling), and the base of the
choosers that draw as a trial would, without one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

__all__ = ["TrialChooser", "TrialFreeChooser", "single_value"]


class TrialChooser:
    """Asks ``trial`` for every choice, and keeps what it asked and got.

    :attr:`params` and :attr:`distributions` equal ``trial.params`` and ``trial.distributions`` once
    the network is drawn, without their deep copies (the proposer draws thousands of candidates).
    """

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial
        self.params: dict[str, Any] = {}
        self.distributions: dict[str, BaseDistribution] = {}

    def choose(self, name: str, options: Sequence[Any]) -> Any:
        choices = list(options)
        value = self.trial.suggest_categorical(name, choices)
        self.params[name], self.distributions[name] = value, CategoricalDistribution(choices)
        return value

    def choose_int(self, name: str, low: int, high: int) -> int:
        value = self.trial.suggest_int(name, low, high)
        self.params[name], self.distributions[name] = value, IntDistribution(low, high)
        return value


def single_value(distribution: BaseDistribution) -> Any:
    """The one value of a single-valued distribution, which an Optuna trial takes without asking its sampler."""
    assert distribution.single(), distribution
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[0]
    assert isinstance(distribution, (IntDistribution, FloatDistribution)), distribution
    return distribution.low


class TrialFreeChooser(ABC):
    """Draws every choice as an Optuna trial driven by a sampler would, without the trial.

    A trial asks for the parameters in the order the space asks; it takes the value of a
    distribution of one value without asking its sampler, and asks (:meth:`_ask`) for every other.
    :attr:`params` and :attr:`distributions` are what the trial would hold (``params`` may be the
    dict of a stand-in trial that the sampler reads).
    """

    def __init__(self, params: dict[str, Any] | None = None,
                 distributions: dict[str, BaseDistribution] | None = None) -> None:
        self.params: dict[str, Any] = {} if params is None else params
        self.distributions: dict[str, BaseDistribution] = {} if distributions is None else distributions

    def choose(self, name: str, options: Sequence[Any]) -> Any:
        return self._draw(name, CategoricalDistribution(list(options)))

    def choose_int(self, name: str, low: int, high: int) -> int:
        return int(self._draw(name, IntDistribution(low, high)))

    def _draw(self, name: str, distribution: BaseDistribution) -> Any:
        assert name not in self.params, f"{name} asked twice"  # a space asks each parameter once
        value = single_value(distribution) if distribution.single() else self._ask(name, distribution)
        self.params[name], self.distributions[name] = value, distribution
        return value

    @abstractmethod
    def _ask(self, name: str, distribution: BaseDistribution) -> Any:
        """The sampler's value for ``name`` (a distribution of more than one value)."""
