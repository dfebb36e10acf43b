"""Cheaper draws that must not change them: the uniform sampler, re-seeded samplers, TPE's groups, MemoryStorage."""

from __future__ import annotations

import collections
import warnings
from collections.abc import Callable

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.search_space.group_decomposed import _GroupDecomposedSearchSpace
from optuna.trial import TrialState

from nas.arch import arch_hash
from nas.latency import TableEstimator, load_table
from nas.search import _proposer
from nas.search._nsga2 import NSGAIIPerStudySpace
from nas.search._proposer import Proposer
from nas.search._reseed import reseed
from nas.search._storage import MemoryStorage
from nas.search._tpe import GroupedTPESampler
from nas.search._uniform import UniformSampler, uniform_value
from nas.search.evolution import RegularizedEvolutionSampler
from nas.space import load_space, random_arch
from tests.conftest import DEFAULT_SPACE, REPO

KERNELS = [3, 5, 7]


def _draw(study: optuna.Study, i: int) -> dict[str, object]:
    """One trial of a conditional space (``k1``, ``k2`` only in deeper networks), told as the proposer tells."""
    trial = study.ask()
    depth = trial.suggest_int("depth", 1, 3)
    drawn: dict[str, object] = {"depth": depth}
    drawn.update({f"k{j}": trial.suggest_categorical(f"k{j}", KERNELS) for j in range(depth)})
    drawn["act"] = trial.suggest_categorical("act", ["relu", "hswish"])
    trial.set_constraint("latency", float(depth - 2))
    if i % 7 == 3:
        study.tell(trial, state=TrialState.FAIL)
    elif i % 5 == 2:
        study.tell(trial, state=TrialState.PRUNED)
    else:
        values = [sum(v for v in drawn.values() if isinstance(v, int)) / 10.0]
        study.tell(trial, values * len(study.directions) if len(study.directions) == 1 else [values[0], depth * 1.5])
    return drawn


def _search(make: Callable[[int], optuna.samplers.BaseSampler], directions: list[str], *, keep: bool,
            n: int = 45) -> list[dict[str, object]]:
    """``n`` draws, each with the sampler ``make(seed)`` makes, or (``keep``) the first one re-seeded."""
    study = optuna.create_study(directions=directions, storage=MemoryStorage())
    kept: optuna.samplers.BaseSampler | None = None
    drawn = []
    for i in range(n):
        seed = 1000 + 7 * i
        if keep and kept is not None:
            assert reseed(kept, seed)
        else:
            kept = make(seed)
        study.sampler = kept
        drawn.append(_draw(study, i))
    return drawn


@pytest.fixture(autouse=True)
def _quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)


@pytest.mark.parametrize("make, directions", [
    (lambda seed: GroupedTPESampler(seed=seed, n_startup_trials=6), ["maximize"]),
    (lambda seed: NSGAIIPerStudySpace(seed=seed, population_size=6), ["maximize", "minimize"]),
])
def test_a_reseeded_sampler_draws_what_a_fresh_one_draws(make: Callable[[int], optuna.samplers.BaseSampler],
                                                          directions: list[str]) -> None:
    fresh, kept = _search(make, directions, keep=False), _search(make, directions, keep=True)
    assert fresh == kept
    assert len({tuple(d.items()) for d in fresh}) > 15  # the draws differ: the comparison can tell samplers apart
    # and re-seeding is what makes them equal: a kept sampler left with its state draws otherwise
    study = optuna.create_study(directions=directions, storage=MemoryStorage())
    study.sampler = make(1000)
    assert [_draw(study, i) for i in range(45)] != fresh


def test_reseed_refuses_samplers_it_cannot_vouch_for() -> None:
    assert not reseed(UniformSampler(seed=1), 2)
    assert not reseed(RegularizedEvolutionSampler(seed=1), 2)
    assert not reseed(optuna.samplers.TPESampler(seed=1), 2)  # Optuna's own keeps adding to its groups


