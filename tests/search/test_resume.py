"""``kill -9`` or Ctrl-C of ``python -m nas search`` mid-run, then the same command again: nothing lost, N trials."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from nas.arch import arch_hash
from nas.interrupt import handling_ctrl_c
from nas.latency import TableEstimator, load_table
from nas.search import AccuracyEvaluator, Evaluation, SearchConfig, extreme_arch, run_search
from nas.search.budget import extreme_params
from nas.space import load_space
from tests.conftest import TINY_SPACE, CtrlCWhileFreed
from tests.search.conftest import (FakeEvaluator, kill_when, nas_command, search_args, signal_when, sqlite_states,
                                   sqlite_training, start_worker)

FINISHED = ("COMPLETE", "PRUNED")


def test_kill_9_then_rerun_keeps_finished_trials_and_retries_the_running_one(
        search_table: Path, tmp_path: Path, workers: list[subprocess.Popen[bytes]]) -> None:
    out = tmp_path / "run"
    args = search_args(search_table, out, "--heartbeat", "1", "--grace", "3", trials=5)
    first = start_worker(args, tmp_path / "first.log")
    workers.append(first)

    def mid_run() -> bool:
        states = list(sqlite_states(out / "study.db").values())
        assert first.poll() is None, (tmp_path / "first.log").read_text()
        return sum(s in FINISHED for s in states) >= 2 and bool(sqlite_training(out / "study.db"))

    kill_when(first, mid_run, 240, "two finished trials and a third training", poll_s=0.05)
    storage = f"sqlite:///{out / 'study.db'}"
    before = optuna.load_study(study_name="search", storage=storage).get_trials()
    finished = {t.number: t for t in before if t.state in (TrialState.COMPLETE, TrialState.PRUNED)}
    killed = [t for t in before if t.state == TrialState.RUNNING]
    assert len(killed) == 1 and len(finished) >= 2

    second = subprocess.run(nas_command(args), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    after = {t.number: t for t in optuna.load_study(study_name="search", storage=storage).get_trials()}

    for number, t in finished.items():  # kept exactly
        assert (after[number].state, after[number].values, after[number].params, after[number].user_attrs) == \
            (t.state, t.values, t.params, t.user_attrs)
    assert after[killed[0].number].state == TrialState.FAIL
    retries = [t for t in after.values() if t.system_attrs.get("failed_trial") == killed[0].number]
    assert len(retries) == 1 and retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retries[0].params == killed[0].params  # the same architecture, trained again
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in after.values()) == 5
    assert "Results in" in second.stdout
    counts = next(line for line in (out / "summary.md").read_text().splitlines() if line.startswith("- trials:"))
    assert "failed 1" in counts and ",  " not in counts and "( " not in counts, counts  # the killed trial, named


def test_ctrl_c_queues_the_running_trial_for_the_rerun(
        search_table: Path, tmp_path: Path, workers: list[subprocess.Popen[bytes]]) -> None:
    """Ctrl-C needs no heartbeat: the interrupted trial is failed and its retry queued at once."""
    out = tmp_path / "run"
    args = search_args(search_table, out, "--grace", "600", trials=4)  # a stale heartbeat would not come in time
    first = start_worker(args, tmp_path / "first.log")
    workers.append(first)

    def training_the_second() -> bool:
        assert first.poll() is None, (tmp_path / "first.log").read_text()
        return any(n >= 1 for n in sqlite_training(out / "study.db"))

    # Frozen while the poll looks again: under CI load a trial once finished between the poll and the
    # Ctrl-C, and nothing was left to interrupt.
    signal_when(first, training_the_second, 240, "a trial after the first one training", poll_s=0.05)
    # 130, or killed by SIGINT (a shell shows 130 for both): CPython ends that way when the interrupt
    # passed through code run by a C extension (pybind11's exec) before nas caught it.
    assert first.wait(timeout=60) in (130, -signal.SIGINT), (tmp_path / "first.log").read_text()
    assert "re-run the same command to resume" in (tmp_path / "first.log").read_text()
    storage = f"sqlite:///{out / 'study.db'}"
    before = optuna.load_study(study_name="search", storage=storage).get_trials()
    interrupted = [t for t in before if t.state == TrialState.FAIL]
    queued = [t for t in before if t.state == TrialState.WAITING]
    assert len(interrupted) == 1 and len(queued) == 1
    assert queued[0].system_attrs["failed_trial"] == interrupted[0].number
    assert queued[0].params == interrupted[0].params and "val_acc" not in queued[0].user_attrs

    second = subprocess.run(nas_command(args), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    after = optuna.load_study(study_name="search", storage=storage).get_trials()
    assert after[queued[0].number].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in after) == 4
    assert "waiting for" not in second.stdout  # nothing stale to wait for


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_trial_killed_before_its_first_heartbeat_is_retried(tmp_path: Path) -> None:
    """kill -9 between creating a trial and its first heartbeat leaves no heartbeat at all."""
    from nas.search._storage import fail_stale, make_storage

    storage = make_storage(None, tmp_path, heartbeat_s=1, grace_s=100)
    study = optuna.create_study(storage=storage)
    zombie = study.ask({"x": optuna.distributions.IntDistribution(0, 9)})  # no heartbeat thread: no heartbeat
    alive = study.ask()
    storage.record_heartbeat(alive._trial_id)
    fail_stale(study, storage, grace_s=0, shared=False)
    states = {t.number: t.state for t in study.get_trials()}
    assert states[zombie.number] == TrialState.FAIL and states[alive.number] == TrialState.RUNNING
    retry = [t for t in study.get_trials() if t.system_attrs.get("failed_trial") == zombie.number]
    assert len(retry) == 1 and retry[0].state == TrialState.WAITING and retry[0].params == zombie.params


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_waiting_retry_counts_towards_the_trials(tmp_path: Path) -> None:
    """A retry enqueued while another worker creates a new trial: the later-numbered one is the surplus."""
    from nas.search._storage import is_surplus, make_storage

    study = optuna.create_study(storage=make_storage(None, tmp_path))
    done = study.ask()
    study.tell(done, 0.5)
    study.enqueue_trial({}, skip_if_exists=False)  # trial 1: a dead worker's retry, not started yet
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE, TrialState.WAITING]
    assert not is_surplus(study, 1, n_trials=2)  # the retry itself runs
    assert is_surplus(study, 2, n_trials=2)  # a new trial created after it would be the third
    assert not is_surplus(study, 2, n_trials=3)


class _CtrlCSwallowedAfterTrial(FakeEvaluator):
    """Ctrl-C lands in a finalizer at the end of the first evaluation (as it can when PyTorch frees tensors).

    ``scores``: an evaluator that trains nothing and reports once (a table's or a supernet's score).
    """

    def __init__(self, scores: bool = False) -> None:
        super().__init__(epochs=1 if scores else 3)
        self.scores = scores

    @property
    def trains(self) -> bool:
        return not self.scores

    def evaluate(self, arch, *, report=None) -> Evaluation:  # type: ignore[no-untyped-def]
        result = super().evaluate(arch, report=report)
        if len(self.trained) == 1:
            CtrlCWhileFreed()
        return result


def _interrupted_search(tmp_path: Path, table: Path, evaluator: AccuracyEvaluator, *, warm: bool,
                        n_trials: int = 5) -> list[FrozenTrial]:
    """A search of the tiny space under the CLI's Ctrl-C handling that must end in ``KeyboardInterrupt``;
    the study's trials after it. ``warm``: with the warm start (a waiting trial, taken by ``Study.ask``)."""
    space = load_space(TINY_SPACE)
    est = TableEstimator(load_table(table), on_missing="error", save=False)
    config = SearchConfig(n_trials=n_trials, budget_ms=est.latency_ms(extreme_arch(space, est, fastest=False)),
                          run_dir=tmp_path, sampler="random")
    with handling_ctrl_c(), pytest.raises(KeyboardInterrupt):
        run_search(config, space, est, evaluator, fingerprint={},
                   warm_start=extreme_params(space, est) if warm else None)
    return optuna.load_study(study_name="search", storage=f"sqlite:///{tmp_path / 'study.db'}").get_trials()


