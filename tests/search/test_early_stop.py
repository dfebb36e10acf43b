"""The pareto mode's own early-stopping rule (successive halving within latency bands)."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from nas.search import LatencyBandHalving


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
    trials = study.get_trials(deepcopy=False)
    # 5 candidates in the band (4 peers + itself) -> keep the top ceil(5 / 3) = 2 at epoch 1.
    assert rule.should_stop(trials, trial_number=99, latency_ms=5.0, epoch=1, accuracy=0.50)
    assert not rule.should_stop(trials, trial_number=99, latency_ms=5.0, epoch=1, accuracy=0.68)
    # Epoch 2 is not a rung: nobody is stopped there.
    assert not rule.should_stop(trials, trial_number=99, latency_ms=5.0, epoch=2, accuracy=0.10)


def test_candidates_in_another_latency_band_are_not_compared() -> None:
    # Slow, accurate networks must not stop a fast one: the fast one has no peers in its band.
    study = _study_with([(10.0, [0.9]), (10.5, [0.91]), (9.8, [0.92]), (10.1, [0.93])])
    rule = LatencyBandHalving(band=0.25, min_peers=3)
    assert not rule.should_stop(study.get_trials(deepcopy=False), trial_number=99, latency_ms=3.0, epoch=1,
                                accuracy=0.30)
    assert rule.should_stop(study.get_trials(deepcopy=False), trial_number=99, latency_ms=10.0, epoch=1,
                            accuracy=0.30)


def test_too_few_peers_never_stops() -> None:
    study = _study_with([(5.0, [0.9]), (5.0, [0.95])])
    rule = LatencyBandHalving(min_peers=3)
    assert not rule.should_stop(study.get_trials(deepcopy=False), trial_number=99, latency_ms=5.0, epoch=1,
                                accuracy=0.01)
