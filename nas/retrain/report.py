"""``RUN_DIR/report.md`` and ``RUN_DIR/report.png`` from stored results only (no training).

Inputs: ``retrain/results.csv``, and for context ``summary.md`` (the search header),
``retrain/<tag>/recipe.json`` (the recipe) and ``retrain/<tag>/skipped.json`` (references
that did not fit). Seeds are averaged (mean, and the standard deviation when there are
several). The latency axis is the measured latency when every network of a recipe has one
(the table's backend is local), else the table's prediction; the report says which.

Comparison with the references: for each winner, the MobileNetV2 width-multiplier curve is
interpolated (linearly in latency) at the winner's latency, giving "points above the curve"
when the winner's latency lies inside the curve's range; and the winner is compared with
``cse-mix-cifar`` (accuracy difference, latency ratio).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas.atomic import atomic_path, atomic_write_text
from nas.retrain.results import read_results
from nas.retrain.source import summary_header

__all__ = ["build_report", "summarise"]

_MBV2 = "mobilenetv2-cifar"
_MIX = "cse-mix-cifar"


def _alpha(name: str) -> float | None:
    base, _, alpha = name.partition("@")
    if base != _MBV2:
        return None
    return float(alpha) if alpha else 1.0


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (recipe, kind, name): seed means, test accuracy std, latency columns."""
    frame = frame.copy()
    for col in ("test_acc", "predicted_ms", "measured_ms", "params", "macs", "proxy_val_acc", "parity_max_abs_diff",
                "trial", "train_images", "test_images"):
        if col in frame:
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    agg = frame.groupby(["recipe", "kind", "name"], sort=False).agg(
        seeds=("seed", "count"), test_acc=("test_acc", "mean"), test_acc_std=("test_acc", "std"),
        predicted_ms=("predicted_ms", "mean"), measured_ms=("measured_ms", "mean"), params=("params", "first"),
        macs=("macs", "first"), proxy_val_acc=("proxy_val_acc", "first"), trial=("trial", "first"),
        parity=("parity_max_abs_diff", "max"), parity_ok=("parity_ok", lambda s: bool(pd.Series(s).astype(str)
                                                                                     .eq("True").all())),
        onnx=("onnx", "first"), status=("status", lambda s: ",".join(sorted(set(map(str, s))))),
        train_images=("train_images", "first"), test_images=("test_images", "first"),
        subset=("subset", "first"), test_subset=("test_subset", "first"),
    ).reset_index()
    return agg


def _latency_axis(group: pd.DataFrame) -> tuple[str, str]:
    if group["measured_ms"].notna().all():
        return "measured_ms", "measured latency (ms)"
    return "predicted_ms", "predicted latency (ms, table)"


def _curve_acc(refs: pd.DataFrame, x: str, latency: float) -> float | None:
    curve = refs[refs["name"].map(_alpha).notna()].dropna(subset=[x, "test_acc"]).sort_values(x)
    if len(curve) < 2 or not curve[x].min() <= latency <= curve[x].max():
        return None
    return float(np.interp(latency, curve[x].to_numpy(), curve["test_acc"].to_numpy()))


def _fmt(value: Any, spec: str, empty: str = "-") -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return empty
    return empty if math.isnan(v) else format(v, spec)


def _acc(row: pd.Series) -> str:
    text = _fmt(row["test_acc"] * 100 if pd.notna(row["test_acc"]) else None, ".2f")
    if row["seeds"] > 1 and pd.notna(row["test_acc_std"]):
        text += f" ± {row['test_acc_std'] * 100:.2f}"
    return text


