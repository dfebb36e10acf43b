"""What a search optimises: one small class per objective behind one interface.

An :class:`Objective` says what Optuna stores per trial (its values and directions), how
poor candidates are stopped early, how the winner is chosen, and how it is named in the
outputs. Two exist:

* ``reward`` (:class:`RewardObjective`): MnasNet's ``ACC * (LAT / T) ** w``, maximised;
  Optuna's successive halving (behind :class:`~nas.search._early_stop.MinPeersPruner`) stops
  poor candidates on the reward reported after every epoch; the winner has the highest reward.
* ``pareto`` (:class:`ParetoObjective`): accuracy up, latency down (two Optuna objectives);
  Optuna's pruners refuse multi-objective studies, so
  :class:`~nas.search._early_stop.LatencyBandHalving` stops candidates within their latency band;
  the winner is the most accurate network within the budget (the faster on a tie).

:func:`get_objective` turns a name (``--objective``) into an instance.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol

import optuna

from nas.errors import SearchError
from nas.search._early_stop import LatencyBandHalving, MinPeersPruner
from nas.search.record import TrialRecord
from nas.search.reward import SOFT, RewardSpec, mnasnet_reward

__all__ = ["Objective", "RewardObjective", "ParetoObjective", "OBJECTIVES", "get_objective", "Reported"]

#: A score to sort by, highest first.
Score = tuple[float, float]


class Reported(Protocol):
    """What an objective reports to and asks about: an ``optuna.Trial``, or a trial not stored yet."""

    @property
    def number(self) -> int: ...

    def report(self, value: float, step: int) -> None: ...

    def should_prune(self) -> bool: ...


class Objective(ABC):
    """The interface the search, the winner's choice and the outputs use."""

    name: ClassVar[str]
    directions: ClassVar[tuple[str, ...]]
    default_sampler: ClassVar[str]

    @abstractmethod
    def values(self, accuracy: float, latency_ms: float, budget_ms: float) -> tuple[float, ...]:
        """What Optuna stores for a trial."""

    @abstractmethod
    def pruner(self, prune: bool) -> optuna.pruners.BasePruner:
        """The study's pruner (``prune``: whether poor candidates may be stopped at all)."""

    def report(self, trial: Reported, *, epoch: int, accuracy: float, latency_ms: float,
               budget_ms: float) -> None:
        """Tell Optuna the result of epoch ``epoch`` (what the pruner sees)."""

    @abstractmethod
    def should_stop(self, trial: Reported, *, epoch: int, accuracy: float, latency_ms: float,
                    peers: Callable[[], Sequence[TrialRecord]]) -> str | None:
        """Why the trial should stop after epoch ``epoch`` (reported already), or None to go on.

        Asked after every epoch but the last, when pruning is on. ``peers()`` gives the study's trials.
        """

    @abstractmethod
    def score(self, record: TrialRecord, accuracy: float | None = None) -> Score:
        """Sort key of the winner's choice: of the trial's own result, or of ``accuracy`` (a mean over seeds)."""

    @abstractmethod
    def describe(self) -> str:
        """The objective, for ``summary.md``."""

    def fingerprint(self) -> dict[str, Any]:
        """Its settings that change what a trial measures (a study resumes only with the same ones)."""
        return {}

    def progress(self, record: TrialRecord) -> str:
        """Extra text for a finished trial's progress line."""
        return ""


class RewardObjective(Objective):
    name = "reward"
    directions = ("maximize",)
    default_sampler = "tpe"

    def __init__(self, spec: RewardSpec = SOFT) -> None:
        self.spec = spec

    def values(self, accuracy: float, latency_ms: float, budget_ms: float) -> tuple[float, ...]:
        return (mnasnet_reward(accuracy, latency_ms, budget_ms, self.spec),)

    def pruner(self, prune: bool) -> optuna.pruners.BasePruner:
        if prune:
            return MinPeersPruner(optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3))
        return optuna.pruners.NopPruner()

    def report(self, trial: Reported, *, epoch: int, accuracy: float, latency_ms: float,
               budget_ms: float) -> None:
        trial.report(mnasnet_reward(accuracy, latency_ms, budget_ms, self.spec), epoch)

    def should_stop(self, trial: Reported, *, epoch: int, accuracy: float, latency_ms: float,
                    peers: Callable[[], Sequence[TrialRecord]]) -> str | None:
        return f"pruned after epoch {epoch}" if trial.should_prune() else None

    def score(self, record: TrialRecord, accuracy: float | None = None) -> Score:
        value = record.value
        assert value is not None and record.val_acc is not None, record
        if accuracy is not None and record.val_acc > 0:
            # reward = ACC * (LAT/T)^w is linear in ACC: the latency factor is the trial's own
            value = value * accuracy / record.val_acc
        elif accuracy is not None and record.latency_ms is not None and record.budget_ms is not None:
            # own accuracy 0 (a diverged run, or no image right in a small --val-images sample): nothing to
            # scale, so the reward of ``accuracy`` at the trial's latency and budget
            value = mnasnet_reward(accuracy, record.latency_ms, record.budget_ms, self.spec)
        return float(value), -record.number

    def describe(self) -> str:
        return f"reward ACC*(LAT/T)^w, {self.spec.name}"

    def fingerprint(self) -> dict[str, Any]:
        return {"reward": [self.spec.alpha, self.spec.beta]}

    def progress(self, record: TrialRecord) -> str:
        return f"reward {record.value:.4f}" if record.value is not None else ""


class ParetoObjective(Objective):
    name = "pareto"
    directions = ("maximize", "minimize")
    default_sampler = "nsga2"

    def __init__(self, halving: LatencyBandHalving | None = None) -> None:
        self.halving = halving or LatencyBandHalving()

    def values(self, accuracy: float, latency_ms: float, budget_ms: float) -> tuple[float, ...]:
        return accuracy, latency_ms

    def pruner(self, prune: bool) -> optuna.pruners.BasePruner:
        return optuna.pruners.NopPruner()  # trial.report refuses multi-objective studies: see should_stop

    def should_stop(self, trial: Reported, *, epoch: int, accuracy: float, latency_ms: float,
                    peers: Callable[[], Sequence[TrialRecord]]) -> str | None:
        if self.halving.should_stop(peers(), trial_number=trial.number, latency_ms=latency_ms, epoch=epoch,
                                    accuracy=accuracy):
            return f"stopped after epoch {epoch}: not in the top third of its latency band"
        return None

    def score(self, record: TrialRecord, accuracy: float | None = None) -> Score:
        assert record.val_acc is not None and record.latency_ms is not None, record
        return (record.val_acc if accuracy is None else accuracy), -record.latency_ms

    def describe(self) -> str:
        return "pareto"


_OBJECTIVES: dict[str, type[Objective]] = {"reward": RewardObjective, "pareto": ParetoObjective}
OBJECTIVES = tuple(_OBJECTIVES)


def get_objective(objective: str | Objective, reward: RewardSpec | None = None) -> Objective:
    """The objective named ``objective`` (``reward`` takes ``reward``, default soft); an instance as it is."""
    if isinstance(objective, Objective):
        return objective
    if objective not in _OBJECTIVES:
        raise SearchError(f"--objective: expected one of {list(OBJECTIVES)}, got {objective!r}")
    if objective == "reward":
        return RewardObjective(reward or SOFT)
    return ParetoObjective()
