"""Fixtures for the search tests: the tiny space's CLI arguments, an instant evaluator, worker processes."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nas.arch import ArchSpec, arch_hash
from nas.search import AccuracyEvaluator, Evaluation
from tests.conftest import REPO, TINY_SPACE

#: Proxy settings small enough for a trial of the tiny space to train in about a second.
TINY_PROXY = ["--data", "digits", "--subset", "100", "--epochs", "2", "--batch-size", "25", "--threads", "1"]


def search_args(table: Path, out: Path, *extra: str, trials: int = 3) -> list[str]:
    """``nas search`` arguments for the tiny space (without the leading ``search``)."""
    return ["--target", str(table), "--space", str(TINY_SPACE), *TINY_PROXY, "--trials", str(trials),
            "--out", str(out), "--no-baselines", *extra]


class FakeEvaluator(AccuracyEvaluator):
    """Instant, deterministic accuracies from the architecture hash (rising over the epochs).

    ``poor``: architectures whose accuracy is made low (to test early stopping).
    """

    def __init__(self, epochs: int = 3, poor: Callable[[ArchSpec], bool] | None = None) -> None:
        self.n_epochs, self.poor = epochs, poor
        self.trained: list[str] = []

    @property
    def epochs(self) -> int:
        return self.n_epochs

    def evaluate(self, arch: ArchSpec, *, report: Callable[[int, float], None] | None = None) -> Evaluation:
        digest = arch_hash(arch)
        self.trained.append(digest)
        base = 0.5 + int(hashlib.sha256(digest.encode()).hexdigest()[:6], 16) / 0xFFFFFF * 0.4
        if self.poor is not None and self.poor(arch):
            base = 0.1
        accs: list[float] = []
        for epoch in range(1, self.n_epochs + 1):
            accs.append(round(base * epoch / self.n_epochs, 6))
            if report is not None:
                report(epoch, accs[-1])
        return Evaluation(accs[-1], tuple(accs), "completed", 0.0)


def nas_command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "nas", "search", *args]


# SIGINT as in a terminal, also when the suite runs with it ignored (a background job inherits the
# ignore through exec). Set by the child's own first line, not by a preexec_fn: Python code between
# fork and exec can deadlock once the suite has threads (JAX, imported by the LiteRT tests, has).
_HEAR_SIGINT = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                "runpy.run_module('nas', run_name='__main__', alter_sys=True)")


def start_worker(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m nas search ARGS`` in its own process group, output to ``log``."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", _HEAR_SIGINT, *nas_command(args)[3:]]
    with open(log, "wb") as fh:
        return subprocess.Popen(command, cwd=log.parent, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


def kill(proc: subprocess.Popen[bytes]) -> None:
    """``kill -9`` a worker started by :func:`start_worker` (and anything it started)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """A list to put started workers in; any still running at the end are killed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        kill(proc)


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)


def kill_when(proc: subprocess.Popen[bytes], condition: Callable[[], bool], timeout_s: float, what: str,
              poll_s: float = 0.2) -> None:
    """``kill -9`` ``proc`` at a moment when ``condition`` holds, without a race (see :func:`signal_when`)."""
    signal_when(proc, condition, timeout_s, what, poll_s, act=lambda: kill(proc))


def signal_when(proc: subprocess.Popen[bytes], condition: Callable[[], bool], timeout_s: float, what: str,
                poll_s: float = 0.2, *, act: Callable[[], None] | None = None) -> None:
    """Send ``proc`` SIGINT (or do ``act``) at a moment when ``condition`` holds, without a race.

    Between a poll that sees the condition and the signal, the worker may move on (finish the trial it
    was seen training). So freeze it (SIGSTOP), look again, and act only if the condition still holds
    (a signal sent to a frozen process arrives when it goes on, where it was frozen); otherwise let it
    go on and wait for the next such moment.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        wait_until(condition, max(deadline - time.monotonic(), 0.0), what, poll_s)
        os.killpg(proc.pid, signal.SIGSTOP)
        if condition():
            if act is not None:
                act()
                return
            proc.send_signal(signal.SIGINT)
            os.killpg(proc.pid, signal.SIGCONT)
            return
        os.killpg(proc.pid, signal.SIGCONT)


def sqlite_states(db: Path) -> dict[int, str]:
    """Trial number -> state, read straight from an Optuna SQLite file (while others write it)."""
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            return dict(conn.execute("SELECT number, state FROM trials").fetchall())
    except sqlite3.OperationalError:  # the tables do not exist yet
        return {}


@pytest.fixture(scope="session")
def search_table(tiny_table: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's tiny table whose predictions are all positive.

    The correction fitted on the tiny space's few networks can predict a slightly negative
    latency for its smallest networks; budgets and the reward need positive latencies, so the
    copy raises the correction's offset until the fastest network takes at least 0.05 ms.
    """
    import json

    from nas.latency import TableEstimator, load_table
    from nas.search import extreme_arch
    from nas.space import load_space

    fastest = TableEstimator(load_table(tiny_table), on_missing="error", save=False)
    fastest_ms = fastest.latency_ms(extreme_arch(load_space(TINY_SPACE), fastest))
    data = json.loads(tiny_table.read_text())
    data["correction"]["offset_ms"] += max(0.0, 0.05 - fastest_ms)
    path = tmp_path_factory.mktemp("search_table") / "tiny.json"
    path.write_text(json.dumps(data))
    return path


def sqlite_training(db: Path) -> set[int]:
    """Numbers of RUNNING trials past sampling (their ``worker`` attribute is set) in an SQLite study."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            rows = conn.execute("SELECT t.number FROM trials t JOIN trial_user_attributes a ON a.trial_id = "
                                "t.trial_id WHERE t.state = 'RUNNING' AND a.key = 'worker'").fetchall()
    except sqlite3.OperationalError:
        return set()
    return {r[0] for r in rows}
