"""The regularized-evolution sampler on real in-memory Optuna studies: conditional toy spaces and the project's."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState
from scipy import stats

from nas.arch import arch_cost
from nas.search._chooser import TrialChooser
from nas.search.evolution import (DEFAULT_POPULATION_SIZE, DEFAULT_SAMPLE_SIZE, PLAN_ATTR,
                                  RegularizedEvolutionSampler, default_sizes)
from nas.search._proposer import Proposer, arch_from_params
from nas.space import load_space, sample_arch
from tests.conftest import DEFAULT_SPACE, TINY_SPACE

optuna.logging.set_verbosity(optuna.logging.ERROR)

OPS = ["a", "b", "c", "d"]  # "d" blocks have an extra option of their own
WIDTHS = [1, 2, 3]
EXTRAS = [0, 1, 2]
MAX_DEPTH = 4


def _scores(seed: int, max_depth: int = MAX_DEPTH) -> dict[tuple[int, str, Any], float]:
    rng = random.Random(seed)
    table: dict[tuple[int, str, Any], float] = {}
    for j in range(max_depth):
        for op in OPS:
            table[(j, "op", op)] = rng.gauss(0, 1)
        for w in WIDTHS:
            table[(j, "w", w)] = rng.gauss(0, 1)
        for x in EXTRAS:
            table[(j, "x", x)] = rng.gauss(0, 1)
    return table


def toy_objective(seed: int = 0, max_depth: int = MAX_DEPTH) -> Callable[[optuna.Trial], float]:
    """A define-by-run space like the project's: a depth gates per-block choices, one op gates an extra one.

    The value is a sum of per-choice scores (what each used choice contributes).
    """
    table = _scores(seed, max_depth)

    def objective(trial: optuna.Trial) -> float:
        depth = trial.suggest_int("depth", 1, max_depth)
        total = 0.0
        for j in range(depth):
            op = trial.suggest_categorical(f"b{j}.op", OPS)
            total += table[(j, "op", op)] + table[(j, "w", trial.suggest_categorical(f"b{j}.w", WIDTHS))]
            if op == "d":
                total += table[(j, "x", trial.suggest_categorical(f"b{j}.x", EXTRAS))]
        return total

    return objective


def toy_names(params: dict[str, Any]) -> set[str]:
    """The parameters the toy objective asks for, given the values of its gates."""
    names = {"depth"}
    for j in range(params["depth"]):
        names |= {f"b{j}.op", f"b{j}.w"} | ({f"b{j}.x"} if params[f"b{j}.op"] == "d" else set())
    return names


def toy_distributions(params: dict[str, Any]) -> dict[str, optuna.distributions.BaseDistribution]:
    dists: dict[str, optuna.distributions.BaseDistribution] = {"depth": IntDistribution(1, MAX_DEPTH)}
    for name in params:
        if name != "depth":
            key = name.split(".")[1]
            dists[name] = CategoricalDistribution({"op": OPS, "w": WIDTHS, "x": EXTRAS}[key])
    return dists


def toy_params(rng: random.Random) -> dict[str, Any]:
    params: dict[str, Any] = {"depth": rng.randint(1, MAX_DEPTH)}
    for j in range(params["depth"]):
        params[f"b{j}.op"], params[f"b{j}.w"] = rng.choice(OPS), rng.choice(WIDTHS)
        if params[f"b{j}.op"] == "d":
            params[f"b{j}.x"] = rng.choice(EXTRAS)
    return params


def made(params: dict[str, Any], values: Sequence[float], constraints: dict[str, float] | None = None,
         state: TrialState = TrialState.COMPLETE, old_format: bool = False) -> FrozenTrial:
    """A finished toy trial (constraints in the ``constraints:NAME`` format, or the old list)."""
    attrs: dict[str, Any] = {}
    if constraints is not None:
        attrs = {"constraints": list(constraints.values())} if old_format else \
            {f"constraints:{k}": v for k, v in constraints.items()}
    return optuna.trial.create_trial(state=state, values=list(values) if state == TrialState.COMPLETE else None,
                                     params=params, distributions=toy_distributions(params), system_attrs=attrs)


def plan_of(trial: FrozenTrial) -> dict[str, Any]:
    return trial.system_attrs[PLAN_ATTR]


def one_change(parent: dict[str, Any], child: dict[str, Any], param: str) -> tuple[set[str], set[str]]:
    """Checks the child differs from the parent in exactly ``param`` among the choices both used;
    returns the names only the child has, and only the parent has."""
    assert param in parent and param in child, (param, parent, child)
    changed = {k for k in parent.keys() & child.keys() if parent[k] != child[k]}
    assert changed == {param}, (changed, param, parent, child)
    return child.keys() - parent.keys(), parent.keys() - child.keys()


def best_of(members: Sequence[FrozenTrial], maximize: bool = True) -> set[int]:
    """Numbers of the best members by value, feasible ones first, infeasible by violation."""
    def key(t: FrozenTrial) -> tuple[int, float]:
        violation = sum(max(0.0, c) for c in t.constraints.values())
        return (1, violation) if violation > 0 else (0, -t.values[0] if maximize else t.values[0])
    best = min(key(t) for t in members)
    return {t.number for t in members if key(t) == best}


def study_with(trials: Sequence[FrozenTrial], sampler: optuna.samplers.BaseSampler,
               directions: Sequence[str] = ("maximize",)) -> optuna.Study:
    study = optuna.create_study(directions=list(directions), sampler=sampler)
    study.add_trials(list(trials))
    return study


def next_child(trials: Sequence[FrozenTrial], sampler: optuna.samplers.BaseSampler,
               directions: Sequence[str] = ("maximize",)) -> FrozenTrial:
    """The trial ``sampler`` makes next on a fresh study holding ``trials`` (the proposer's mirror, in small)."""
    study = study_with(trials, sampler, directions)
    trial = study.ask()
    toy_objective()(trial)
    return study.tell(trial, state=TrialState.FAIL)  # the params are what is compared, not the value


# -- the constructor ------------------------------------------------------------------------------


def test_constructor_validates_sizes_and_has_documented_defaults() -> None:
    sampler = RegularizedEvolutionSampler(seed=3)
    assert (sampler.population_size, sampler.sample_size, sampler.seed) == \
        (DEFAULT_POPULATION_SIZE, DEFAULT_SAMPLE_SIZE, 3) == (*default_sizes(100), 3)
    assert RegularizedEvolutionSampler(population_size=1, sample_size=1).sample_size == 1
    with pytest.raises(ValueError, match="sample_size: expected at most population_size"):
        RegularizedEvolutionSampler(population_size=4, sample_size=5)
    with pytest.raises(ValueError, match="sample_size: expected at least 1"):
        RegularizedEvolutionSampler(population_size=4, sample_size=0)
    with pytest.raises(ValueError, match="population_size: expected at least 1"):
        RegularizedEvolutionSampler(population_size=0, sample_size=0)
    with pytest.raises(TypeError, match="population_size: expected an int"):
        RegularizedEvolutionSampler(population_size=10.0, sample_size=2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="independent_sampler"):
        RegularizedEvolutionSampler(independent_sampler="random")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RegularizedEvolutionSampler(20, 5)  # type: ignore[misc]  # keyword-only
    assert RegularizedEvolutionSampler().seed != RegularizedEvolutionSampler().seed  # seed=None: a random one


def test_default_sizes_scale_with_the_trial_count_up_to_the_papers() -> None:
    assert default_sizes(24) == (8, 2)
    assert default_sizes(100) == (20, 5)
    assert default_sizes(300) == (60, 15)
    assert default_sizes(500) == default_sizes(2000) == (100, 25)
    for n in (1, 7, 24, 99, 1000):
        p, s = default_sizes(n)
        RegularizedEvolutionSampler(population_size=p, sample_size=s)  # always valid
    with pytest.raises(ValueError):
        default_sizes(0)


# -- (a) children: one used choice changed, parents from the population's tournament -------------


def test_children_change_one_used_choice_of_a_tournament_winner_of_the_population() -> None:
    P, S, N = 10, 3, 120
    study = optuna.create_study(direction="maximize",
                                sampler=RegularizedEvolutionSampler(population_size=P, sample_size=S, seed=5))
    study.optimize(toy_objective(), n_trials=N)
    trials = study.trials
    mutated_kinds: set[str] = set()
    for child in trials:
        plan = plan_of(child)
        population = [t for t in trials if t.number < child.number][-P:]  # sequential: all earlier ones finished
        if child.number < P:
            assert plan == {"parent": None}  # the random initial population
            continue
        numbers = {t.number for t in population}
        assert len(plan["sample"]) == S == len(set(plan["sample"])) and set(plan["sample"]) <= numbers
        drawn = [t for t in population if t.number in plan["sample"]]
        assert plan["parent"] in best_of(drawn)  # the best of the members drawn
        parent = trials[plan["parent"]]
        added, dropped = one_change(parent.params, child.params, plan["param"])
        assert set(child.params) == toy_names(child.params)  # a valid point: exactly what the objective asked for
        kind = plan["param"].split(".")[-1]
        mutated_kinds.add(kind)
        if kind in ("w", "x"):  # not a gate: same parameters
            assert not added and not dropped
        elif kind == "depth":  # deeper: new blocks only; shallower: the dropped blocks only
            old, new = parent.params["depth"], child.params["depth"]
            extra = added if new > old else dropped
            assert {int(n.split(".")[0][1:]) for n in extra} == set(range(min(old, new), max(old, new)))
            assert not (added and dropped)
        else:  # op: only the block's own extra option comes or goes
            j = plan["param"].split(".")[0]
            assert added | dropped <= {f"{j}.x"}
    assert mutated_kinds == {"depth", "op", "w", "x"}  # every kind of mutation happened, the gates included


def test_real_space_children_are_valid_and_differ_in_one_choice() -> None:
    """``mobilenet_cse_cifar.yaml`` through ``sample_arch`` and ``TrialChooser``, as the proposer samples it."""
    space = load_space(DEFAULT_SPACE)
    P, S = 8, 3

    def objective(trial: optuna.Trial) -> float:
        return -arch_cost(sample_arch(space, TrialChooser(trial))).macs / 1e6

    study = optuna.create_study(direction="maximize",
                                sampler=RegularizedEvolutionSampler(population_size=P, sample_size=S, seed=0))
    study.optimize(objective, n_trials=40)
    depths = 0
    trials = study.trials
    for child in trials[P:]:
        plan = plan_of(child)
        parent = trials[plan["parent"]]
        added, dropped = one_change(parent.params, child.params, plan["param"])
        arch, options = arch_from_params(space, child.params)  # rebuilds: every parameter it needs is there
        assert set(options) == set(child.params)  # and none it does not use
        if plan["param"].endswith(".depth"):
            depths += 1
            stage = plan["param"].split(".")[0]
            assert all(n.startswith(f"{stage}.b") for n in added | dropped)
            assert len(arch.blocks) == len(arch_from_params(space, parent.params)[0].blocks) \
                + child.params[plan["param"]] - parent.params[plan["param"]]
        else:
            assert not added and not dropped  # the CSE options have one value here: types add nothing
    assert depths >= 1


def test_the_whole_population_as_tournament_always_picks_its_best() -> None:
    for direction in ("maximize", "minimize"):
        P = 6
        study = optuna.create_study(direction=direction,
                                    sampler=RegularizedEvolutionSampler(population_size=P, sample_size=P, seed=1))
        study.optimize(toy_objective(2), n_trials=40)
        trials = study.trials
        for child in trials[P:]:
            population = trials[child.number - P:child.number]
            assert plan_of(child)["parent"] in best_of(population, maximize=direction == "maximize")


# -- (b) ageing -----------------------------------------------------------------------------------


def test_a_trial_older_than_the_population_is_never_a_parent() -> None:
    P = 5
    base = toy_objective()

    def objective(trial: optuna.Trial) -> float:
        value = base(trial)
        return 1000.0 if trial.number == 0 else value  # the first trial stays the study's best for ever

    study = optuna.create_study(direction="maximize",
                                sampler=RegularizedEvolutionSampler(population_size=P, sample_size=P, seed=0))
    study.optimize(objective, n_trials=40)
    parents = [plan_of(t)["parent"] for t in study.trials]
    assert parents[P] == 0  # while it is in the population it wins every tournament (S = P) ...
    assert 0 not in parents[P + 1:]  # ... and once P newer trials completed it is gone, though still the best
    assert study.best_trial.number == 0
    for number, parent in enumerate(parents[P:], P):
        assert number - P <= parent < number


def test_pruned_trials_neither_join_nor_age_the_population() -> None:
    P = 4
    base = toy_objective()

    def objective(trial: optuna.Trial) -> float:
        value = base(trial)
        if trial.number % 3 == 1:  # stopped early, with a tempting intermediate value
            trial.report(1000.0, 1)
            raise optuna.TrialPruned()
        return value

    study = optuna.create_study(direction="maximize",
                                sampler=RegularizedEvolutionSampler(population_size=P, sample_size=P, seed=0))
    study.optimize(objective, n_trials=30)
    trials = study.trials
    for child in trials:
        complete = [t for t in trials if t.number < child.number and t.state == TrialState.COMPLETE]
        plan = plan_of(child)
        if len(complete) < P:
            assert plan["parent"] is None
            continue
        assert plan["sample"] == [t.number for t in complete[-P:]]  # the P most recent COMPLETE ones
        assert trials[plan["parent"]].state == TrialState.COMPLETE


def test_population_is_the_newest_complete_trials_whatever_the_storage_shows() -> None:
    """The newest-first walk (numbers = list indices) and the general path (a storage that hides some
    trials, as the proposer's copy does for TPE) pick the same members: the P newest COMPLETE trials."""
    from nas.search._proposer import _CopyStorage

    rng = random.Random(1)
    P = 5
    states = [TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED, TrialState.COMPLETE, TrialState.COMPLETE]
    trials = [made(toy_params(rng), [rng.random()], state=states[i % len(states)]) for i in range(40)]
    sampler = RegularizedEvolutionSampler(population_size=P, sample_size=2, seed=0)
    plain = study_with(trials, sampler)
    storage = _CopyStorage()
    hidden = optuna.create_study(direction="maximize", storage=storage, sampler=sampler)
    hidden.add_trials(trials)
    storage.hidden.update({1, 2, 38, 39})  # failed or pruned ones, and the two newest
    expected = [n for n, t in enumerate(trials) if t.state == TrialState.COMPLETE]
    assert [t.number for t in sampler.population(plain)] == expected[-P:]
    shown = [n for n in expected if n not in storage.hidden]
    assert [t.number for t in sampler.population(hidden)] == shown[-P:]
    newest = plain.trials[expected[-1]]
    assert [t.number for t in sampler.population(plain, newest)] == expected[-P - 1:-1]  # not the trial itself


def test_fitness_keys_are_each_populations_own_on_a_shared_storage() -> None:
    """The per-storage cache of fitness keys: two studies with the same trial numbers on one storage, and a
    population that moves on, each get the keys of their own members."""
    from nas.search.evolution import _fitness_keys, _population_keys

    rng = random.Random(2)
    storage = optuna.storages.InMemoryStorage()
    sampler = RegularizedEvolutionSampler(population_size=4, sample_size=2, seed=0)
    studies = [optuna.create_study(direction="maximize", storage=storage, sampler=sampler) for _ in range(2)]
    for study in studies:
        study.add_trials([made(toy_params(rng), [rng.random()], {"latency": rng.uniform(-1, 1)}) for _ in range(6)])
    for _ in range(2):
        for study in studies + studies[::-1]:
            members = sampler.population(study)
            assert _population_keys(study, members) == _fitness_keys(members, study.directions)
        studies[0].add_trials([made(toy_params(rng), [rng.random()], {"latency": -1.0})])  # the population moves on
    a, b = (sampler.population(s) for s in studies)
    assert [t.number for t in a] != [t.number for t in b]


# -- (c) feasibility --------------------------------------------------------------------------------


def test_feasible_members_beat_infeasible_ones_which_compare_by_violation() -> None:
    rng = random.Random(0)
    P = 6

    def population(values: list[float], constraints: list[float], old_format: bool = False) -> list[FrozenTrial]:
        return [made(toy_params(rng), [v], {"latency": c}, old_format=old_format) for v, c in zip(values, constraints)]

    sampler = RegularizedEvolutionSampler(population_size=P, sample_size=P, seed=0)
    # The best values are over the budget: the best *feasible* member is the parent.
    mixed = population([9, 8, 7, 1, 2, 3], [0.5, 0.1, 2.0, -1.0, 0.0, -0.2])
    for old_format in (False, True):
        trials = mixed if not old_format else population([9, 8, 7, 1, 2, 3], [0.5, 0.1, 2.0, -1.0, 0.0, -0.2], True)
        assert plan_of(next_child(trials, sampler))["parent"] == 5  # value 3, constraint -0.2
    # None within the budget: the least violation, whatever the values.
    infeasible = population([9, 1, 7, 5, 2, 3], [0.5, 0.1, 2.0, 0.3, 0.2, 4.0])
    assert plan_of(next_child(infeasible, sampler))["parent"] == 1
    # Several constraints: the violation is the sum of the positive parts; any positive one is infeasible.
    two = [made(toy_params(rng), [v], {"latency": a, "params": b})
           for v, a, b in [(9, 1.0, -5.0), (8, 0.2, 0.2), (1, 0.5, -9.0), (7, -1.0, 0.1), (2, 0.3, 0.0), (0, -1, 0.05)]]
    assert plan_of(next_child(two, sampler))["parent"] == 5  # 0.05 < 0.1 < 0.3 < 0.4 < 0.5 < 1.0
    # Smaller tournaments: an infeasible parent only when the draw held no feasible member.
    numbered = study_with(mixed, sampler).trials
    infeasible_parents = 0
    for seed in range(60):
        plan = plan_of(next_child(mixed, RegularizedEvolutionSampler(population_size=P, sample_size=2, seed=seed)))
        drawn = [numbered[n] for n in plan["sample"]]
        assert plan["parent"] in best_of(drawn)
        infeasible_parents += max(numbered[plan["parent"]].constraints.values()) > 0
    assert 0 < infeasible_parents < 20  # a draw of two infeasible members: 3 of the 15 pairs


def test_constraints_set_by_the_objective_steer_the_search_within_the_budget() -> None:
    """The project's way: ``trial.set_constraint`` in the objective (latency minus budget)."""
    base = toy_objective(4)

    def objective(trial: optuna.Trial) -> float:
        value = base(trial)
        trial.set_constraint("latency", trial.params["depth"] - 2.0)  # deeper than 2 blocks is over the budget
        return value + trial.params["depth"]  # and deeper scores better: the constraint must win

    study = optuna.create_study(direction="maximize",
                                sampler=RegularizedEvolutionSampler(population_size=8, sample_size=4, seed=0))
    study.optimize(objective, n_trials=80)
    trials = study.trials
    assert sum(t.params["depth"] <= 2 for t in trials[-30:]) >= 20  # children of feasible parents, bar a mutation
    for t in trials[8:]:
        drawn = [trials[n] for n in plan_of(t)["sample"]]
        if any(d.params["depth"] <= 2 for d in drawn):
            assert trials[plan_of(t)["parent"]].params["depth"] <= 2


# -- (d) two objectives ----------------------------------------------------------------------------


def test_two_objectives_pick_a_nondominated_member_with_a_random_tie_break() -> None:
    rng = random.Random(1)
    # (accuracy up, latency down): 0, 1 and 2 are the front; 3-5 are dominated; 6 is on the front's
    # values but over the budget.
    points = [(0.9, 5.0), (0.8, 3.0), (0.7, 1.0), (0.85, 6.0), (0.6, 3.5), (0.5, 9.0), (0.95, 0.5)]
    trials = [made(toy_params(rng), p, {"latency": 1.0 if i == 6 else -1.0}) for i, p in enumerate(points)]
    directions = ("maximize", "minimize")
    parents = set()
    for seed in range(40):
        sampler = RegularizedEvolutionSampler(population_size=7, sample_size=7, seed=seed)
        parents.add(plan_of(next_child(trials, sampler, directions))["parent"])
    assert parents == {0, 1, 2}  # only the feasible front, each of its members some time
    # Small tournaments: never a member another one drawn with it dominates; of two undominated in
    # the draw, the one on the better front of the population (3 is on the second, 4 and 5 lower).
    second_front = {3, 4}
    for seed in range(80):
        sampler = RegularizedEvolutionSampler(population_size=7, sample_size=2, seed=seed)
        plan = plan_of(next_child(trials, sampler, directions))
        parent, drawn = plan["parent"], plan["sample"]
        assert parent in drawn
        feasible = [n for n in drawn if n != 6]
        if feasible:
            assert parent != 6
            assert not any(points[n][0] >= points[parent][0] and points[n][1] <= points[parent][1]
                           and points[n] != points[parent] for n in feasible)
            if any(n in {0, 1, 2} for n in feasible):
                assert parent in {0, 1, 2}
            elif 3 in feasible:
                assert parent in second_front


# -- (e) reproducibility, (f) statelessness -----------------------------------------------------------


def test_same_seed_same_search_other_seed_other_children() -> None:
    def run(seed: int) -> list[dict[str, Any]]:
        study = optuna.create_study(direction="maximize",
                                    sampler=RegularizedEvolutionSampler(population_size=6, sample_size=2, seed=seed))
        study.optimize(toy_objective(), n_trials=30)
        return [t.params for t in study.trials]

    assert run(11) == run(11)
    assert run(11) != run(12)
    # Attempts on one study with other seeds (the proposer re-seeds per attempt): other children.
    rng = random.Random(3)
    trials = [made(toy_params(rng), [rng.random()]) for _ in range(10)]
    children = [next_child(trials, RegularizedEvolutionSampler(population_size=10, sample_size=3, seed=s))
                for s in range(12)]
    assert all(plan_of(c)["parent"] is not None for c in children)
    distinct = {tuple(sorted(c.params.items())) for c in children}
    assert len(distinct) >= 10
    again = next_child(trials, RegularizedEvolutionSampler(population_size=10, sample_size=3, seed=0))
    assert again.params == children[0].params and plan_of(again) == plan_of(children[0])


@pytest.mark.parametrize("n_done", [3, 25])  # in the random phase, and evolving
def test_a_fresh_sampler_on_the_same_study_makes_the_same_next_child(n_done: int) -> None:
    """No state outside the study: what a resume after ``kill -9`` (a new process) relies on."""
    objective = toy_objective()

    def sampler() -> RegularizedEvolutionSampler:
        return RegularizedEvolutionSampler(population_size=8, sample_size=3, seed=42)

    kept = optuna.create_study(direction="maximize", sampler=sampler())
    kept.optimize(objective, n_trials=n_done + 1)  # the same object all along
    resumed = optuna.create_study(direction="maximize", sampler=sampler())
    resumed.optimize(objective, n_trials=n_done)
    resumed.sampler = sampler()  # a new process
    resumed.optimize(objective, n_trials=1)
    assert resumed.trials[-1].params == kept.trials[-1].params
    assert plan_of(resumed.trials[-1]) == plan_of(kept.trials[-1])
    # A copy of the finished trials (the proposer's mirror) with a fresh sampler: the same child too.
    copied = next_child([optuna.trial.create_trial(state=t.state, values=t.values, params=t.params,
                                                   distributions=t.distributions) for t in kept.trials[:-1]],
                        sampler())
    assert copied.params == kept.trials[-1].params


# -- the proposer's mirror ----------------------------------------------------------------------------


class _MacsEstimator:
    """Latency from MACs: enough for the proposer's screening, no table needed."""

    def latency_ms(self, arch: Any) -> float:
        return arch_cost(arch).macs / 1e6


def test_the_proposer_turns_a_mutated_winner_into_the_next_trial() -> None:
    space, est = load_space(TINY_SPACE), _MacsEstimator()
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: -est.latency_ms(sample_arch(space, TrialChooser(t))) + random.Random(t.number).random(),
                   n_trials=12)
    study.tell(study.ask(), state=TrialState.FAIL)  # a failed trial in between: not copied to the mirror
    study.optimize(lambda t: -est.latency_ms(sample_arch(space, TrialChooser(t))), n_trials=2)
    trials = study.get_trials()
    P = 6
    def make_sampler(seed: int) -> RegularizedEvolutionSampler:
        return RegularizedEvolutionSampler(population_size=P, sample_size=3, seed=seed)

    proposer = Proposer(space, est, make_sampler, ["maximize"], limit_ms=1e9, budget_ms=1e9, keep_rejected=0)
    children = []
    for seed in range(6):
        proposal = proposer.propose(trials, seed)
        plan = proposal.sampler_attrs[PLAN_ATTR]  # stored with the trial by the runner (mirror numbering)
        copied = [t for t in trials if t.state == TrialState.COMPLETE]
        assert len(plan["sample"]) == 3 and min(plan["sample"]) >= len(copied) - P  # the P most recent
        parent = copied[plan["parent"]]
        one_change(parent.params, proposal.params, plan["param"])
        assert set(arch_from_params(space, proposal.params)[1]) == set(proposal.params)
        children.append(proposal.params)
    assert len({tuple(sorted(c.items())) for c in children}) >= 5
    # Over a tight budget: the proposer asks again with other seeds until a child fits (or repairs).
    slowest = max(est.latency_ms(arch_from_params(space, t.params)[0]) for t in trials if t.params)
    tight = Proposer(space, est, make_sampler, ["maximize"], limit_ms=slowest * 0.6, budget_ms=slowest * 0.6,
                     keep_rejected=0)
    proposal = tight.propose(trials, 1)
    assert est.latency_ms(arch_from_params(space, proposal.params)[0]) <= slowest * 0.6


