"""The console side of a search: a progress line per trial (or every few seconds), notes on repaired trials."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.search.objective import Objective
from nas.search.outputs import best_trial, write_trials_csv
from nas.search.record import TrialRecord, read_records

__all__ = ["trial_logger", "repair_summary", "QUIET_PROGRESS_S", "QUIET_CSV_S"]

#: With an evaluator that does not train, a progress line at most this often (seconds), trials.csv likewise.
QUIET_PROGRESS_S = 2.0
QUIET_CSV_S = 10.0


def _progress_line(study: optuna.Study, trial: FrozenTrial, n_trials: int, budget_ms: float, objective: Objective,
                   confirmed: bool) -> str:
    t = TrialRecord.from_trial(trial)
    if t.surplus:
        return f"trial {t.number}: not run (the study already has its {n_trials} trials)"
    parts = [f"trial {t.number:3d}", f"lat {t.latency_ms:7.3f} ms" if t.latency_ms is not None else "",
             t.status or t.state.name.lower()]
    if t.repaired:
        parts.append("repaired")
    if t.val_acc is not None:
        parts.append(f"acc {t.val_acc:.4f}")
    if t.state == TrialState.COMPLETE:
        parts.append(objective.progress(t))
    if t.wall_s:
        parts.append(f"{t.wall_s:.0f}s")
    best = best_trial(study, budget_ms, objective, confirmed=confirmed)
    if best is not None:
        parts.append(f"| best: trial {best.number} acc {best.val_acc:.4f} at {best.latency_ms:.3f} ms")
    done = sum(1 for x in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    return f"[{done}/{n_trials}] " + "  ".join(p for p in parts if p)


def _repair_note(t: TrialRecord) -> str:
    """Said once, at the first repaired trial of a run."""
    return (f"note: trial {t.number} was repaired: none of the {t.proposal_attempts} networks drawn for it fitted "
            f"the budget, so the least slow one was trimmed onto it (a count follows after the trials)")


def repair_summary(study: optuna.Study, limit_ms: float, fastest_ms: float) -> str | None:
    """How many trials needed repair, and what to do about it; None when none did."""
    described = [t for t in read_records(study, confirmed=False) if t.latency_ms is not None]
    repaired = [t for t in described if t.repaired]
    if not repaired:
        return None
    attempts = max(t.proposal_attempts or 0 for t in repaired)
    return (f"{len(repaired)} of {len(described)} trials needed repair: none of the {attempts} networks the sampler "
            f"drew for each was predicted within --skip-over x the budget ({limit_ms:.3f} ms), so the least slow was "
            f"trimmed onto it choice by choice; such trials explore little of the space. Raise --latency-ms (the "
            f"space's fastest network: {fastest_ms:.3f} ms)")


def trial_logger(run_dir: Path, n_trials: int, budget_ms: float, objective: Objective, *, confirmed: bool,
                 quiet: bool, log: Callable[[str], None]) -> Callable[[optuna.Study, FrozenTrial], None]:
    """What happens after each trial: a progress line and trials.csv; with an evaluator that does not train
    (``quiet``: thousands of trials of a fraction of a second), at most every few seconds, so the search
    does not spend its time re-reading every trial after each one."""
    repair_said: list[int] = []
    last = {"line": -1e9, "csv": time.monotonic()}

    def on_trial(study: optuna.Study, t: FrozenTrial) -> None:
        now = time.monotonic()
        final = t.number + 1 >= n_trials
        if not quiet or final or now - last["line"] >= QUIET_PROGRESS_S:
            log(_progress_line(study, t, n_trials, budget_ms, objective, confirmed))
            last["line"] = now
        record = TrialRecord.from_trial(t)
        if record.repaired and not repair_said:
            repair_said.append(record.number)
            log(_repair_note(record))
        if not quiet or now - last["csv"] >= QUIET_CSV_S:
            write_trials_csv(study, run_dir, confirmed=confirmed, objective=objective)
            last["csv"] = now

    return on_trial
