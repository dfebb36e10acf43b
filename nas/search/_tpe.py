"""TPE whose group-decomposed search space is worked out afresh at every draw, and cheaply.

With ``group=True`` Optuna's :class:`~optuna.samplers.TPESampler` splits the parameters into
groups that always occur together, by adding every finished trial's parameters to a
``_GroupDecomposedSearchSpace`` at every draw: a tenth of a TPE search's time in the proposer,
which draws once or more per trial. Adding a set of parameter names seen before changes nothing
(the groups already split along it, and the first distributions seen are kept), so each distinct
set is added once, in the order of its first trial: the same groups, in the same order, with the
same distributions (the names inside a group may come in another order: TPE sorts them). The groups are built afresh at every draw, as a fresh sampler builds them; Optuna's
own object keeps adding to one set of groups across draws, so a sampler kept between draws (see
:mod:`nas.search._reseed`) would also split along candidates the proposer no longer shows it.
``tests/search/test_sampler_reuse.py`` compares the groups and the draws with Optuna's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.search_space.group_decomposed import _GroupDecomposedSearchSpace, _SearchSpaceGroup
from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from optuna.study import Study

__all__ = ["GroupedTPESampler"]


class _FreshGroups(_GroupDecomposedSearchSpace):
    def calculate(self, study: Study, use_cache: bool = False) -> _SearchSpaceGroup:
        states = (TrialState.COMPLETE, TrialState.PRUNED) if self._include_pruned else (TrialState.COMPLETE,)
        groups, seen = _SearchSpaceGroup(), set()
        for trial in study._get_trials(deepcopy=False, states=states, use_cache=use_cache):
            names = frozenset(trial.distributions)
            if names not in seen:
                seen.add(names)
                groups.add_distributions(trial.distributions)
        return groups


class GroupedTPESampler(optuna.samplers.TPESampler):
    """:class:`optuna.samplers.TPESampler` (``multivariate=True, group=True``) with the groups of the module doc,
    and each finished trial's internal values remembered (see :meth:`_get_internal_repr`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(multivariate=True, group=True, **kwargs)
        self._group_decomposed_search_space = _FreshGroups(True)
        # per search space (names and distributions): id(trial) -> (the trial, its internal values or None)
        self._rows: dict[tuple[tuple[str, BaseDistribution], ...], dict[int, tuple[FrozenTrial, tuple[Any, ...] | None]]] = {}

    def _get_internal_repr(self, trials: list[FrozenTrial], search_space: dict[str, BaseDistribution],
                           study: Study) -> dict[str, np.ndarray]:
        """Optuna's arrays, from rows remembered per finished trial object (its parameters no longer change).

        Optuna converts every parameter of every trial at every draw: a third of TPE's own time at 300
        trials. A row is the trial's values in the order of ``search_space`` (None: the trial lacks one
        of its parameters, and Optuna leaves it out). A trial that is not finished goes Optuna's way.
        The kept sampler lives as long as the proposer's copy, whose finished trials are never replaced.
        """
        space = tuple(search_space.items())
        rows = self._rows.get(space)
        if rows is None:
            if len(self._rows) >= 64:  # a sampler sees few spaces; bound it anyway
                self._rows.clear()
            rows = self._rows[space] = {}
        kept = []
        for trial in trials:
            known = rows.get(id(trial))
            if known is None or known[0] is not trial:
                if not trial.state.is_finished():  # its relative parameters may be in its system attributes
                    return super()._get_internal_repr(trials, search_space, study)
                params = trial.params  # Optuna's _get_params for a finished trial
                row = tuple(d.to_internal_repr(params[n]) for n, d in space) if search_space.keys() <= params.keys() \
                    else None
                known = rows[id(trial)] = (trial, row)
            if known[1] is not None:
                kept.append(known[1])
        if not kept:
            return {name: np.asarray([]) for name in search_space}
        return {name: np.asarray(column) for name, column in zip(search_space, zip(*kept))}
