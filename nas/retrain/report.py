"""``RUN_DIR/report.md`` and ``RUN_DIR/report.png`` from stored results only (no training).

Inputs: ``retrain/results.csv``, and for context ``summary.md`` (the search header),
``retrain/<tag>/recipe.json`` (the recipe) and ``retrain/<tag>/skipped.json`` (references
that did not fit). Seeds are averaged (mean, and the standard deviation when there are
several). Only finished seeds (with a test accuracy) count as seeds: a diverged or unfinished
seed is shown in the seeds column (``1 of 2``) and is in no mean, spread or comparison. The
latency axis is the measured latency when every network of a recipe has one
(the table's backend is local), else the table's prediction; the report says which.

Chance level (:mod:`nas.retrain.chance`): a network whose result is at chance level on any
seed is marked in the table, with the reasons listed, and is compared with nothing: its
accuracy says nothing about its architecture. A recipe with such results starts with a
warning saying how many. ``report.png`` draws chance level, and its accuracy axis always
includes it and spans at least 20 points, so noise near chance is not drawn as a trend.

Comparisons, only between networks with >= 2 finished seeds and not at chance level (one seed decides
nothing, and the report says so instead of giving a difference): for each winner, the
MobileNetV2 width-multiplier curve interpolated (linearly in latency) at the winner's latency,
the references that are not faster, and ``cse-mix-cifar``. Every difference is given with the
seed standard deviations of both sides, and judged against the larger one (the rule of the
README's measured figures): "ahead by more than the seed spread", "within the seed spread", or
"behind by more than the seed spread".
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas.atomic import atomic_write_text
from nas.retrain.results import read_results
from nas.retrain.source import summary_header
from nas.retrain.stored import start_text
from nas.write_errors import save_figure, storing

__all__ = ["MIN_Y_SPAN", "build_report", "summarise", "y_limits"]

_MBV2 = "mobilenetv2-cifar"
_MIX = "cse-mix-cifar"


def _alpha(name: str) -> float | None:
    base, _, alpha = name.partition("@")
    if base != _MBV2:
        return None
    return float(alpha) if alpha else 1.0


_NEW_COLUMNS = ("chance_acc", "near_chance", "classes")
#: The accuracy axis of report.png spans at least this many points (and includes chance level).
MIN_Y_SPAN = 20.0


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (recipe, kind, name): seed means, test accuracy std, latency columns, chance-level seeds.

    ``seeds``: the finished seeds (those with a test accuracy), which the mean and std are over; ``runs``: all
    seeds stored, diverged or unfinished ones included."""
    frame = frame.copy()
    for col in _NEW_COLUMNS:  # results stored before these were recorded
        if col not in frame:
            frame[col] = None
    frame["near_chance"] = frame["near_chance"].astype(object).fillna("").astype(str)
    for col in ("test_acc", "predicted_ms", "measured_ms", "params", "macs", "proxy_val_acc", "parity_max_abs_diff",
                "trial", "train_images", "test_images", "chance_acc"):
        if col in frame:
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    agg = frame.groupby(["recipe", "kind", "name"], sort=False).agg(
        seeds=("test_acc", "count"), runs=("seed", "count"), test_acc=("test_acc", "mean"),
        test_acc_std=("test_acc", "std"),
        predicted_ms=("predicted_ms", "mean"), measured_ms=("measured_ms", "mean"), params=("params", "first"),
        macs=("macs", "first"), proxy_val_acc=("proxy_val_acc", "first"), trial=("trial", "first"),
        parity=("parity_max_abs_diff", "max"), parity_ok=("parity_ok", lambda s: bool(pd.Series(s).astype(str)
                                                                                     .eq("True").all())),
        onnx=("onnx", "first"), status=("status", lambda s: ",".join(sorted(set(map(str, s))))),
        train_images=("train_images", "first"), test_images=("test_images", "first"),
        subset=("subset", "first"), test_subset=("test_subset", "first"), chance_acc=("chance_acc", "max"),
        chance_seeds=("near_chance", lambda s: int((s != "").sum())),
    ).reset_index()
    return agg


def _latency_axis(group: pd.DataFrame) -> tuple[str, str]:
    if group["measured_ms"].notna().all():
        return "measured_ms", "measured latency (ms)"
    return "predicted_ms", "predicted latency (ms, table)"


def _comparable(refs: pd.DataFrame) -> pd.DataFrame:
    """The references a winner may be compared with: >= 2 finished seeds, not at chance level."""
    return refs[(refs["seeds"] >= 2) & (refs["chance_seeds"] == 0) & refs["test_acc"].notna()]


