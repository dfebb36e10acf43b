"""The record of one search trial: what a trial stores in Optuna, read and written in one place.

A trial keeps everything needed to rebuild and judge it as Optuna *user attributes* (so
``optuna-dashboard`` shows them and any worker sharing the study can read them):

* its description, written before it trains (:data:`DESCRIPTION_KEYS`; a retried trial keeps
  them): ``hash``, ``arch`` (canonical JSON), ``compact``, ``latency_ms`` and the per-part
  breakdown ``latency_parts``, ``latency_interpolated``, ``params``, ``macs``, ``blocks``,
  ``budget_ms``, ``proposal`` (``attempts``, ``repaired``), ``sampler_attrs``, ``warm_start``;
* its outcome: ``status`` (one of :data:`STATUSES`), ``acc_per_epoch``, ``val_acc`` (the last
  epoch's), ``wall_s``, ``message``, ``duplicate_of``, ``worker``, ``surplus``.

Confirmations (the same network trained again with more seeds, :mod:`nas.search.confirm`) are
study user attributes ``confirm:<hash>:<seed>``: they belong to the architecture, not the trial.

:class:`TrialRecord` is the one reader (``TrialRecord.from_trial``, :func:`read_records`) and
:class:`TrialWriter` the one writer; nothing else in the search reads or writes these keys.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.arch import ArchSpec

__all__ = ["TrialRecord", "TrialWriter", "Description", "read_records", "records_of", "hash_of", "status_of",
           "sampler_attrs_of", "WARM_START_ATTRS",
           "stored_confirmations", "CONFIRM_PREFIX", "RESCORE_PREFIX",
           "DESCRIPTION_KEYS", "STATUSES", "TRAINED", "DUPLICATE", "DUPLICATE_PRUNED", "DUPLICATE_DIVERGED", "DIVERGED",
           "STOPPED", "PRUNED", "OVER_BUDGET", "RESULT_STATUSES", "CANDIDATE_STATUSES"]

# ------------------------------------------------------------------------------------ statuses
TRAINED = "trained"  # evaluated to the end
DIVERGED = "diverged"  # training diverged; its accuracy is an earlier epoch's
STOPPED = "stopped"  # the evaluation stopped itself before its last epoch
PRUNED = "pruned"  # stopped early by the objective's pruning rule
OVER_BUDGET = "over_budget"  # predicted over --skip-over x the budget: not evaluated
DUPLICATE = "duplicate"  # the same network as an earlier trial: its result reused
DUPLICATE_PRUNED = "duplicate_pruned"  # ... whose evaluation had been stopped early
DUPLICATE_DIVERGED = "duplicate_diverged"  # ... whose training had diverged
STATUSES = (TRAINED, DIVERGED, STOPPED, PRUNED, OVER_BUDGET, DUPLICATE, DUPLICATE_PRUNED, DUPLICATE_DIVERGED)
#: Trials with a full result (every epoch run, or reused from a trial that ran them).
RESULT_STATUSES = (TRAINED, DUPLICATE, DIVERGED)
#: Trials that may win or stand on the front: a full result that did not diverge.
CANDIDATE_STATUSES = (TRAINED, DUPLICATE)

#: User attributes that describe a trial's network, set before it is evaluated: a retry keeps them.
DESCRIPTION_KEYS = ("warm_start", "hash", "arch", "compact", "latency_ms", "latency_parts", "latency_interpolated",
                    "params", "macs", "blocks", "budget_ms", "proposal", "sampler_attrs")

CONFIRM_PREFIX = "confirm:"
#: Confirmations on a finer measure than the trials' own (a supernet's whole validation split against the
#: trials' sample of it): they replace the trial's result instead of joining it.
RESCORE_PREFIX = "rescore:"


def stored_confirmations(study: optuna.Study, prefix: str = CONFIRM_PREFIX) -> dict[str, dict[int, float]]:
    """Architecture hash -> {seed: accuracy} of the confirmations (``prefix``: or the rescores) stored in the study."""
    out: dict[str, dict[int, float]] = {}
    for key, value in study.user_attrs.items():
        if key.startswith(prefix):
            digest, seed = key[len(prefix):].rsplit(":", 1)
            out.setdefault(digest, {})[int(seed)] = float(value)
    return out


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class TrialRecord:
    """One trial as the search sees it (read-only; see the module doc for where each field lives)."""

    number: int
    state: TrialState
    status: str  # one of STATUSES, "surplus", or "" before the trial set one
    values: tuple[float, ...] | None
    hash: str | None = None
    arch_dict: dict[str, Any] | None = None
    compact: str | None = None
    latency_ms: float | None = None
    latency_parts: tuple[tuple[str, float, str], ...] = ()
    latency_interpolated: int | None = None
    params: int | None = None
    macs: int | None = None
    blocks: int | None = None
    budget_ms: float | None = None
    worker: str | None = None
    acc_per_epoch: tuple[float, ...] = ()
    val_acc: float | None = None
    wall_s: float | None = None
    message: str = ""
    duplicate_of: int | None = None
    proposal_attempts: int | None = None
    repaired: bool | None = None
    warm_start: bool = False
    surplus: bool = False
    retry_of: int | None = None
    #: Accuracies of the same network with more training seeds, by seed (``--confirm-top``).
    confirmations: tuple[tuple[int, float], ...] = ()
    #: The confirmations are rescores on a finer measure (:data:`RESCORE_PREFIX`): they replace the own result.
    rescored: bool = False

    @classmethod
    def from_trial(cls, trial: FrozenTrial, confirmations: Mapping[str, Mapping[int, float]] | None = None,
                   rescores: Mapping[str, Mapping[int, float]] | None = None) -> TrialRecord:
        a = trial.user_attrs
        digest = a.get("hash")
        rescored = digest is not None and bool((rescores or {}).get(digest))
        extra = ((rescores if rescored else confirmations) or {}).get(digest, {}) if digest is not None else {}
        proposal = a.get("proposal") or {}
        return cls(
            number=trial.number, state=trial.state, status=a.get("status", "surplus" if a.get("surplus") else ""),
            values=tuple(trial.values) if trial.values is not None else None, hash=digest, arch_dict=a.get("arch"),
            compact=a.get("compact"), latency_ms=_float(a.get("latency_ms")),
            latency_parts=tuple(tuple(p) for p in a.get("latency_parts") or ()),  # type: ignore[misc]
            latency_interpolated=a.get("latency_interpolated"), params=a.get("params"), macs=a.get("macs"),
            blocks=a.get("blocks"), budget_ms=_float(a.get("budget_ms")), worker=a.get("worker"),
            acc_per_epoch=tuple(float(x) for x in a.get("acc_per_epoch") or ()), val_acc=_float(a.get("val_acc")),
            wall_s=_float(a.get("wall_s")), message=a.get("message", ""), duplicate_of=a.get("duplicate_of"),
            proposal_attempts=proposal.get("attempts"), repaired=proposal.get("repaired"),
            warm_start=bool(a.get("warm_start")), surplus=bool(a.get("surplus")),
            retry_of=trial.system_attrs.get("failed_trial"),
            confirmations=tuple(sorted((int(s), float(v)) for s, v in extra.items())), rescored=rescored,
        )

    # ------------------------------------------------------------------ derived
    @cached_property
    def arch(self) -> ArchSpec:
        """The network (raises for a trial killed before it stored its description)."""
        assert self.arch_dict is not None, f"trial {self.number} has no architecture"
        return ArchSpec.from_dict(self.arch_dict)

    @property
    def value(self) -> float | None:
        """The objective value of a single-objective trial (the reward)."""
        return self.values[0] if self.values is not None and len(self.values) == 1 else None

    @property
    def feasible(self) -> bool | None:
        """Within the budget the trial was drawn for (None before its latency is known)."""
        if self.latency_ms is None:
            return None
        return self.latency_ms <= (self.budget_ms if self.budget_ms is not None else float("inf"))

    def within(self, budget_ms: float) -> bool:
        return self.latency_ms is not None and self.latency_ms <= budget_ms

    @property
    def has_result(self) -> bool:
        """Complete with a full result (:data:`RESULT_STATUSES`)."""
        return self.state == TrialState.COMPLETE and self.status in RESULT_STATUSES and self.val_acc is not None

    @property
    def may_win(self) -> bool:
        """May win or stand on the front: a full result that did not diverge (:data:`CANDIDATE_STATUSES`)."""
        return self.state == TrialState.COMPLETE and self.status in CANDIDATE_STATUSES and self.val_acc is not None

    @property
    def accuracies(self) -> list[float]:
        """The trial's own accuracy, then its confirmations by seed (rescored: the rescores alone)."""
        assert self.val_acc is not None, f"trial {self.number} has no accuracy"
        confirmed = [acc for _, acc in self.confirmations]
        return confirmed if self.rescored and confirmed else [self.val_acc] + confirmed

    @property
    def confirmation_seeds(self) -> list[int]:
        return [seed for seed, _ in self.confirmations]

    @property
    def mean_acc(self) -> float | None:
        return None if self.val_acc is None else statistics.fmean(self.accuracies)

    def with_confirmations(self, confirmations: Mapping[int, float], *, rescored: bool = False) -> TrialRecord:
        return replace(self, confirmations=tuple(sorted((int(s), float(v)) for s, v in confirmations.items())),
                       rescored=rescored and bool(confirmations))


