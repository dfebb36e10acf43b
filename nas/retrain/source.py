"""Reading a search run directory: which table, which data, which objective, and its winners.

What is read (all written by ``nas search``, see :mod:`nas.search.outputs`):

* ``trials.csv``: every trial with its status, feasibility, objective value, hash and compact
  architecture string (parsed back and checked against the stored hash). It exists for
  SQLite and PostgreSQL runs alike, so the study database is not needed.
* ``pareto.json``: the budget and, for a pareto run, the front with full architectures.
* ``summary.md``: the header lines ``- table:``, ``- data:``, ``- objective:``.
* ``study.db`` (when present): a ``data`` study user attribute, if the search recorded one.

Winners. A *pareto* run retrains its front (trained, within budget, non-dominated); when the
front has more than ``top`` members, ``top`` of them evenly spaced along it by latency (both
ends included), so the trade-off is covered. A *reward* run retrains the ``top`` best trials
among trained trials within budget, one per architecture hash, in the search's own order
(``winner_rank``: its winner first, candidates confirmed with more seeds on their mean).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from nas.arch import ArchSpec, arch_hash, parse_compact
from nas.errors import RetrainError, SpecError
from nas.search.record import CANDIDATE_STATUSES

__all__ = ["Candidate", "SearchRun", "load_search_run", "select_winners", "data_from_source", "summary_header"]


@dataclass(frozen=True)
class Candidate:
    """One architecture chosen for retraining, with what the search knew about it."""

    arch: ArchSpec
    hash: str
    trial: int
    proxy_val_acc: float
    search_latency_ms: float

    @property
    def label(self) -> str:
        return f"trial {self.trial}"


@dataclass(frozen=True)
class SearchRun:
    path: Path
    objective: str  # reward | pareto
    budget_ms: float
    table: str | None  # as recorded (may be relative to where the search ran)
    data: str | None  # a load_dataset source, or None when not recorded in a usable form
    data_recorded: str | None  # the text the run recorded
    trials: pd.DataFrame
    front: tuple[dict[str, Any], ...]
    header: dict[str, str]


def summary_header(summary: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if not summary.is_file():
        return out
    for line in summary.read_text().splitlines():
        if line.startswith("- ") and ": " in line:
            key, _, value = line[2:].partition(": ")
            out.setdefault(key.strip(), value.strip())
        elif line.startswith("## "):
            break
    return out


#: What a supernet search appends to its data's source (:mod:`nas.search.on_supernet`).
_SUPERNET_SPLIT_NOTE = " (split as the supernet's training: "


def data_from_source(text: str) -> str | None:
    """The ``load_dataset`` argument behind a ``DatasetSplits.source`` text, or None."""
    text = text.split(_SUPERNET_SPLIT_NOTE, 1)[0]
    if text == "digits" or text.startswith("digits ("):
        return "digits"
    for prefix in ("image folder ", "CIFAR python batches "):
        if text.startswith(prefix):
            return text[len(prefix):]
    return None


def _study_data(db: Path) -> str | None:
    if not db.is_file():
        return None
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT key, value_json FROM study_user_attributes").fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return None
    try:
        attrs = {k: json.loads(v) for k, v in rows}
    except (json.JSONDecodeError, TypeError):
        return None
    settings = attrs.get("settings") if isinstance(attrs.get("settings"), dict) else {}
    value = attrs.get("data", settings.get("data"))
    return value if isinstance(value, str) else None


def load_search_run(run_dir: str | Path) -> SearchRun:
    path = Path(run_dir)
    if not path.is_dir():
        raise RetrainError(f"--run {path}: no such run directory; expected the folder a 'nas search' wrote "
                           f"(its --out, with trials.csv and summary.md)")
    trials_csv = path / "trials.csv"
    if not trials_csv.is_file():
        raise RetrainError(f"--run {path}: no trials.csv in it, so it is not a search run directory (or the search "
                           f"has not finished a trial yet); run 'nas search --out {path} ...' first")
    try:
        trials = pd.read_csv(trials_csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise RetrainError(f"{trials_csv}: unreadable ({str(exc).splitlines()[0]}); re-create it by re-running the "
                           f"search command (it rewrites trials.csv from the study)") from None
    missing = [c for c in ("number", "state", "status", "latency_ms", "val_acc", "hash", "compact") if c not in trials]
    if missing:
        raise RetrainError(f"{trials_csv}: missing column(s) {', '.join(missing)}; it was not written by this version "
                           f"of 'nas search'; re-run the search command to rewrite it")
    header = summary_header(path / "summary.md")
    pareto_file = path / "pareto.json"
    try:
        pareto: dict[str, Any] = json.loads(pareto_file.read_text()) if pareto_file.is_file() else {}
    except json.JSONDecodeError as exc:
        raise RetrainError(f"{pareto_file}: not valid JSON ({exc.msg} at line {exc.lineno}); re-run the search command "
                           f"to rewrite its outputs") from None
    budget = pareto.get("budget_ms")
    if budget is None and header.get("budget"):
        budget = float(header["budget"].split()[0])
    if budget is None:
        raise RetrainError(f"--run {path}: neither pareto.json nor summary.md records the latency budget; the search "
                           f"did not finish writing its outputs: re-run the search command to write them")
    objective_text = header.get("objective", "")
    if objective_text:
        objective = "pareto" if objective_text.startswith("pareto") else "reward"
    else:
        objective = "pareto" if "objective" in trials and trials["objective"].isna().all() else "reward"
    recorded = _study_data(path / "study.db") or header.get("data")
    data = None if recorded is None else data_from_source(recorded)
    return SearchRun(path=path, objective=objective, budget_ms=float(budget), table=header.get("table"),
                     data=data, data_recorded=recorded, trials=trials, front=tuple(pareto.get("front", [])),
                     header=header)


def _arch_of(run: SearchRun, row: pd.Series) -> ArchSpec:
    try:
        arch = parse_compact(str(row["compact"]))
    except SpecError as exc:
        raise RetrainError(f"{run.path / 'trials.csv'}: trial {row['number']}: its architecture does not parse "
                           f"({exc}); re-run the search command to rewrite trials.csv") from None
    if arch_hash(arch) != row["hash"]:
        raise RetrainError(f"{run.path / 'trials.csv'}: trial {row['number']}: the compact string does not give the "
                           f"stored hash {row['hash']}; the file was edited or written by another version; re-run the "
                           f"search command to rewrite it")
    return arch


def _spread(n: int, k: int) -> list[int]:
    """``k`` indices evenly spread over ``range(n)``, both ends included."""
    if k >= n:
        return list(range(n))
    if k == 1:
        return [n - 1]  # the most accurate end of a front sorted by latency
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def select_winners(run: SearchRun, top: int) -> list[Candidate]:
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise RetrainError(f"--top: expected an integer >= 1 (how many architectures to retrain), got {top!r}")
    t = run.trials
    ok = t[(t["state"] == "COMPLETE") & t["status"].isin(CANDIDATE_STATUSES) & t["val_acc"].notna()
           & (t["latency_ms"] <= run.budget_ms)]
    if ok.empty:
        raise RetrainError(f"--run {run.path}: no trained trial within the budget ({run.budget_ms:.3f} ms) in "
                           f"trials.csv ({len(t)} trials); resume the search with more trials (or a larger "
                           f"--latency-ms) before retraining")
    if run.objective == "pareto" and run.front:
        hashes = [f["hash"] for f in run.front]
        chosen = [run.front[i] for i in _spread(len(hashes), top)]
        out = []
        for f in chosen:
            arch = ArchSpec.from_dict(f["arch"])
            out.append(Candidate(arch, f["hash"], int(f["trial"]), float(f["val_acc"]), float(f["latency_ms"])))
        return out
    if "winner_rank" in ok.columns:  # the search's own order (its winner first; see nas.search.confirm)
        ranked = ok[ok["winner_rank"].notna()].sort_values("winner_rank")
    else:  # written before the search ranked its trials
        ranked = ok.sort_values(["objective" if run.objective == "reward" else "val_acc", "number"],
                                ascending=[False, True])
    ranked = ranked.drop_duplicates("hash", keep="first").head(top)
    return [Candidate(_arch_of(run, row), str(row["hash"]), int(row["number"]), float(row["val_acc"]),
                      float(row["latency_ms"])) for _, row in ranked.iterrows()]
