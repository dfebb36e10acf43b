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

import optuna
from optuna.search_space.group_decomposed import _GroupDecomposedSearchSpace, _SearchSpaceGroup
from optuna.trial import TrialState

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
    """:class:`optuna.samplers.TPESampler` (``multivariate=True, group=True``) with the groups of the module doc."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(multivariate=True, group=True, **kwargs)
        self._group_decomposed_search_space = _FreshGroups(True)
