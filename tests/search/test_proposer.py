"""Latency-aware proposals, the warm start and the budget helpers, on the tiny space's real table."""

from __future__ import annotations

import random
from pathlib import Path

import optuna
import pytest

from nas.arch import arch_hash
from nas.errors import BudgetError
from nas.latency import TableEstimator, load_table
from nas.search import SearchConfig, check_budget, default_budget, extreme_arch, run_search
from nas.search.budget import extreme_params
from nas.search import _proposer
from nas.search._proposer import Proposer, arch_from_params, repair, replay
from nas.space import load_space, random_arch, sample_arch
from nas.search._chooser import TrialChooser
from tests.conftest import DEFAULT_SPACE, TINY_SPACE
from tests.search.conftest import FakeEvaluator


@pytest.fixture(scope="module")
def tiny(search_table: Path) -> tuple[object, TableEstimator]:
    return load_space(TINY_SPACE), TableEstimator(load_table(search_table), on_missing="error", save=False)


def test_extreme_params_rebuild_the_fastest_and_slowest_networks(tiny) -> None:  # type: ignore[no-untyped-def]
    space, est = tiny
    fast, slow = extreme_arch(space, est), extreme_arch(space, est, fastest=False)
    assert arch_from_params(space, extreme_params(space, est))[0] == fast
    assert arch_from_params(space, extreme_params(space, est, fastest=False))[0] == slow
    lats = [est.latency_ms(random_arch(space, seed)) for seed in range(60)]
    assert est.latency_ms(fast) <= min(lats) + 1e-9
    assert est.latency_ms(slow) >= max(lats) - 1e-9


def test_budget_below_the_fastest_network_is_refused_naming_it(tiny) -> None:  # type: ignore[no-untyped-def]
    space, est = tiny
    fastest_ms = est.latency_ms(extreme_arch(space, est))
    with pytest.raises(BudgetError, match=f"fastest achievable is {fastest_ms:.3f} ms"):
        check_budget(fastest_ms * 0.9, space, est)
    assert check_budget(fastest_ms * 1.01, space, est) == extreme_arch(space, est)
    budget = default_budget(space, est)  # tiny space: no MobileNetV2 reference fits (16x16 inputs)
    assert "midpoint" in budget.rule and fastest_ms < budget.ms


def test_repair_lowers_choices_until_the_network_fits(tiny) -> None:  # type: ignore[no-untyped-def]
    space, est = tiny
    slow = extreme_params(space, est, fastest=False)
    fastest_ms = est.latency_ms(extreme_arch(space, est))
    slowest_ms = est.latency_ms(arch_from_params(space, slow)[0])
    for seed in range(5):
        limit = fastest_ms + (slowest_ms - fastest_ms) * 0.3
        params, latency = repair(space, est, slow, limit, random.Random(seed))
        arch, options = arch_from_params(space, params)
        assert set(params) == set(options)  # exactly the parameters the network uses
        assert latency == pytest.approx(est.latency_ms(arch)) and latency <= limit
    # An impossible limit ends where no single change makes the network faster.
    params, latency = repair(space, est, slow, fastest_ms / 2, random.Random(0))
    _, options = arch_from_params(space, params)
    for name, values in options.items():
        for value in values:
            try:
                assert est.latency_ms(arch_from_params(space, {**params, name: value})[0]) >= latency - 1e-12
            except KeyError:
                pass


def test_proposals_meet_the_limit_and_avoid_trained_architectures(tiny) -> None:  # type: ignore[no-untyped-def]
    space, est = tiny
    fastest_ms, slowest_ms = (est.latency_ms(extreme_arch(space, est, fastest=f)) for f in (True, False))
    # low enough that random draws exceed it whatever the session's table measured (at 0.2 of the range, one
    # run under heavy load drew no over-limit candidate in 8 proposals)
    budget = fastest_ms + 0.1 * (slowest_ms - fastest_ms)
    proposer = Proposer(space, est, lambda seed: optuna.samplers.RandomSampler(seed), ["maximize"],
                        limit_ms=budget * 1.1, budget_ms=budget, max_attempts=5, keep_rejected=100)
    taken = {arch_hash(extreme_arch(space, est))}
    for seed in range(12):
        p = proposer.propose([], seed, taken=taken)
        arch = arch_from_params(space, p.params)[0]
        assert p.latency_ms == pytest.approx(est.latency_ms(arch))
        assert p.latency_ms <= (budget if p.repaired else budget * 1.1)
        assert arch_hash(arch) not in taken or p.repaired
        taken.add(arch_hash(arch))
    assert proposer.rejected  # the over-limit candidates were kept for the sampler to learn from


