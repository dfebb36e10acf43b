"""What a search leaves in its run directory.

* ``trials.csv``: one row per trial (number, state, status, latency, accuracy, objective
  values, params, MACs, wall time, hash, compact architecture, accuracy per epoch, worker).
* ``best_arch.json``: the best architecture within budget (highest reward, or highest
  accuracy among feasible trials in pareto mode), with its figures.
* ``pareto.json``: the non-dominated (accuracy up, latency down) trained trials within budget.
* ``pareto.png``: accuracy vs predicted latency: all trials, the front, the budget line and the
  MobileNetV2 width-multiplier baselines evaluated with the same proxy.
* ``summary.md``: a short human-readable report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from nas.atomic import atomic_path, atomic_write_text
from nas.search.confirm import accuracies, choose_winner, rank_trials, stored_confirmations

__all__ = ["trials_frame", "front", "best_trial", "feasible_trials", "write_outputs", "write_trials_csv"]

TRAINED = ("trained", "duplicate", "diverged")


def _row(t: FrozenTrial, stored: dict[str, dict[int, float]], rank: dict[int, int]) -> dict[str, Any]:
    a = t.user_attrs
    trained = t.state == TrialState.COMPLETE and a.get("status") in TRAINED and a.get("val_acc") is not None
    confirmed = stored.get(a.get("hash", ""), {}) if trained else {}
    values = t.values or []
    return {
        "number": t.number, "state": t.state.name, "status": a.get("status", "surplus" if a.get("surplus") else ""),
        "latency_ms": a.get("latency_ms"), "val_acc": a.get("val_acc"),
        "objective": values[0] if len(values) == 1 else None,
        "feasible": None if a.get("latency_ms") is None else a["latency_ms"] <= a.get("budget_ms", float("inf")),
        "params": a.get("params"), "macs": a.get("macs"), "blocks": a.get("blocks"), "wall_s": a.get("wall_s"),
        "epochs": len(a.get("acc_per_epoch") or []), "acc_per_epoch": json.dumps(a.get("acc_per_epoch") or []),
        "confirm_accs": json.dumps([confirmed[s] for s in sorted(confirmed)]) if confirmed else "",
        "mean_acc": sum(accuracies(t, stored)) / (1 + len(confirmed)) if confirmed else a.get("val_acc"),
        # 1: the winner; the order of the trained networks within the budget (nas.search.confirm.rank_trials)
        "winner_rank": rank.get(t.number),
        "duplicate_of": a.get("duplicate_of"), "interpolated_parts": a.get("latency_interpolated"),
        "proposal_attempts": (a.get("proposal") or {}).get("attempts"),
        "repaired": (a.get("proposal") or {}).get("repaired"), "warm_start": bool(a.get("warm_start")),
        "retry_of": t.system_attrs.get("failed_trial"),
        "hash": a.get("hash"), "compact": a.get("compact"), "worker": a.get("worker"),
        "latency_parts": json.dumps(a.get("latency_parts") or []),
    }


def trials_frame(study: optuna.Study, *, confirmed: bool = True) -> pd.DataFrame:
    """One row per trial; ``confirmed=False``: ignore stored confirmations (``--confirm-top 0``)."""
    stored = stored_confirmations(study) if confirmed else {}
    trials = study.get_trials(deepcopy=False)
    feasible = [t for t in _trained(study) if t.user_attrs["latency_ms"] <= t.user_attrs.get("budget_ms", float("inf"))]
    objective = "reward" if len(study.directions) == 1 else "pareto"
    rank = {t.number: i for i, t in enumerate(rank_trials(feasible, objective, stored), 1)}
    return pd.DataFrame([_row(t, stored, rank) for t in trials])


def write_trials_csv(study: optuna.Study, run_dir: Path, *, confirmed: bool = True) -> Path:
    path = run_dir / "trials.csv"
    atomic_write_text(path, trials_frame(study, confirmed=confirmed).to_csv(index=False))
    return path


def _trained(study: optuna.Study) -> list[FrozenTrial]:
    """The trials that may win or stand on the front: trained, and not diverged (a diverged trial's
    accuracy is an earlier epoch's, and its recipe would likely diverge again when retrained)."""
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("status") in TRAINED and t.user_attrs.get("status") != "diverged"
            and t.user_attrs.get("val_acc") is not None]


