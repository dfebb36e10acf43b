"""Latency-aware proposals: candidates are screened by the table before a trial exists.

Uniform samples of a space rarely meet a tight budget (in the default space on the shipped
CPU table none of 5,000 random networks is within half of MobileNetV2's latency), so a
sampler that only learns from stored trials would spend most of ``--trials`` on networks
rejected untrained. Instead each trial's architecture is *proposed* first:

1. the configured Optuna sampler (TPE, NSGA-II or random) draws a candidate on an in-memory
   copy of the study: its finished trials plus (``keep_rejected``) this worker's recently
   rejected candidates (the search shows TPE none of those: see ``runner._keep_rejected``);
2. the table predicts the candidate's latency at once; a candidate over the acceptance limit
   (``--skip-over`` x budget) is told to the copy as an infeasible trial (its constraint says
   how far over the budget) and the sampler is asked again, so it learns which choices are too
   slow without any trial being stored or counted;
3. after ``max_attempts`` rejections the least slow candidate is *repaired* to the budget:
   its choices are lowered one at a time, in random order, to their fastest option until it
   fits. Most of the sampler's choices survive, and the sampler learns from the repaired trial.

The accepted parameters then become the next real trial through :class:`FixedSampler`.
"""

from __future__ import annotations

import hashlib
import random
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from nas.arch import ArchSpec, arch_hash
from nas.latency import LatencyEstimator
from nas.search.chooser import TrialChooser
from nas.space import SearchSpace, sample_arch

__all__ = ["Proposal", "Proposer", "FixedSampler", "repair", "arch_from_params", "SAMPLER_ATTRS"]

#: User attribute of a trial holding the sampler's own system attributes (e.g. NSGA-II's generation).
SAMPLER_ATTRS = "sampler_attrs"
_CONSTRAINT = "constraints:latency"


@dataclass(frozen=True)
class Proposal:
    params: dict[str, Any]
    latency_ms: float
    attempts: int  # candidates drawn, the accepted one included
    repaired: bool
    sampler_attrs: dict[str, Any] = field(default_factory=dict)