@pytest.mark.parametrize("keep", [0, 1, 3])
def test_only_the_last_keep_rejected_candidates_are_remembered(tiny, keep: int) -> None:  # type: ignore[no-untyped-def]
    space, est = tiny
    budget = est.latency_ms(extreme_arch(space, est))  # only the fastest network fits: nearly all are rejected
    proposer = Proposer(space, est, lambda seed: optuna.samplers.RandomSampler(seed), ["maximize"],
                        limit_ms=budget, budget_ms=budget, max_attempts=4, keep_rejected=keep)
    seen: list[int] = []
    for seed in range(3):
        proposer.propose([], seed)
        seen.append(len(proposer.rejected))
    assert seen == [min(keep, 4), min(keep, 8), min(keep, 12)]


def test_each_network_is_drawn_once_and_the_trial_records_the_proposal(tmp_path: Path, tiny,  # type: ignore[no-untyped-def]
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The trial evaluates the network the proposer drew: nothing is sampled again for the real trial."""
    space, est = tiny
    draws: list[object] = []
    sample = _proposer.sample_arch

    def counting(space_: object, chooser: object) -> object:  # every candidate drawn, by a trial or not
        if not isinstance(chooser, _proposer._DictChooser):  # a replay (the warm start's) draws nothing
            draws.append(chooser)
        return sample(space_, chooser)  # type: ignore[arg-type]

    monkeypatch.setattr(_proposer, "sample_arch", counting)
    proposals: list[_proposer.Proposal] = []
    propose = Proposer.propose

    def recording(self: Proposer, *args: object, **kwargs: object) -> _proposer.Proposal:
        proposals.append(propose(self, *args, **kwargs))  # type: ignore[arg-type]
        return proposals[-1]

    monkeypatch.setattr(Proposer, "propose", recording)
    budget = est.latency_ms(extreme_arch(space, est, fastest=False))
    config = SearchConfig(n_trials=5, budget_ms=budget, run_dir=tmp_path, sampler="random", seed=3)
    study = run_search(config, space, est, FakeEvaluator(), fingerprint={}, warm_start=extreme_params(space, est))
    assert len(draws) == sum(p.attempts for p in proposals)  # one draw per candidate, none for the real trials
    fresh = [t for t in study.trials if not t.user_attrs.get("warm_start")]
    # the warm start is the first trial; the proposal made beside it was not used
    for trial, proposal in zip(fresh, proposals[1:]):
        assert trial.params == proposal.params and trial.distributions == proposal.distributions
        assert trial.user_attrs["hash"] == arch_hash(proposal.arch)


@pytest.mark.parametrize("objective", ["reward", "pareto"])
def test_search_stays_near_the_budget_and_counts_trials(tmp_path: Path, tiny, objective: str) -> None:  # type: ignore[no-untyped-def]
    space, est = tiny
    fastest_ms, slowest_ms = (est.latency_ms(extreme_arch(space, est, fastest=f)) for f in (True, False))
    budget = fastest_ms + 0.15 * (slowest_ms - fastest_ms)  # a tight budget: few random networks meet it
    config = SearchConfig(n_trials=8, budget_ms=budget, run_dir=tmp_path, objective=objective, seed=1)
    evaluator = FakeEvaluator()
    study = run_search(config, space, est, evaluator, fingerprint={"x": 1}, warm_start=extreme_params(space, est))
    trials = study.get_trials()
    assert len(trials) == 8 and all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
                                    for t in trials)
    assert trials[0].user_attrs["warm_start"] and trials[0].user_attrs["latency_ms"] == pytest.approx(fastest_ms)
    lats = [t.user_attrs["latency_ms"] for t in trials]
    assert max(lats) <= budget * config.skip_over + 1e-9  # nothing far over the budget was even proposed
    assert sum(lat <= budget for lat in lats) >= 3
    assert len(evaluator.trained) == len(set(evaluator.trained))  # no architecture trained twice
    assert all(t.constraints["latency"] == pytest.approx(t.user_attrs["latency_ms"] - budget) for t in trials)


class _Recording(optuna.samplers.RandomSampler):
    """Random sampling that records, per ask, how many refused (PRUNED) candidates the study shows it."""

    def __init__(self, seed: int, seen: list[int]) -> None:
        super().__init__(seed=seed)
        self.seen = seen

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.seen.append(len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,))))


@pytest.mark.parametrize("keep", [0, 2])
def test_the_sampler_sees_this_proposals_refusals_and_keep_earlier_ones(tiny, keep: int) -> None:  # type: ignore[no-untyped-def]
    space, est = tiny
    budget = est.latency_ms(extreme_arch(space, est))  # only the fastest network fits: nearly all are refused
    seen: list[int] = []
    proposer = Proposer(space, est, lambda seed: _Recording(seed, seen), ["maximize"], limit_ms=budget,
                        budget_ms=budget, max_attempts=4, keep_rejected=keep)
    refused_before = 0
    for seed in range(3):
        seen.clear()
        p = proposer.propose([], seed)
        # attempt i sees the kept refusals of earlier proposals plus the i - 1 of this one
        start = min(keep, refused_before)
        assert seen == list(range(start, start + len(seen)))
        refused_before += len(seen) - (0 if p.repaired else 1)
    assert refused_before > keep  # enough refusals happened for the limit to matter


@pytest.mark.parametrize(("sampler", "objective", "keep"), [("tpe", "reward", 0), (None, "reward", 0),
                                                             ("nsga2", "pareto", 0), ("random", "reward", 0),
                                                             ("evolution", "reward", 0)])
def test_the_search_shows_no_sampler_earlier_refusals(tmp_path: Path, tiny, monkeypatch: pytest.MonkeyPatch,
                                                  sampler: str | None, objective: str, keep: int) -> None:  # type: ignore[no-untyped-def]
    import nas.search.runner as runner

    made: list[int] = []

    class Spy(Proposer):
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, **kwargs)
            made.append(self.keep_rejected)

    monkeypatch.setattr(runner, "Proposer", Spy)
    space, est = tiny
    config = SearchConfig(n_trials=2, budget_ms=est.latency_ms(extreme_arch(space, est, fastest=False)),
                          run_dir=tmp_path, sampler=sampler, objective=objective)
    run_search(config, space, est, FakeEvaluator(), fingerprint={"x": 1}, warm_start=extreme_params(space, est))
    assert made == [keep]
    override = SearchConfig(n_trials=3, budget_ms=config.budget_ms, run_dir=tmp_path / "o", sampler=sampler,
                            objective=objective, keep_rejected=7)
    run_search(override, space, est, FakeEvaluator(), fingerprint={"x": 1}, warm_start=extreme_params(space, est))
    assert made == [keep, 7]


def test_nsga2_draws_do_not_depend_on_refused_candidates() -> None:
    """Why NSGA-II is shown no earlier refusals: it builds its populations from completed trials only."""
    dists = {f"p{i}": optuna.distributions.CategoricalDistribution(list(range(4))) for i in range(6)}
    rng = random.Random(0)

    def trial(state: optuna.trial.TrialState, violation: float) -> optuna.trial.FrozenTrial:
        return optuna.trial.create_trial(
            state=state, values=[rng.random(), rng.random()] if state == optuna.trial.TrialState.COMPLETE else None,
            params={k: rng.choice(d.choices) for k, d in dists.items()}, distributions=dists,
            system_attrs={"constraints:latency": violation})

    done = [trial(optuna.trial.TrialState.COMPLETE, rng.random() - 0.7) for _ in range(40)]
    refused = [trial(optuna.trial.TrialState.PRUNED, rng.random() + 0.1) for _ in range(30)]

    def draws(shown: list[optuna.trial.FrozenTrial]) -> list[tuple[int, ...]]:
        out = []
        for seed in range(8):
            study = optuna.create_study(directions=["maximize", "minimize"],
                                        sampler=optuna.samplers.NSGAIISampler(seed=seed, population_size=10))
            study.add_trials(done + shown)
            t = study.ask()
            out.append(tuple(t.suggest_categorical(k, list(d.choices)) for k, d in dists.items()))
        return out

    assert draws([]) == draws(refused)


def test_the_copy_of_the_study_grows_with_the_study_instead_of_being_rebuilt(tiny) -> None:  # type: ignore[no-untyped-def]
    space, est = tiny
    budget = est.latency_ms(extreme_arch(space, est, fastest=False))  # everything fits: nothing is refused
    proposer = Proposer(space, est, lambda seed: optuna.samplers.RandomSampler(seed), ["maximize"],
                        limit_ms=budget, budget_ms=budget)
    study = optuna.create_study(direction="maximize")
    copies = []
    for seed in range(4):
        p = proposer.propose(study.get_trials(deepcopy=False), seed)
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, values=[0.5],
                                                  params=p.params, distributions=p.distributions))
        copies.append(proposer._copy_study)
    assert all(c is copies[0] for c in copies)
    finished = copies[0].get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    assert [t.params for t in finished] == [t.params for t in study.trials[:3]]  # each copied once


def test_a_crowded_copy_is_rebuilt_and_the_sampler_sees_the_same_trials(  # type: ignore[no-untyped-def]
        tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    space, est = tiny
    budget = est.latency_ms(extreme_arch(space, est))  # only the fastest network fits: nearly all are refused

    def run() -> tuple[list[int], list[dict[str, object]], Proposer, set[int]]:
        seen: list[int] = []
        proposer = Proposer(space, est, lambda seed: _Recording(seed, seen), ["maximize"], limit_ms=budget,
                            budget_ms=budget, max_attempts=4, keep_rejected=2)
        study = optuna.create_study(direction="maximize")
        proposals, copies = [], set()
        for seed in range(10):
            p = proposer.propose(study.get_trials(deepcopy=False), seed)
            study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, values=[0.5],
                                                      params=p.params, distributions=p.distributions))
            proposals.append(p.params)
            copies.add(id(proposer._copy_study))
        return seen, proposals, proposer, copies

    seen, proposals, _, copies = run()
    assert len(copies) == 1  # the default thresholds: never crowded in 10 proposals
    monkeypatch.setattr(_proposer, "_CROWDED", 1)
    monkeypatch.setattr(_proposer, "_CROWDED_SLACK", 0)
    seen_rebuilt, proposals_rebuilt, proposer, copies = run()
    assert len(copies) > 1  # rebuilt ...
    assert (seen_rebuilt, proposals_rebuilt) == (seen, proposals)  # ... without the sampler noticing
    finished = proposer._copy_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    assert len(finished) == len(proposer._copied) and proposer._size < 10 * 4


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_the_chooser_keeps_exactly_what_the_trial_recorded(sampler: str) -> None:
    """The proposer takes a candidate's parameters from its chooser instead of the trial's deep copies:
    they must be the trial's own, value and distribution, in the default space (conditional choices)."""
    space = load_space(DEFAULT_SPACE)
    make = {"random": optuna.samplers.RandomSampler, "tpe": optuna.samplers.TPESampler}[sampler]
    study = optuna.create_study(direction="maximize", sampler=make(seed=0))
    for _ in range(15):
        trial = study.ask()
        chooser = TrialChooser(trial)
        sample_arch(space, chooser)
        assert chooser.params == trial.params
        assert chooser.distributions == trial.distributions
        study.tell(trial, random.Random(trial.number).random())


def _fixed(params: dict[str, object], asks: list[int]):  # type: ignore[no-untyped-def]
    """A sampler factory whose every draw is ``params``; counts the asks."""
    def make(seed: int) -> optuna.samplers.BaseSampler:
        asks.append(seed)
        return optuna.samplers.PartialFixedSampler(params, optuna.samplers.RandomSampler(seed))
    return make


def _ring(space, centre: dict[str, object]) -> dict[str, dict[str, object]]:  # type: ignore[no-untyped-def]
    """The networks one choice away from ``centre`` (written out here, not with the proposer's code)."""
    _, options = arch_from_params(space, centre)
    out = {}
    for name, values in options.items():
        for value in values:
            try:
                arch, used, _ = _proposer.replay(space, {**centre, name: value})
            except KeyError:
                continue
            out[arch_hash(arch)] = used
    out.pop(arch_hash(arch_from_params(space, centre)[0]), None)
    return out


def test_a_repeated_draw_is_replaced_by_its_nearest_unevaluated_neighbour(tiny) -> None:  # type: ignore[no-untyped-def]
    space, est = tiny
    slow = extreme_params(space, est, fastest=False)
    budget = est.latency_ms(arch_from_params(space, slow)[0])  # everything fits
    taken = {arch_hash(arch_from_params(space, slow)[0])}
    asks: list[int] = []
    plain = Proposer(space, est, _fixed(slow, asks), ["maximize"], limit_ms=budget, budget_ms=budget, max_attempts=6)
    p = plain.propose([], 0, taken=taken)
    assert len(asks) == 6 and p.params == slow  # without neighbours: every ask repeats it; the trial reuses it
    for k in (0, 2):
        asks.clear()
        near = Proposer(space, est, _fixed(slow, asks), ["maximize"], limit_ms=budget, budget_ms=budget,
                        max_attempts=6, asks_before_neighbours=k)
        p = near.propose([], 0, taken=taken)
        assert len(asks) == k + 1 and p.attempts == k + 1 and not p.repaired
        assert arch_hash(p.arch) not in taken and arch_hash(p.arch) in _ring(space, slow)
        assert p.arch == arch_from_params(space, p.params)[0] and p.latency_ms == pytest.approx(est.latency_ms(p.arch))


def test_an_over_limit_draw_is_replaced_by_a_neighbour_within_the_limit(tiny) -> None:  # type: ignore[no-untyped-def]
    space, est = tiny
    slow = extreme_params(space, est, fastest=False)
    slow_ms = est.latency_ms(arch_from_params(space, slow)[0])
    one = _ring(space, slow)
    limit = min(est.latency_ms(arch_from_params(space, params)[0]) for params in one.values()) * 1.0001
    assert limit < slow_ms
    asks: list[int] = []
    proposer = Proposer(space, est, _fixed(slow, asks), ["maximize"], limit_ms=limit, budget_ms=limit,
                        max_attempts=6, asks_before_neighbours=1)
    p = proposer.propose([], 0)
    assert len(asks) == 2 and not p.repaired and p.latency_ms <= limit and arch_hash(p.arch) in one


def test_neighbours_come_one_choice_away_first_then_two_each_once_none_evaluated(tiny) -> None:  # type: ignore[no-untyped-def]
    space, est = tiny
    centre = extreme_params(space, est, fastest=False)
    proposer = Proposer(space, est, _fixed(centre, []), ["maximize"], limit_ms=1e9, budget_ms=1e9)
    drawn = replay(space, centre)  # the network, its parameters and their distributions, as a draw gives them
    everything = list(proposer._neighbours(*drawn, 5, set()))
    hashes = [arch_hash(a) for a, _, _ in everything]
    one = _ring(space, centre)
    two = {h for params in one.values() for h in _ring(space, params)} - set(one)
    assert len(set(hashes)) == len(hashes) and arch_hash(arch_from_params(space, centre)[0]) not in hashes
    assert set(hashes[:len(one)]) == set(one) and set(hashes[len(one):]) <= two  # one choice away first, then two
    assert len(everything) <= _proposer._NEIGHBOURS
    again = [arch_hash(a) for a, _, _ in proposer._neighbours(*drawn, 5, set())]
    other = [arch_hash(a) for a, _, _ in proposer._neighbours(*drawn, 6, set())]
    assert again == hashes and set(other[:len(one)]) == set(one) and other != hashes  # seeded order
    skip = set(hashes[:3])
    assert [arch_hash(a) for a, _, _ in proposer._neighbours(*drawn, 5, skip)] == hashes[3:]
