"""What a retraining's stored results were made from, and the refusal to mix them with another's.

A recipe tag's folder (``RUN_DIR/retrain/<tag>/``) holds one retraining: every seed in it was
trained on the same data, the winners from the same initial weights (random, one supernet's or one file's)
and every latency predicted with the same table. The tag names the recipe and the subsets, not
these, so :func:`retrain_identity` records them in each seed's ``result.json`` (``identity``) and
:func:`check_stored` compares them before anything is trained or rewritten: a re-run with another
``--data``, ``--init``/``--supernet`` or ``--table`` is refused in one line instead of reporting
(or resuming, or averaging with) results of the first.

Results stored before ``identity`` was recorded are checked by what they still tell: the
training record (``trained.json``) a ``result.json`` links to holds the data and the start; an
unfinished winner's ``started.json`` (:mod:`nas.retrain.model`) holds them too, and a folder of
an even earlier version is checked against ``recipe.json``, the last run's description. The
table of such results is not known, and is not checked; nor are the image contents of data recorded
before an image folder's content key was (its path and image counts are).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nas.errors import RetrainError
from nas.arch import ArchSpec
from nas.latency import LatencyTable, arch_parts
from nas.retrain.data import CONTENTS_CHANGED, only_contents_differ, same_data
from nas.retrain.model import STARTED_FILE, read_trained
from nas.retrain.results import RESULT_FILE
from nas.train import has_checkpoint

__all__ = ["IDENTITY_KEY", "retrain_identity", "table_identity", "check_stored", "start_text"]

#: The key of ``result.json`` (and ``recipe.json``) holding :func:`retrain_identity`.
IDENTITY_KEY = "identity"
SCRATCH = "scratch"
_KEYS = ("data", "init", "table")
_STORED = {"data": "trained on", "init": "started from", "table": "with latencies predicted by"}
_CURRENT = {"data": "trains on", "init": "starts from", "table": "predicts with"}
_FIX = {"data": "repeat the original --data (and --subset/--test-subset)",
        "init": "repeat the original --init/--supernet", "table": "repeat the original --table"}


def table_identity(table: LatencyTable, path: Path, arch: ArchSpec) -> dict[str, str]:
    """The table as one network's results record it: by the latencies of that network's parts and the correction
    (a copy elsewhere is the same table; entries added for other networks change nothing)."""
    return {"latencies": table.latencies_digest(p.signature for p in arch_parts(arch))[:16], "path": str(path)}


def retrain_identity(data: dict[str, Any], init: Any, table: dict[str, str]) -> dict[str, Any]:
    """``data``: ``FinalSplits.identity()``; ``init``: ``"scratch"`` or ``StartWeights.identity()``."""
    return {"data": data, "init": init, "table": table}


def _read(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def _of_training(record: dict[str, Any] | None) -> dict[str, Any] | None:
    if record is None or "data" not in record:
        return None
    return {"data": record["data"], "init": record.get("init", SCRATCH)}


def _stored(folder: Path, run_dir: Path, recipe: dict[str, Any] | None) -> dict[str, Any] | None:
    """The identity of what ``folder`` (a seed folder) holds; None when it holds nothing (or nothing known)."""
    result = _read(folder / RESULT_FILE)
    if result is not None:
        if isinstance(result.get(IDENTITY_KEY), dict):
            return result[IDENTITY_KEY]
        model_dir = result.get("model_dir")
        return _of_training(read_trained(run_dir / model_dir)) if isinstance(model_dir, str) else None
    if not has_checkpoint(folder):
        return None
    return _of_training(_read(folder / STARTED_FILE)) or _of_training(recipe)


def _same(key: str, stored: Any, current: Any) -> bool:
    if key == "table" and isinstance(stored, dict) and isinstance(current, dict):
        return stored.get("latencies") == current.get("latencies")
    if key == "data":
        return same_data(stored, current)
    return bool(stored == current)


def start_text(init: Any) -> str:
    """The winners' recorded start (``init`` of ``trained.json``/``recipe.json``) in words."""
    if isinstance(init, dict) and init.get("kind") == "weights":
        return (f"the weights file with SHA-256 {str(init.get('sha256'))[:12]} (architecture "
                f"{str(init.get('arch_hash'))[:12]})")
    if isinstance(init, dict):
        return f"the supernet in {init.get('supernet')} (weights {str(init.get('weights'))[:12]})"
    return "random weights" if init == SCRATCH else repr(init)


def _text(key: str, value: Any) -> str:
    if key == "data" and isinstance(value, dict):
        content = f", image contents {str(value['content'])[:12]}" if value.get("content") else ""
        return (f"{value.get('source')} ({value.get('train')} training / {value.get('test')} test images at "
                f"{value.get('input_size')}x{value.get('input_size')}{content})")
    if key == "init":
        return start_text(value)
    if key == "table" and isinstance(value, dict):
        return f"the table {value.get('path')} (latencies digest {value.get('latencies')})"
    return "random weights" if value == SCRATCH else repr(value)


def check_stored(folder: Path, current: dict[str, Any], *, run_dir: Path, tag_dir: Path) -> None:
    """RetrainError when the seed folder ``folder`` holds a result, or an unfinished training, of another data,
    start or table than ``current`` (:func:`retrain_identity`)."""
    stored = _stored(folder, run_dir, _read(tag_dir / "recipe.json"))
    if stored is None:
        return
    for key in _KEYS:
        if key in stored and key in current and not _same(key, stored[key], current[key]):
            fix = CONTENTS_CHANGED if key == "data" and only_contents_differ(stored[key], current[key]) else _FIX[key]
            raise RetrainError(
                f"{folder}: holds results {_STORED[key]} {_text(key, stored[key])}; this command {_CURRENT[key]} "
                f"{_text(key, current[key])}. {tag_dir} keeps one retraining (mixing them would report one as the "
                f"other): {fix}, or retrain a copy of the run directory, or delete {tag_dir} to retrain there")