def front(study: optuna.Study, budget_ms: float) -> list[FrozenTrial]:
    """Non-dominated trained trials within budget (accuracy up, latency down), by latency."""
    feasible = [t for t in _trained(study) if t.user_attrs["latency_ms"] <= budget_ms]
    out = []
    for t in feasible:
        acc, lat = t.user_attrs["val_acc"], t.user_attrs["latency_ms"]
        dominated = any(o.user_attrs["val_acc"] >= acc and o.user_attrs["latency_ms"] <= lat and
                        (o.user_attrs["val_acc"] > acc or o.user_attrs["latency_ms"] < lat) for o in feasible)
        if not dominated:
            out.append(t)
    unique = {t.user_attrs["hash"]: t for t in sorted(out, key=lambda t: -t.number)}
    return sorted(unique.values(), key=lambda t: t.user_attrs["latency_ms"])


def feasible_trials(study: optuna.Study, budget_ms: float) -> list[FrozenTrial]:
    """The trained trials within the budget."""
    return [t for t in _trained(study) if t.user_attrs["latency_ms"] <= budget_ms]


def best_trial(study: optuna.Study, budget_ms: float, objective: str, *, confirmed: bool = True) -> FrozenTrial | None:
    """The winner within the budget: highest reward (reward mode) or accuracy (pareto mode).

    Once candidates have been confirmed with more training seeds, they compete on the mean over
    every seed known (:func:`nas.search.confirm.choose_winner`); ``confirmed=False`` ignores the
    confirmations (``--confirm-top 0``): the best single result.
    """
    stored = stored_confirmations(study) if confirmed else {}
    return choose_winner(feasible_trials(study, budget_ms), objective, stored)


def _summary_of(t: FrozenTrial, stored: dict[str, dict[int, float]] | None = None) -> dict[str, Any]:
    a = t.user_attrs
    out = {"trial": t.number, "hash": a["hash"], "compact": a["compact"], "latency_ms": a["latency_ms"],
           "val_acc": a["val_acc"], "params": a["params"], "macs": a["macs"],
           "objective": t.values[0] if t.values and len(t.values) == 1 else None, "arch": a["arch"]}
    if stored and a["hash"] in stored:
        accs = accuracies(t, stored)
        out["confirmed"] = {"accs": accs, "extra_seeds": sorted(stored[a["hash"]]), "mean_acc": sum(accs) / len(accs)}
    return out


def _mean_note(t: FrozenTrial, stored: dict[str, dict[int, float]]) -> str:
    accs = accuracies(t, stored)
    return f" (mean over {len(accs)} training seeds {sum(accs) / len(accs):.4f})" if len(accs) > 1 else ""


def _confirmed(study: optuna.Study, budget_ms: float, objective: str,
               stored: dict[str, dict[int, float]]) -> list[FrozenTrial]:
    """The confirmed trials within the budget, one per architecture, best mean first."""
    ranked = rank_trials(feasible_trials(study, budget_ms), objective, stored)
    return [t for t in ranked if t.user_attrs["hash"] in stored]