# -- other distributions -------------------------------------------------------------------------------


def test_int_and_float_parameters_mutate_to_another_value() -> None:
    def objective(trial: optuna.Trial) -> float:
        a = trial.suggest_int("a", 0, 10, step=2)
        big = trial.suggest_int("big", 1, 10**9)  # too many values to enumerate
        x = trial.suggest_float("x", 1e-3, 1.0, log=True)
        q = trial.suggest_float("q", 0.0, 1.0, step=0.25)
        trial.suggest_categorical("fixed", ["only"])  # one value: never asked of the sampler, never mutated
        return a + big / 1e9 + x + q

    study = optuna.create_study(direction="maximize",
                                sampler=RegularizedEvolutionSampler(population_size=4, sample_size=2, seed=0))
    study.optimize(objective, n_trials=60)
    seen = set()
    trials = study.trials
    for child in trials[4:]:
        plan = plan_of(child)
        parent = trials[plan["parent"]]
        one_change(parent.params, child.params, plan["param"])
        assert plan["param"] != "fixed"
        assert child.distributions[plan["param"]]._contains(
            child.distributions[plan["param"]].to_internal_repr(child.params[plan["param"]]))
        seen.add(plan["param"])
    assert seen == {"a", "big", "x", "q"}


# -- (g) better than random search --------------------------------------------------------------------