def test_a_ctrl_c_swallowed_during_a_trial_interrupts_that_trial(
        tmp_path: Path, search_table: Path, swallowed: list[type[BaseException]]) -> None:
    """Like a Ctrl-C raised during the trial (the CI once saw this one land just after training ended)."""
    evaluator = _CtrlCSwallowedAfterTrial()
    trials = _interrupted_search(tmp_path, search_table, evaluator, warm=True)
    assert swallowed == [KeyboardInterrupt]
    assert len(evaluator.trained) == 1  # a search that did not check the flag trained all 5
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[1].system_attrs["failed_trial"] == 0 and trials[1].params == trials[0].params


@pytest.mark.parametrize("created_by", ["ask", "create"])
def test_a_ctrl_c_just_after_the_trial_is_stored_fails_and_queues_it(
        tmp_path: Path, search_table: Path, sigint_raises: None, monkeypatch: pytest.MonkeyPatch,
        created_by: str) -> None:
    """The CI's case: Ctrl-C a few milliseconds after the trial's creation was written, before the code that
    fails an interrupted trial; the trial was left RUNNING, and the re-run had to wait --grace for it.
    ``ask``: a waiting trial (the warm start) taken by ``Study.ask``; ``create``: a new one in one write.
    (Random sampling: its proposals call no ``Study.ask``; other samplers' do, on a copy of the study.)"""
    from nas.search._trial import TrialRunner

    owner, name = (optuna.Study, "ask") if created_by == "ask" else (TrialRunner, "_create")
    original = getattr(owner, name)

    def then_ctrl_c(*args, **kwargs):  # type: ignore[no-untyped-def]
        created = original(*args, **kwargs)
        signal.raise_signal(signal.SIGINT)
        return created

    monkeypatch.setattr(owner, name, then_ctrl_c)
    evaluator = FakeEvaluator()
    trials = _interrupted_search(tmp_path, search_table, evaluator, warm=created_by == "ask")
    assert evaluator.trained == []
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[1].system_attrs["failed_trial"] == 0 and trials[1].params == trials[0].params


