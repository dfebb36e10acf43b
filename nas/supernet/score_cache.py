"""Supernet scores kept on disk, so that a search for one more device re-scores nothing already scored.

A score depends on the supernet's weights, the scoring settings (calibration images and sample,
validation images, batch size, ``--cpu-bf16``) and the kind of device that computed it; all of them are
in the file's name (:attr:`SupernetEvaluator.fingerprint` and the device type, on CUDA with its autocast
precision), so scores of other weights or settings are never mixed in. Float32 scores from before
2026-12-06, when the validation pass began to run with BatchNorm folded into the convolutions, keep their
file: folding changes the logits only by float rounding (no score of 60 networks changed in
``benchmarks/results/supernet_score_precision.md``). The file is ``DIR/scores/<fingerprint>-<device>.jsonl`` in the supernet directory,
one JSON line per architecture (``hash``, ``acc``, ``seconds``), appended as each is computed and
flushed at once: a search killed mid-way keeps what it scored, workers sharing the directory append
to the same file. A torn line (a kill or a full disk during a write) or a damaged one is skipped
when read, and the next score written after a torn last line starts a line of its own.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

__all__ = ["ScoreCache"]

#: Files already warned about in this process: a search's confirmation opens one cache per extra
#: calibration sample, and a place that cannot be written is said once, not once per cache.
_WARNED: set[Path] = set()


class ScoreCache:
    """Architecture hash -> (accuracy, seconds) in one append-only JSON-lines file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.scores: dict[str, tuple[float, float]] = {}
        self.writable = True
        self.warning: str | None = None  # why scores are not kept, once
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            self._give_up(f"{path}: cannot read the kept scores ({exc}); scores are kept in memory for this run only")
            return
        for line in data.split(b"\n"):  # line by line: one damaged line (bad bytes too) costs only itself
            try:
                row = json.loads(line)
                digest, acc, seconds = row["hash"], float(row["acc"]), float(row.get("seconds", 0.0))
            except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
                continue  # empty, torn, damaged, or from another tool: not a score
            if isinstance(digest, str) and math.isfinite(acc):
                self.scores[digest] = (acc, seconds)

    def get(self, digest: str) -> tuple[float, float] | None:
        return self.scores.get(digest)

    def put(self, digest: str, acc: float, seconds: float) -> None:
        self.scores[digest] = (acc, seconds)
        if not self.writable:
            return
        line = (json.dumps({"hash": digest, "acc": acc, "seconds": round(seconds, 4)}) + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                end = os.fstat(fd).st_size
                if end and os.pread(fd, 1, end - 1) != b"\n":
                    line = b"\n" + line  # after a torn last line: not glued onto it
                written = os.write(fd, line)  # one write of one line: workers' lines do not interleave
                if written != len(line):
                    raise OSError(f"wrote {written} of {len(line)} bytes")
            finally:
                os.close(fd)
        except OSError as exc:
            self._give_up(f"{self.path}: cannot keep scores there ({exc}); they are kept in memory for this run only")

    def _give_up(self, why: str) -> None:
        """Keep scores in memory only, and say why once (on stderr, beside the progress output)."""
        self.writable, self.warning = False, why
        if self.path.parent not in _WARNED:
            _WARNED.add(self.path.parent)
            print(f"warning: {why}", file=sys.stderr)
