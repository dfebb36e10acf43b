"""Optuna storage and study set-up, and the accounting that honours ``--trials`` across workers.

Default storage is SQLite in the run directory; ``--storage postgresql://...`` shares one
study between many workers. Both use heartbeats: a worker that dies mid-trial stops
updating its trial's heartbeat, another worker (or the re-run) marks it failed after the
grace period and re-enqueues the same parameters, so the trial is retried. SQLite runs in
write-ahead-log mode (see :func:`_sqlite_engine_kwargs`).

Counting: a trial *counts* when it finished (COMPLETE or PRUNED). Before a worker runs a
trial it checks that fewer than N trials have finished or are running; after Optuna has
given the trial a number, trials with smaller numbers that are finished, running or waiting
(enqueued retries) are counted again, and a trial that would be the N+1-th is marked FAIL with
the user attribute ``surplus`` and not run. Trial numbers are assigned atomically by the database, so
concurrent workers never run more than N trials in total.
"""

from __future__ import annotations

import copy
import random
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import TrialState

from nas.errors import SearchError
from nas.search.record import DESCRIPTION_KEYS

__all__ = ["MemoryStorage", "new_trial", "make_storage", "check_storage_url", "fail_stale", "counts", "is_surplus", "enqueue_retry", "retried",
           "heartbeat", "HEARTBEAT_S", "GRACE_S", "MAX_RETRY"]

HEARTBEAT_S = 5
GRACE_S = 20
DONE = (TrialState.COMPLETE, TrialState.PRUNED)


class MemoryStorage(optuna.storages.InMemoryStorage):
    """Optuna's in-memory storage, storing a new trial without a deep copy of the template it is given.

    For studies that live in one process and are thrown away: the proposer's copy of the study,
    and the benchmarks' thousands of short searches, where the deep copy of each trial (its
    description holds the whole network) was a third of a trial's cost. The stored trial is a
    shallow copy with its own ``params``, ``distributions``, attributes and intermediate values, so
    neither the caller nor Optuna (which changes a running trial's dicts in place) can change the
    other's; the values in them are shared, and nobody changes those. A template that was stored
    before (it has a number) goes the usual way.
    """

    def create_new_trial(self, study_id: int, template_trial: optuna.trial.FrozenTrial | None = None) -> int:
        if template_trial is None or template_trial.number != -1 or template_trial._trial_id != -1:
            return super().create_new_trial(study_id, template_trial)
        trial = copy.copy(template_trial)
        trial.params, trial.distributions = dict(trial.params), dict(trial.distributions)
        trial.user_attrs, trial.system_attrs = dict(trial.user_attrs), dict(trial.system_attrs)
        trial.intermediate_values = dict(trial.intermediate_values)
        with self._lock:
            self._check_study_id(study_id)
            trial_id = self._max_trial_id = self._max_trial_id + 1
            trials = self._studies[study_id].trials
            trial.number, trial._trial_id = len(trials), trial_id
            self._trial_id_to_study_id_and_number[trial_id] = (study_id, trial.number)
            trials.append(trial)
            self._update_cache(trial_id, study_id)
            return trial_id


def new_trial(state: TrialState, *, values: Sequence[float] | None = None, params: dict[str, Any],
              distributions: dict[str, BaseDistribution], user_attrs: dict[str, Any] | None = None,
              system_attrs: dict[str, Any] | None = None, intermediate_values: dict[int, float] | None = None,
              constraints: dict[str, float] | None = None) -> optuna.trial.FrozenTrial:
    """What :func:`optuna.trial.create_trial` makes, for distributions of today's kinds.

    ``create_trial`` first converts every distribution from Optuna's retired kinds, comparing each with
    four others: most of its cost, and a tenth of a search scored by a table. The trial is validated
    as there (and its constraints checked by ``set_constraint``).
    """
    now = None if state == TrialState.WAITING else datetime.now()
    trial = optuna.trial.FrozenTrial(
        number=-1, trial_id=-1, state=state, value=None, values=values, datetime_start=now,
        datetime_complete=now if state.is_finished() else None, params=params, distributions=distributions,
        user_attrs=user_attrs or {}, system_attrs=dict(system_attrs or {}),  # the constraints go in: not the caller's
        intermediate_values=intermediate_values or {})
    for key, value in (constraints or {}).items():
        trial.set_constraint(key, value)
    trial._validate()
    return trial