def test_it_beats_random_sampling_on_a_separable_synthetic_problem() -> None:
    """Mean best-found after 80 trials over 30 problems and seeds, paired (Wilcoxon signed-rank).

    Deterministic (every draw is seeded), and the margin is wide: this set gives p = 5e-8 and 28 wins
    of 30; on 7 other sets of 30 problems (problem seeds 2000-2029, ..., 8000-8029, sampler seeds 0-29)
    p was between 9e-9 and 4e-6 and evolution won 25-29 of the 30 pairs (2026-12-04, with the uniform
    draws of ``_uniform.py`` as its random part), so the assertion (p < 1e-3, wins >= 60 %) does not
    hang on this seed set.
    """
    n_trials, depth = 80, 6
    evolution, rand = [], []
    for seed in range(30):
        objective = toy_objective(1000 + seed, max_depth=depth)
        for sampler, out in ((RegularizedEvolutionSampler(population_size=16, sample_size=4, seed=seed), evolution),
                             (optuna.samplers.RandomSampler(seed=seed), rand)):
            study = optuna.create_study(direction="maximize", sampler=sampler)
            study.optimize(objective, n_trials=n_trials)
            out.append(study.best_value)
    diff = np.array(evolution) - np.array(rand)
    assert np.mean(diff > 0) >= 0.6
    assert stats.wilcoxon(diff, alternative="greater").pvalue < 1e-3
