"""An Optuna trial as a :class:`~nas.space.Chooser`: define-by-run, conditional sampling."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna

__all__ = ["TrialChooser"]


class TrialChooser:
    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    def choose(self, name: str, options: Sequence[Any]) -> Any:
        return self.trial.suggest_categorical(name, list(options))

    def choose_int(self, name: str, low: int, high: int) -> int:
        return self.trial.suggest_int(name, low, high)
