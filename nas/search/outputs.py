"""What a search leaves in its run directory.

* ``trials.csv``: one row per trial (number, state, status, latency, accuracy, objective
  values, params, MACs, wall time, hash, compact architecture, accuracy per epoch, worker).
* ``best_arch.json``: the best architecture within budget (highest reward, or highest
  accuracy among feasible trials in pareto mode), with its figures.
* ``pareto.json``: the non-dominated (accuracy up, latency down) trained trials within budget.
* ``pareto.png``: accuracy vs predicted latency: all trials (each at its own single result), the
  front, the budget line, the MobileNetV2 width-multiplier baselines evaluated with the same
  proxy, and the winner at the accuracy it was chosen on (its mean over the confirmation's
  seeds, with their standard deviation); titled with the data and the table.
* ``summary.md``: a short human-readable report.

A file that cannot be written (a full disk) ends the command with one line naming it
(:mod:`nas.write_errors`); the files written before it, and the earlier version of it, are intact.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from nas.atomic import atomic_write_text
from nas.search.confirm import rank_trials
from nas.search.objective import Objective, get_objective
from nas.search.record import TrialRecord, read_records
from nas.write_errors import save_figure, storing

__all__ = ["trials_frame", "front", "best_trial", "feasible_trials", "candidate_trials", "write_outputs",
           "write_trials_csv"]


def _row(t: TrialRecord, rank: dict[int, int]) -> dict[str, Any]:
    confirmed = bool(t.confirmations) and t.has_result
    return {
        "number": t.number, "state": t.state.name, "status": t.status,
        "latency_ms": t.latency_ms, "val_acc": t.val_acc, "objective": t.value, "feasible": t.feasible,
        "params": t.params, "macs": t.macs, "blocks": t.blocks, "wall_s": t.wall_s,
        "epochs": len(t.acc_per_epoch), "acc_per_epoch": json.dumps(list(t.acc_per_epoch)),
        "confirm_accs": json.dumps([acc for _, acc in t.confirmations]) if confirmed else "",
        "mean_acc": t.mean_acc if confirmed else t.val_acc,
        # 1: the winner; the order of the trained networks within the budget (nas.search.confirm.rank_trials)
        "winner_rank": rank.get(t.number),
        "duplicate_of": t.duplicate_of, "interpolated_parts": t.latency_interpolated,
        "proposal_attempts": t.proposal_attempts, "repaired": t.repaired, "warm_start": t.warm_start,
        "retry_of": t.retry_of, "hash": t.hash, "compact": t.compact, "worker": t.worker,
        "latency_parts": json.dumps([list(p) for p in t.latency_parts]),
    }


def _objective_of(study: optuna.Study) -> Objective:
    """The study's kind of objective with default settings: for a study read without its search's settings."""
    return get_objective("reward" if len(study.directions) == 1 else "pareto")


def trials_frame(study: optuna.Study, *, confirmed: bool = True, objective: Objective | None = None) -> pd.DataFrame:
    """One row per trial; ``confirmed=False``: ignore stored confirmations (``--confirm-top 0``); ``objective``:
    the search's (its ``--w`` / ``--constraint``), which ranks the winners as ``best_arch.json`` does."""
    records = read_records(study, confirmed=confirmed)
    feasible = [t for t in records if t.may_win and t.feasible]
    ranked = rank_trials(feasible, objective if objective is not None else _objective_of(study))
    rank = {t.number: i for i, t in enumerate(ranked, 1)}
    return pd.DataFrame([_row(t, rank) for t in records])


def write_trials_csv(study: optuna.Study, run_dir: Path, *, confirmed: bool = True,
                     objective: Objective | None = None) -> Path:
    path = run_dir / "trials.csv"
    text = trials_frame(study, confirmed=confirmed, objective=objective).to_csv(index=False)
    with storing(path):
        atomic_write_text(path, text)
    return path


def candidate_trials(study: optuna.Study, *, confirmed: bool = True) -> list[TrialRecord]:
    """The trials that may win or stand on the front, whatever their latency: trained, and not diverged
    (a diverged trial's accuracy is an earlier epoch's, and its recipe would likely diverge again)."""
    return [t for t in read_records(study, confirmed=confirmed, states=(TrialState.COMPLETE,)) if t.may_win]


def feasible_trials(study: optuna.Study, budget_ms: float, *, confirmed: bool = True) -> list[TrialRecord]:
    """The trained trials within the budget."""
    return [t for t in candidate_trials(study, confirmed=confirmed) if t.within(budget_ms)]


def front(study: optuna.Study, budget_ms: float) -> list[TrialRecord]:
    """Non-dominated trained trials within budget (accuracy up, latency down), by latency."""
    feasible = feasible_trials(study, budget_ms, confirmed=False)
    out = []
    for t in feasible:
        acc, lat = t.val_acc, t.latency_ms
        assert acc is not None and lat is not None
        dominated = any(o.val_acc >= acc and o.latency_ms <= lat and  # type: ignore[operator]
                        (o.val_acc > acc or o.latency_ms < lat) for o in feasible)  # type: ignore[operator]
        if not dominated:
            out.append(t)
    unique = {t.hash: t for t in sorted(out, key=lambda t: -t.number)}
    return sorted(unique.values(), key=lambda t: t.latency_ms or 0.0)