def hash_of(trial: FrozenTrial) -> str | None:
    """The trial's architecture hash (cheaper than a whole record, for scans of every trial)."""
    return trial.user_attrs.get("hash")


def sampler_attrs_of(trial: FrozenTrial) -> dict[str, Any]:
    """The sampler's own attributes a trial kept from its proposal (e.g. NSGA-II's generation)."""
    return dict(trial.user_attrs.get("sampler_attrs") or {})


#: The user attributes of the warm start (the fastest network, enqueued as a new study's first trial).
WARM_START_ATTRS = {"warm_start": True}


def status_of(trial: FrozenTrial) -> str:
    """The trial's status, as :attr:`TrialRecord.status` (cheaper than a whole record)."""
    return trial.user_attrs.get("status", "surplus" if trial.user_attrs.get("surplus") else "")


def read_records(study: optuna.Study, *, confirmed: bool = True,
                 states: Sequence[TrialState] | None = None) -> list[TrialRecord]:
    """The study's trials as records; ``confirmed=False`` leaves the stored confirmations out."""
    rescores = stored_confirmations(study, RESCORE_PREFIX) if confirmed else {}
    # once a study holds rescores, its confirmations on the coarser measure (a resumed study from before
    # 2026-12-05) would mix the coarse luck back in: ignored
    stored = stored_confirmations(study) if confirmed and not rescores else {}
    trials = study.get_trials(deepcopy=False, states=tuple(states) if states is not None else None)
    return [TrialRecord.from_trial(t, stored, rescores) for t in trials]


