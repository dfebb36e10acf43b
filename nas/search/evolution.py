"""Regularized (ageing) evolution as an Optuna sampler, for define-by-run, conditional spaces.

Algorithm
---------
Real, Aggarwal, Huang & Le, "Regularized Evolution for Image Classifier Architecture Search",
AAAI 2019 (arXiv:1802.01548), Algorithm 1 ("aging evolution"):

1. the initial population is ``P`` architectures drawn at random;
2. every new model is made by *tournament selection*: ``S`` members of the population are drawn
   uniformly at random without replacement, the best of them is the parent, and the child is
   the parent with one random mutation;
3. the child joins the population and the *oldest* member leaves it, whatever its accuracy
   (ageing: a good model survives only through its descendants, which regularises against
   models that scored well by the luck of one training run).

The paper's main searches used ``P = 100`` and ``S = 25`` and evaluated about 20,000 models each.

Here, in Optuna's terms
-----------------------
* **Population.** The ``population_size`` most recent trials of the study, by trial number,
  that are ``COMPLETE`` (they have final values); the trial being sampled is never one.
  Ageing is then implicit: a trial drops out once ``population_size`` newer trials have
  completed. Nothing else is kept, so the sampler holds no state between calls: a fresh
  object with the same seed on the same study makes the same child (resume after a kill,
  and the proposer's in-memory mirror, which rebuilds the sampler for every attempt).
* **PRUNED trials** (stopped early by successive halving, or rejected untrained) have no
  final value comparable with the others (their last intermediate value is an earlier
  epoch's, or there is none). They neither join nor age the population and are never
  parents: as in the paper, a child that does not finish is simply not added. ``FAIL``,
  ``RUNNING`` and ``WAITING`` trials are ignored likewise.
* **Random phase.** While fewer than ``population_size`` trials are ``COMPLETE`` every
  parameter is drawn at random (see ``independent_sampler``).
* **Fitness order** (the tournament's "best"), with constraints read as Optuna's own
  constrained samplers read them (:attr:`FrozenTrial.constraints`: the ``constraints:NAME``
  system attributes of :meth:`Trial.set_constraint`, or the old ``constraints`` list of a
  ``constraints_func``; a value <= 0 is satisfied; a trial without constraints is feasible),
  the same rule as NSGA-II's constrained domination and TPE's feasible/infeasible split:

  1. a feasible member beats an infeasible one;
  2. infeasible members compare by their total violation ``sum(max(0, c))``, smaller first;
  3. feasible members compare by the objective: one objective, its value in the study's
     direction; several objectives (``study.directions``, e.g. accuracy up and latency down),
     by non-domination rank among the feasible members of the *whole population* (0: the
     population's Pareto front), so a tournament's winner is never dominated by another
     member it was drawn with, and of two members both undominated within the draw the one
     on a better front of the population wins.

  Members equal in that order are tied; the tie is broken uniformly at random (for two
  objectives: among the winners of the best rank, with no crowding or hypervolume term).
* **Mutation.** One parameter *the parent used* (one of its ``params``, i.e. one that its
  define-by-run objective asked for) whose distribution has more than one value is chosen
  uniformly, and the child gets a different value of it, uniformly among the others
  (categorical: another choice; int: another value of ``range(low, high + 1, step)``;
  float: a new uniform draw). Every other parameter the parent used keeps the parent's value.
  A parameter the parent did not have (the mutation deepened a stage, or made a block a type
  with options of its own) is drawn at random; one the parent had that the child no longer
  asks for is dropped. Since the objective replays the parent's choices up to the mutated one,
  the child always asks for it, and because the child is built by the objective itself
  (a shallower stage simply stops asking for its later blocks) it is always a valid point of
  the space. A parent with no parameter of more than one value gives a random child.
* **Per-trial plan.** Parent and mutated parameter are decided once per trial, in
  :meth:`before_trial`, from a generator seeded by ``(seed, trial number)`` and the study's
  trials at that moment, and stored in the trial's system attribute :data:`PLAN_ATTR`
  (``{"parent": number, "param": name, "sample": [the tournament's numbers]}``, or
  ``{"parent": None}`` for a random draw; a trial that already carries a plan keeps it).
  :meth:`sample_independent` reads it back, looks the parent up by number, and draws mutated
  and new values from generators seeded by ``(seed, trial number, parameter name)``. So the
  same seed and study give the same child, another seed (or trial number) another draw, and
  parallel workers or concurrently finishing trials cannot change a trial's plan half-way
  through its parameters. (The numbers stored are those of the study the sampler ran on: in
  the proposer's copy of the study, positions among its trials, which are the study's finished
  trials in order and, where the proposer draws through trials, its earlier draws too; not the
  real trials' numbers.)
* **No relative sampling.** The intersection search space of a conditional space holds only
  the parameters every architecture has; sampling those jointly would buy nothing, and the
  plan already ties the parameters of a trial together, so everything goes through
  :meth:`sample_independent` (``infer_relative_search_space`` returns ``{}``).

Libraries looked at (none fits, hence this module)
--------------------------------------------------
* **Optuna 5.1** (installed): no ageing evolution. ``NSGAIISampler``/``NSGAIIISampler`` (the
  ``BaseGASampler`` family) are generational (a population per generation, parents chosen by
  rank and crowding, never aged out), breed by crossover over the *intersection* search
  space, so the conditional block parameters of a define-by-run space are drawn at random.
* **optuna-integration 5.0.0** (PyPI wheel inspected): wrappers for BoTorch, pycma, LightGBM
  and training callbacks; no evolutionary sampler.
* **OptunaHub registry** (``optuna/optunahub-registry``): ``samplers/synetune_sampler`` wraps
  Syne Tune's ``REA`` (regularized evolution), but takes a fixed, flat ``search_space`` dict
  (no define-by-run conditional parameters), keeps the population and a trial mapping in the
  sampler object (not stateless: lost on resume, wrong when the sampler is rebuilt per call),
  is single-objective without constraints, and ``optunahub.load_module`` downloads the code
  from GitHub at run time, which this machine and CI cannot reach. Its other evolutionary
  entries (differential evolution, PSO, CMA variants, hill climbing) are not ageing evolution.
* **syne-tune 0.16.0** (PyPI wheel inspected): ``RegularizedEvolution`` and
  ``MultiObjectiveRegularizedEvolution`` searchers over its own flat config spaces, with the
  population in an in-object deque and tournament draws *with* replacement; not an Optuna
  sampler, no conditional parameters, no constraints, stateful.
* **NNI 3.0** (``RegularizedEvolutionTuner``; last release 2023): its own tuner API with the
  population in the tuner object, a heavy dependency, no Optuna sampler.

Only the algorithm (facts of the paper) is used here; the code is this project's own.
"""