def test_groups_are_optunas_groups() -> None:
    """Each distinct parameter set once gives the groups, order and distributions of Optuna's calculation."""
    study = optuna.create_study(storage=MemoryStorage())
    study.sampler = optuna.samplers.RandomSampler(seed=0)
    for i in range(60):
        _draw(study, i)
    study.add_trial(optuna.trial.create_trial(  # a parameter set of its own, with other distributions
        params={"depth": 2, "k0": 3, "k1": 5, "width": 8}, values=[0.1],
        distributions={"depth": IntDistribution(1, 3), "k0": CategoricalDistribution(KERNELS),
                       "k1": CategoricalDistribution(KERNELS), "width": CategoricalDistribution([8, 16])}))
    ours = GroupedTPESampler(seed=0)._group_decomposed_search_space.calculate(study).search_spaces
    theirs = _GroupDecomposedSearchSpace(True).calculate(study).search_spaces
    assert ours == theirs and [sorted(g) for g in ours] == [sorted(g) for g in theirs]  # TPE sorts within a group
    assert len(ours) >= 3  # depth-dependent groups and the extra trial's own: not one trivial group
    # a fresh calculation every time: a parameter set no longer shown leaves no group behind
    later = optuna.create_study(storage=MemoryStorage())
    later.add_trial(study.trials[-1])
    groups = GroupedTPESampler(seed=0)._group_decomposed_search_space
    groups.calculate(study)
    assert groups.calculate(later).search_spaces == _GroupDecomposedSearchSpace(True).calculate(later).search_spaces


def test_grouped_tpe_draws_what_optunas_tpe_draws() -> None:
    """Ours without the constant liar, batched estimators and remembered rows; Optuna's with its liar (its default)."""
    assert optuna.samplers.TPESampler(seed=0)._constant_liar and not GroupedTPESampler(seed=0)._constant_liar
    ours = _search(lambda seed: GroupedTPESampler(seed=seed, n_startup_trials=6), ["maximize"], keep=False)
    theirs = _search(lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                                             n_startup_trials=6), ["maximize"], keep=False)
    assert ours == theirs


def test_uniform_sampler_draws_every_value_equally_often() -> None:
    counts: collections.Counter[object] = collections.Counter()
    cat, ints = CategoricalDistribution(["a", "b", None]), IntDistribution(2, 10, step=4)  # 2, 6, 10
    for seed in range(6000):
        sampler = UniformSampler(seed=seed)
        counts[sampler.sample_independent(None, None, "c", cat)] += 1  # type: ignore[arg-type]
        counts[sampler.sample_independent(None, None, "i", ints)] += 1  # type: ignore[arg-type]
    assert set(counts) == {"a", "b", None, 2, 6, 10}
    assert all(1800 < n < 2200 for n in counts.values()), counts  # 2,000 expected, sd about 37
    a, b = UniformSampler(seed=3), UniformSampler(seed=3)
    assert [a.sample_independent(None, None, "c", cat) for _ in range(20)] == \
        [b.sample_independent(None, None, "c", cat) for _ in range(20)]  # type: ignore[arg-type]


def test_uniform_sampler_hands_other_distributions_to_optunas() -> None:
    with pytest.raises(ValueError, match="only categorical and linear int"):
        uniform_value(FloatDistribution(0.0, 1.0), __import__("random").Random(0))
    study = optuna.create_study(sampler=UniformSampler(seed=2**40 + 5))  # a seed beyond NumPy's 32 bits
    study.optimize(lambda t: t.suggest_float("lr", 1e-4, 1e-1, log=True) + t.suggest_int("n", 1, 64, log=True),
                   n_trials=20)
    lrs = [t.params["lr"] for t in study.trials]
    assert all(1e-4 <= x <= 1e-1 for x in lrs) and len(set(lrs)) == 20


def test_memory_storage_stores_copies_that_neither_side_can_change_for_the_other() -> None:
    study = optuna.create_study(directions=["maximize"], storage=MemoryStorage())
    storage = study._storage
    done = [optuna.trial.create_trial(params={"k": k}, distributions={"k": CategoricalDistribution(KERNELS)},
                                      values=[k / 10], user_attrs={"arch": {"blocks": [k]}}) for k in KERNELS]
    study.add_trials(done[:2])
    asked = study.ask()  # a trial made by the storage itself, in between
    study.tell(asked, state=TrialState.FAIL)
    study.add_trial(done[2])
    trials = study.get_trials(deepcopy=False)
    assert [t.number for t in trials] == [0, 1, 2, 3] and len({t._trial_id for t in trials}) == 4
    assert [t.params for t in trials if t.state == TrialState.COMPLETE] == [{"k": k} for k in KERNELS]
    assert study.best_trial.params == {"k": 7} and all(t.number == -1 for t in done)  # the templates untouched
    done[0].params["k"] = 5  # the caller's dicts are not the stored trial's
    assert trials[0].params == {"k": 3} and trials[0].user_attrs["arch"] is done[0].user_attrs["arch"]
    # a running trial, changed through Optuna's Trial (which changes its trial's dicts in place)
    running = optuna.trial.create_trial(state=TrialState.RUNNING, distributions={}, user_attrs={"a": 1})
    trial = optuna.Trial(study, storage.create_new_trial(study._study_id, template_trial=running))
    trial.set_user_attr("b", 2)
    trial.suggest_categorical("k", KERNELS)
    study.tell(trial, [0.9])
    assert running.user_attrs == {"a": 1} and running.params == {} and running.state == TrialState.RUNNING
    assert study.trials[4].user_attrs == {"a": 1, "b": 2} and study.best_trial.number == 4
    # a trial stored before (it has a number) is copied as Optuna copies it: the first study keeps its own
    other = optuna.create_study(directions=["maximize"], storage=MemoryStorage())
    other.add_trial(trials[1])
    assert trials[1].number == 1 and other.trials[0].number == 0 and other.trials[0] is not trials[1]


