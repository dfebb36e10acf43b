"""Latency-aware proposals: candidates are screened by the table before a trial exists.

Uniform samples of a space rarely meet a tight budget (in the default space on the shipped
CPU table none of 5,000 random networks is within half of MobileNetV2's latency), so a
sampler that only learns from stored trials would spend most of ``--trials`` on networks
rejected untrained. Instead each trial's architecture is *proposed* first:

1. the configured Optuna sampler (TPE, NSGA-II, evolution or random) draws a candidate on an
   in-memory copy of the study: its finished trials plus (``keep_rejected``, none by default:
   see ``runner._keep_rejected``) this worker's recently rejected candidates. Random sampling and
   evolution, which are shown no refusals, draw without a trial in the copy (a trial costs a stored
   row and a check and a write per parameter): the same candidates, at a fraction of the cost;
2. the table predicts the candidate's latency at once; a candidate over the acceptance limit
   (``--skip-over`` x budget) is told to the copy as an infeasible trial (its constraint says
   how far over the budget) and the sampler is asked again, so it learns which choices are too
   slow without any trial being stored or counted;
3. a draw that repeats a network already evaluated is told to the copy as a failure, and the
   sampler is asked again, re-seeded;
4. with ``asks_before_neighbours=K`` (TPE's setting, see ``runner``), after K + 1 unusable draws
   (repeated or over the limit) the proposer takes the network nearest to the last one instead:
   one choice away from it, else two, in a seeded random order, the first that no trial has
   evaluated and that is within the limit. A model-based sampler that has converged keeps drawing
   the network it believes best, and every ask refits its model over all trials (TPE late in a
   search of a small space: about ten asks a trial); the neighbours go where it points, at the
   cost of a table lookup each;
5. after ``max_attempts`` rejections the least slow candidate is *repaired* to the budget:
   its choices are lowered one at a time, in random order, to their fastest option until it
   fits. Most of the sampler's choices survive, and the sampler learns from the repaired trial.

The accepted proposal (parameters, their distributions and the network itself) is handed to the
next real trial as it is: the trial records the parameters and evaluates that network, without
drawing anything again.
"""

from __future__ import annotations

import hashlib
import random
import warnings
from collections import deque
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.study._tell import _tell_with_warning
from optuna.trial import FrozenTrial, TrialState

from nas.arch import ArchSpec, arch_hash
from nas.latency import LatencyEstimator
from nas.search._chooser import TrialChooser
from nas.search._reseed import reseed
from nas.search._storage import MemoryStorage, new_trial
from nas.search._tpe import GroupedTPESampler, TPEChooser
from nas.search._uniform import UniformChooser, UniformSampler
from nas.search.evolution import PLAN_ATTR, EvolutionChooser, RegularizedEvolutionSampler
from nas.search.record import sampler_attrs_of
from nas.space import SearchSpace, sample_arch

__all__ = ["Proposal", "Proposer", "repair", "arch_from_params", "replay"]


@dataclass(frozen=True)
class Proposal:
    """A network for the next trial: its sampling parameters (with their distributions) and the network."""

    params: dict[str, Any]
    distributions: dict[str, BaseDistribution]
    arch: ArchSpec
    latency_ms: float
    attempts: int  # candidates drawn, the accepted one included
    repaired: bool
    sampler_attrs: dict[str, Any] = field(default_factory=dict)  # the sampler's own (e.g. NSGA-II's generation)


_CATEGORICALS: dict[tuple[tuple[Any, ...], tuple[type, ...]], CategoricalDistribution] = {}


def _categorical(options: tuple[Any, ...]) -> CategoricalDistribution:
    """``CategoricalDistribution(options)``, one shared object per option list (replays build thousands a second;
    a distribution is never changed). Keyed with the types: ``(True, False)`` is not ``(1, 0)``."""
    key = (options, tuple(map(type, options)))
    d = _CATEGORICALS.get(key)
    if d is None:
        d = _CATEGORICALS[key] = CategoricalDistribution(list(options))
    return d


