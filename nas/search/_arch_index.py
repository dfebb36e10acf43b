"""The study's trials by architecture hash, kept up to date from each fresh read of the study.

The search loop asks two things of every trial before the next one: which architectures are
taken (evaluated, being evaluated or queued: not to be proposed again) and which earlier trials
evaluated the same network (its result is reused). Scanning every trial for both made a long
search quadratic in its trials. A finished trial never changes (Optuna refuses writes to it), so
the leading run of finished trials is read once; the trials after it (running, waiting, and any
that follow them) are read again at every update.
"""

from __future__ import annotations

from collections.abc import Sequence

from optuna.trial import FrozenTrial, TrialState

from nas.search.record import OVER_BUDGET, hash_of, status_of

__all__ = ["ArchIndex", "is_taken"]

_TAKEN_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


def is_taken(trial: FrozenTrial) -> bool:
    """Whether ``trial``'s architecture counts as evaluated, being evaluated or queued for evaluation."""
    return trial.state in _TAKEN_STATES and status_of(trial) != OVER_BUDGET


class ArchIndex:
    """Hash -> trials of one study; :meth:`update` with each new list of the study's trials (number order)."""

    def __init__(self) -> None:
        self.source: Sequence[FrozenTrial] | None = None  # the list of the last update
        self._reset(())

    def _reset(self, rest: Sequence[FrozenTrial]) -> None:
        self._read = 0  # trials[:_read] are finished and indexed
        self._by_hash: dict[str, list[FrozenTrial]] = {}
        self._taken: set[str] = set()
        self._rest = rest  # the trials read again at every update

    def update(self, trials: Sequence[FrozenTrial]) -> None:
        if not trials or trials[-1].number != len(trials) - 1 or len(trials) < self._read:
            self._reset(trials)  # not one study's list in number order: index nothing, scan them all
        else:
            i = self._read
            while i < len(trials) and trials[i].state.is_finished():
                t = trials[i]
                digest = hash_of(t)
                if digest is not None:
                    self._by_hash.setdefault(digest, []).append(t)
                    if is_taken(t):
                        self._taken.add(digest)
                i += 1
            self._read = i
            self._rest = trials[i:]
        self.source = trials

    def taken(self) -> set[str]:
        """Hashes of the architectures evaluated, being evaluated or queued for evaluation."""
        out = set(self._taken)
        out.update(d for t in self._rest if (d := hash_of(t)) is not None and is_taken(t))
        return out

    def with_hash(self, digest: str) -> list[FrozenTrial]:
        """The trials of that architecture, in number order."""
        return self._by_hash.get(digest, []) + [t for t in self._rest if hash_of(t) == digest]
