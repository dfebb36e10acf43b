"""Draws without an Optuna trial (random sampling, evolution, TPE) must be the draws a trial would get."""

from __future__ import annotations

import random
import warnings

import optuna
import pytest
from optuna.trial import TrialState

from nas.arch import arch_hash
from nas.latency import TableEstimator, load_table
from nas.search import _proposer
from nas.search._chooser import TrialChooser
from nas.search._proposer import Proposer
from nas.search._tpe import GroupedTPESampler
from nas.search._uniform import UniformSampler
from nas.search.evolution import PLAN_ATTR, RegularizedEvolutionSampler
from nas.space import load_space, random_arch, sample_arch
from tests.conftest import DEFAULT_SPACE, REPO


@pytest.fixture(autouse=True)
def _quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)


@pytest.fixture(scope="module")
def setting() -> tuple[object, TableEstimator]:
    space = load_space(DEFAULT_SPACE)  # conditional: depth ranges, block types with options of their own
    return space, TableEstimator(load_table(REPO / "latency_tables" / "ort-cpu-1t.json"), on_missing="error", save=False)


def _through_a_trial(study: optuna.Study, sampler: optuna.samplers.BaseSampler, space: object
                     ) -> tuple[dict[str, object], dict[str, object], dict[str, object]]:
    study.sampler = sampler
    trial = study.ask()
    chooser = TrialChooser(trial)
    sample_arch(space, chooser)  # type: ignore[arg-type]
    attrs = dict(study._storage.get_trial(trial._trial_id).system_attrs)
    study.tell(trial, state=TrialState.FAIL)
    return chooser.params, chooser.distributions, attrs


def test_the_uniform_chooser_draws_what_a_trial_draws(setting) -> None:  # type: ignore[no-untyped-def]
    space, _ = setting
    study = optuna.create_study()
    for seed in range(40):
        params, distributions, _ = _through_a_trial(study, UniformSampler(seed=seed), space)
        chooser = UniformSampler(seed=seed).chooser()
        sample_arch(space, chooser)
        assert (chooser.params, chooser.distributions) == (params, distributions)
    # a one-value choice is taken without drawing, as a trial takes it: the next draw is unchanged
    trial = optuna.create_study(sampler=UniformSampler(seed=7)).ask()
    drawn = [trial.suggest_int("a", 0, 9), trial.suggest_categorical("one", ["x"]), trial.suggest_int("b", 0, 9)]
    chooser = UniformSampler(seed=7).chooser()
    assert [chooser.choose_int("a", 0, 9), chooser.choose("one", ["x"]), chooser.choose_int("b", 0, 9)] == drawn


def _scored_study(space: object, est: TableEstimator, n: int) -> optuna.Study:
    """``n`` finished trials of the space (some failed or pruned), with accuracies and latency constraints."""
    study = optuna.create_study(direction="maximize")
    budget = sorted(est.latency_ms(random_arch(space, s)) for s in range(50))[25]  # type: ignore[arg-type]
    for i in range(n):
        study.sampler = UniformSampler(seed=100 + i)
        trial = study.ask()
        arch = sample_arch(space, TrialChooser(trial))  # type: ignore[arg-type]
        trial.set_constraint("latency", est.latency_ms(arch) - budget)
        if i % 9 == 4:
            study.tell(trial, state=TrialState.PRUNED)
        elif i % 11 == 6:
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, int(arch_hash(arch)[:6], 16) / 0xFFFFFF)
    return study


def test_the_evolution_chooser_draws_what_a_trial_draws(setting) -> None:  # type: ignore[no-untyped-def]
    space, est = setting
    study = _scored_study(space, est, 40)
    children = set()
    for seed in range(30):
        number = len(study.trials)
        chooser = RegularizedEvolutionSampler(population_size=8, sample_size=3, seed=seed).chooser(study, number)
        assert chooser is not None
        sample_arch(space, chooser)
        params, distributions, attrs = _through_a_trial(
            study, RegularizedEvolutionSampler(population_size=8, sample_size=3, seed=seed), space)
        assert (chooser.params, chooser.distributions, chooser.plan) == (params, distributions, attrs[PLAN_ATTR])
        assert chooser.plan["parent"] is not None  # children of the population, not random draws
        children.add(tuple(sorted(params.items())))
    # a one-value choice is taken without asking the sampler, as a trial takes it
    study.sampler = RegularizedEvolutionSampler(population_size=8, sample_size=3, seed=5)
    trial = study.ask()
    chooser = RegularizedEvolutionSampler(population_size=8, sample_size=3, seed=5).chooser(study, trial.number)
    assert chooser is not None
    assert [chooser.choose("one", ["x"]), chooser.choose_int("depth", 2, 2)] == \
        [trial.suggest_categorical("one", ["x"]), trial.suggest_int("depth", 2, 2)] == ["x", 2]
    assert len(children) > 20
    # an independent sampler of the caller's has hooks of its own that need a real trial: no trial-free draws
    with_own = RegularizedEvolutionSampler(seed=0, independent_sampler=optuna.samplers.RandomSampler(seed=0))
    assert with_own.chooser(study, len(study.trials)) is None


