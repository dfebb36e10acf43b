"""Three ``nas search`` workers on one study in a real PostgreSQL server; one is killed mid-trial.

The server is started on loopback by :mod:`tests.postgres` (binaries from the system; ``.ci/run``
installs them). Without them these tests fail: the distributed mode must not go untested.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from nas.search.confirm import confirm_candidates, stored_confirmations
from nas.search.record import RESULT_STATUSES, TrialRecord
from tests.postgres import find_pg_bin, postgres_server
from tests.search.conftest import kill, kill_when, search_args, start_worker

pytestmark = pytest.mark.postgres

N_TRIALS = 9
DONE = (TrialState.COMPLETE, TrialState.PRUNED)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    if find_pg_bin() is None:
        pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) not found: the distributed-search tests need a "
                    "real server. Install Debian's 'postgresql' package (.ci/run does) or put initdb on PATH.")
    with postgres_server() as url:
        yield url


def _trials(storage: optuna.storages.BaseStorage, study: str) -> list[FrozenTrial]:
    try:
        return optuna.load_study(study_name=study, storage=storage).get_trials()
    except KeyError:  # not created yet
        return []


@pytest.fixture(scope="module")
def cluster(pg_url: str, search_table: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Run 3 workers on one study; kill -9 the first one while it trains; let the others finish."""
    tmp = tmp_path_factory.mktemp("cluster")
    # One storage (one small connection pool) for all the polling below: a new storage per poll
    # would open connections faster than they are closed and exhaust the server's limit.
    storage = optuna.storages.RDBStorage(pg_url.replace("postgresql://", "postgresql+psycopg://"),
                                         engine_kwargs={"pool_size": 4, "max_overflow": 2})
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(3):
            args = search_args(search_table, tmp / f"run{i}", "--storage", pg_url, "--study", "cluster",
                               "--heartbeat", "1", "--grace", "4", "--epochs", "3", "--subset", "400",
                               trials=N_TRIALS)  # trials of a few seconds: the kill lands in one
            procs.append(start_worker(args, tmp / f"worker{i}.log"))
        victim = f"{socket.gethostname()}:{procs[0].pid}"

        def victim_training() -> bool:
            for i, p in enumerate(procs):
                assert p.poll() is None, (tmp / f"worker{i}.log").read_text()
            trials = _trials(storage, "cluster")
            return sum(t.state in DONE for t in trials) >= 2 and any(
                t.state == TrialState.RUNNING and t.user_attrs.get("worker") == victim for t in trials)

        kill_when(procs[0], victim_training, 300, "worker 0 training a trial after two trials finished", poll_s=0.3)
        killed_at = time.monotonic()
        for i, p in enumerate(procs[1:], 1):
            p.wait(timeout=300)
            assert p.returncode == 0, (tmp / f"worker{i}.log").read_text()
        return {"trials": _trials(storage, "cluster"), "victim": victim, "logs": tmp,
                "after_kill_s": time.monotonic() - killed_at,
                "confirmed": stored_confirmations(optuna.load_study(study_name="cluster", storage=storage))}
    finally:
        for p in procs:
            kill(p)
        storage.engine.dispose()


def test_n_trials_in_total_none_lost_or_counted_twice(cluster: dict[str, object]) -> None:
    trials: list[FrozenTrial] = cluster["trials"]  # type: ignore[assignment]
    done = [t for t in trials if t.state in DONE]
    assert len(done) == N_TRIALS
    failed = [t for t in trials if t.state == TrialState.FAIL]
    # FAIL: the killed worker's trial, or a trial a worker created after the N-th had started.
    assert all(t.user_attrs.get("surplus") or t.user_attrs.get("worker") == cluster["victim"] for t in failed)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    workers = {t.user_attrs.get("worker") for t in done}
    assert len(workers) >= 2  # the two survivors shared the work
    # No architecture trained twice: identical proposals are avoided, and a twin reuses the result.
    trained = [t.user_attrs["hash"] for t in done if t.user_attrs["status"] in ("trained", "pruned", "diverged")]
    assert len(trained) == len(set(trained))
    for t in done:
        if t.user_attrs["status"].startswith("duplicate"):
            twin = next(x for x in trials if x.number == t.user_attrs["duplicate_of"])
            assert twin.user_attrs["hash"] == t.user_attrs["hash"] and twin.state in DONE


def test_killed_worker_is_detected_and_its_trial_retried(cluster: dict[str, object]) -> None:
    trials: list[FrozenTrial] = cluster["trials"]  # type: ignore[assignment]
    killed = [t for t in trials if t.state == TrialState.FAIL and t.user_attrs.get("worker") == cluster["victim"]]
    assert len(killed) == 1, "the victim was killed while training exactly one trial"
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed[0].number]
    assert len(retries) == 1 and retries[0].state in DONE
    assert killed[0].params.items() <= retries[0].params.items()
    assert retries[0].user_attrs["hash"] == killed[0].user_attrs["hash"]
    assert retries[0].user_attrs["worker"] != cluster["victim"]


def test_the_survivors_confirm_the_same_candidates_and_agree_on_the_winner(cluster: dict[str, object]) -> None:
    trials: list[FrozenTrial] = cluster["trials"]  # type: ignore[assignment]
    feasible = [TrialRecord.from_trial(t) for t in trials if t.state == TrialState.COMPLETE
                and t.user_attrs.get("status") in RESULT_STATUSES and t.user_attrs["latency_ms"] <= t.user_attrs["budget_ms"]]
    expected = {t.hash for t in confirm_candidates(feasible, "reward", 3)}  # the default --confirm-top
    assert expected and cluster["confirmed"].keys() == expected  # type: ignore[attr-defined]
    assert all(set(seeds) == {1, 2} for seeds in cluster["confirmed"].values())  # type: ignore[attr-defined]
    logs: Path = cluster["logs"]  # type: ignore[assignment]
    winners = {json.loads((logs / f"run{i}" / "best_arch.json").read_text())["trial"] for i in (1, 2)}
    assert len(winners) == 1
