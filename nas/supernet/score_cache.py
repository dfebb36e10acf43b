"""Supernet scores kept on disk, so that a search for one more device re-scores nothing already scored.

A score depends on the supernet's weights, the scoring settings (calibration images and sample,
validation images) and the kind of device that computed it; all of them are in the file's name
(:attr:`SupernetEvaluator.fingerprint` and the device type), so scores of other weights or settings
are never mixed in. The file is ``DIR/scores/<fingerprint>-<device>.jsonl`` in the supernet directory,
one JSON line per architecture (``hash``, ``acc``, ``seconds``), appended as each is computed and
flushed at once: a search killed mid-way keeps what it scored, workers sharing the directory append
to the same file, and a torn last line (a kill during a write) is skipped when read.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

__all__ = ["ScoreCache"]


class ScoreCache:
    """Architecture hash -> (accuracy, seconds) in one append-only JSON-lines file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.scores: dict[str, tuple[float, float]] = {}
        self.writable = True
        self.warning: str | None = None  # why scores are not kept, once
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as exc:
            self._give_up(f"{path}: cannot read the kept scores ({exc}); scores are kept in memory for this run only")
            return
        for line in text.splitlines():
            try:
                row = json.loads(line)
                digest, acc, seconds = row["hash"], float(row["acc"]), float(row.get("seconds", 0.0))
            except (ValueError, TypeError, KeyError):
                continue  # a torn line, or one from another tool: not a score
            if isinstance(digest, str) and math.isfinite(acc):
                self.scores[digest] = (acc, seconds)

    def get(self, digest: str) -> tuple[float, float] | None:
        return self.scores.get(digest)

    def put(self, digest: str, acc: float, seconds: float) -> None:
        self.scores[digest] = (acc, seconds)
        if not self.writable:
            return
        line = json.dumps({"hash": digest, "acc": acc, "seconds": round(seconds, 4)}) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, line.encode())  # one write of one line: workers' lines do not interleave
            finally:
                os.close(fd)
        except OSError as exc:
            self._give_up(f"{self.path}: cannot keep scores there ({exc}); they are kept in memory for this run only")

    def _give_up(self, why: str) -> None:
        """Keep scores in memory only, and say why once (on stderr, beside the progress output)."""
        self.writable, self.warning = False, why
        print(f"warning: {why}", file=sys.stderr)