def _name(row: pd.Series) -> str:
    if row["kind"] == "winner":
        return f"trial {int(row['trial'])}" if pd.notna(row["trial"]) else str(row["name"])
    return str(row["name"])


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _recipe_section(run_dir: Path, tag: str, group: pd.DataFrame) -> list[str]:
    x, x_label = _latency_axis(group)
    recipe = _read_json(run_dir / "retrain" / tag / "recipe.json") or {}
    lines = [f"## Recipe `{tag}`", ""]
    if recipe.get("description"):
        lines += [recipe["description"], ""]
    first = group.iloc[0]
    data_notes = [f"{_fmt(first['train_images'], '.0f')} training images (train + validation of the search)",
                  f"{_fmt(first['test_images'], '.0f')} test images"]
    if pd.notna(first["subset"]):
        data_notes.append(f"**training subset of {int(first['subset'])} images (a CPU-scale check)**")
    if pd.notna(first["test_subset"]):
        data_notes.append(f"**test subset of {int(first['test_subset'])} images**")
    lines += ["Data: " + "; ".join(data_notes) + ".", ""]
    lines += ["| network | kind | params | MACs (M) | predicted ms | measured ms | test acc % | seeds | "
              "search proxy acc | ONNX (parity max abs diff) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for _, row in group.iterrows():
        onnx = "-" if not isinstance(row["onnx"], str) else f"`{row['onnx']}` ({_fmt(row['parity'], '.1e')})"
        if not row["parity_ok"] and isinstance(row["onnx"], str):
            onnx += " **parity failed**"
        status = "" if row["status"] == "completed" else f" ({row['status']})"
        lines.append(f"| {_name(row)}{status} | {row['kind']} | {_fmt(row['params'], ',.0f')} | "
                     f"{_fmt(row['macs'] / 1e6 if pd.notna(row['macs']) else None, '.1f')} | "
                     f"{_fmt(row['predicted_ms'], '.3f')} | {_fmt(row['measured_ms'], '.3f')} | {_acc(row)} | "
                     f"{row['seeds']} | {_fmt(row['proxy_val_acc'], '.4f')} | {onnx} |")
    lines.append("")
    winners = group[group["kind"] == "winner"]
    refs = group[group["kind"] == "reference"]
    if not refs.empty and not winners.empty:
        lines += [f"Comparison on {x_label}:", ""]
        mix = refs[refs["name"] == _MIX]
        for _, w in winners.iterrows():
            if pd.isna(w["test_acc"]) or pd.isna(w[x]):
                continue
            parts = [f"- {_name(w)}: {w['test_acc'] * 100:.2f} % at {w[x]:.3f} ms"]
            curve = _curve_acc(refs, x, float(w[x]))
            if curve is not None:
                parts.append(f"{(w['test_acc'] - curve) * 100:+.2f} points vs the MobileNetV2 width curve at the same "
                             f"latency ({curve * 100:.2f} %)")
            faster = refs[(refs[x] >= w[x]) & refs["test_acc"].notna()]
            beaten = faster[faster["test_acc"] <= w["test_acc"]]
            parts.append(f"at least as accurate as {len(beaten)} of the {len(faster)} reference(s) that are not "
                         f"faster")
            if not mix.empty and pd.notna(mix.iloc[0][x]) and pd.notna(mix.iloc[0]["test_acc"]):
                m = mix.iloc[0]
                parts.append(f"vs {_MIX}: {(w['test_acc'] - m['test_acc']) * 100:+.2f} points at "
                             f"{w[x] / m[x]:.2f}x its latency")
            lines.append("; ".join(parts))
        lines.append("")
    skipped = _read_json(run_dir / "retrain" / tag / "skipped.json") or {}
    if skipped:
        lines += ["References not retrained (they do not fit this run):", ""]
        lines += [f"- {name}: {why}" for name, why in skipped.items()]
        lines.append("")
    return lines


def _plot(groups: list[tuple[str, pd.DataFrame]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(groups), figsize=(6.5 * len(groups), 4.5), squeeze=False)
    for ax, (tag, group) in zip(axes[0], groups):
        x, x_label = _latency_axis(group)
        ok = group.dropna(subset=[x, "test_acc"])
        winners = ok[ok["kind"] == "winner"]
        refs = ok[ok["kind"] == "reference"]
        curve = refs[refs["name"].map(_alpha).notna()].sort_values(x)
        if not curve.empty:
            ax.errorbar(curve[x], curve["test_acc"] * 100, yerr=curve["test_acc_std"].fillna(0) * 100, fmt="s--",
                        color="tab:green", ms=5, capsize=2, label="MobileNetV2 (width multiplier)")
            for _, r in curve.iterrows():
                ax.annotate(f"{_alpha(r['name']):g}", (r[x], r["test_acc"] * 100), fontsize=7, xytext=(3, -9),
                            textcoords="offset points")
        others = refs[refs["name"].map(_alpha).isna()]
        for _, r in others.iterrows():
            ax.errorbar([r[x]], [r["test_acc"] * 100], yerr=[(r["test_acc_std"] if pd.notna(r["test_acc_std"])
                                                             else 0) * 100], fmt="D", ms=6, capsize=2, label=r["name"])
        if not winners.empty:
            ax.errorbar(winners[x], winners["test_acc"] * 100, yerr=winners["test_acc_std"].fillna(0) * 100, fmt="o",
                        color="tab:red", ms=6, capsize=2, label="retrained winners")
            for _, w in winners.iterrows():
                ax.annotate(_name(w).replace("trial ", "t"), (w[x], w["test_acc"] * 100), fontsize=7,
                            xytext=(4, 4), textcoords="offset points")
        ax.set_title(f"recipe {tag}", fontsize=9)
        ax.set_xlabel(x_label)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        if len(ok):
            ax.legend(fontsize=7, loc="lower right")
        else:
            ax.text(0.5, 0.5, "no finished network", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def build_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.png`` in ``run_dir`` from its stored results; returns both paths."""
    run = Path(run_dir)
    frame = read_results(run)
    summary = summarise(frame)
    header = summary_header(run / "summary.md")
    lines = ["# Retraining report", "", f"- run: {run}"]
    lines += [f"- {k}: {header[k]}" for k in ("table", "device", "space", "data", "objective", "budget")
              if k in header]
    lines += ["- test accuracy: the source's test split, used for this figure only (never in search or training); "
              "training used the search's train + validation images", ""]
    groups = [(str(tag), g.reset_index(drop=True)) for tag, g in summary.groupby("recipe", sort=True)]
    for tag, group in groups:
        lines += _recipe_section(run, tag, group)
    lines += ["![accuracy vs latency](report.png)", "",
              "Files: retrain/results.csv (one row per network and seed), retrain/<recipe>/winners/<hash>/seed<k>/ "
              "(checkpoint.pt, metrics.csv, weights.pt, model.onnx, result.json); references are trained once in the "
              "reference cache and linked by path.", ""]
    md = run / "report.md"
    atomic_write_text(md, "\n".join(lines))
    png = run / "report.png"
    _plot(groups, png)
    return md, png