def test_the_tpe_chooser_draws_what_a_trial_draws(setting) -> None:  # type: ignore[no-untyped-def]
    space, est = setting
    for n in (3, 40):  # before TPE's start-up trials are done (independent draws), and after (relative ones)
        study = _scored_study(space, est, n)
        drawn = set()
        for seed in range(15):
            chooser = GroupedTPESampler(seed=seed, n_startup_trials=6).chooser(study, len(study.trials))
            assert chooser is not None
            sample_arch(space, chooser)
            params, distributions, attrs = _through_a_trial(study, GroupedTPESampler(seed=seed, n_startup_trials=6),
                                                            space)
            assert (chooser.params, chooser.distributions) == (params, distributions)
            assert {k for k in attrs if not k.startswith("constraints")} == set()  # the trial kept nothing else
            drawn.add(tuple(sorted(params.items())))
        assert len(drawn) > 10
    # a one-value choice is taken without asking the sampler, as a trial takes it
    study.sampler = GroupedTPESampler(seed=5, n_startup_trials=6)
    trial = study.ask()
    chooser = GroupedTPESampler(seed=5, n_startup_trials=6).chooser(study, trial.number)
    assert chooser is not None
    assert [chooser.choose("one", ["x"]), chooser.choose_int("k", 0, 9)] == \
        [trial.suggest_categorical("one", ["x"]), trial.suggest_int("k", 0, 9)]
    # a constant liar reads and writes the trial itself: no trial-free draws
    assert GroupedTPESampler(seed=0, constant_liar=True).chooser(study, len(study.trials)) is None


@pytest.mark.parametrize("sampler", ["random", "evolution", "tpe"])
def test_the_proposer_proposes_what_it_proposed_with_trials(sampler: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tight budget (most draws refused), repeated networks refused, the copy rebuilt often: in NAS-Bench-Macro's
    small space, where draws repeat networks evaluated before."""
    space = load_space(REPO / "search_spaces" / "nas_bench_macro.yaml")
    est = TableEstimator(load_table(REPO / "latency_tables" / "ort-cpu-1t-macro.json"), on_missing="error", save=False)
    budget = sorted(est.latency_ms(random_arch(space, s)) for s in range(100))[30]

    def make(seed: int) -> optuna.samplers.BaseSampler:
        if sampler == "random":
            return UniformSampler(seed=seed)
        if sampler == "tpe":
            return GroupedTPESampler(seed=seed, n_startup_trials=4)
        return RegularizedEvolutionSampler(population_size=6, sample_size=2, seed=seed)

    class WithTrials(Proposer):
        def _trial_free(self, kind: type) -> bool:
            return False

    monkeypatch.setattr(_proposer, "_CROWDED", 1)
    monkeypatch.setattr(_proposer, "_CROWDED_SLACK", 4)

    class Counting(set):  # type: ignore[type-arg]
        """The hashes not to propose again; counts the draws it refused."""
        refused = 0

        def __contains__(self, digest: object) -> bool:
            found = super().__contains__(digest)
            Counting.refused += found
            return found

    def run(cls: type[Proposer]) -> tuple[list[tuple[object, ...]], int, list[object]]:
        tpe = sampler == "tpe"  # as the search runs TPE: refusals shown, some kept, neighbours of unusable draws
        proposer = cls(space, est, make, ["maximize"], limit_ms=budget, budget_ms=budget, max_attempts=5,
                       keep_rejected=3 if tpe else 0, show_refusals=tpe, asks_before_neighbours=2 if tpe else None)
        study = optuna.create_study(direction="maximize")
        proposals, copies, plans, hidden = [], set(), [], []
        for seed in range(60):
            taken = Counting(t.user_attrs["hash"] for t in study.trials)  # a repeat is refused as taken
            p = proposer.propose(study.get_trials(deepcopy=False), seed, taken=taken)
            digest = arch_hash(p.arch)
            study.add_trial(optuna.trial.create_trial(
                value=random.Random(digest).random(), params=p.params, distributions=p.distributions,
                user_attrs={"hash": digest}, system_attrs=p.sampler_attrs))
            proposals.append((p.params, p.distributions, p.attempts, p.repaired, p.latency_ms))
            if sampler != "evolution":  # evolution's plan numbers differ (below)
                proposals[-1] += (p.sampler_attrs,)
            copies.add(id(proposer._copy_study))
            hidden.append(len(proposer._storage.hidden))
            plans.append(p.sampler_attrs.get(PLAN_ATTR, {}).get("param"))
        return proposals, len(copies), plans, hidden

    free, copies, plans, hidden = run(Proposer)
    refused, Counting.refused = Counting.refused, 0
    with_trials, copies_with_trials, plans_with_trials, hidden_with_trials = run(WithTrials)
    assert free == with_trials and refused == Counting.refused
    assert hidden == hidden_with_trials  # TPE: as many older refusals hidden at every step
    # evolution: the same mutated parameter; the parent's and the tournament's numbers are positions in the
    # copy, which holds the draws made through trials and not the others
    assert plans == plans_with_trials
    assert refused > 0  # networks evaluated before were drawn again and refused
    assert sum(proposal[2] > 1 for proposal in free) > 5  # redraws happened, and count alike
    assert len({tuple(sorted(p.items())) for p, *_ in free}) > 30
    if sampler == "tpe":
        assert copies_with_trials > 3 and copies > 3 and max(hidden) > 0  # rebuilt copies; refusals hidden
    if sampler == "evolution":
        assert copies_with_trials > 3 and copies > 3  # rebuilt copies, whose numbering the trial-free draws follow
        assert sum(plan is not None for plan in plans) > 20  # children, not only the random population
