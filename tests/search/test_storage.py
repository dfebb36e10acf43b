"""Retries of interrupted trials (:func:`nas.search._storage.enqueue_retry`) and a worker whose trial
was retried elsewhere while it still ran (:func:`nas.search.run_search`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import TrialState

from nas.arch import ArchSpec
from nas.errors import SearchError
from nas.latency import TableEstimator, load_table
from nas.search import Evaluation, SearchConfig, extreme_arch, run_search
from nas.search.budget import extreme_params
from nas.search.reward import RewardSpec
from nas.search._storage import MAX_RETRY, enqueue_retry, make_storage, new_trial
from nas.space import load_space
from tests.conftest import TINY_SPACE
from tests.search.conftest import FakeEvaluator


def _interrupted(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """A trial that trained one epoch, passed the pruner's first rung, and was then interrupted."""
    trial = study.ask({"x": CategoricalDistribution([1, 2, 3])})
    for key, value in {"hash": "abc", "compact": "in16x3-...", "latency_ms": 0.7, "worker": "host:1",
                       "val_acc": 0.4, "acc_per_epoch": [0.4], "status": "pruned", "warm_start": True}.items():
        trial.set_user_attr(key, value)
    trial.set_constraint("latency", -0.1)
    trial.report(0.4, 1)
    assert not trial.should_prune()  # the successive-halving pruner records its rung on the trial
    study.tell(trial, state=TrialState.FAIL)
    return study.trials[trial.number]


def test_a_retry_keeps_the_architecture_and_drops_the_dead_attempt() -> None:
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1))
    failed = _interrupted(study)
    assert "completed_rung_0" in failed.system_attrs
    enqueue_retry(study, failed)
    retry = study.trials[-1]
    assert retry.state == TrialState.WAITING and retry.params == failed.params
    assert retry.user_attrs == {"hash": "abc", "compact": "in16x3-...", "latency_ms": 0.7, "warm_start": True}
    assert retry.system_attrs == {"constraints:latency": -0.1, "failed_trial": failed.number,
                                  "retry_history": [failed.number]}
    assert retry.intermediate_values == {}


def test_a_retry_of_an_enqueued_trial_keeps_its_fixed_parameters() -> None:
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"x": 537}, user_attrs={"warm_start": True})  # as the search's first trial is queued
    trial = study.ask()
    study.tell(trial, state=TrialState.FAIL)  # interrupted before it sampled x
    enqueue_retry(study, study.trials[0])
    retry = study.ask()
    assert retry.user_attrs["warm_start"] and retry.suggest_int("x", 0, 1000) == 537


def test_retries_of_a_retry_name_the_original_and_stop_after_the_limit() -> None:
    study = optuna.create_study(direction="maximize")
    enqueue_retry(study, _interrupted(study))
    for attempt in range(1, MAX_RETRY + 1):
        trial = study.ask()  # runs the queued retry
        study.tell(trial, state=TrialState.FAIL)
        enqueue_retry(study, study.trials[trial.number])
        queued = [t for t in study.trials if t.state == TrialState.WAITING]
        if attempt < MAX_RETRY:
            assert queued[0].system_attrs["failed_trial"] == 0
            assert queued[0].system_attrs["retry_history"] == list(range(0, attempt + 1))
        else:
            assert queued == []


class _StaleMidTraining(FakeEvaluator):
    """Trains normally, except that while training trial ``victim`` it is "suspended": another worker
    meanwhile declares the trial stale and queues its retry, as the heartbeat check does."""

    def __init__(self, storage: optuna.storages.RDBStorage, study_name: str, victim: int) -> None:
        super().__init__(epochs=3)
        self.storage, self.study_name, self.victim = storage, study_name, victim
        self.calls = 0

    def _declare_stale(self) -> None:
        study = optuna.load_study(study_name=self.study_name, storage=self.storage)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        assert len(running) == 1
        self.storage.set_trial_state_values(running[0]._trial_id, state=TrialState.FAIL)
        enqueue_retry(study, self.storage.get_trial(running[0]._trial_id))

    def evaluate(self, arch: ArchSpec, *, report: Callable[[int, float], None] | None = None) -> Evaluation:
        self.calls += 1
        if self.calls == self.victim + 1:
            self._declare_stale()
        return super().evaluate(arch, report=report)


