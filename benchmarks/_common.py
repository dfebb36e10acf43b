"""What the benchmark scripts share: the machine line and writing a results table."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"


def stem(base: str, *parts: str) -> str:
    """A results file's stem: ``base`` and each non-empty part joined by ``_`` (``stem("x", "run2", "")`` is ``x_run2``)."""
    return "_".join([base, *(p for p in parts if p)])


def publish(stem: str, text: str, res: dict[str, Any]) -> None:
    """Print the table and write it as ``results/STEM.md``, with the raw figures in ``results/STEM.json``."""
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.md").write_text(text)
    (RESULTS / f"{stem}.json").write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {RESULTS / stem}.md and .json")
