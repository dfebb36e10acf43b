"""Early stopping: the pareto mode's own rule, and a guard for Optuna's pruner in reward mode.

Optuna's pruners refuse multi-objective studies (``trial.report`` raises there). This rule
is successive halving restricted to *latency bands*: at rung epochs ``r * eta**k`` a
candidate is stopped when its validation accuracy is not in the top ``1 / eta`` of the
candidates whose latency lies within a factor ``1 + band`` of its own (it and its peers
compared at the same epoch). Comparing only within a band keeps fast-but-less-accurate
networks, which belong on the Pareto front, from being stopped by slow accurate ones.

Peers are other trials (finished or stopped) that recorded an accuracy for that epoch
(:attr:`~nas.search.record.TrialRecord.acc_per_epoch`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from nas.search.record import TrialRecord

__all__ = ["LatencyBandHalving", "MinPeersPruner"]


@dataclass(frozen=True)
class LatencyBandHalving:
    band: float = 0.25
    reduction_factor: int = 3
    min_resource: int = 1
    min_peers: int = 3

    def is_rung(self, epoch: int) -> bool:
        r = self.min_resource
        while r < epoch:
            r *= self.reduction_factor
        return r == epoch

    def peers(self, trials: Sequence[TrialRecord], latency_ms: float, epoch: int, exclude: int) -> list[float]:
        out = []
        for t in trials:
            if t.number == exclude or t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
                continue
            if t.latency_ms is None or len(t.acc_per_epoch) < epoch:
                continue
            if abs(math.log(t.latency_ms / latency_ms)) <= math.log1p(self.band):
                out.append(t.acc_per_epoch[epoch - 1])
        return out

    def should_stop(self, trials: Sequence[TrialRecord], *, trial_number: int, latency_ms: float,
                    epoch: int, accuracy: float) -> bool:
        if not self.is_rung(epoch):
            return False
        peers = self.peers(trials, latency_ms, epoch, trial_number)
        if len(peers) < self.min_peers:
            return False
        keep = max(1, math.ceil((len(peers) + 1) / self.reduction_factor))
        threshold = sorted([*peers, accuracy], reverse=True)[keep - 1]
        return accuracy < threshold


class MinPeersPruner(optuna.pruners.BasePruner):
    """Optuna's pruner, but never before ``min_peers`` other trials reported the same epoch.

    :class:`~optuna.pruners.SuccessiveHalvingPruner` lets a trial that is not the best so far at
    a rung continue only once ``reduction_factor`` others reached it; in a search of a few dozen
    trials that stops nearly every early trial on one noisy epoch. The wrapped pruner is still
    consulted every time (it records the rung values it compares later trials with).
    """

    def __init__(self, pruner: optuna.pruners.BasePruner, min_peers: int = 3) -> None:
        self.pruner, self.min_peers = pruner, min_peers

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        decision = self.pruner.prune(study, trial)
        step = trial.last_step
        if not decision or step is None:
            return False
        peers = sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                                         TrialState.RUNNING))
                    if t.number != trial.number and step in t.intermediate_values)
        return peers >= self.min_peers
