"""The human-readable records of a run directory: ``metrics.csv`` and ``metrics.json``.

``metrics.csv`` has one row per completed epoch (:class:`~nas.train.config.EpochMetrics`
fields, header once). At the start of every run it is rewritten from the history the run
starts from (empty, or the checkpoint's), then appended to after each epoch. The checkpoint is
the authority: whatever a crash between "checkpoint saved" and "row appended" left behind, a
resumed run's CSV lists each epoch exactly once.

``metrics.json`` is written when a run ends (completed, diverged or stopped) with the summary
of :class:`~nas.train.config.TrainResult` plus the config and device; other tools may add keys
(the CLI adds the test accuracy).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from nas.atomic import atomic_write_text
from nas.train.config import EpochMetrics, TrainConfig, TrainResult
from nas.write_errors import storing

__all__ = ["METRICS_CSV", "METRICS_JSON", "reset_metrics_csv", "append_metrics_csv", "write_metrics_json"]

METRICS_CSV = "metrics.csv"
METRICS_JSON = "metrics.json"

_COLUMNS = tuple(f.name for f in fields(EpochMetrics))


def reset_metrics_csv(out_dir: Path, history: tuple[EpochMetrics, ...]) -> Path:
    """Rewrite ``metrics.csv`` (atomically) with the header and the rows of ``history``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_COLUMNS)
    writer.writeheader()
    writer.writerows(m.to_dict() for m in history)
    path = out_dir / METRICS_CSV
    with contextlib.suppress(OSError):
        if path.read_text() == buffer.getvalue():  # a finished run re-run: nothing to rewrite
            return path
    with storing(path):
        atomic_write_text(path, buffer.getvalue())
    return path


def append_metrics_csv(out_dir: Path, metrics: EpochMetrics) -> None:
    """One row; a row torn by a full disk is rewritten from the checkpoint when the run resumes."""
    with storing(out_dir / METRICS_CSV), open(out_dir / METRICS_CSV, "a", newline="") as f:
        csv.DictWriter(f, fieldnames=_COLUMNS).writerow(metrics.to_dict())


def write_metrics_json(out_dir: Path, result: TrainResult, config: TrainConfig, device: str,
                       extra: dict[str, Any] | None = None) -> Path:
    """Write the run summary; ``extra`` keys (e.g. the test accuracy) are added to it."""
    record: dict[str, Any] = {**result.summary(), "epochs": config.epochs, "device": device,
                              "config": config.to_dict(), **(extra or {})}
    path = out_dir / METRICS_JSON
    with storing(path):
        atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return path
