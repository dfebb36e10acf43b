"""Several devices in one command: one search per latency table, one shared evaluator, a cross table.

``nas search --supernet DIR --target A.json --target B.json`` runs one search per device, each in
its own sub-directory ``RUN_DIR/<table name>/`` with that device's budget (``--latency-ms`` for
all, or each table's default budget) and the usual outputs. Every search uses the same evaluator
object: a supernet's scores do not depend on the device and it caches them by architecture, so a
network already scored for one device costs the next device only its latency lookup. Then:

* ``RUN_DIR/specialization.md`` and ``.csv``: one row per device's winner: its accuracy (the score it
  was chosen on) and its predicted latency on *every* device, with its cost relative to that
  device's own winner ("+18 %"): which network each device gets, and what deploying another
  device's network would cost;
* ``RUN_DIR/pareto_fronts.png``: each device's Pareto front (accuracy vs latency predicted on that
  device) on one plot.

Several targets need an evaluator that does not train (``--supernet``, or ``--accuracy-table``):
with proxy training every device would train its own networks again; run one ``nas search`` per
device instead.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nas.arch import ArchSpec
from nas.atomic import atomic_write_text, check_out_dir
from nas.errors import SearchError
from nas.search.job import SearchJob, SearchPlan, load_job_supernet, make_scoring, plan_search, run_search_job
from nas.train.device import cpu_threads
from nas.write_errors import save_figure, storing

__all__ = ["Device", "run_specialization", "cross_rows", "write_specialization", "specialization_run_dir"]


@dataclass(frozen=True)
class Device:
    """One device of the command: its name (the table's file stem), its search plan and its search's result."""

    name: str
    plan: SearchPlan
    result: dict[str, Any]

    @property
    def winner(self) -> ArchSpec | None:
        best = self.result.get("best")
        return ArchSpec.from_dict(best["arch"]) if best else None


#: The columns of a cross-table row besides the per-device ones (``<device>_ms``, ...).
_FIXED_COLUMNS = ("device", "table", "budget_ms", "trial", "accuracy", "score", "params", "macs", "hash", "compact")

#: Longest default run-directory name (file systems allow 255 bytes); longer ones end in a digest instead.
_MAX_DIR_NAME = 120


def _names(targets: Sequence[str]) -> list[str]:
    """Each table's sub-directory name (its file stem); two tables of one name are refused."""
    names = [re.sub(r"[^A-Za-z0-9._-]+", "_", Path(t).stem) or "table" for t in targets]
    for i, name in enumerate(names):
        if f"{name}_ms" in _FIXED_COLUMNS:
            raise SearchError(f"--target {targets[i]}: its name '{name}' would give specialization.csv a second "
                              f"'{name}_ms' column; copy the table under another name")
        if name in names[:i]:
            other = targets[names.index(name)]
            same = Path(other).resolve() == Path(targets[i]).resolve()
            raise SearchError(f"--target {targets[i]}: " + ("given twice; give each device's table once" if same else
                              f"has the name '{name}' of --target {other}; each device's results go to "
                              "RUN_DIR/<table name>/, so copy one table under another name"))
    return names


def specialization_run_dir(job: SearchJob, names: Sequence[str]) -> Path:
    """``runs/<supernet or accuracy table>-<device>+<device>...-<objective>``."""
    source = job.supernet or job.accuracy_table or "search"
    name = re.sub(r"[^A-Za-z0-9._+-]+", "_",
                  f"{Path(source).resolve().name if job.supernet else Path(source).stem}-{'+'.join(names)}-{job.objective}")
    # many devices, or long table names: the start, then a digest of the whole (unless a run made before names
    # were shortened is there to resume)
    if len(name) > _MAX_DIR_NAME and not _is_dir(Path("runs") / name):
        name = f"{name[:_MAX_DIR_NAME - 13]}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"
    return Path("runs") / name


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a name too long for the file system
        return False


def _prefixed(log: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda line: log(prefix + line)


def run_specialization(job: SearchJob, targets: Sequence[str], *,
                       log: Callable[[str], None] = print) -> dict[str, Any]:
    """One search per table of ``targets`` (``job.target`` is ignored), then the cross table and plot."""
    if len(targets) < 2:
        raise SearchError("run_specialization: expected at least two --target tables")
    if job.supernet is None and job.accuracy_table is None:
        raise SearchError(f"--target given {len(targets)} times: several devices in one command need --supernet DIR "
                          "(or --accuracy-table), whose scores every device shares; with proxy training run one "
                          "nas search per device")
    names = _names(targets)
    run_dir = Path(job.out) if job.out else specialization_run_dir(job, names)
    check_out_dir(run_dir, "--out")  # refused before the data is loaded; created later
    jobs = [replace(job, target=str(t), out=str(run_dir / name),
                    study=f"{job.study}-{name}" if job.storage else job.study) for t, name in zip(targets, names)]
    supernet = load_job_supernet(job)
    plans = [plan_search(j, supernet) for j in jobs]  # every table and budget checked before any data is loaded
    if len({plan.space.digest for plan in plans}) > 1:
        spaces = ", ".join(f"{t}: '{plan.space.name}'" for t, plan in zip(targets, plans))
        raise SearchError(f"--target: the tables are of different search spaces ({spaces}); give tables of one "
                          "space, one per device")
    scoring = make_scoring(job, plans[0].space, cpu_threads(job.threads), supernet)
    devices = []
    for i, (name, j, plan) in enumerate(zip(names, jobs, plans), 1):
        log(f"== device {i}/{len(jobs)}: {name} ({plan.table.metadata.get('device')}), results in {plan.run_dir}")
        result = run_search_job(j, log=_prefixed(log, f"[{name}] "), supernet=supernet, plan=plan, scoring=scoring)
        devices.append(Device(name, plan, result))
    rows = cross_rows(devices)
    source = scoring.header.get("accuracy", "")
    if "supernet" in scoring.header:
        source += f"; supernet {scoring.header['supernet']}"
    title = f"one search per device, scored by the supernet {scoring.header['supernet']}" \
        if "supernet" in scoring.header else "one search per device, scored by the accuracy table"
    write_specialization(run_dir, devices, rows, source=source, title=title)
    log(f"specialization: {run_dir / 'specialization.md'}, specialization.csv, pareto_fronts.png")
    for line in _table_lines(devices, rows):
        log(line)
    return {"run_dir": str(run_dir), "devices": {d.name: d.result for d in devices}, "specialization": rows}


def cross_rows(devices: Sequence[Device]) -> list[dict[str, Any]]:
    """Per device, its winner and the winner's predicted latency on every device (None: no winner)."""
    own = {d.name: d.result["best"]["latency_ms"] if d.result.get("best") else None for d in devices}
    rows = []
    for d in devices:
        best, arch = d.result.get("best"), d.winner
        row: dict[str, Any] = dict.fromkeys(_FIXED_COLUMNS)
        row.update(device=d.name, table=str(d.plan.table.path or d.name), budget_ms=d.plan.budget_ms)
        if best is not None and arch is not None:
            confirmed = best.get("confirmed")
            row.update(trial=best["trial"], accuracy=confirmed["mean_acc"] if confirmed else best["val_acc"],
                       score=best["val_acc"], params=best["params"], macs=best["macs"], hash=best["hash"],
                       compact=best["compact"])
        for other in devices:
            ms = other.plan.estimator.latency_ms(arch) if arch is not None else None
            base = own[other.name]
            row[f"{other.name}_ms"] = ms
            row[f"{other.name}_vs_own"] = ms / base - 1 if ms is not None and base else None
            row[f"{other.name}_within_budget"] = ms <= other.plan.budget_ms if ms is not None else None
        rows.append(row)
    return rows


def _cell(row: dict[str, Any], device: str, own: bool) -> str:
    ms = row[f"{device}_ms"]
    if ms is None:
        return "-"
    if own:
        return f"**{ms:.3f} ms** (its own)"
    vs = row[f"{device}_vs_own"]
    cost = f"{vs * 100:+.0f} %" if vs is not None else "no winner there"
    return f"{ms:.3f} ms ({cost}{'' if row[f'{device}_within_budget'] else ', over budget'})"


def _table_lines(devices: Sequence[Device], rows: Sequence[dict[str, Any]]) -> list[str]:
    head = "| winner of | trial | accuracy | " + " | ".join(
        f"on {d.name} (budget {d.plan.budget_ms:.3f} ms)" for d in devices) + " |"
    lines = [head, "|---|---:|---:|" + "---:|" * len(devices)]
    for row in rows:
        acc = f"{row['accuracy']:.4f}" if row["accuracy"] is not None else "no network within the budget"
        lines.append(f"| {row['device']} | {row['trial'] if row['trial'] is not None else '-'} | {acc} | " +
                     " | ".join(_cell(row, d.name, d.name == row["device"]) for d in devices) + " |")
    return lines


def _markdown(devices: Sequence[Device], rows: Sequence[dict[str, Any]], source: str) -> str:
    lines = ["# Specialization: one network per device", ""]
    if source:
        confirmed = any(d.result.get("best") and d.result["best"].get("confirmed") for d in devices)
        lines.append(f"- accuracy: {source}" + (" (a winner's: its mean over the confirmation's scores, which replace its own "
                                                "when they are on the whole validation split)"
                                                if confirmed else ""))
    lines += ["- latency: predicted by each column's table; in brackets, the cost relative to that device's own "
              "winner (what deploying another device's network there would cost)", "",
              *_table_lines(devices, rows), "", "## The networks", ""]
    for row in rows:
        if row["compact"] is None:
            lines += [f"- {row['device']}: no network within the budget", ""]
            continue
        lines += [f"- {row['device']}: trial {row['trial']}, {row['params']:,} parameters, {row['macs']:,} MACs "
                  f"({row['device']}/best_arch.json)", "", f"      {row['compact']}", ""]
    lines += ["Files: specialization.csv, pareto_fronts.png, and each device's search in <device>/.", ""]
    return "\n".join(lines)


def _csv(rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _plot(devices: Sequence[Device], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for i, d in enumerate(devices):
        color = f"C{i}"
        front = d.result.get("front") or []
        ax.plot([t["latency_ms"] for t in front], [t["val_acc"] for t in front], "o-", color=color, ms=4,
                label=f"{d.name}: Pareto front ({len(front)} networks)")
        best = d.result.get("best")
        if best is not None:
            ax.plot([best["latency_ms"]], [best["val_acc"]], "*", ms=13, color=color, mec="k", zorder=5,
                    label=f"{d.name}: winner, trial {best['trial']}")
        ax.axvline(d.plan.budget_ms, color=color, ls=":", lw=1, label=f"{d.name}: budget {d.plan.budget_ms:.3g} ms")
    ax.set_title(title, fontsize=8, wrap=True)
    ax.set_xlabel("latency predicted on the front's own device (ms)")
    ax.set_ylabel("accuracy (score)")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def write_specialization(run_dir: Path, devices: Sequence[Device], rows: Sequence[dict[str, Any]], *,
                         source: str = "", title: str = "one search per device") -> None:
    """``specialization.md``, ``specialization.csv`` and ``pareto_fronts.png`` in ``run_dir``."""
    for name, text in (("specialization.md", _markdown(devices, rows, source)), ("specialization.csv", _csv(rows))):
        with storing(run_dir / name):
            atomic_write_text(run_dir / name, text)
    _plot(devices, run_dir / "pareto_fronts.png", title)