def records_of(trials: Iterable[FrozenTrial]) -> list[TrialRecord]:
    return [TrialRecord.from_trial(t) for t in trials]


# ------------------------------------------------------------------------------------ writing
@dataclass(frozen=True)
class Description:
    """What a trial stores about its network before it is evaluated."""

    hash: str
    arch: dict[str, Any]
    compact: str
    latency_ms: float
    latency_parts: list[list[Any]]
    latency_interpolated: int
    params: int
    macs: int
    blocks: int
    budget_ms: float
    proposal: dict[str, Any] | None = None  # attempts, repaired
    sampler_attrs: dict[str, Any] | None = None

    def to_attrs(self) -> dict[str, Any]:
        out = {"hash": self.hash, "arch": self.arch, "compact": self.compact, "latency_ms": self.latency_ms,
               "latency_parts": self.latency_parts, "latency_interpolated": self.latency_interpolated,
               "params": self.params, "macs": self.macs, "blocks": self.blocks, "budget_ms": self.budget_ms}
        if self.proposal is not None:
            out["proposal"] = self.proposal
        if self.sampler_attrs is not None:
            out["sampler_attrs"] = self.sampler_attrs
        return out


class TrialWriter:
    """Writes a running trial's record (the only code that sets the keys of the module doc).

    ``trial=None``: nothing is written; the attributes are collected (:attr:`attrs`) for a trial
    that is stored once, finished, with all of them.
    """

    def __init__(self, trial: optuna.Trial | None) -> None:
        self.trial = trial
        self._written: dict[str, Any] = {}

    @property
    def attrs(self) -> dict[str, Any]:
        """Every attribute set so far."""
        return dict(self._written)

    def _set(self, **attrs: Any) -> None:
        for key, value in attrs.items():
            if key in self._written and self._written[key] == value:
                continue  # each write is a database transaction: a value already stored is not written again
            if self.trial is not None:
                self.trial.set_user_attr(key, value)
            self._written[key] = value

    def describe(self, description: Description, *, worker: str) -> None:
        self._set(**description.to_attrs(), worker=worker)

    def surplus(self) -> None:
        self._set(surplus=True)

    def status(self, status: str) -> None:
        assert status in STATUSES, status
        self._set(status=status)

    def epoch(self, accs: Sequence[float]) -> None:
        """The accuracies so far (after every epoch, so a stopped trial keeps them)."""
        self._set(acc_per_epoch=list(accs), val_acc=accs[-1])

    def result(self, status: str, accs: Sequence[float], *, accuracy: float, message: str = "") -> None:
        if message:
            self._set(message=message)
        self._set(acc_per_epoch=list(accs), val_acc=accuracy)
        self.status(status)

    def wall(self, seconds: float) -> None:
        self._set(wall_s=round(seconds, 3))

    def duplicate(self, twin: TrialRecord, status: str) -> None:
        assert twin.acc_per_epoch, twin
        self._set(duplicate_of=twin.number, acc_per_epoch=list(twin.acc_per_epoch), val_acc=twin.acc_per_epoch[-1],
                  wall_s=0.0)
        self.status(status)