def _curve_at(refs: pd.DataFrame, x: str, latency: float) -> tuple[float, float] | None:
    """The width curve's (accuracy, seed std) interpolated at ``latency``, or None outside its range."""
    curve = refs[refs["name"].map(_alpha).notna()].dropna(subset=[x, "test_acc"]).sort_values(x)
    if len(curve) < 2 or not curve[x].min() <= latency <= curve[x].max():
        return None
    xs = curve[x].to_numpy()
    return (float(np.interp(latency, xs, curve["test_acc"].to_numpy())),
            float(np.interp(latency, xs, curve["test_acc_std"].fillna(0).to_numpy())))


def _spread(a: float, b: float) -> float:
    """The larger of two seed standard deviations; NaN when either is unknown (``max`` would drop a NaN)."""
    return math.nan if math.isnan(a) or math.isnan(b) else max(a, b)


def _verdict(diff: float, spread: float) -> str:
    if math.isnan(spread):
        return "seed spread unknown: not judged"
    if abs(diff) <= spread:
        return "within the seed spread"
    return f"{'ahead' if diff > 0 else 'behind'} by more than the seed spread"


def _difference(w: pd.Series, what: str, acc: float, std: float, seeds: str) -> str:
    """``+1.00 points vs WHAT (seed std 1.00 / 1.00 over 3 / 3 seeds): within the seed spread``."""
    diff, w_std = (w["test_acc"] - acc) * 100, w["test_acc_std"] * 100
    return (f"{diff:+.2f} points vs {what} (seed std {w_std:.2f} / {std * 100:.2f} over {int(w['seeds'])} / {seeds} "
            f"seeds): {_verdict(diff, _spread(w_std, std * 100))}")


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


def _chance_note(row: pd.Series) -> str:
    if row["chance_seeds"] == 0:
        return ""
    return f"**chance level** ({int(row['chance_seeds'])} of {int(row['seeds'])} seeds)"


def _seeds(row: pd.Series) -> str:
    """The seeds column: ``2``, or ``1 of 2`` when some seeds did not finish (diverged, unfinished)."""
    finished, runs = int(row["seeds"]), int(row["runs"])
    return str(finished) if finished == runs else f"{finished} of {runs}"


def _few_seeds(row: pd.Series) -> str:
    """A network with fewer than 2 finished seeds, as the warnings name it."""
    return _name(row) + ("" if row["seeds"] == row["runs"] else f" ({_seeds(row)} seeds finished)")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _data_line(group: pd.DataFrame) -> str:
    first = group.iloc[0]
    notes = [f"{_fmt(first['train_images'], '.0f')} training images (train + validation of the search)",
             f"{_fmt(first['test_images'], '.0f')} test images"]
    if pd.notna(first["subset"]):
        notes.append(f"**training subset of {int(first['subset'])} images (a CPU-scale check)**")
    if pd.notna(first["test_subset"]):
        notes.append(f"**test subset of {int(first['test_subset'])} images**")
    chance = group["chance_acc"].max()
    if pd.notna(chance):
        notes.append(f"chance level ({chance * 100:.1f} %): the accuracy of always predicting the test split's most "
                     f"frequent class")
    return "Data: " + "; ".join(notes) + "."


def _warnings(group: pd.DataFrame, raw: pd.DataFrame) -> list[str]:
    """The recipe's warnings: results at chance level (with their reasons), single seeds."""
    lines = []
    flagged = group[group["chance_seeds"] > 0]
    if not flagged.empty:
        lines += [(f"**{len(flagged)} of {len(group)} networks are at chance level** on at least one seed: their "
                   "accuracy says nothing about their architecture, and they are compared with nothing. Train longer "
                   "(--epochs) or on more images. Why each was flagged:"), ""]
        for _, r in raw[raw["near_chance"] != ""].iterrows():
            lines.append(f"- {_name(r)} seed {int(r['seed'])}: {r['near_chance']}")
        lines.append("")
    few = group[group["seeds"] < 2]
    if not few.empty:
        lines += ["One seed per network (" + ", ".join(_few_seeds(r) for _, r in few.iterrows())
                  + "): one seed decides nothing, so no difference between these networks is stated; retrain with "
                  "--seeds 2 or more to compare them (more when a seed diverges).", ""]
    return lines


def _table(group: pd.DataFrame) -> list[str]:
    lines = [("| network | kind | params | MACs (M) | predicted ms | measured ms | test acc % | seeds | note | "
              "search proxy acc | ONNX (parity max abs diff) |"), "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---|"]
    for _, row in group.iterrows():
        onnx = "-" if not isinstance(row["onnx"], str) else f"`{row['onnx']}` ({_fmt(row['parity'], '.1e')})"
        if not row["parity_ok"] and isinstance(row["onnx"], str):
            onnx += " **parity failed**"
        status = "" if row["status"] == "completed" else f" ({row['status']})"
        lines.append(f"| {_name(row)}{status} | {row['kind']} | {_fmt(row['params'], ',.0f')} | "
                     f"{_fmt(row['macs'] / 1e6 if pd.notna(row['macs']) else None, '.1f')} | "
                     f"{_fmt(row['predicted_ms'], '.3f')} | {_fmt(row['measured_ms'], '.3f')} | {_acc(row)} | "
                     f"{_seeds(row)} | {_chance_note(row)} | {_fmt(row['proxy_val_acc'], '.4f')} | {onnx} |")
    return lines + [""]


