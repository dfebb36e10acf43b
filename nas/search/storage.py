"""Optuna storage and study set-up, and the accounting that honours ``--trials`` across workers.

Default storage is SQLite in the run directory; ``--storage postgresql://...`` shares one
study between many workers. Both use heartbeats: a worker that dies mid-trial stops
updating its trial's heartbeat, another worker (or the re-run) marks it failed after the
grace period and re-enqueues the same parameters, so the trial is retried.

Counting: a trial *counts* when it finished (COMPLETE or PRUNED). Before a worker runs a
trial it checks that fewer than N trials have finished or are running; after Optuna has
given the trial a number, trials with smaller numbers that are finished or running are
counted again, and a trial that would be the N+1-th is marked FAIL with the user attribute
``surplus`` and not run. Trial numbers are assigned atomically by the database, so
concurrent workers never run more than N trials in total.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from nas.errors import SearchError

__all__ = ["make_storage", "counts", "is_surplus", "enqueue_retry", "HEARTBEAT_S", "GRACE_S"]

HEARTBEAT_S = 5
GRACE_S = 20
DONE = (TrialState.COMPLETE, TrialState.PRUNED)


def make_storage(url: str | None, run_dir: Path, *, heartbeat_s: int = HEARTBEAT_S,
                 grace_s: int = GRACE_S) -> RDBStorage:
    if url is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{(run_dir / 'study.db').resolve()}"
    elif not url.startswith(("sqlite:", "postgresql", "postgres://", "mysql")):
        raise SearchError(f"--storage {url!r}: expected an SQLAlchemy URL such as "
                          "'postgresql://user:password@host:5432/dbname' or 'sqlite:///path/study.db'")
    url = _postgres_driver(url)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        engine_kwargs = _sqlite_engine_kwargs(url)
    else:
        engine_kwargs = {"pool_pre_ping": True}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_s, grace_period=grace_s,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3))
    except ImportError as exc:
        raise SearchError(f"--storage {url.split('@')[-1]}: the database driver is missing ({exc}); for PostgreSQL "
                          "install it with: pip install 'nas[postgres]'") from None
    except Exception as exc:  # sqlalchemy OperationalError and friends: unreachable server, bad credentials
        safe = url.split("@")[-1] if "@" in url else url
        raise SearchError(f"--storage ...@{safe}: cannot open the study database: {str(exc).splitlines()[0]}") from None


def _postgres_driver(url: str) -> str:
    """``postgresql://`` means psycopg2 to SQLAlchemy; use psycopg 3 (``nas[postgres]``) when that is what is installed."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            import importlib.util

            if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is not None:
                return "postgresql+psycopg://" + url[len(prefix):]
            return "postgresql://" + url[len(prefix):]
    return url


def _sqlite_engine_kwargs(url: str) -> dict[str, Any]:
    """SQLite in write-ahead-log mode with ``synchronous=NORMAL``.

    Every Optuna write (each sampled parameter, each attribute) is a transaction; in SQLite's
    default mode each costs several fsyncs, which makes a trial take seconds. WAL with
    ``synchronous=NORMAL`` is several times faster and still keeps every committed write through
    a crash or ``kill -9`` of the process (only a power cut may lose the last commits).
    """
    import sqlite3

    path = url.split("///", 1)[-1]
    if not path or path == ":memory:":
        return {"connect_args": {"timeout": 60}}

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=60, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    return {"creator": connect}


def counts(trials: list[optuna.trial.FrozenTrial]) -> dict[str, int]:
    out = {"done": 0, "running": 0, "waiting": 0, "total": len(trials)}
    for t in trials:
        if t.state in DONE:
            out["done"] += 1
        elif t.state == TrialState.RUNNING:
            out["running"] += 1
        elif t.state == TrialState.WAITING:
            out["waiting"] += 1
    return out


def is_surplus(study: optuna.Study, number: int, n_trials: int) -> bool:
    before = [t for t in study.get_trials(deepcopy=False, states=(*DONE, TrialState.RUNNING)) if t.number < number]
    return len(before) >= n_trials


def enqueue_retry(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Re-enqueue an interrupted trial with the same parameters (as the heartbeat callback does)."""
    RetryHeartbeatStaleTrialCallback(max_retry=3)(study, trial)

