"""NetAdapt scored by a supernet (``nas adapt --supernet``): the loop of :mod:`nas.adapt.loop` without fine-tuning.

Iteration ``i`` has the same goal as the fine-tuning loop (``max(L - delta_i, budget)``, relaxed when
nothing meets it); its proposals stay inside the supernet's space (:mod:`nas.adapt.space_proposals`) and
each is scored with the supernet's weights (:class:`~nas.supernet.SupernetEvaluator`: BatchNorm
re-estimated, validation accuracy, deterministic). No proposal is trained, so the choice by
``dAcc / |dLatency|`` (:func:`~nas.adapt.loop.select_proposal`) compares the networks themselves, not the
luck of a short fine-tuning. There are no weights to carry: the result is an architecture of the space,
whose weights the supernet holds (``nas supernet extract``).

Files in ``out_dir``, as the fine-tuning loop writes them (same columns): ``state.json`` (the commit point
of each iteration; re-running the same command continues), ``history.csv``, and at the end ``arch.json``,
``adapt.png`` and ``summary.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from tqdm import tqdm

from nas.adapt.loop import (AdaptResult, AdaptSettings, _row, check_resume_latency, check_resume_settings,
                            commit_history, read_history, read_state, select_proposal, write_state, write_summary)
from nas.adapt.proposals import Proposal
from nas.adapt.space_proposals import pick_proposals, space_candidates
from nas.arch import ArchSpec, arch_hash, save_arch, to_compact
from nas.errors import NASError
from nas.latency import TableEstimator
from nas.search.budget import extreme_arch
from nas.supernet import Supernet, SupernetEvaluator
from nas.write_errors import save_figure

__all__ = ["adapt_with_supernet", "supernet_fingerprint"]

#: The options behind the stored settings whose names are not already options (the refusal of a resume).
_OPTIONS = {"scoring": "--calibration-images/--val-images/--seed/--batch-size/--cpu-bf16", "mode": "--supernet",
            "scoring_device": "--device (scores on another kind of device differ by rounding)"}

_RELAX_HALVINGS = 10  # as nas.adapt.loop
_MIN_CUT_MS = 1e-6


def supernet_fingerprint(settings: AdaptSettings, evaluator: SupernetEvaluator, data: str) -> dict[str, Any]:
    """What a resumed run must share with the run it continues (its table: :func:`check_resume_latency`)."""
    return {"mode": "supernet", "budget_ms": settings.budget_ms, "delta": settings.delta,
            "delta_decay": settings.delta_decay, "rule": settings.rule, "scoring": evaluator.fingerprint,
            "scoring_device": evaluator.device_key, "data": data}


class _Record:
    """``state.json`` and ``history.csv`` of one run (resumable)."""

    def __init__(self, out: Path, fingerprint: dict[str, Any]) -> None:
        self.dir, self.fingerprint = out, fingerprint
        self.state_path, self.history_path = out / "state.json", out / "history.csv"

    def load(self, start: ArchSpec) -> dict[str, Any] | None:
        state = read_state(self.state_path)
        if state is None:
            return None
        check_resume_settings(self.state_path, state, self.fingerprint, _OPTIONS)
        if state.get("start_arch") != arch_hash(start):
            raise NASError(f"{self.state_path}: this folder holds an adapt run that started from another network "
                           f"({str(state.get('start_arch'))[:12]}, not {arch_hash(start)[:12]}); re-run with its "
                           "original --arch to resume it, or choose another --out")
        return state

    def history(self, upto: int) -> list[dict[str, str]]:
        return read_history(self.history_path, upto)

    def commit(self, state: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        """History, then state.json: rows of an iteration not committed are dropped on resume."""
        commit_history(self.history_path, self.state_path, state, rows)


def adapt_with_supernet(arch: ArchSpec, supernet: Supernet, evaluator: SupernetEvaluator, estimator: TableEstimator,
                        settings: AdaptSettings, fingerprint: dict[str, Any], out_dir: str | os.PathLike[str], *,
                        progress: bool = True, log: Callable[[str], None] = print) -> AdaptResult:
    """Run (or resume) NetAdapt from ``arch`` (a network of ``supernet``'s space) down to ``settings.budget_ms``."""
    s, out = settings, Path(out_dir)
    record = _Record(out, fingerprint)
    state = record.load(arch)
    if state is None:
        start = estimator.predict(arch)
        acc = evaluator.evaluate(arch).accuracy
        state = {"settings": fingerprint, "start_arch": arch_hash(arch), "iteration": 0, "arch": arch.to_dict(),
                 "latency_ms": start.total_ms, "accuracy": acc, "start_latency_ms": start.total_ms,
                 "start_accuracy": acc, "interpolated": _interpolated(start), "status": "running"}
        record.commit(state, [])
    else:
        check_resume_latency(record.state_path, state, estimator, arch)
        log(f"resuming {out}: {state['iteration']} iteration(s) already done")
    current = ArchSpec.from_dict(state["arch"])
    if state["iteration"] == 0 and state["latency_ms"] <= s.budget_ms:
        return _finish(record, s, state, current, "already_met", f"the network's predicted {state['latency_ms']:.3f} ms "
                       f"already meets the budget {s.budget_ms:.3f} ms; nothing to adapt", log)
    floor_ms = estimator.latency_ms(extreme_arch(supernet.space, estimator, fastest=True))
    if floor_ms > s.budget_ms:
        log(f"warning: the fastest network of space '{supernet.space.name}' is predicted at {floor_ms:.3f} ms, above "
            f"the budget {s.budget_ms:.3f} ms: NetAdapt will stop at the closest network it finds")
    while state["latency_ms"] > s.budget_ms and state["iteration"] < s.max_iterations:
        i = state["iteration"]
        wanted = max(state["latency_ms"] - s.delta * state["start_latency_ms"] * s.delta_decay ** i, s.budget_ms)
        goal, proposals = _relaxed(partial(pick_proposals, space_candidates(supernet, current, estimator)),
                                   state["latency_ms"], wanted)
        if not proposals:
            return _finish(record, s, state, current, "unreachable", _unreachable(state["latency_ms"], s, floor_ms), log)
        if goal != wanted:
            log(f"iteration {i + 1}: no proposal cuts {state['latency_ms'] - wanted:.3f} ms; relaxed to a cut of "
                f"{state['latency_ms'] - goal:.4f} ms")
        bar = tqdm(proposals, desc=f"iteration {i + 1}: {state['latency_ms']:.3f} -> {goal:.3f} ms",
                   disable=not progress, leave=False)
        results = [(evaluator.evaluate(p.arch).accuracy, p.latency_ms) for p in bar]
        k = select_proposal(state["accuracy"], state["latency_ms"], results, s.rule)
        rows = [_row(i + 1, p, acc, state, j == k, goal, goal != wanted)
                for j, (p, (acc, _)) in enumerate(zip(proposals, results))]
        chosen: Proposal = proposals[k]
        current = chosen.arch
        state = {**state, "iteration": i + 1, "arch": current.to_dict(), "latency_ms": chosen.latency_ms,
                 "accuracy": results[k][0], "interpolated": list(chosen.interpolated)}
        record.commit(state, rows)
        log(f"iteration {i + 1}: {chosen.description}: {chosen.latency_ms:.3f} ms, supernet val acc "
            f"{results[k][0]:.4f} ({len(proposals)} proposals)")
    if state["latency_ms"] > s.budget_ms:
        return _finish(record, s, state, current, "unreachable",
                       f"stopped after --max-iterations {s.max_iterations} at {state['latency_ms']:.3f} ms, above the "
                       f"budget {s.budget_ms:.3f} ms; the closest network is written (raise --max-iterations and "
                       "re-run the same command to continue)", log)
    return _finish(record, s, state, current, "met", f"reached {state['latency_ms']:.3f} ms <= budget "
                   f"{s.budget_ms:.3f} ms in {state['iteration']} iterations", log)


def _relaxed(propose: Callable[[float], list[Proposal]], latency_ms: float,
             goal_ms: float) -> tuple[float, list[Proposal]]:
    """``(goal, proposals)``: the cut to ``goal_ms`` halved until some proposal meets it (see nas.adapt.loop)."""
    proposals, cut = propose(goal_ms), latency_ms - goal_ms
    for halving in range(_RELAX_HALVINGS + 1):
        if proposals:
            break
        cut = cut / 2 if halving < _RELAX_HALVINGS else _MIN_CUT_MS
        goal_ms = latency_ms - cut
        proposals = propose(goal_ms)
    return goal_ms, proposals


def _interpolated(prediction: Any) -> list[str]:
    return [p.name for p in prediction.parts if p.source == "interpolated"]


def _unreachable(latency_ms: float, s: AdaptSettings, floor_ms: float) -> str:
    return (f"budget {s.budget_ms:.3f} ms not reached: no network of the space one change away lowers the predicted "
            f"latency below {latency_ms:.3f} ms any more (the space's fastest network is predicted at "
            f"{floor_ms:.3f} ms); the closest network found ({latency_ms:.3f} ms) is written. To meet the budget, "
            f"raise --latency-ms to at least {latency_ms:.3f}, or start from another --arch of the space")


def _finish(record: _Record, s: AdaptSettings, state: dict[str, Any], arch: ArchSpec, status: str, message: str,
            log: Callable[[str], None]) -> AdaptResult:
    save_arch(arch, record.dir / "arch.json")
    state = {**state, "status": status, "final_accuracy": state["accuracy"], "message": message}
    write_state(record.state_path, state)
    rows = record.history(state["iteration"])
    _plot(record.dir / "adapt.png", rows, state, s.budget_ms)
    _summary(record.dir / "summary.md", state, s, arch)
    log(message)
    return AdaptResult(status, arch, state["latency_ms"], state["accuracy"], state["start_latency_ms"],
                       state["start_accuracy"], state["iteration"], message, record.dir)


def _plot(path: Path, rows: list[dict[str, str]], state: dict[str, Any], budget_ms: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    if rows:
        ax.scatter([float(r["latency_ms"]) for r in rows], [float(r["accuracy"]) for r in rows], s=8, color="0.7",
                   label="proposals (scored by the supernet)")
    chosen = [r for r in rows if r["chosen"] == "1"]
    ax.plot([state["start_latency_ms"]] + [float(r["latency_ms"]) for r in chosen],
            [state["start_accuracy"]] + [float(r["accuracy"]) for r in chosen], "o-", color="tab:blue", ms=4,
            label="kept proposal per iteration")
    ax.axvline(budget_ms, color="k", ls=":", lw=1, label="budget")
    ax.invert_xaxis()
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel("validation accuracy (supernet weights)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def _summary(path: Path, state: dict[str, Any], s: AdaptSettings, arch: ArchSpec) -> None:
    sources = ", ".join(state.get("interpolated") or []) or "none (every part measured)"
    lines = ["# NetAdapt summary (scored by a supernet)", "", f"- status: {state['status']}: {state['message']}",
             (f"- budget: {s.budget_ms:.3f} ms; rule: {s.rule}; delta {s.delta:.2%} of the start latency per "
              f"iteration (decay {s.delta_decay:g}); proposals stay in the supernet's space, scored without training"),
             f"- scoring: {state['settings']['scoring']}",
             f"- start: {state['start_latency_ms']:.3f} ms, supernet val acc {state['start_accuracy']:.4f}",
             (f"- end: {state['latency_ms']:.3f} ms after {state['iteration']} iterations, supernet val acc "
              f"{state['accuracy']:.4f}"),
             f"- parts of the final network whose latency was interpolated: {sources}", "",
             f"    {to_compact(arch)}", "",
             ("Files: history.csv, arch.json (a network of the supernet's space: extract its weights with "
              "nas supernet extract, then fine-tune or retrain it), adapt.png"), ""]
    write_summary(path, lines)