from __future__ import annotations

import hashlib
import math
import random as _stdlib_random
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nas.search._chooser import TrialFreeChooser
from nas.search._uniform import UniformSampler

if TYPE_CHECKING:
    from optuna.study import Study

__all__ = ["RegularizedEvolutionSampler", "EvolutionChooser", "PLAN_ATTR", "default_sizes", "DEFAULT_POPULATION_SIZE",
           "DEFAULT_SAMPLE_SIZE"]

#: System attribute of a trial holding its plan: ``{"parent": number, "param": name, "sample": [numbers]}``
#: (parent, mutated parameter, the members drawn for the tournament) or ``{"parent": None}`` (a random draw).
PLAN_ATTR = "evolution:plan"

#: Defaults sized for a search of about 100 trials (``default_sizes(100)``): a fifth of the budget
#: is the random initial population, and ``S / P = 1 / 4`` is the paper's ratio (25 / 100).
DEFAULT_POPULATION_SIZE = 20
DEFAULT_SAMPLE_SIZE = 5

_CONSTRAINTS_KEY = "constraints"  # optuna.study._constrained_optimization._CONSTRAINTS_KEY
_MAX_ENUMERATED = 10_000  # an int range larger than this is mutated by rejection sampling, not enumerated


def default_sizes(n_trials: int) -> tuple[int, int]:
    """``(population_size, sample_size)`` for a search of ``n_trials`` trials.

    ``P = clamp(n_trials // 5, 8, 100)``: the random initial population is at most a fifth of
    the budget (the rest are children), at least 8 members so a tournament has a choice, at most
    the paper's 100. ``S = max(2, P // 4)``: the paper's ratio ``S / P = 25 / 100``, and at least
    two so there is selection at all. 24 trials: (8, 2); 100: (20, 5); 300: (60, 15); from 500:
    (100, 25), the paper's setting.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials: expected at least 1, got {n_trials}")
    population = min(100, max(8, n_trials // 5))
    return population, max(2, population // 4)


def _derived_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (the sampler's seed, a trial number, a parameter name...)."""
    digest = hashlib.sha256("\x1f".join(map(repr, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _constraints(trial: FrozenTrial) -> list[float]:
    """A trial's constraint values, read as Optuna 5 reads them (both storage formats)."""
    values = getattr(trial, "constraints", None)  # Optuna >= 5: a dict of both formats
    if isinstance(values, dict):
        return [float(v) for v in values.values()]
    attrs = trial.system_attrs
    out = [float(v) for v in (attrs.get(_CONSTRAINTS_KEY) or ())]
    out += [float(v) for k, v in attrs.items() if k.startswith(f"{_CONSTRAINTS_KEY}:")]
    return out


#: id(trial) -> (the COMPLETE trial, its violation): a member's violation is read again for every population
#: it belongs to (a population of 100 is read at about every trial), and a COMPLETE trial never changes.
_VIOLATIONS: dict[int, tuple[FrozenTrial, float]] = {}


def _violation(trial: FrozenTrial) -> float:
    known = _VIOLATIONS.get(id(trial))
    if known is not None and known[0] is trial:
        return known[1]
    violation = float(sum(c for c in _constraints(trial) if c > 0))
    if trial.state == TrialState.COMPLETE:
        if len(_VIOLATIONS) >= 4096:
            _VIOLATIONS.clear()
        _VIOLATIONS[id(trial)] = (trial, violation)
    return violation


def _nondomination_ranks(losses: np.ndarray) -> np.ndarray:
    """Pareto front index (0 = non-dominated) of each row, all objectives to be minimised."""
    n = len(losses)
    if n == 0:
        return np.zeros(0, dtype=int)
    no_worse = (losses[None, :, :] <= losses[:, None, :]).all(axis=2)  # [i, j]: j is nowhere worse than i
    better = (losses[None, :, :] < losses[:, None, :]).any(axis=2)  # [i, j]: j is better than i somewhere
    dominated_by: np.ndarray = np.logical_and(no_worse, better)  # [i, j]: j dominates i
    ranks = np.full(n, -1, dtype=int)
    remaining = dominated_by.sum(axis=1)
    rank = 0
    front = np.flatnonzero(remaining == 0)
    while front.size:
        ranks[front] = rank
        remaining = remaining - dominated_by[:, front].sum(axis=1)
        remaining[ranks >= 0] = -1
        front = np.flatnonzero(remaining == 0)
        rank += 1
    return ranks


def _fitness_keys(population: Sequence[FrozenTrial], directions: Sequence[StudyDirection]) -> list[tuple[int, float]]:
    """A sort key per member: smaller is better (see the module docstring's fitness order)."""
    signs = np.array([-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in directions])
    violations = [_violation(t) for t in population]
    feasible = [i for i, v in enumerate(violations) if v <= 0]
    keys: list[tuple[int, float]] = [(1, v) for v in violations]
    if not feasible:
        return keys
    losses = np.array([list(population[i].values) for i in feasible], dtype=float) * signs
    if len(directions) == 1:
        scores = losses[:, 0]
    else:
        scores = _nondomination_ranks(losses).astype(float)
    for i, score in zip(feasible, scores):
        keys[i] = (0, float(score))
    return keys


#: The fitness keys of the last population seen, per storage. A proposal draws about ten children
#: of one population, and the values and constraints of a COMPLETE trial never change, so the
#: members' numbers identify the keys. A cache, not state: the same study gives the same keys.
_KEYS: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], list[tuple[int, float]]]] = weakref.WeakKeyDictionary()


