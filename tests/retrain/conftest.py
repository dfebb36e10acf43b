"""A tiny real search run (reward objective, tiny space, digits), built once per session.

Tests copy it (``copy_run``) before changing anything in it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_run(tiny_table: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nas.search.job import SearchJob, run_search_job

    out = tmp_path_factory.mktemp("retrain_search") / "run"
    # A generous budget and no pruning: every trial is trained and feasible, so there are >= 2 winners.
    job = SearchJob(target=str(tiny_table), data="digits", trials=2, epochs=1, subset=100, latency_ms=10.0,
                    objective="reward", prune=False, baselines=False, out=str(out), batch_size=32)
    run_search_job(job, log=lambda _msg: None)
    return out


@pytest.fixture(scope="session")
def retrained_run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny_run`` after ``nas retrain --top 2 --seeds 2 --epochs 1 --subset 100`` (default references)."""
    from nas.retrain import RetrainJob, run_retrain

    run = tmp_path_factory.mktemp("retrained") / "run"
    shutil.copytree(tiny_run, run)
    run_retrain(RetrainJob(run=str(run), top=2, seeds=2, epochs=1, subset=100, progress=False), log=_LOG.append)
    return run


_LOG: list[str] = []


@pytest.fixture(scope="session")
def retrain_log(retrained_run: Path) -> list[str]:
    return _LOG


@pytest.fixture
def copy_run(tmp_path: Path) -> Callable[[Path], Path]:
    def copy(src: Path) -> Path:
        dst = tmp_path / src.name
        shutil.copytree(src, dst)
        return dst

    return copy


@pytest.fixture(autouse=True)
def _reference_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never train references into the user's cache from a test (the 32x32 references never fit the
    16x16 tiny space anyway; test_references.py trains one on purpose)."""
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "nas-cache"))
