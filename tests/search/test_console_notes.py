"""What ``nas search`` says on the console besides its progress: repaired trials, converted images."""

from __future__ import annotations

from pathlib import Path

from nas.latency import TableEstimator, load_table
from nas.search import extreme_arch
from nas.search.job import SearchJob, run_search_job
from nas.space import load_space
from tests.conftest import TINY_SPACE


def test_a_budget_no_drawn_network_fits_says_how_many_trials_were_repaired(search_table: Path,
                                                                           tmp_path: Path) -> None:
    estimator = TableEstimator(load_table(search_table), on_missing="error", save=False)
    fastest_ms = estimator.latency_ms(extreme_arch(load_space(TINY_SPACE), estimator))
    logs: list[str] = []
    job = SearchJob(target=str(search_table), space=str(TINY_SPACE), latency_ms=fastest_ms * 1.0001, data="digits",
                    trials=3, epochs=1, subset=100, batch_size=25, threads=1, baselines=False, prune=False,
                    sampler="random", out=str(tmp_path / "run"), confirm=_no_confirmation())
    run_search_job(job, log=logs.append)
    summary = [line for line in logs if "needed repair" in line]
    assert len(summary) == 1, logs
    assert "2 of 3 trials needed repair" in summary[0] and "--latency-ms" in summary[0]
    assert f"fastest network: {fastest_ms:.3f} ms" in summary[0]
    assert sum("repaired" in line and line.startswith("[") for line in logs) == 2  # the progress lines say it
    first = [line for line in logs if line.startswith("note: trial") and "repaired" in line]
    assert len(first) == 1  # said when it first happens, once
    # The digits are 8x8 grayscale, upsampled for the 16x16 network: said once, at load time.
    notes = [line for line in logs if "8x8 grayscale (1 channel)" in line]
    assert len(notes) == 1 and "16x16 RGB" in notes[0]


def _no_confirmation():  # type: ignore[no-untyped-def]
    from nas.search.confirm import Confirmation

    return Confirmation(top=0)