def best_trial(study: optuna.Study, budget_ms: float, objective: str | Objective, *,
               confirmed: bool = True) -> TrialRecord | None:
    """The winner within the budget: highest reward (reward mode) or accuracy (pareto mode).

    Once candidates have been confirmed with more training seeds, they compete on the mean over
    every seed known (:func:`nas.search.confirm.choose_winner`); ``confirmed=False`` ignores the
    confirmations (``--confirm-top 0``): the best single result.
    """
    ranked = rank_trials(feasible_trials(study, budget_ms, confirmed=confirmed), objective)
    return ranked[0] if ranked else None


def _summary_of(t: TrialRecord, *, with_confirmations: bool = True) -> dict[str, Any]:
    out = {"trial": t.number, "hash": t.hash, "compact": t.compact, "latency_ms": t.latency_ms,
           "val_acc": t.val_acc, "params": t.params, "macs": t.macs, "objective": t.value, "arch": t.arch_dict}
    if with_confirmations and t.confirmations:
        out["confirmed"] = ({"accs": t.accuracies, "seeds": t.confirmation_seeds, "rescored": True, "mean_acc": t.mean_acc}
                            if t.rescored  # the accs: the rescores alone, by seed (the trial's own seed among them)
                            else {"accs": t.accuracies, "extra_seeds": t.confirmation_seeds, "mean_acc": t.mean_acc})
    return out


def _mean_note(t: TrialRecord) -> str:
    accs = t.accuracies
    if t.rescored:
        return f" (chosen on its mean over {len(accs)} rescores on the finer measure: {t.mean_acc:.4f})"
    return f" (mean over {len(accs)} training seeds {t.mean_acc:.4f})" if len(accs) > 1 else ""


def _confirmed(study: optuna.Study, budget_ms: float, objective: Objective, confirmed: bool) -> list[TrialRecord]:
    """The confirmed trials within the budget, one per architecture, best mean first."""
    ranked = rank_trials(feasible_trials(study, budget_ms, confirmed=confirmed), objective)
    return [t for t in ranked if t.confirmations]


def _title(header: dict[str, Any]) -> str:
    """``data: ... | table: NAME (device)`` from the summary header."""
    table = Path(str(header.get("table", "?"))).name
    device = f" ({header['device']})" if header.get("device") else ""
    return f"data: {header.get('data', '?')} | table: {table}{device}"


def _winner_point(best: TrialRecord) -> tuple[float, float, float, str]:
    """Where the winner is drawn: (latency, the accuracy it was chosen on, the seeds' std, label)."""
    accs = best.accuracies
    assert best.latency_ms is not None and best.mean_acc is not None
    if len(accs) > 1:
        label = (f"winner: trial {best.number}, mean of {len(accs)} seeds "
                 f"({', '.join(f'{a:.3f}' for a in accs)}) ± std")
        return best.latency_ms, best.mean_acc, statistics.stdev(accs), label
    return best.latency_ms, accs[0], 0.0, f"winner: trial {best.number} (one seed)"


