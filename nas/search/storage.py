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
    elif not url.startswith(("sqlite:", "postgresql", "mysql")):
        raise SearchError(f"--storage {url!r}: expected an SQLAlchemy URL such as "
                          "'postgresql://user:password@host:5432/dbname' or 'sqlite:///path/study.db'")
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    try:
        return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_s, grace_period=grace_s,
                          heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3))
    except ImportError as exc:
        raise SearchError(f"--storage {url.split('@')[-1]}: the database driver is missing ({exc}); for PostgreSQL "
                          "install it with: pip install 'nas[postgres]'") from None
    except Exception as exc:  # sqlalchemy OperationalError and friends: unreachable server, bad credentials
        safe = url.split("@")[-1] if "@" in url else url
        raise SearchError(f"--storage ...@{safe}: cannot open the study database: {str(exc).splitlines()[0]}") from None


def counts(study: optuna.Study) -> dict[str, int]:
    trials = study.get_trials(deepcopy=False)
    out = {"done": 0, "running": 0, "waiting": 0}
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