def make_storage(url: str | None, run_dir: Path, *, heartbeat_s: int = HEARTBEAT_S,
                 grace_s: int = GRACE_S) -> RDBStorage:
    if url is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{(run_dir / 'study.db').resolve()}"
    check_storage_url(url)
    url = _postgres_driver(url)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        engine_kwargs = _sqlite_engine_kwargs(url)
    else:
        engine_kwargs = {"pool_pre_ping": True}
    for attempt in range(4):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_s,
                                  grace_period=grace_s, heartbeat_stale_trial_callback=enqueue_retry)
        except ImportError as exc:
            raise SearchError(f"--storage {url.split('@')[-1]}: the database driver is missing ({exc}); for "
                              "PostgreSQL install it with: pip install 'nas[postgres]'") from None
        except Exception as exc:  # sqlalchemy errors: unreachable server, bad credentials, a creation race
            # Workers starting together may race to create Optuna's tables (PostgreSQL then reports
            # a duplicate key in its catalog): try again, the other worker has created them.
            if attempt == 3:
                safe = f"...@{url.split('@')[-1]}" if "@" in url else url  # no password in the message
                raise SearchError(f"--storage {safe}: cannot open the study database: "
                                  f"{str(exc).splitlines()[0]}") from None
            time.sleep(0.5 + random.random())
    raise AssertionError("unreachable")


def check_storage_url(url: str) -> None:
    if not url.startswith(("sqlite:", "postgresql", "postgres://", "mysql")):
        raise SearchError(f"--storage {url!r}: expected an SQLAlchemy URL such as "
                          "'postgresql://user:password@host:5432/dbname' or 'sqlite:///path/study.db'")


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
    """Whether trial ``number`` would be the N+1-th: earlier trials finished, running or waiting count.

    A waiting trial (a retry of a dead worker's trial, the warm start) will be run by some
    worker, so it counts although it has not started: without it, a retry enqueued while another
    worker was creating a new trial made both run, one trial too many.
    """
    if number < n_trials:  # at most ``number`` trials come before it
        return False
    before = [t for t in study.get_trials(deepcopy=False, states=(*DONE, TrialState.RUNNING, TrialState.WAITING))
              if t.number < number]
    return len(before) >= n_trials


MAX_RETRY = 3


def enqueue_retry(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Re-enqueue an interrupted trial (a dead worker's, or one stopped by Ctrl-C) with the same parameters.

    Like Optuna's ``RetryHeartbeatStaleTrialCallback`` (``failed_trial`` and ``retry_history``
    in the system attributes, at most :data:`MAX_RETRY` retries), but the retry starts clean:
    Optuna's copies every attribute, so a retry would carry the pruner's state (a
    ``completed_rung_0`` that exempts it from the first rung) and the dead attempt's accuracies
    and worker. It keeps the parameters, the latency constraint, the parameters an enqueued trial
    was given (``fixed_params``) and the trial's description (:data:`nas.search.record.DESCRIPTION_KEYS`);
    its results (accuracies, status, worker, wall time) are the failed attempt's and are not copied.
    """
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if len(history) > MAX_RETRY:
        return
    # the constraint, and fixed_params: parameters given by enqueue_trial (the warm start's)
    system_attrs: dict[str, Any] = {k: v for k, v in trial.system_attrs.items()
                                    if k.startswith("constraints:") or k == "fixed_params"}
    system_attrs.update(failed_trial=trial.system_attrs.get("failed_trial", trial.number), retry_history=history)
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
        user_attrs={k: v for k, v in trial.user_attrs.items() if k in DESCRIPTION_KEYS}, system_attrs=system_attrs))



def fail_stale(study: optuna.Study, storage: BaseStorage, *, grace_s: int, shared: bool) -> None:
    """Fail (and re-enqueue) the trials of dead workers.

    Optuna's heartbeat check covers trials that stopped beating. A worker killed in the few
    milliseconds between creating its trial and the trial's first heartbeat leaves a RUNNING
    trial with no heartbeat at all, which Optuna never fails, and the study would wait for it
    forever; such a trial older than the grace period is failed here too. Start times come from
    the creating worker's clock, so on a shared server a minute is added for clock skew.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    if not isinstance(storage, RDBStorage):  # an in-memory study lives and dies with its one process
        return
    limit = timedelta(seconds=grace_s + (60 if shared else 0))
    now = datetime.now()
    old = {t._trial_id: t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
           if t.datetime_start is not None and now - t.datetime_start > limit}
    if not old:
        return
    import sqlalchemy

    query = sqlalchemy.text("SELECT trial_id FROM trial_heartbeats WHERE trial_id IN :ids").bindparams(
        sqlalchemy.bindparam("ids", expanding=True))
    with storage.engine.connect() as conn:
        beating = {row[0] for row in conn.execute(query, {"ids": list(old)})}
    for trial_id in set(old) - beating:
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                enqueue_retry(study, storage.get_trial(trial_id))
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker got there first


def retried(study: optuna.Study, number: int) -> bool:
    """Whether a retry of trial ``number`` was queued (by a worker that found it stale, or by Ctrl-C)."""
    return any(number in t.system_attrs.get("retry_history", ()) for t in study.get_trials(deepcopy=False))


@contextmanager
def heartbeat(storage: BaseStorage, trial_id: int) -> Iterator[None]:
    """Record the trial's heartbeat every interval while the block runs (what ``Study.optimize`` does)."""
    interval = storage.get_heartbeat_interval() if isinstance(storage, RDBStorage) else None
    if interval is None:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            storage.record_heartbeat(trial_id)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