def _plot(study: optuna.Study, budget_ms: float, front_trials: list[TrialRecord], baselines: list[dict[str, Any]],
          best: TrialRecord | None, header: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trained = candidate_trials(study, confirmed=False)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    pruned = [t for t in read_records(study, confirmed=False, states=(TrialState.PRUNED,)) if t.val_acc is not None]
    if pruned:
        ax.scatter([t.latency_ms for t in pruned], [t.val_acc for t in pruned], s=10, color="0.75",
                   label="stopped early (last accuracy)")
    ax.scatter([t.latency_ms for t in trained], [t.val_acc for t in trained], s=14, color="tab:blue", alpha=0.7,
               label="trials")
    if front_trials:
        ax.plot([t.latency_ms for t in front_trials], [t.val_acc for t in front_trials], "o-", color="tab:red", ms=5,
                label="Pareto front (within budget)")
    if baselines:
        ax.plot([b["latency_ms"] for b in baselines], [b["val_acc"] for b in baselines], "s--", color="tab:green",
                ms=5, label="MobileNetV2 width multiplier")
        for b in baselines:
            ax.annotate(f"{b['alpha']:g}", (b["latency_ms"], b["val_acc"]), fontsize=7, xytext=(3, -9),
                        textcoords="offset points")
    if best is not None:
        x, y, spread, label = _winner_point(best)
        ax.errorbar([x], [y], yerr=[spread], fmt="*", ms=14, color="gold", mec="k", ecolor="k", capsize=3, zorder=5,
                    label=label)
    ax.axvline(budget_ms, color="k", ls=":", lw=1, label=f"budget {budget_ms:.2f} ms")
    ax.set_title(_title(header), fontsize=8, wrap=True)
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel("validation accuracy (proxy)")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def write_outputs(study: optuna.Study, run_dir: Path, *, budget_ms: float, objective: str | Objective,
                  baselines: list[dict[str, Any]], header: dict[str, Any], confirmed: bool = True) -> dict[str, Any]:
    """Write the run directory's files; ``confirmed=False``: ignore stored confirmations (``--confirm-top 0``)."""
    strategy = get_objective(objective)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_trials_csv(study, run_dir, confirmed=confirmed, objective=strategy)
    front_trials = front(study, budget_ms)
    best = best_trial(study, budget_ms, strategy, confirmed=confirmed)
    result: dict[str, Any] = {"best": _summary_of(best) if best else None,
                              "front": [_summary_of(t, with_confirmations=False) for t in front_trials]}
    if best is None:  # another study's winner in this folder must not pass for this one's (the study keeps it)
        with storing(run_dir / "best_arch.json"):
            (run_dir / "best_arch.json").unlink(missing_ok=True)
    else:
        _store(run_dir / "best_arch.json", json.dumps(
            {**result["best"], "budget_ms": budget_ms, **{k: header[k] for k in ("table", "space") if k in header}},
            indent=2, sort_keys=True) + "\n")
    _store(run_dir / "pareto.json", json.dumps({"budget_ms": budget_ms, "front": result["front"]}, indent=2,
                                               sort_keys=True) + "\n")
    _plot(study, budget_ms, front_trials, baselines, best, header, run_dir / "pareto.png")
    _store(run_dir / "summary.md", _summary_md(study, budget_ms, strategy, best, front_trials, baselines, header,
                                               confirmed))
    return result


def _store(path: Path, text: str) -> None:
    with storing(path):
        atomic_write_text(path, text)


def _summary_md(study: optuna.Study, budget_ms: float, objective: Objective, best: TrialRecord | None,
                front_trials: list[TrialRecord], baselines: list[dict[str, Any]], header: dict[str, Any],
                confirmed: bool) -> str:
    df = trials_frame(study, confirmed=confirmed, objective=objective)
    status: dict[str, int] = {}
    for label, state in zip(df.get("status", []), df.get("state", [])):
        # a failed trial (interrupted, then retried) has no status: its state names it
        key = label or ("failed" if state == "FAIL" else str(state).lower())
        status[key] = status.get(key, 0) + 1
    status = dict(sorted(status.items(), key=lambda kv: -kv[1]))  # the most frequent first
    lines = ["# Search summary", ""]
    lines += [f"- {k}: {v}" for k, v in header.items()]
    lines += [f"- budget: {budget_ms:.3f} ms", f"- trials: {len(df)} ({', '.join(f'{k} {v}' for k, v in status.items())})",
              ""]
    if best is not None:
        lines += ["## Best architecture within budget", "",
                  f"trial {best.number}: predicted latency {best.latency_ms:.3f} ms, validation accuracy "
                  f"{best.val_acc:.4f}{_mean_note(best)}, {best.params:,} parameters, {best.macs:,} MACs", "",
                  f"    {best.compact}", ""]
    else:
        lines += ["No trained architecture met the budget.", ""]
    confirmed_trials = _confirmed(study, budget_ms, objective, confirmed)
    if confirmed_trials and confirmed_trials[0].rescored:
        lines += ["## Choosing the winner: the best candidates scored again on the finer measure", "",
                  "Each candidate was scored again on the finer measure (a supernet's whole validation split), with "
                  "its own seed and others; the winner is the best on the mean of those scores alone (in reward "
                  "mode, the reward of that mean).", "", "| trial | latency ms | rescore per seed | mean |",
                  "|---:|---:|---|---:|"]
        lines += [f"| {t.number} | {t.latency_ms:.3f} | {', '.join(f'{x:.4f}' for x in t.accuracies)} | "
                  f"{t.mean_acc:.4f} |" for t in confirmed_trials]
        lines.append("")
    elif confirmed_trials:
        lines += ["## Choosing the winner: the best candidates trained again with more seeds", "",
                  "The winner is the best on the mean proxy accuracy over every seed (in reward mode, the reward of "
                  "that mean).", "", "| trial | latency ms | val acc per seed | mean val acc |", "|---:|---:|---|---:|"]
        lines += [f"| {t.number} | {t.latency_ms:.3f} | {', '.join(f'{x:.4f}' for x in t.accuracies)} | "
                  f"{t.mean_acc:.4f} |" for t in confirmed_trials]
        lines.append("")
    if front_trials:
        lines += ["## Pareto front (within budget)", "", "| trial | latency ms | val acc | params | MACs |",
                  "|---:|---:|---:|---:|---:|"]
        lines += [f"| {t.number} | {t.latency_ms:.3f} | {t.val_acc:.4f} | {t.params:,} | {t.macs:,} |"
                  for t in front_trials]
        lines.append("")
    if baselines:
        lines += ["## MobileNetV2 width-multiplier baselines (same proxy)", "", "| alpha | latency ms | val acc |",
                  "|---:|---:|---:|"]
        lines += [f"| {b['alpha']:g} | {b['latency_ms']:.3f} | {b['val_acc']:.4f} |" for b in baselines]
        lines.append("")
    lines += ["Files: trials.csv, best_arch.json, pareto.json, pareto.png, study.db (SQLite runs).", ""]
    return "\n".join(lines)