def _population_keys(study: Study, population: Sequence[FrozenTrial]) -> list[tuple[int, float]]:
    """:func:`_fitness_keys` of ``population`` (all COMPLETE trials of ``study``), computed once per population."""
    ident = (study._study_id, tuple(study.directions), tuple(t.number for t in population))
    cached = _KEYS.get(study._storage)
    if cached is not None and cached[0] == ident:
        return cached[1]
    keys = _fitness_keys(population, study.directions)
    _KEYS[study._storage] = (ident, keys)
    return keys


def _index(distribution: CategoricalDistribution, value: Any) -> int | None:
    """The choice index of ``value`` by Optuna's own rule, or None when it is not a choice."""
    try:
        return int(distribution.to_internal_repr(value))
    except (ValueError, TypeError):
        return None


def _contains(distribution: BaseDistribution, value: Any) -> bool:
    try:
        internal = distribution.to_internal_repr(value)
    except (ValueError, TypeError):
        return False
    return bool(distribution._contains(internal))


def _check_size(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {value!r}")
    if value < low:
        raise ValueError(f"{name}: expected at least {low}, got {value}")
    return int(value)


class RegularizedEvolutionSampler(BaseSampler):
    """Regularized (ageing) evolution, Real et al. 2019, for define-by-run spaces (module docstring).

    Args:
        population_size: ``P``, how many of the most recent ``COMPLETE`` trials form the
            population (and how many random trials start the search); at least 1.
        sample_size: ``S``, the tournament size, ``1 <= S <= P`` (``S = 1``: a random parent,
            no selection; ``S = P``: always the population's best).
        seed: seeds every draw; with a seed the sampler is deterministic given the study
            (same seed and study, same child) and keeps no state between calls. ``None``: a
            random seed, chosen once per object (and again by :meth:`reseed_rng`).
        independent_sampler: draws the random initial population and any parameter the parent
            did not have. ``None`` (default): uniform draws (a ``UniformSampler``), seeded
            per ``(seed, trial number, parameter)`` so they too are reproducible from the study
            alone. A sampler passed here is used as it is, with whatever state it keeps.
    """

    def __init__(self, *, population_size: int = DEFAULT_POPULATION_SIZE, sample_size: int = DEFAULT_SAMPLE_SIZE,
                 seed: int | None = None, independent_sampler: BaseSampler | None = None) -> None:
        self._population_size = _check_size("population_size", population_size, 1)
        self._sample_size = _check_size("sample_size", sample_size, 1)
        if self._sample_size > self._population_size:
            raise ValueError(f"sample_size: expected at most population_size ({self._population_size}), "
                             f"got {self._sample_size}")
        if seed is not None:
            _check_size("seed", seed, 0)
        if independent_sampler is not None and not isinstance(independent_sampler, BaseSampler):
            raise TypeError(f"independent_sampler: expected an optuna BaseSampler, got {independent_sampler!r}")
        self._seed = int(seed) if seed is not None else _stdlib_random.SystemRandom().getrandbits(63)
        self._independent = independent_sampler
        self._last_parent: tuple[tuple[Any, int, int], FrozenTrial] | None = None

    @property
    def population_size(self) -> int:
        return self._population_size

    @property
    def sample_size(self) -> int:
        return self._sample_size

    @property
    def seed(self) -> int:
        """The seed in use (the one given, or the random one chosen for ``seed=None``)."""
        return self._seed

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(population_size={self._population_size}, sample_size={self._sample_size}, "
                f"seed={self._seed})")

    def reseed_rng(self) -> None:
        """A new random seed (Optuna calls this in each thread of ``optimize(n_jobs > 1)``)."""
        self._seed = _stdlib_random.SystemRandom().getrandbits(63)
        if self._independent is not None:
            self._independent.reseed_rng()

    # -- Optuna's sampler interface ------------------------------------------------------------

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if self._independent is not None:
            self._independent.before_trial(study, trial)
        if trial.system_attrs.get(PLAN_ATTR) is None:
            study._storage.set_trial_system_attr(trial._trial_id, PLAN_ATTR, self.plan(study, trial))

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        if self._independent is not None:
            self._independent.after_trial(study, trial, state, values)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        plan = trial.system_attrs.get(PLAN_ATTR)
        if plan is None:  # before_trial did not run (the sampler driven by hand): decide now, once
            plan = self.plan(study, trial)
            study._storage.set_trial_system_attr(trial._trial_id, PLAN_ATTR, plan)
        parent = self._parent(study, plan)
        if parent is None or param_name not in parent.params:
            return self._random(study, trial, param_name, param_distribution)
        old = parent.params[param_name]
        if param_name == plan["param"]:
            return self._mutate(trial, param_name, param_distribution, old)
        if _contains(param_distribution, old):
            return old
        return self._random(study, trial, param_name, param_distribution)  # its options changed: no value to keep

    def chooser(self, study: Study, number: int) -> EvolutionChooser | None:
        """The choices a new trial numbered ``number`` of ``study`` would get, drawn without the trial.

        The proposer screens several candidates a trial, and an Optuna trial costs a stored row and
        about 25 microseconds a parameter: this chooser makes the plan as :meth:`before_trial` would
        and draws every parameter by :meth:`sample_independent`, as the trial would ask for it, so the
        choices are the same. ``None`` with an ``independent_sampler``, whose own hooks need a real trial.
        """
        if self._independent is not None:
            return None
        trial = FrozenTrial(number=number, state=TrialState.RUNNING, value=None, datetime_start=None,
                            datetime_complete=None, params={}, distributions={}, user_attrs={}, system_attrs={},
                            intermediate_values={}, trial_id=-1)
        trial.system_attrs[PLAN_ATTR] = self.plan(study, trial)
        return EvolutionChooser(self, study, trial)

    # -- the algorithm ---------------------------------------------------------------------------

    def population(self, study: Study, trial: FrozenTrial | None = None) -> list[FrozenTrial]:
        """The current population: the ``population_size`` most recent COMPLETE trials (not ``trial``)."""
        n_objectives = len(study.directions)

        skip = -1 if trial is None else trial.number
        complete = TrialState.COMPLETE
        trials = study.get_trials(deepcopy=False)
        if trials and trials[-1].number == len(trials) - 1:  # the usual layout (number = index): walk back from
            newest: list[FrozenTrial] = []  # the newest, so a draw costs the population, not the whole study
            for t in reversed(trials):
                if t.state == complete and t.number != skip and t.values is not None and len(t.values) == n_objectives:
                    newest.append(t)
                    if len(newest) == self._population_size:
                        break
            return newest[::-1]
        done = sorted((t for t in trials if t.state == complete and t.number != skip and t.values is not None
                       and len(t.values) == n_objectives), key=lambda t: t.number)
        return done[-self._population_size:]

    def plan(self, study: Study, trial: FrozenTrial) -> dict[str, Any]:
        """The trial's parent and mutated parameter, from ``(seed, trial.number)`` and the study's trials.

        ``{"parent": None}`` while the population is not full (or the winner has nothing to mutate).
        """
        population = self.population(study, trial)
        if len(population) < self._population_size:
            return {"parent": None}
        rng = np.random.default_rng(_derived_seed(self._seed, trial.number, "plan"))
        drawn = rng.choice(len(population), size=self._sample_size, replace=False)
        keys = _population_keys(study, population)
        best = min(keys[i] for i in drawn)
        winners = sorted(int(i) for i in drawn if keys[i] == best)
        parent = population[winners[int(rng.integers(len(winners)))]]
        mutable = sorted(name for name, dist in parent.distributions.items()
                         if name in parent.params and not dist.single())
        if not mutable:
            return {"parent": None}
        return {"parent": parent.number, "param": mutable[int(rng.integers(len(mutable)))],
                "sample": sorted(population[int(i)].number for i in drawn)}

    def _parent(self, study: Study, plan: dict[str, Any]) -> FrozenTrial | None:
        """The plan's parent; the last one found is remembered (a trial asks for it once per parameter, and
        a COMPLETE trial of a storage never changes)."""
        number = plan.get("parent")
        if number is None:
            return None
        key = (study._storage, study._study_id, number)
        known = self._last_parent
        if known is not None and known[0] == key:
            return known[1]
        trials = study.get_trials(deepcopy=False)
        if 0 <= number < len(trials) and trials[number].number == number:  # the usual layout: number = index
            found: FrozenTrial | None = trials[number]
        else:
            found = next((t for t in trials if t.number == number), None)
        if found is not None and found.state == TrialState.COMPLETE:
            self._last_parent = (key, found)
        return found

    def _random(self, study: Study, trial: FrozenTrial, name: str, distribution: BaseDistribution) -> Any:
        if self._independent is not None:
            return self._independent.sample_independent(study, trial, name, distribution)
        sampler = UniformSampler(seed=_derived_seed(self._seed, trial.number, "random", name))
        return sampler.sample_independent(study, trial, name, distribution)

    def _mutate(self, trial: FrozenTrial, name: str, distribution: BaseDistribution, old: Any) -> Any:
        """A value of ``distribution`` other than ``old``, uniformly (``old`` itself if it is the only one)."""
        rng = np.random.default_rng(_derived_seed(self._seed, trial.number, "mutate", name))
        if isinstance(distribution, CategoricalDistribution):
            skip = _index(distribution, old)
            others = [i for i in range(len(distribution.choices)) if i != skip]
            return distribution.choices[others[int(rng.integers(len(others)))]] if others else old
        if isinstance(distribution, IntDistribution):
            count = (distribution.high - distribution.low) // distribution.step + 1
            if count <= _MAX_ENUMERATED:
                values = [v for v in range(distribution.low, distribution.high + 1, distribution.step) if v != old]
                return values[int(rng.integers(len(values)))] if values else old
            while True:
                value = distribution.low + distribution.step * int(rng.integers(count))
                if value != old:
                    return value
        if isinstance(distribution, FloatDistribution):
            for _ in range(100):
                if distribution.log:
                    x = math.exp(rng.uniform(math.log(distribution.low), math.log(distribution.high)))
                else:
                    x = rng.uniform(distribution.low, distribution.high)
                if distribution.step is not None:
                    steps = round((x - distribution.low) / distribution.step)
                    x = distribution.low + steps * distribution.step
                x = min(max(float(x), distribution.low), distribution.high)
                if x != old:
                    return x
            return old
        raise TypeError(f"{name}: unsupported distribution {distribution!r}")



class EvolutionChooser(TrialFreeChooser):
    """A :class:`~nas.space.Chooser` that draws as an Optuna trial driven by the sampler would (see
    :meth:`RegularizedEvolutionSampler.chooser`): a distribution of one value is taken without asking,
    every other one is asked of :meth:`~RegularizedEvolutionSampler.sample_independent`, in order.
    :attr:`plan` is the trial's plan, :attr:`params` and :attr:`distributions` what the trial would hold."""

    def __init__(self, sampler: RegularizedEvolutionSampler, study: Study, trial: FrozenTrial) -> None:
        super().__init__(trial.params, trial.distributions)  # the stand-in trial holds what was drawn so far
        self._sampler, self._study, self._trial = sampler, study, trial

    @property
    def plan(self) -> dict[str, Any]:
        return dict(self._trial.system_attrs[PLAN_ATTR])

    def _ask(self, name: str, distribution: BaseDistribution) -> Any:
        return self._sampler.sample_independent(self._study, self._trial, name, distribution)