def _compare(w: pd.Series, refs: pd.DataFrame, x: str) -> list[str]:
    """What can be said about winner ``w`` against the comparable references (see the module doc)."""
    if w["chance_seeds"] > 0:
        return ["at chance level: compared with nothing"]
    if w["seeds"] < 2:
        if w["runs"] >= 2:
            return [f"one seed decides nothing: not compared ({_seeds(w)} seeds finished; the others diverged or "
                    f"did not finish)"]
        return ["one seed decides nothing: not compared (retrain with --seeds 2 or more)"]
    parts = []
    curve = _curve_at(refs, x, float(w[x]))
    if curve is not None:
        seeds = "/".join(sorted({str(int(n)) for n in refs[refs["name"].map(_alpha).notna()]["seeds"]}))
        what = f"the MobileNetV2 width curve at the same latency ({curve[0] * 100:.2f} %)"
        parts.append(_difference(w, what, curve[0], curve[1], seeds))
    slower = refs[refs[x] >= w[x]]
    diffs = [((w["test_acc"] - r["test_acc"]) * 100, _spread(w["test_acc_std"], r["test_acc_std"]) * 100)
             for _, r in slower.iterrows()]
    diffs = [(d, spread) for d, spread in diffs if not math.isnan(spread)]  # (none: >= 2 finished seeds each)
    if diffs:
        ahead = sum(d > spread for d, spread in diffs)
        behind = sum(-d > spread for d, spread in diffs)
        parts.append(f"of the {len(diffs)} comparable reference(s) that are not faster: ahead of {ahead} and behind "
                     f"{behind} by more than the seed spread, within it of {len(diffs) - ahead - behind}")
    mix = refs[refs["name"] == _MIX]
    if not mix.empty and pd.notna(mix.iloc[0][x]):
        m = mix.iloc[0]
        what = f"{_MIX} at {w[x] / m[x]:.2f}x its latency"
        parts.append(_difference(w, what, m["test_acc"], m["test_acc_std"], str(int(m["seeds"]))))
    return parts or ["no comparable reference"]


def _comparisons(group: pd.DataFrame, x: str, x_label: str) -> list[str]:
    winners = group[group["kind"] == "winner"]
    refs = group[group["kind"] == "reference"]
    if refs.empty or winners.empty:
        return []
    comparable = _comparable(refs)
    lines = [(f"Comparison on {x_label}, only between networks with >= 2 finished seeds that are not at chance "
              "level; a difference counts when it exceeds the larger seed standard deviation:"), ""]
    left_out = [_name(r) for _, r in refs.iterrows() if r["name"] not in set(comparable["name"])]
    if left_out:
        lines += [f"References left out (fewer than 2 finished seeds, or at chance level): {', '.join(left_out)}.", ""]
    for _, w in winners.iterrows():
        if pd.isna(w["test_acc"]) or pd.isna(w[x]):
            continue
        lines.append(f"- {_name(w)}: {_acc(w)} % at {w[x]:.3f} ms; " + "; ".join(_compare(w, comparable, x)))
    return lines + [""]


def _recipe_section(run_dir: Path, tag: str, group: pd.DataFrame, raw: pd.DataFrame) -> list[str]:
    x, x_label = _latency_axis(group)
    recipe = _read_json(run_dir / "retrain" / tag / "recipe.json") or {}
    lines = [f"## Recipe `{tag}`", ""]
    if recipe.get("description"):
        lines += [recipe["description"], ""]
    if isinstance(recipe.get("init"), dict):
        lines += [f"The winners start from {start_text(recipe['init'])}; the references from random weights.", ""]
    lines += [_data_line(group), ""]
    lines += _warnings(group, raw)
    lines += _table(group)
    lines += _comparisons(group, x, x_label)
    skipped = _read_json(run_dir / "retrain" / tag / "skipped.json") or {}
    if skipped:
        lines += ["References not retrained (they do not fit this run):", ""]
        lines += [f"- {name}: {why}" for name, why in skipped.items()]
        lines.append("")
    return lines