def _plot(study: optuna.Study, budget_ms: float, front_trials: list[FrozenTrial], baselines: list[dict[str, Any]],
          path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trained = _trained(study)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    pruned = [t for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
              if t.user_attrs.get("val_acc") is not None]
    if pruned:
        ax.scatter([t.user_attrs["latency_ms"] for t in pruned], [t.user_attrs["val_acc"] for t in pruned],
                   s=10, color="0.75", label="stopped early (last accuracy)")
    ax.scatter([t.user_attrs["latency_ms"] for t in trained], [t.user_attrs["val_acc"] for t in trained],
               s=14, color="tab:blue", alpha=0.7, label="trials")
    if front_trials:
        ax.plot([t.user_attrs["latency_ms"] for t in front_trials], [t.user_attrs["val_acc"] for t in front_trials],
                "o-", color="tab:red", ms=5, label="Pareto front (within budget)")
    if baselines:
        ax.plot([b["latency_ms"] for b in baselines], [b["val_acc"] for b in baselines], "s--", color="tab:green",
                ms=5, label="MobileNetV2 width multiplier")
        for b in baselines:
            ax.annotate(f"{b['alpha']:g}", (b["latency_ms"], b["val_acc"]), fontsize=7, xytext=(3, -9),
                        textcoords="offset points")
    ax.axvline(budget_ms, color="k", ls=":", lw=1, label=f"budget {budget_ms:.2f} ms")
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel("validation accuracy (proxy)")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def write_outputs(study: optuna.Study, run_dir: Path, *, budget_ms: float, objective: str,
                  baselines: list[dict[str, Any]], header: dict[str, Any], confirmed: bool = True) -> dict[str, Any]:
    """Write the run directory's files; ``confirmed=False``: ignore stored confirmations (``--confirm-top 0``)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_trials_csv(study, run_dir, confirmed=confirmed)
    stored = stored_confirmations(study) if confirmed else {}
    front_trials = front(study, budget_ms)
    best = best_trial(study, budget_ms, objective, confirmed=confirmed)
    result: dict[str, Any] = {"best": _summary_of(best, stored) if best else None,
                              "front": [_summary_of(t) for t in front_trials]}
    if best is not None:
        atomic_write_text(run_dir / "best_arch.json", json.dumps(
            {**result["best"], "budget_ms": budget_ms, **{k: header[k] for k in ("table", "space") if k in header}},
            indent=2, sort_keys=True) + "\n")
    atomic_write_text(run_dir / "pareto.json", json.dumps({"budget_ms": budget_ms, "front": result["front"]}, indent=2,
                                                     sort_keys=True) + "\n")
    _plot(study, budget_ms, front_trials, baselines, run_dir / "pareto.png")
    atomic_write_text(run_dir / "summary.md", _summary_md(study, budget_ms, objective, best, front_trials, baselines,
                                                     header, stored))
    return result


def _summary_md(study: optuna.Study, budget_ms: float, objective: str, best: FrozenTrial | None,
                front_trials: list[FrozenTrial], baselines: list[dict[str, Any]], header: dict[str, Any],
                stored: dict[str, dict[int, float]]) -> str:
    df = trials_frame(study, confirmed=bool(stored))
    status = df["status"].value_counts().to_dict() if len(df) else {}
    lines = ["# Search summary", ""]
    lines += [f"- {k}: {v}" for k, v in header.items()]
    lines += [f"- budget: {budget_ms:.3f} ms", f"- trials: {len(df)} ({', '.join(f'{k} {v}' for k, v in status.items())})",
              ""]
    if best is not None:
        a = best.user_attrs
        lines += ["## Best architecture within budget", "",
                  f"trial {best.number}: predicted latency {a['latency_ms']:.3f} ms, validation accuracy "
                  f"{a['val_acc']:.4f}{_mean_note(best, stored)}, {a['params']:,} parameters, "
                  f"{a['macs']:,} MACs", "",
                  f"    {a['compact']}", ""]
    else:
        lines += ["No trained architecture met the budget.", ""]
    confirmed = _confirmed(study, budget_ms, objective, stored)
    if confirmed:
        lines += ["## Choosing the winner: the best candidates trained again with more seeds", "",
                  "The winner is the best on the mean proxy accuracy over every seed (in reward mode, the reward of "
                  "that mean).", "", "| trial | latency ms | val acc per seed | mean val acc |", "|---:|---:|---|---:|"]
        lines += [f"| {t.number} | {t.user_attrs['latency_ms']:.3f} | "
                  f"{', '.join(f'{x:.4f}' for x in accuracies(t, stored))} | "
                  f"{sum(accuracies(t, stored)) / len(accuracies(t, stored)):.4f} |" for t in confirmed]
        lines.append("")
    if front_trials:
        lines += ["## Pareto front (within budget)", "", "| trial | latency ms | val acc | params | MACs |",
                  "|---:|---:|---:|---:|---:|"]
        lines += [f"| {t.number} | {t.user_attrs['latency_ms']:.3f} | {t.user_attrs['val_acc']:.4f} | "
                  f"{t.user_attrs['params']:,} | {t.user_attrs['macs']:,} |" for t in front_trials]
        lines.append("")
    if baselines:
        lines += ["## MobileNetV2 width-multiplier baselines (same proxy)", "", "| alpha | latency ms | val acc |",
                  "|---:|---:|---:|"]
        lines += [f"| {b['alpha']:g} | {b['latency_ms']:.3f} | {b['val_acc']:.4f} |" for b in baselines]
        lines.append("")
    lines += ["Files: trials.csv, best_arch.json, pareto.json, pareto.png, study.db (SQLite runs).", ""]
    return "\n".join(lines)
