"""An Optuna trial as a :class:`~nas.space.Chooser`: define-by-run, conditional sampling."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution

__all__ = ["TrialChooser"]


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