class _StaleAfterTraining(_StaleMidTraining):
    """As :class:`_StaleMidTraining`, but the trial is declared stale after its last report, before the
    worker writes its result (Optuna refuses writes to a finished trial)."""

    def evaluate(self, arch: ArchSpec, *, report: Callable[[int, float], None] | None = None) -> Evaluation:
        self.calls += 1
        result = FakeEvaluator.evaluate(self, arch, report=report)
        if self.calls == self.victim + 1:
            self._declare_stale()
        return result


def _setup(tmp_path: Path, search_table: Path) -> tuple[SearchConfig, object, TableEstimator]:
    space = load_space(TINY_SPACE)
    est = TableEstimator(load_table(search_table), on_missing="error", save=False)
    slowest = est.latency_ms(extreme_arch(space, est, fastest=False))
    config = SearchConfig(n_trials=5, budget_ms=slowest, run_dir=tmp_path, sampler="random", prune=False)
    return config, space, est


@pytest.mark.parametrize("stale", [_StaleMidTraining, _StaleAfterTraining])  # while training, or writing
def test_a_worker_whose_trial_was_retried_elsewhere_goes_on(tmp_path: Path, search_table: Path,
                                                            stale: type[_StaleMidTraining]) -> None:
    config, space, est = _setup(tmp_path, search_table)
    storage = make_storage(None, tmp_path)
    optuna.create_study(storage=storage, study_name=config.study_name, direction="maximize")
    lines: list[str] = []
    study = run_search(config, space, est, stale(storage, config.study_name, victim=2),
                       fingerprint={}, warm_start=extreme_params(space, est), log=lines.append)
    trials = study.get_trials()
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == 5, [(t.number, t.state) for t in trials]
    lost = [t for t in trials if t.state == TrialState.FAIL]
    assert [t.number for t in lost] == [2]
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == 2)
    assert retry.state == TrialState.COMPLETE and retry.params == lost[0].params
    assert any("trial 2: another worker declared this one stale" in line for line in lines), lines


def test_an_objective_that_is_not_a_number_stops_the_search(tmp_path: Path, search_table: Path) -> None:
    config, space, est = _setup(tmp_path, search_table)

    class _NaN(FakeEvaluator):
        def evaluate(self, arch: ArchSpec, *, report: Callable[[int, float], None] | None = None) -> Evaluation:
            return Evaluation(float("nan"), (float("nan"),), "completed", 0.0)

    with pytest.raises(SearchError, match=r"trial 0: the objective is not a number .* check --w"):
        run_search(config, space, est, _NaN(epochs=1), fingerprint={}, warm_start=extreme_params(space, est))
    for w in (float("nan"), float("-inf"), 0.5):
        with pytest.raises(SearchError, match=r"--w: expected an exponent <= 0"):
            RewardSpec(w, w)


@pytest.mark.parametrize("state", [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING,
                                   TrialState.WAITING])
def test_new_trial_is_what_optunas_create_trial_makes(state: TrialState) -> None:
    def kwargs() -> dict[str, Any]:  # fresh dicts for each (Optuna writes the constraints into system_attrs)
        return dict(params={"k": 5, "d": 2}, distributions={"k": CategoricalDistribution([3, 5]), "d": IntDistribution(1, 3)},
                    user_attrs={"hash": "ab"}, system_attrs={"plan": 1}, intermediate_values={1: 0.5},
                    constraints={"latency": -0.25})
    values = [0.9] if state == TrialState.COMPLETE else None
    ours, theirs = new_trial(state, values=values, **kwargs()), optuna.trial.create_trial(state=state, values=values, **kwargs())
    for name in ("state", "values", "params", "distributions", "user_attrs", "system_attrs", "intermediate_values",
                 "constraints", "number"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert (ours.datetime_start is None) == (theirs.datetime_start is None)
    assert (ours.datetime_complete is None) == (theirs.datetime_complete is None)
    with pytest.raises(ValueError):  # validated as there: a value outside its distribution
        new_trial(state, values=values, **{**kwargs(), "params": {"k": 4, "d": 2}})