class _Pruned(FakeEvaluator):
    def evaluate(self, arch, *, report=None) -> Evaluation:  # type: ignore[no-untyped-def]
        self.trained.append(arch_hash(arch))
        raise optuna.TrialPruned("stopped early")


@pytest.mark.parametrize("outcome", ["complete", "pruned"])
def test_a_ctrl_c_while_the_outcome_is_stored_keeps_it_and_stops(
        tmp_path: Path, search_table: Path, sigint_raises: None, monkeypatch: pytest.MonkeyPatch,
        outcome: str) -> None:
    """The write of a trial's outcome is not cut: the finished result is kept, nothing is left RUNNING."""
    original = optuna.Study.tell

    def ctrl_c_then_tell(*args, **kwargs):  # type: ignore[no-untyped-def]
        signal.raise_signal(signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(optuna.Study, "tell", ctrl_c_then_tell)
    evaluator = FakeEvaluator() if outcome == "complete" else _Pruned()
    trials = _interrupted_search(tmp_path, search_table, evaluator, warm=False)
    assert len(evaluator.trained) == 1
    assert [t.state for t in trials] == [TrialState.COMPLETE if outcome == "complete" else TrialState.PRUNED]


@pytest.mark.parametrize("created_by", ["ask", "create"])
def test_a_ctrl_c_swallowed_while_proposing_creates_and_takes_no_trial(
        tmp_path: Path, search_table: Path, swallowed: list[type[BaseException]], monkeypatch: pytest.MonkeyPatch,
        created_by: str) -> None:
    """Neither a new trial failed at once nor a waiting one taken (which would use up one of its retries)."""
    from nas.search._proposer import Proposer

    original = Proposer.propose

    def propose_then_ctrl_c(*args, **kwargs):  # type: ignore[no-untyped-def]
        proposal = original(*args, **kwargs)
        CtrlCWhileFreed()
        return proposal

    monkeypatch.setattr(Proposer, "propose", propose_then_ctrl_c)
    evaluator = FakeEvaluator()
    trials = _interrupted_search(tmp_path, search_table, evaluator, warm=created_by == "ask")
    assert swallowed == [KeyboardInterrupt] and evaluator.trained == []
    assert [t.state for t in trials] == ([TrialState.WAITING] if created_by == "ask" else [])


def test_a_ctrl_c_swallowed_during_an_unstored_score_stores_nothing(
        tmp_path: Path, search_table: Path, swallowed: list[type[BaseException]]) -> None:
    """A worker alone, scoring without training, stores a trial only when finished: interrupted, nothing."""
    evaluator = _CtrlCSwallowedAfterTrial(scores=True)
    trials = _interrupted_search(tmp_path, search_table, evaluator, warm=False)
    assert swallowed == [KeyboardInterrupt] and len(evaluator.trained) == 1
    assert trials == []
