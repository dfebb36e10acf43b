"""TPE whose group-decomposed search space is worked out afresh at every draw, and cheaply.

With ``group=True`` Optuna's :class:`~optuna.samplers.TPESampler` splits the parameters into
groups that always occur together, by adding every finished trial's parameters to a
``_GroupDecomposedSearchSpace`` at every draw: a tenth of a TPE search's time in the proposer,
which draws once or more per trial. Adding a set of parameter names seen before changes nothing
(the groups already split along it, and the first distributions seen are kept), so each distinct
set is added once, in the order of its first trial: the same groups, in the same order, with the
same distributions (the names inside a group may come in another order: TPE sorts them); each
finished trial's set of names is remembered. The groups are built afresh at every draw, as a fresh
sampler builds them; Optuna's
own object keeps adding to one set of groups across draws, so a sampler kept between draws (see
:mod:`nas.search._reseed`) would also split along candidates the proposer no longer shows it.
``tests/search/test_sampler_reuse.py`` compares the groups and the draws with Optuna's.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, check_distribution_compatibility
from optuna.search_space.group_decomposed import _GroupDecomposedSearchSpace, _SearchSpaceGroup
from optuna.trial import FrozenTrial, TrialState

from nas.search._parzen import CategoricalParzenEstimator
from nas.search._chooser import TrialFreeChooser

if TYPE_CHECKING:
    from optuna.study import Study

__all__ = ["GroupedTPESampler", "TPEChooser"]


class _FreshGroups(_GroupDecomposedSearchSpace):
    def __init__(self, include_pruned: bool = False) -> None:
        super().__init__(include_pruned)
        self._names: dict[int, tuple[FrozenTrial, frozenset[str]]] = {}  # id(trial) -> (the trial, its names)

    def calculate(self, study: Study, use_cache: bool = False) -> _SearchSpaceGroup:
        states = (TrialState.COMPLETE, TrialState.PRUNED) if self._include_pruned else (TrialState.COMPLETE,)
        groups, seen = _SearchSpaceGroup(), set()
        for trial in study._get_trials(deepcopy=False, states=states, use_cache=use_cache):
            known = self._names.get(id(trial))  # a finished trial's names, remembered (it is never changed)
            if known is None or known[0] is not trial:
                known = self._names[id(trial)] = (trial, frozenset(trial.distributions))
            names = known[1]
            if names not in seen:
                seen.add(names)
                groups.add_distributions(trial.distributions)
        return groups


class GroupedTPESampler(optuna.samplers.TPESampler):
    """:class:`optuna.samplers.TPESampler` (``multivariate=True, group=True``) with the groups of the module doc,
    each finished trial's internal values remembered (see :meth:`_get_internal_repr`), and categorical
    parameters estimated together (:class:`~nas.search._parzen.CategoricalParzenEstimator`).

    ``constant_liar`` is off by default: it treats the running trials of other workers as bad ones,
    but this sampler draws in the proposer's copy of the study, which holds finished trials only
    (the draw's own trial, which Optuna leaves out, is the only running one). Off, it draws the
    same, without writing every draw's parameters into the trial's attributes as JSON."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("constant_liar", False)
        super().__init__(multivariate=True, group=True, **kwargs)
        self._group_decomposed_search_space = _FreshGroups(True)
        self._parzen_estimator_cls = CategoricalParzenEstimator
        # per search space (names and distributions): id(trial) -> (the trial, its internal values or None)
        self._rows: dict[tuple[tuple[str, BaseDistribution], ...], dict[int, tuple[FrozenTrial, tuple[Any, ...] | None]]] = {}

    def chooser(self, study: Study, number: int) -> TPEChooser | None:
        """The choices a new trial numbered ``number`` of ``study`` would get, drawn without the trial
        (see :class:`TPEChooser`); None where a trial would draw otherwise (constant liar, a constraints
        function: both read or write the trial itself)."""
        if self._constant_liar or self._constraints_func is not None:
            return None
        return TPEChooser(self, study, number)

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


class TPEChooser(TrialFreeChooser):
    """A :class:`~nas.space.Chooser` that draws as an Optuna trial of ``study`` driven by the sampler would.

    The proposer screens a candidate or more per trial in its in-memory copy of the study; a trial
    there costs a stored row, a check and a write of every parameter, and a tell. What a trial does,
    done here in the same order: the trial cache of the study emptied (``ask`` empties it), the
    sampler's ``before_trial``; then per parameter: a distribution of one value is taken without
    asking; at the first other one the relative search space is inferred and sampled; a parameter
    that the relative sample holds (with a compatible distribution and a value within it) takes that
    value; any other is asked of ``sample_independent``. The trial stands in as a RUNNING
    :class:`~optuna.trial.FrozenTrial` numbered as the trial would be, holding the parameters drawn so
    far. :attr:`params` and :attr:`distributions` are what the trial would hold.
    ``tests/search/test_trial_free.py`` compares it with a trial.
    """

    def __init__(self, sampler: GroupedTPESampler, study: Study, number: int) -> None:
        self._sampler, self._study = sampler, study
        self._trial = FrozenTrial(number=number, state=TrialState.RUNNING, value=None,
                                  datetime_start=datetime.datetime.now(), datetime_complete=None, params={},
                                  distributions={}, user_attrs={}, system_attrs={}, intermediate_values={},
                                  trial_id=-1)
        super().__init__(self._trial.params, self._trial.distributions)  # the stand-in holds what was drawn
        self._space: dict[str, BaseDistribution] | None = None
        self._relative: dict[str, Any] = {}
        study._thread_local.cached_all_trials = None  # as Study.ask: trials were added since the last draw
        sampler.before_trial(study, self._trial)

    def _ask(self, name: str, distribution: BaseDistribution) -> Any:
        if self._is_relative(name, distribution):
            value = self._relative[name]
        else:
            value = self._sampler.sample_independent(self._study, self._trial, name, distribution)
        distribution.to_internal_repr(value)  # a trial checks the value so (NaN and the like raise)
        return value

    def _is_relative(self, name: str, distribution: BaseDistribution) -> bool:
        if self._space is None:  # a trial samples the relative search space once, at its first such choice
            self._space = self._sampler.infer_relative_search_space(self._study, self._trial)
            self._relative = self._sampler.sample_relative(self._study, self._trial, self._space)
        if name not in self._relative:
            return False
        if name not in self._space:
            raise ValueError(f"The parameter {name} was sampled by `sample_relative` method but it is not "
                             "contained in the relative search space.")
        check_distribution_compatibility(self._space[name], distribution)
        return distribution._contains(distribution.to_internal_repr(self._relative[name]))