class _DictChooser:
    """Replays a parameter dict; records the options of every choice it was asked for."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.options: dict[str, list[Any]] = {}

    def choose(self, name: str, options: Sequence[Any]) -> Any:
        self.options[name] = list(options)
        return self.params[name]

    def choose_int(self, name: str, low: int, high: int) -> int:
        self.options[name] = list(range(low, high + 1))
        return int(self.params[name])


def arch_from_params(space: SearchSpace, params: dict[str, Any]) -> tuple[ArchSpec, dict[str, list[Any]]]:
    """The architecture of a parameter dict, and the options of each parameter it uses."""
    chooser = _DictChooser(params)
    return sample_arch(space, chooser), chooser.options


def repair(space: SearchSpace, estimator: LatencyEstimator, params: dict[str, Any], limit_ms: float,
           rng: random.Random) -> tuple[dict[str, Any], float]:
    """Lower choices one at a time (random order) to their fastest option until the network fits.

    Only changes that shorten the predicted latency are made and a stage's depth only shrinks,
    so every parameter of the result was in ``params``. Passes repeat until the network fits or
    no single change helps; the caller handles a network that still does not fit.
    """
    current = dict(params)
    arch, options = arch_from_params(space, current)
    latency = estimator.latency_ms(arch)
    changed = True
    while latency > limit_ms and changed:
        changed = False
        names = list(options)
        rng.shuffle(names)
        for name in names:
            if latency <= limit_ms:
                break
            if name not in options:  # dropped by a shallower stage earlier in this pass
                continue
            for value in options[name]:
                if value == current[name]:
                    continue
                try:
                    cand, cand_options = arch_from_params(space, {**current, name: value})
                except KeyError:  # the change would need parameters we do not have (e.g. a deeper stage)
                    continue
                ms = estimator.latency_ms(cand)
                if ms < latency:
                    current[name], latency, options, changed = value, ms, cand_options, True
    return {k: current[k] for k in options}, latency


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:4], "little")


def _copy(trial: FrozenTrial) -> FrozenTrial:
    """A finished trial as the in-memory copy needs it: state, values, params, constraint, sampler attrs."""
    system_attrs = dict(trial.user_attrs.get(SAMPLER_ATTRS) or {})
    if trial.constraints:
        system_attrs.update({f"constraints:{k}": v for k, v in trial.constraints.items()})
    return optuna.trial.create_trial(
        state=trial.state, values=trial.values if trial.state == TrialState.COMPLETE else None,
        params=trial.params, distributions=trial.distributions, intermediate_values=trial.intermediate_values,
        system_attrs=system_attrs)


class Proposer:
    """Draws latency-screened parameters for the next trial (see the module docstring).

    ``make_sampler(seed)`` builds the configured sampler; candidates up to ``limit_ms`` are
    accepted as drawn; the sampler's constraint and the repair target are ``budget_ms``;
    ``fastest``: parameters of the fastest network, proposed when a repair cannot reach the budget;
    ``keep_rejected``: how many rejected candidates of earlier proposals the sampler is shown.
    """

    def __init__(self, space: SearchSpace, estimator: LatencyEstimator,
                 make_sampler: Callable[[int], optuna.samplers.BaseSampler], directions: list[str], *,
                 limit_ms: float, budget_ms: float, fastest: dict[str, Any] | None = None, max_attempts: int = 10,
                 keep_rejected: int = 100) -> None:
        assert max_attempts >= 1 and keep_rejected >= 0 and limit_ms >= budget_ms
        self.fastest = fastest
        self.space, self.estimator, self.make_sampler = space, estimator, make_sampler
        self.directions = directions
        self.limit_ms, self.budget_ms = limit_ms, budget_ms
        self.max_attempts, self.keep_rejected = max_attempts, keep_rejected
        self.rejected: deque[FrozenTrial] = deque(maxlen=keep_rejected)  # the newest refusals of earlier proposals

    def _mirror(self, trials: Sequence[FrozenTrial]) -> optuna.Study:
        mirror = optuna.create_study(directions=self.directions)
        mirror.add_trials([_copy(t) for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                           and t.distributions])
        mirror.add_trials(list(self.rejected))
        return mirror

    def propose(self, trials: Sequence[FrozenTrial], seed: int, *, taken: set[str] = frozenset()) -> Proposal:
        """Parameters for a new trial given the study's ``trials``; ``taken``: hashes not to propose again."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental-feature notices of the samplers
            return self._propose(trials, seed, taken)

    def _propose(self, trials: Sequence[FrozenTrial], seed: int, taken: set[str]) -> Proposal:
        mirror = self._mirror(trials)
        best: tuple[float, dict[str, Any]] | None = None
        for attempt in range(1, self.max_attempts + 1):
            mirror.sampler = self.make_sampler(_seed(seed, attempt))
            trial = mirror.ask()
            arch = sample_arch(self.space, TrialChooser(trial))
            latency = self.estimator.latency_ms(arch)
            trial.set_constraint("latency", latency - self.budget_ms)
            params = dict(trial.params)
            if arch_hash(arch) in taken:  # trained already: ask again (the sampler is re-seeded)
                mirror.tell(trial, state=TrialState.FAIL)
                continue
            if latency <= self.limit_ms:
                frozen = mirror.tell(trial, state=TrialState.FAIL)  # becomes a real trial; not a mirror datum
                attrs = {k: v for k, v in frozen.system_attrs.items() if not k.startswith("constraints")}
                return Proposal(params, latency, attempt, False, attrs)
            frozen = mirror.tell(trial, state=TrialState.PRUNED)
            self.rejected.append(_copy(frozen))
            if best is None or latency < best[0]:
                best = (latency, params)
        if best is None:  # every candidate was a network trained before: let the trial reuse its result
            return Proposal(params, latency, self.max_attempts, False)
        params, latency = repair(self.space, self.estimator, best[1], self.budget_ms, random.Random(seed))
        if latency > self.budget_ms and self.fastest is not None:
            params = dict(self.fastest)
            latency = self.estimator.latency_ms(arch_from_params(self.space, params)[0])
        return Proposal(params, latency, self.max_attempts, True)


class FixedSampler(optuna.samplers.BaseSampler):
    """Gives a trial the proposed parameters; anything else comes from ``fallback``.

    Enqueued trials (retries, the warm start) keep their own fixed parameters: Optuna applies
    those before asking the sampler.
    """

    def __init__(self, params: dict[str, Any], fallback: optuna.samplers.BaseSampler) -> None:
        self.params, self.fallback = params, fallback

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        value = self.params.get(param_name)
        if isinstance(param_distribution, CategoricalDistribution) and value in param_distribution.choices:
            return value
        if isinstance(param_distribution, IntDistribution) and value is not None and \
                param_distribution.low <= value <= param_distribution.high:
            return value
        return self.fallback.sample_independent(study, trial, param_name, param_distribution)
