"""The whole NetAdapt loop on a tiny network and 300 digits: budget reached, outputs consistent, resume."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from nas.adapt import AdaptJob, AdaptSettings, generate_proposals, run_adapt_job
from nas.arch import build_model, load_arch_file, to_compact
from nas.errors import NASError
from nas.latency import TableEstimator, load_table
from nas.train import load_weights

from .conftest import MICRO, TINY, make_table

DATA = {"data": "digits", "subset": 200}


def _history(out: Path) -> list[dict[str, str]]:
    with open(out / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def _settings(budget: float, **kw: object) -> AdaptSettings:
    base = {"delta": 0.1, "steps": 3, "batch_size": 32, "final_epochs": 1, "device": "cpu"}
    return AdaptSettings(budget_ms=budget, **(base | kw))  # type: ignore[arg-type]


def test_full_loop_reaches_the_budget_and_writes_consistent_outputs(tmp_path: Path, trained: dict[str, Path]) -> None:
    table = make_table(tmp_path / "table.json", [TINY])  # another device's table: new widths are interpolated
    start_ms = TableEstimator(load_table(table)).latency_ms(TINY)
    budget = 0.7 * start_ms
    out = tmp_path / "run"
    job = AdaptJob(arch=to_compact(TINY), weights=trained["tiny-checkpoint"], target=table, out=out,
                   settings=_settings(budget), **DATA)  # type: ignore[arg-type]
    result = run_adapt_job(job, progress=False, log=lambda _m: None)

    assert result.status == "met" and result.iterations >= 2
    for name in ("history.csv", "arch.json", "weights.pt", "adapt.png", "summary.md", "state.json"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "adapt.png").read_bytes()[:4] == b"\x89PNG"

    rows = _history(out)
    iterations = sorted({int(r["iteration"]) for r in rows})
    assert iterations == list(range(1, result.iterations + 1))
    parent_ms = start_ms
    for i in iterations:
        mine = [r for r in rows if int(r["iteration"]) == i]
        chosen = [r for r in mine if r["chosen"] == "1"]
        assert len(chosen) == 1
        for r in mine:  # every proposal meets its iteration's goal, which cuts at least delta (or reaches the budget)
            assert float(r["latency_ms"]) <= float(r["goal_ms"])
            assert float(r["goal_ms"]) <= max(parent_ms - 0.1 * start_ms, budget) + 1e-6
            assert abs(float(r["d_latency_ms"]) - (float(r["latency_ms"]) - parent_ms)) < 1e-5
        parent_ms = float(chosen[0]["latency_ms"])
    # Shrunk widths are not in the handmade table: their latencies were interpolated, and history says which.
    assert any(r["interpolated"] for r in rows)
    assert all(set(r["interpolated"].split(";")) <= {"stem", "head"} | {f"block{i}" for i in range(len(TINY.blocks))}
               for r in rows if r["interpolated"])

    final = load_arch_file(out / "arch.json")
    assert to_compact(final) == [r for r in rows if r["chosen"] == "1"][-1]["arch"]
    final_ms = TableEstimator(load_table(table)).latency_ms(final)
    assert final_ms <= budget
    assert final_ms == pytest.approx(result.latency_ms)
    load_weights(build_model(final), out / "weights.pt")  # fits the built final architecture exactly
    state = json.loads((out / "state.json").read_text())
    assert state["status"] == "met" and state["iteration"] == result.iterations

    # Re-running the finished run redoes nothing; other settings or another start network are refused.
    again = run_adapt_job(job, progress=False, log=lambda _m: None)
    assert again.iterations == result.iterations and _history(out) == rows
    with pytest.raises(NASError, match="other settings.*delta"):
        run_adapt_job(replace(job, settings=_settings(budget, delta=0.2)), progress=False, log=lambda _m: None)
    other = TINY.replace_blocks(tuple(replace(b, act="hswish") if i == 1 else b for i, b in enumerate(TINY.blocks)))
    with pytest.raises(NASError, match="another network"):  # same weight shapes, other activation
        run_adapt_job(replace(job, arch=other), progress=False, log=lambda _m: None)
    # Another device's table (or this one re-measured) would mix its latencies with the stored ones.
    slower = make_table(tmp_path / "slower.json", [TINY], ms_per_mmac=2.0)
    with pytest.raises(NASError, match=rf"--target predicts [0-9.]+ ms .* the run recorded {start_ms:.4f} ms"):
        run_adapt_job(replace(job, target=slower), progress=False, log=lambda _m: None)


def test_missing_widths_are_measured_when_the_table_is_this_machines(tmp_path: Path,
                                                                     trained: dict[str, Path]) -> None:
    table = make_table(tmp_path / "local.json", [MICRO], local=True)
    before = set(load_table(table).entries)
    start_ms = TableEstimator(load_table(table)).latency_ms(MICRO)
    out = tmp_path / "run"
    job = AdaptJob(arch=MICRO, weights=trained["micro"], target=table, out=out,
                   settings=_settings(0.9 * start_ms, final_epochs=0, max_iterations=1), **DATA)  # type: ignore[arg-type]
    run_adapt_job(job, progress=False, log=lambda _m: None)
    rows = _history(out)
    assert rows and all(r["interpolated"] == "" for r in rows)
    stored = load_table(table).entries
    new = set(stored) - before
    assert new and all(stored[s].source == "measured" for s in new)  # kept in the table for the next run


def test_a_relaxed_iteration_halves_the_cut_until_a_proposal_meets_it(tmp_path: Path,
                                                                       trained: dict[str, Path]) -> None:
    table = make_table(tmp_path / "table.json", [MICRO])
    estimator = TableEstimator(load_table(table))
    start_ms = estimator.latency_ms(MICRO)
    out = tmp_path / "run"
    # delta 0.99: no single proposal removes 99 % of the latency, so the first iteration is relaxed.
    job = AdaptJob(arch=MICRO, weights=trained["micro"], target=table, out=out,
                   settings=_settings(0.2 * start_ms, delta=0.99, final_epochs=0, max_iterations=1),
                   **DATA)  # type: ignore[arg-type]
    result = run_adapt_job(job, progress=False, log=lambda _m: None)
    rows = _history(out)
    assert result.status == "unreachable" and "max-iterations" in result.message
    assert rows and all(r["relaxed"] == "1" for r in rows)
    goal = float(rows[0]["goal_ms"])
    assert all(float(r["goal_ms"]) == goal and float(r["latency_ms"]) <= goal for r in rows)
    cut = start_ms - goal
    halvings = math.log2((start_ms - 0.2 * start_ms) / cut)  # the first goal was the budget (0.99 cut is more)
    assert halvings >= 1 and abs(halvings - round(halvings)) < 1e-3
    # One halving less, and nothing met the goal: the relaxation went no further than needed.
    assert generate_proposals(MICRO, estimator, goal_ms=start_ms - 2 * cut) == []


def test_a_run_stopped_by_max_iterations_continues_with_a_larger_limit(tmp_path: Path,
                                                                       trained: dict[str, Path]) -> None:
    table = make_table(tmp_path / "table.json", [TINY])
    start_ms = TableEstimator(load_table(table)).latency_ms(TINY)
    out = tmp_path / "run"
    job = AdaptJob(arch=TINY, weights=trained["tiny"], target=table, out=out,
                   settings=_settings(0.6 * start_ms, max_iterations=1), **DATA)  # type: ignore[arg-type]
    first = run_adapt_job(job, progress=False, log=lambda _m: None)
    assert first.status == "unreachable" and first.iterations == 1 and "raise --max-iterations" in first.message
    rows = _history(out)
    second = run_adapt_job(replace(job, settings=_settings(0.6 * start_ms, max_iterations=50)), progress=False,
                           log=lambda _m: None)
    assert second.status == "met" and second.iterations > 1
    assert _history(out)[:len(rows)] == rows  # iteration 1 kept, not redone
    final = load_arch_file(out / "arch.json")
    load_weights(build_model(final), out / "weights.pt")
    assert len(list(out.glob("finetune-*"))) == 2  # each stopping point fine-tuned in its own folder


def test_a_damaged_state_or_history_is_one_clear_error(tmp_path: Path) -> None:
    from nas.adapt.loop import read_history, read_state
    from nas.errors import NASError

    assert read_state(tmp_path / "state.json") is None and read_history(tmp_path / "history.csv", 3) == []
    (tmp_path / "state.json").write_text('{"settings": {"budget_ms": 1.')
    with pytest.raises(NASError, match="state.json: not a readable adapt state .*choose another --out"):
        read_state(tmp_path / "state.json")
    (tmp_path / "state.json").write_text('{"iteration": 2}')
    with pytest.raises(NASError, match="expected an object with 'settings'"):
        read_state(tmp_path / "state.json")
    (tmp_path / "history.csv").write_text("iteration,proposal\nnot-a-number,x\n")
    with pytest.raises(NASError, match="history.csv: not a readable adapt history"):
        read_history(tmp_path / "history.csv", 3)


def test_a_folder_of_the_other_kind_of_netadapt_or_without_settings_is_refused(tmp_path: Path) -> None:
    from nas.adapt.loop import check_resume_settings

    classic = _settings(1.0).fingerprint()
    supernet = {"mode": "supernet", "budget_ms": 1.0, "delta": 0.1, "delta_decay": 1.0, "rule": "ratio",
                "scoring": "supernet-x-k256-vs1000-s0", "scoring_device": "cpu", "data": "d"}
    path = tmp_path / "state.json"
    for saved, current in ((classic, supernet), (supernet, classic), ({}, classic)):
        with pytest.raises(NASError, match="started with other settings"):
            check_resume_settings(path, {"settings": saved}, current)
    with pytest.raises(NASError, match=r"mode: --supernet \(the folder holds a NetAdapt run of the other kind"):
        check_resume_settings(path, {"settings": classic}, supernet)
    older = {k: v for k, v in supernet.items() if k != "scoring_device"}  # begun before the device was stored
    check_resume_settings(path, {"settings": older}, supernet)
    check_resume_settings(path, {"settings": supernet}, supernet)