def y_limits(values: list[float], chance: float | None) -> tuple[float, float]:
    """The accuracy axis (percent): the values and chance level with 5 points of margin, at least
    :data:`MIN_Y_SPAN` points, within 0-100."""
    points = list(values) + ([chance] if chance is not None else [])
    if not points:
        return 0.0, 100.0
    low, high = max(0.0, min(points) - 5), min(100.0, max(points) + 5)
    missing = MIN_Y_SPAN - (high - low)
    if missing > 0:
        high = min(100.0, high + missing)
        low = max(0.0, high - MIN_Y_SPAN)
    return low, high


def _draw(ax: Any, group: pd.DataFrame, x: str) -> None:
    ok = group.dropna(subset=[x, "test_acc"])
    winners, refs = ok[ok["kind"] == "winner"], ok[ok["kind"] == "reference"]
    curve = refs[refs["name"].map(_alpha).notna()].sort_values(x)
    if not curve.empty:
        ax.errorbar(curve[x], curve["test_acc"] * 100, yerr=curve["test_acc_std"].fillna(0) * 100, fmt="s--",
                    color="tab:green", ms=5, capsize=2, label="MobileNetV2 (width multiplier)")
        for _, r in curve.iterrows():
            ax.annotate(f"{_alpha(r['name']):g}", (r[x], r["test_acc"] * 100), fontsize=7, xytext=(3, -9),
                        textcoords="offset points")
    for _, r in refs[refs["name"].map(_alpha).isna()].iterrows():
        ax.errorbar([r[x]], [r["test_acc"] * 100], yerr=[(r["test_acc_std"] if pd.notna(r["test_acc_std"])
                                                         else 0) * 100], fmt="D", ms=6, capsize=2, label=r["name"])
    if not winners.empty:
        ax.errorbar(winners[x], winners["test_acc"] * 100, yerr=winners["test_acc_std"].fillna(0) * 100, fmt="o",
                    color="tab:red", ms=6, capsize=2, label="retrained winners")
        for _, w in winners.iterrows():
            ax.annotate(_name(w).replace("trial ", "t"), (w[x], w["test_acc"] * 100), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
    flagged = ok[ok["chance_seeds"] > 0]
    if not flagged.empty:
        ax.scatter(flagged[x], flagged["test_acc"] * 100, marker="x", s=60, color="0.3", zorder=5,
                   label="at chance level")


def _plot(groups: list[tuple[str, pd.DataFrame]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(groups), figsize=(6.5 * len(groups), 4.5), squeeze=False)
    for ax, (tag, group) in zip(axes[0], groups):
        x, x_label = _latency_axis(group)
        ok = group.dropna(subset=[x, "test_acc"])
        _draw(ax, group, x)
        chance = group["chance_acc"].max()
        chance_pct = float(chance) * 100 if pd.notna(chance) else None
        if chance_pct is not None:
            ax.axhline(chance_pct, color="0.4", ls=":", lw=1, label=f"chance level ({chance_pct:.1f} %)")
        errors = (ok["test_acc_std"].fillna(0) * 100).to_numpy()
        accs = (ok["test_acc"] * 100).to_numpy()
        ax.set_ylim(*y_limits(list(accs + errors) + list(accs - errors), chance_pct))
        ax.set_title(f"recipe {tag}", fontsize=9)
        ax.set_xlabel(x_label)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        if len(ok):
            ax.legend(fontsize=7, loc="best")
        else:
            ax.text(0.5, 0.5, "no finished network", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    save_figure(fig, path)


def build_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.png`` in ``run_dir`` from its stored results; returns both paths."""
    run = Path(run_dir)
    frame = read_results(run)
    frame["near_chance"] = frame["near_chance"].astype(object).fillna("").astype(str) if "near_chance" in frame \
        else ""
    summary = summarise(frame)
    header = summary_header(run / "summary.md")
    lines = ["# Retraining report", "", f"- run: {run}"]
    lines += [f"- {k}: {header[k]}" for k in ("table", "device", "space", "data", "objective", "budget")
              if k in header]
    lines += ["- test accuracy: the source's test split, used for this figure only (never in search or training); "
              "training used the search's train + validation images", ""]
    groups = [(str(tag), g.reset_index(drop=True)) for tag, g in summary.groupby("recipe", sort=True)]
    for tag, group in groups:
        lines += _recipe_section(run, tag, group, frame[frame["recipe"].astype(str) == tag])
    lines += ["![accuracy vs latency](report.png)", "",
              "Files: retrain/results.csv (one row per network and seed), retrain/<recipe>/winners/<hash>/seed<k>/ "
              "(checkpoint.pt, metrics.csv, weights.pt, model.onnx, result.json); references are trained once in the "
              "reference cache and linked by path.", ""]
    md = run / "report.md"
    with storing(md):
        atomic_write_text(md, "\n".join(lines))
    png = run / "report.png"
    _plot(groups, png)
    return md, png