@pytest.mark.parametrize("sampler", ["tpe", "nsga2"])
def test_the_proposers_kept_sampler_proposes_what_fresh_samplers_propose(
        sampler: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the proposer, with its copy rebuilt often and (TPE) refusals hidden from later draws."""
    space = load_space(DEFAULT_SPACE)
    est = TableEstimator(load_table(REPO / "latency_tables" / "ort-cpu-1t.json"), on_missing="error", save=False)
    budget = sorted(est.latency_ms(random_arch(space, s)) for s in range(100))[30]  # most draws refused
    directions = ["maximize"] if sampler == "tpe" else ["maximize", "minimize"]

    def make(seed: int) -> optuna.samplers.BaseSampler:
        if sampler == "tpe":
            return GroupedTPESampler(seed=seed, n_startup_trials=4)
        return NSGAIIPerStudySpace(seed=seed, population_size=4)

    class Fresh(Proposer):
        def _sampler(self, seed: int) -> optuna.samplers.BaseSampler:
            return self.make_sampler(seed)

    monkeypatch.setattr(_proposer, "_CROWDED", 1)
    monkeypatch.setattr(_proposer, "_CROWDED_SLACK", 4)

    def run(cls: type[Proposer]) -> tuple[list[dict[str, object]], int, bool]:
        proposer = cls(space, est, make, directions, limit_ms=budget, budget_ms=budget, max_attempts=5,
                       keep_rejected=1, show_refusals=sampler == "tpe")
        study = optuna.create_study(directions=directions)
        proposals, copies, hid = [], set(), False
        for seed in range(30):
            p = proposer.propose(study.get_trials(deepcopy=False), seed,
                                 taken={t.user_attrs["hash"] for t in study.trials})
            digest = arch_hash(p.arch)
            accuracy = int(digest[:6], 16) / 0xFFFFFF
            study.add_trial(optuna.trial.create_trial(
                values=[accuracy] if sampler == "tpe" else [accuracy, p.latency_ms], params=p.params,
                distributions=p.distributions, user_attrs={"hash": digest}, system_attrs=p.sampler_attrs))
            proposals.append(p.params)
            copies.add(id(proposer._copy_study))
            hid = hid or bool(proposer._storage.hidden)
        return proposals, len(copies), hid

    kept, copies, hid = run(Proposer)
    assert copies > 3  # the copy was rebuilt, and the kept sampler dropped each time
    assert hid == (sampler == "tpe")  # TPE's copy hid earlier refusals (NSGA-II is never shown any)
    assert kept == run(Fresh)[0]
    assert len({tuple(sorted(p.items())) for p in kept}) > 20


def test_tpes_remembered_internal_values_are_optunas() -> None:
    """Arrays, dtypes and left-out trials as Optuna's own conversion, at a first and a remembered call."""
    study = optuna.create_study(storage=MemoryStorage())
    study.sampler = optuna.samplers.RandomSampler(seed=3)
    for i in range(40):
        _draw(study, i)
    trials = study._get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED), use_cache=False)
    ours, theirs = GroupedTPESampler(seed=0), optuna.samplers.TPESampler(seed=0, multivariate=True, group=True)
    spaces = [{"depth": IntDistribution(1, 3), "act": CategoricalDistribution(["relu", "hswish"])},
              {"k1": CategoricalDistribution(KERNELS), "k2": CategoricalDistribution(KERNELS)},  # deep trials only
              {"nothing": CategoricalDistribution([0, 1])}]  # no trial has it: empty arrays
    for space in spaces + spaces:  # the second round comes from the remembered rows
        for subset in (trials, trials[::3]):
            mine, optunas = ours._get_internal_repr(subset, space, study), theirs._get_internal_repr(subset, space, study)
            assert list(mine) == list(optunas)
            for name in mine:
                assert mine[name].dtype == optunas[name].dtype and mine[name].tolist() == optunas[name].tolist()
    assert 0 < len(ours._get_internal_repr(trials, spaces[1], study)["k1"]) < len(trials)
