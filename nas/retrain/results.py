"""``RUN_DIR/retrain/results.csv``: one row per retrained network and seed.

Each finished (network, seed) leaves a ``result.json`` in its run folder
``RUN_DIR/retrain/<recipe tag>/<winners|references>/<name>/seed<k>/``; ``results.csv`` is
rebuilt from all of them (atomically) after every network, so a kill loses at most the
network in progress, whose checkpoint survives. Paths in the CSV are relative to the run
directory when they lie inside it.

``near_chance`` is computed here from each stored result (:mod:`nas.retrain.chance`): the
reasons the result is at chance level, empty when it is not (or, for results stored before
``chance_acc`` and ``top_class_share`` were recorded, unknown).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from nas.atomic import atomic_path
from nas.errors import RetrainError
from nas.retrain.chance import chance_flag
from nas.write_errors import storing

__all__ = ["COLUMNS", "RESULT_FILE", "near_chance", "results_path", "collect_results", "write_results", "read_results"]

RESULT_FILE = "result.json"

COLUMNS: tuple[str, ...] = (
    "recipe", "kind", "name", "trial", "hash", "seed", "status", "epochs", "epochs_run", "test_acc", "test_loss",
    "test_images", "train_images", "subset", "test_subset", "params", "macs", "predicted_ms", "predicted_interpolated",
    "measured_ms", "measured_p10_ms", "measured_p90_ms", "latency_backend", "onnx", "parity_max_abs_diff",
    "parity_ok", "proxy_val_acc", "search_latency_ms", "monitor_acc", "wall_s", "device", "model_dir", "compact",
    "classes", "chance_acc", "top_class", "top_class_share", "near_chance", "bn_recalibration", "augment",
)


#: What ``nas report`` reads from results.csv (chance_acc, near_chance and classes too, filled where results stored
#: before they were recorded lack them: :mod:`nas.retrain.report`).
REPORT_COLUMNS: tuple[str, ...] = (
    "recipe", "kind", "name", "trial", "seed", "status", "test_acc", "test_images", "train_images", "subset",
    "test_subset", "params", "macs", "predicted_ms", "measured_ms", "onnx", "parity_max_abs_diff", "parity_ok",
    "proxy_val_acc",
)


def near_chance(record: dict[str, Any]) -> str | None:
    """:func:`~nas.retrain.chance.chance_flag` of a stored result; None when it lacks the figures."""
    needed = ("test_acc", "chance_acc", "top_class_share", "test_images")
    if any(record.get(k) is None for k in needed):
        return None
    return chance_flag(test_acc=float(record["test_acc"]), chance_acc=float(record["chance_acc"]),
                       top_class_share=float(record["top_class_share"]), top_class=str(record.get("top_class")),
                       test_images=int(record["test_images"]))


def results_path(run_dir: Path) -> Path:
    return run_dir / "retrain" / "results.csv"


def collect_results(run_dir: Path) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for path in sorted((run_dir / "retrain").glob(f"*/*/*/seed*/{RESULT_FILE}")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # torn by a kill: that network is finished again on the next run
        rows.append({**{c: record.get(c) for c in COLUMNS}, "near_chance": near_chance(record)})
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in ("trial", "subset", "test_subset", "predicted_interpolated", "classes", "bn_recalibration"):
        frame[col] = pd.to_numeric(frame[col]).astype("Int64")  # integers with gaps, not floats
    order = {"winner": 0, "reference": 1}
    if len(frame):
        frame = frame.assign(_k=frame["kind"].map(order)).sort_values(["recipe", "_k", "name", "seed"]).drop(
            columns="_k")
    return frame.reset_index(drop=True)


def write_results(run_dir: Path) -> Path:
    path = results_path(run_dir)
    frame = collect_results(run_dir)
    with storing(path), atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def read_results(run_dir: Path) -> pd.DataFrame:
    path = results_path(run_dir)
    if not run_dir.is_dir():
        raise RetrainError(f"--run {run_dir}: no such run directory; expected the folder a 'nas search' wrote")
    if not path.is_file():
        raise RetrainError(f"{path}: not found: nothing has been retrained in {run_dir} yet; run "
                           f"'nas retrain --run {run_dir}' first (the report is built from its results)")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame(columns=list(COLUMNS))
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise RetrainError(f"{path}: unreadable ({str(exc).splitlines()[0]}); re-run 'nas retrain --run {run_dir}' "
                           f"with the same options to rewrite it from the stored result.json files") from None
    # the columns the report reads, but the ones it fills for results stored before they were recorded
    missing = [c for c in REPORT_COLUMNS if c not in frame]
    if missing:
        raise RetrainError(f"{path}: missing column(s) {', '.join(missing)}; re-run 'nas retrain --run {run_dir}' "
                           f"with the same options to rewrite it from the stored result.json files")
    if frame.empty:
        raise RetrainError(f"{path}: no retrained network in it yet; run 'nas retrain --run {run_dir}' and let at "
                           f"least one network finish")
    seeds = pd.to_numeric(frame["seed"], errors="coerce")
    bad = [i + 2 for i, seed in enumerate(seeds) if pd.isna(seed) or not float(seed).is_integer()]
    if bad:  # line numbers as a spreadsheet shows them (the header is line 1)
        raise RetrainError(f"{path}: line {bad[0]}: seed: expected an integer, got {frame['seed'].iloc[bad[0] - 2]!r}; "
                           f"re-run 'nas retrain --run {run_dir}' with the same options to rewrite it")
    return frame