class _DictChooser:
    """Replays a parameter dict; records the distribution of every choice it was asked for."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.distributions: dict[str, BaseDistribution] = {}

    def choose(self, name: str, options: Sequence[Any]) -> Any:
        self.distributions[name] = _categorical(tuple(options))
        return self.params[name]

    def choose_int(self, name: str, low: int, high: int) -> int:
        self.distributions[name] = IntDistribution(low, high)
        return int(self.params[name])


def _options(distribution: BaseDistribution) -> list[Any]:
    if isinstance(distribution, IntDistribution):
        return list(range(distribution.low, distribution.high + 1, distribution.step))
    assert isinstance(distribution, CategoricalDistribution), distribution
    return list(distribution.choices)


def replay(space: SearchSpace, params: dict[str, Any]) -> tuple[ArchSpec, dict[str, Any], dict[str, BaseDistribution]]:
    """The network of a parameter dict, the parameters it uses and their distributions.

    Raises KeyError when ``params`` lacks a parameter the network needs.
    """
    chooser = _DictChooser(params)
    arch = sample_arch(space, chooser)
    return arch, {k: params[k] for k in chooser.distributions}, chooser.distributions


def arch_from_params(space: SearchSpace, params: dict[str, Any]) -> tuple[ArchSpec, dict[str, list[Any]]]:
    """The architecture of a parameter dict, and the options of each parameter it uses."""
    arch, _, distributions = replay(space, params)
    return arch, {k: _options(d) for k, d in distributions.items()}


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
    return new_trial(trial.state, values=trial.values if trial.state == TrialState.COMPLETE else None,
                     params=trial.params, distributions=trial.distributions,
                     intermediate_values=trial.intermediate_values, system_attrs=sampler_attrs_of(trial),
                     constraints=trial.constraints)


def _tell(study: optuna.Study, trial: optuna.Trial, state: TrialState) -> FrozenTrial:
    """``study.tell(trial, state=state)`` without its deep copy of the result (a copy's trial is read, never changed)."""
    _tell_with_warning(study, trial, state=state)
    return study._storage.get_trial(trial._trial_id)


#: Networks near an unusable draw looked at before the sampler is asked again (a replay and a table
#: lookup each, about 2 ms): all of NAS-Bench-Macro's within two choices (at most 16 + 256).
_NEIGHBOURS = 256

#: Replays and latencies remembered by a proposer (the memo starts again when full): NAS-Bench-Macro's
#: whole space, a few megabytes.
_MEMO = 8192

_Replayed = tuple[ArchSpec, dict[str, Any], dict[str, BaseDistribution]]

#: Replays per space, shared by the proposers of a process (a replay of a space's parameters never changes;
#: the search-regret grid runs thousands of searches of one space in a process). At most a few spaces kept.
_REPLAYS: dict[SearchSpace, dict[frozenset[tuple[str, type, Any]], _Replayed | None]] = {}

#: A copy is rebuilt when it holds more than ``_CROWDED`` x its kept trials + ``_CROWDED_SLACK`` trials.
_CROWDED, _CROWDED_SLACK = 4, 256


class _CopyStorage(MemoryStorage):
    """In-memory storage that hides some trials from whoever reads them (refusals no longer shown).

    Only TPE's copies hide anything (the proposer shows refusals to TPE alone), and TPE reads the
    trials as a list; NSGA-II, which indexes the list by trial number, never sees a hidden one.
    """

    def __init__(self) -> None:
        super().__init__()
        self.hidden: set[int] = set()

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        trials = super().get_all_trials(study_id, deepcopy=deepcopy, states=states)
        return [t for t in trials if t.number not in self.hidden] if self.hidden else trials


class Proposer:
    """Draws latency-screened parameters for the next trial (see the module docstring).

    ``make_sampler(seed)`` builds the configured sampler; candidates up to ``limit_ms`` are
    accepted as drawn; the sampler's constraint and the repair target are ``budget_ms``;
    ``fastest``: parameters of the fastest network, proposed when a repair cannot reach the budget;
    ``keep_rejected``: how many rejected candidates of earlier proposals the sampler is shown (with
    ``show_refusals`` only);
    ``show_refusals``: whether the sampler is shown any (this proposal's refused candidates, as
    PRUNED trials with their constraint). Only TPE reads refused candidates: NSGA-II and evolution
    build their populations from completed trials, random sampling reads nothing; for them the
    refusals are told as FAIL, which no sampler reads, so the copy never has to be rebuilt.
    ``asks_before_neighbours``: unusable draws (repeated or over the limit) after which the next one
    is replaced by its nearest usable neighbour, if any (None: never; the sampler is asked again).
    """

    def __init__(self, space: SearchSpace, estimator: LatencyEstimator,
                 make_sampler: Callable[[int], optuna.samplers.BaseSampler], directions: list[str], *,
                 limit_ms: float, budget_ms: float, fastest: dict[str, Any] | None = None, max_attempts: int = 10,
                 keep_rejected: int = 0, show_refusals: bool = True, asks_before_neighbours: int | None = None) -> None:
        assert max_attempts >= 1 and keep_rejected >= 0 and limit_ms >= budget_ms
        assert asks_before_neighbours is None or asks_before_neighbours >= 0
        self.asks_before_neighbours = asks_before_neighbours
        self.show_refusals = show_refusals
        self.fastest = fastest
        self._kind: type | None = None  # the class of sampler that make_sampler makes
        self.space, self.estimator, self.make_sampler = space, estimator, make_sampler
        self.directions = directions
        self.limit_ms, self.budget_ms = limit_ms, budget_ms
        self.max_attempts, self.keep_rejected = max_attempts, keep_rejected
        if space not in _REPLAYS and len(_REPLAYS) >= 4:
            _REPLAYS.clear()
        self._replays = _REPLAYS.setdefault(space, {})
        self._latencies: dict[ArchSpec, float] = {}
        self.rejected: deque[FrozenTrial] = deque(maxlen=keep_rejected)  # the newest refusals of earlier proposals
        self._pending: list[FrozenTrial] = []  # refusals to copy again after a rebuild
        # The copy is kept from one proposal to the next and only the study's newly finished trials are
        # added (copying every trial for every proposal made a search quadratic in its trials). Refusals
        # older than the last ``keep_rejected`` are hidden from the samplers by the copy's storage.
        self._reset_copy()

    def _reset_copy(self) -> None:
        self._storage = _CopyStorage()
        self._copy_study = optuna.create_study(directions=self.directions, storage=self._storage)
        self._copied: set[int] = set()  # numbers of the real trials in the copy
        self._refusals: list[int] = []  # numbers in the copy of the refused candidates, oldest first
        self._size = 0  # trials in the copy, hidden ones included, and draws made without a trial
        self._stored = 0  # trials in the copy, hidden ones included
        self._kept: optuna.samplers.BaseSampler | None = None  # the last draw's sampler

    def _add(self, trials: list[FrozenTrial]) -> list[int]:
        """Copies of ``trials`` added to the copy; their numbers there."""
        self._copy_study.add_trials([_copy(t) for t in trials])
        self._size += len(trials)
        self._stored += len(trials)
        return list(range(self._stored - len(trials), self._stored))

    def _rebuild_if_crowded(self) -> None:
        """Start a new copy once the candidates drawn and not kept outnumber the kept trials many times over.

        Every draw leaves a trial in the copy, and samplers scan all of them at every draw: in a
        long search where most draws are refused (a tight budget) or already evaluated (a small
        space), the scans made the search quadratic in its trials. The new copy holds the study's
        finished trials and then the refusals still shown; no sampler reads the candidates left
        out (failed draws, hidden refusals), so the samplers see the same trials.
        """
        if self._size <= _CROWDED * (len(self._copied) + len(self._refusals)) + _CROWDED_SLACK:
            return
        self._reset_copy()
        self._pending = list(self.rejected) if self.show_refusals else []

    def _mirror(self, trials: Sequence[FrozenTrial]) -> optuna.Study:
        """The in-memory copy: the finished trials, the last ``keep_rejected`` refusals of earlier proposals."""
        self._rebuild_if_crowded()
        keep = self._refusals[len(self._refusals) - self.keep_rejected:] if self.keep_rejected else []
        self._storage.hidden.update(n for n in self._refusals if n not in keep)
        self._refusals = keep
        new = [t for t in trials if t.number not in self._copied and t.distributions
               and t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        self._add(new)
        self._copied.update(t.number for t in new)
        if self._pending:  # after a rebuild: the refusals still shown, after the real trials as before
            self._refusals = self._add(self._pending)
            self._pending = []
        return self._copy_study

    def propose(self, trials: Sequence[FrozenTrial], seed: int, *, taken: set[str] = frozenset()) -> Proposal:
        """Parameters for a new trial given the study's ``trials``; ``taken``: hashes not to propose again."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental-feature notices of the samplers
            return self._propose(trials, seed, taken)

    def _propose(self, trials: Sequence[FrozenTrial], seed: int, taken: set[str]) -> Proposal:
        # Random sampling reads nothing: no copy once its class is known (a draw's sampler is made after the copy)
        uniform = self._kind is UniformSampler and self._trial_free(self._kind)
        mirror = None if uniform else self._mirror(trials)
        best: tuple[float, dict[str, Any]] | None = None
        last: Proposal | None = None
        for attempt in range(1, self.max_attempts + 1):
            sampler = self._sampler(_seed(seed, attempt))
            self._kind = self._kind or type(sampler)
            trial, chooser = self._draw(sampler, self._trial_free(self._kind), mirror)
            arch = sample_arch(self.space, chooser)
            latency = self._latency(arch)
            if trial is not None:
                trial.set_constraint("latency", latency - self.budget_ms)
            params, distributions = chooser.params, chooser.distributions
            if arch_hash(arch) in taken:  # trained already: ask again (the sampler is re-seeded)
                if trial is not None:
                    _tell(self._copy_study, trial, TrialState.FAIL)
                last = Proposal(params, distributions, arch, latency, self.max_attempts, False)
            elif latency <= self.limit_ms:
                if trial is None:
                    plan = {PLAN_ATTR: chooser.plan} if isinstance(chooser, EvolutionChooser) else {}
                    return Proposal(params, distributions, arch, latency, attempt, False, plan)
                frozen = _tell(self._copy_study, trial, TrialState.FAIL)  # becomes a real trial; not a mirror datum
                attrs = {k: v for k, v in frozen.system_attrs.items() if not k.startswith("constraints")}
                return Proposal(params, distributions, arch, latency, attempt, False, attrs)
            else:
                frozen = None
                if trial is not None:
                    frozen = _tell(self._copy_study, trial, TrialState.PRUNED if self.show_refusals else TrialState.FAIL)
                elif self.show_refusals:  # drawn without a trial (TPE): stored as its trial would have been
                    frozen = self._store_refusal(params, distributions, latency)
                if frozen is not None and self.show_refusals:
                    self._refusals.append(frozen.number)
                if frozen is not None and self.keep_rejected:
                    self.rejected.append(frozen)
                if best is None or latency < best[0]:
                    best = (latency, params)
            if self.asks_before_neighbours is not None and attempt > self.asks_before_neighbours:
                for near, near_params, near_distributions in self._neighbours(arch, params, distributions,
                                                                              _seed(seed, attempt, "near"), taken):
                    near_ms = self._latency(near)
                    if near_ms <= self.limit_ms:
                        return Proposal(near_params, near_distributions, near, near_ms, attempt, False)
        if best is None:  # every candidate was a network trained before: let the trial reuse its result
            assert last is not None
            return last
        params, latency = repair(self.space, self.estimator, best[1], self.budget_ms, random.Random(seed))
        if latency > self.budget_ms and self.fastest is not None:
            params = dict(self.fastest)
        arch, params, distributions = replay(self.space, params)
        return Proposal(params, distributions, arch, self.estimator.latency_ms(arch), self.max_attempts, True)

    def _trial_free(self, kind: type) -> bool:
        """Whether this proposer's candidates are drawn without trials in the copy (the same draws, cheaper):
        the sampler is one that can draw without a trial (not a subclass, which may draw otherwise), and
        either reads refusals the way they are then stored (TPE, see :meth:`_store_refusal`) or is shown
        none (random sampling, evolution)."""
        if kind is GroupedTPESampler:
            return True
        return kind in (UniformSampler, RegularizedEvolutionSampler) and not self.show_refusals \
            and not self.keep_rejected

    def _store_refusal(self, params: dict[str, Any], distributions: dict[str, BaseDistribution],
                       latency: float) -> FrozenTrial:
        """A refused candidate drawn without a trial, added to the copy as its trial would be once told PRUNED:
        its parameters and its latency constraint (TPE writes nothing else into a trial: no constant liar).
        The draw was counted already (``_size``)."""
        template = new_trial(TrialState.PRUNED, params=dict(params), distributions=dict(distributions),
                             constraints={"latency": latency - self.budget_ms})
        frozen = self._storage.get_trial(self._storage.create_new_trial(self._copy_study._study_id, template))
        self._stored += 1
        self._copy_study._thread_local.cached_all_trials = None  # as a tell empties it
        return frozen

    def _draw(self, sampler: optuna.samplers.BaseSampler, trial_free: bool, mirror: optuna.Study | None
              ) -> tuple[optuna.Trial | None, TrialChooser | UniformChooser | EvolutionChooser | TPEChooser]:
        """A chooser drawing one candidate: without a trial when ``trial_free`` (None for the trial), else an
        Optuna trial of the copy. The copy counts a trial-free draw as if it had been asked (its number
        seeds evolution's draws), so both ways draw the same candidates."""
        number = self._size
        if trial_free:
            if isinstance(sampler, UniformSampler):
                return None, sampler.chooser()
            if isinstance(sampler, (RegularizedEvolutionSampler, GroupedTPESampler)) and mirror is not None:
                chooser = sampler.chooser(mirror, number)
                if chooser is not None:
                    self._size += 1
                    return None, chooser
        assert mirror is not None, "only a sampler that reads nothing draws without the copy"
        mirror.sampler = sampler
        trial = mirror.ask()
        self._size += 1
        self._stored += 1
        return trial, TrialChooser(trial)

    def _sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        """The sampler for one draw: as ``make_sampler(seed)`` makes it (TPE and NSGA-II: one per copy, re-seeded)."""
        # NSGA-II's generation cache finds trials by number: not kept while the copy hides any (TPE reads a list)
        kept = self._kept
        if kept is not None and (not self._storage.hidden or isinstance(kept, GroupedTPESampler)) \
                and reseed(kept, seed):
            return kept
        self._kept = self.make_sampler(seed)
        return self._kept

    def _replay(self, params: dict[str, Any]) -> _Replayed | None:
        """:func:`replay`, remembered (None: ``params`` lacks a parameter); its dicts are shared, not to be changed."""
        key = frozenset((name, type(value), value) for name, value in params.items())  # True is not 1 here
        if key not in self._replays:
            if len(self._replays) >= _MEMO:
                self._replays.clear()
            try:
                self._replays[key] = replay(self.space, params)
            except KeyError:
                self._replays[key] = None
        return self._replays[key]

    def _latency(self, arch: ArchSpec) -> float:
        """The table's prediction for ``arch``, remembered (a table's prediction of a network does not change)."""
        ms = self._latencies.get(arch)
        if ms is None:
            if len(self._latencies) >= _MEMO:
                self._latencies.clear()
            ms = self._latencies[arch] = self.estimator.latency_ms(arch)
        return ms

    def _neighbours(self, arch: ArchSpec, params: dict[str, Any], distributions: dict[str, BaseDistribution],
                    seed: int, taken: Container[str]
                    ) -> Iterator[tuple[ArchSpec, dict[str, Any], dict[str, BaseDistribution]]]:
        """The networks one choice away from ``arch`` (drawn as ``params``), then two, that no trial has evaluated.

        Each ring is in a seeded random order; at most ``_NEIGHBOURS`` networks are looked at. A change
        that needs a parameter the network lacks (a deeper stage) is left out; one that makes a stage
        shallower drops the removed blocks' parameters.
        """
        rng = random.Random(seed)
        seen = {arch_hash(arch)}
        ring = [(params, distributions)]
        for _ in range(2):
            outer = []
            for centre, centre_distributions in ring:
                moves = [(name, value) for name, d in centre_distributions.items() for value in _options(d)
                         if value != centre[name]]
                rng.shuffle(moves)
                for name, value in moves:
                    replayed = self._replay({**centre, name: value})
                    if replayed is None:
                        continue
                    near, used, near_distributions = replayed
                    h = arch_hash(near)
                    if h in seen:
                        continue
                    if len(seen) > _NEIGHBOURS:
                        return
                    seen.add(h)
                    outer.append((used, near_distributions))
                    if h not in taken:
                        yield near, used, near_distributions
            ring = outer
