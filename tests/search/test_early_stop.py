"""The pareto mode's own early-stopping rule (successive halving within latency bands)."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from nas.arch import arch_hash
from nas.latency import TableEstimator, load_table
from nas.search import LatencyBandHalving, SearchConfig, extreme_arch, run_search
from nas.search.budget import extreme_params
from nas.search._early_stop import MinPeersPruner
from nas.search.record import read_records, records_of
from nas.space import load_space
from tests.conftest import TINY_SPACE
from tests.search.conftest import FakeEvaluator


def _study_with(peers: list[tuple[float, list[float]]]) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for lat, accs in peers:
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.COMPLETE, values=[accs[-1], lat], params={"x": 0.0},
            distributions={"x": FloatDistribution(0, 1)},
            user_attrs={"latency_ms": lat, "acc_per_epoch": accs}))
    return study


def test_rungs() -> None:
    rule = LatencyBandHalving(reduction_factor=3, min_resource=1)
    assert [e for e in range(1, 30) if rule.is_rung(e)] == [1, 3, 9, 27]


def test_poor_candidate_in_its_band_is_stopped_good_one_continues() -> None:
    study = _study_with([(5.0, [0.70, 0.80, 0.85]), (5.2, [0.65, 0.75, 0.80]), (4.8, [0.60, 0.70, 0.78]),
                         (5.1, [0.40, 0.50, 0.55])])
    rule = LatencyBandHalving(band=0.25, reduction_factor=3, min_peers=3)
    trials = read_records(study)
    # 5 candidates in the band (4 peers + itself) -> keep the top ceil(5 / 3) = 2 at epoch 1.
    assert rule.should_stop(trials, trial_number=99, latency_ms=5.0, epoch=1, accuracy=0.50)
    assert not rule.should_stop(trials, trial_number=99, latency_ms=5.0, epoch=1, accuracy=0.68)
    # Epoch 2 is not a rung: nobody is stopped there.
    assert not rule.should_stop(trials, trial_number=99, latency_ms=5.0, epoch=2, accuracy=0.10)


def test_candidates_in_another_latency_band_are_not_compared() -> None:
    # Slow, accurate networks must not stop a fast one: the fast one has no peers in its band.
    study = _study_with([(10.0, [0.9]), (10.5, [0.91]), (9.8, [0.92]), (10.1, [0.93])])
    rule = LatencyBandHalving(band=0.25, min_peers=3)
    assert not rule.should_stop(read_records(study), trial_number=99, latency_ms=3.0, epoch=1,
                                accuracy=0.30)
    assert rule.should_stop(read_records(study), trial_number=99, latency_ms=10.0, epoch=1,
                            accuracy=0.30)


def test_too_few_peers_never_stops() -> None:
    study = _study_with([(5.0, [0.9]), (5.0, [0.95])])
    rule = LatencyBandHalving(min_peers=3)
    assert not rule.should_stop(read_records(study), trial_number=99, latency_ms=5.0, epoch=1,
                                accuracy=0.01)


# ---------------------------------------------------------------- in a search (instant evaluator)

def _run(tmp_path: Path, search_table: Path, objective: str) -> tuple[optuna.Study, LatencyBandHalving]:
    space = load_space(TINY_SPACE)
    est = TableEstimator(load_table(search_table), on_missing="error", save=False)
    slowest = est.latency_ms(extreme_arch(space, est, fastest=False))
    # Every network is within the budget, so latency does not decide; one in four is poor, so most of a
    # poor network's peers are better than it (with one in two, ties among the poor kept them all in the
    # top third of a band in some draws).
    poor = lambda arch: int(arch_hash(arch)[:8], 16) % 4 == 0  # noqa: E731
    config = SearchConfig(n_trials=20, budget_ms=slowest, run_dir=tmp_path, objective=objective, sampler="random")
    study = run_search(config, space, est, FakeEvaluator(epochs=3, poor=poor), fingerprint={},
                       warm_start=extreme_params(space, est))
    return study, LatencyBandHalving()


def test_pareto_mode_stops_poor_candidates_in_their_latency_band(tmp_path: Path, search_table: Path) -> None:
    study, rule = _run(tmp_path, search_table, "pareto")
    trials = study.get_trials()
    stopped = [t for t in trials if t.user_attrs.get("status") == "pruned"]
    assert stopped, "nobody was stopped early"
    for t in trials:  # the rule, re-checked on what the trial saw: the earlier trials of its band
        if t.user_attrs["status"].startswith("duplicate"):  # reused a twin's result: not evaluated
            continue
        first = t.user_attrs["acc_per_epoch"][0]
        earlier = [x for x in trials if x.number < t.number]
        verdict = rule.should_stop(records_of(earlier), trial_number=t.number, latency_ms=t.user_attrs["latency_ms"], epoch=1,
                                   accuracy=first)
        assert (t in stopped) == verdict, t.number
    for t in stopped:  # stopped after the first epoch (the only rung before the last), and a poor one
        assert len(t.user_attrs["acc_per_epoch"]) == 1 and t.state == TrialState.PRUNED
        peers = rule.peers(records_of(x for x in trials if x.number < t.number), t.user_attrs["latency_ms"], 1,
                           t.number)
        assert len(peers) >= rule.min_peers and t.user_attrs["val_acc"] < max(peers)
    assert all(len(t.user_attrs["acc_per_epoch"]) == 3 for t in trials if t.state == TrialState.COMPLETE)


def test_reward_mode_prunes_with_successive_halving_after_enough_peers(tmp_path: Path, search_table: Path) -> None:
    study, _ = _run(tmp_path, search_table, "reward")
    trials = study.get_trials()
    pruned = [t for t in trials if t.user_attrs.get("status") == "pruned"]
    assert pruned, "nobody was pruned"
    for t in pruned:
        assert t.state == TrialState.PRUNED and list(t.intermediate_values) == [1]
        reported = [x for x in trials if x.number < t.number and 1 in x.intermediate_values]
        assert len(reported) >= 3  # never on the word of fewer than three others
        assert t.intermediate_values[1] < max(x.intermediate_values[1] for x in reported)
    assert all(len(t.intermediate_values) == 3 for t in trials if t.state == TrialState.COMPLETE)


def test_min_peers_pruner_overrides_only_early_decisions() -> None:
    class Always(optuna.pruners.BasePruner):
        def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
            return True

    study = optuna.create_study(pruner=MinPeersPruner(Always(), min_peers=2))
    for n in range(4):
        trial = study.ask()
        trial.report(0.5, 1)
        assert trial.should_prune() == (n >= 2)
        study.tell(trial, state=TrialState.PRUNED)
