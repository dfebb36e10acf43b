"""Device-specific search across runtimes: the same search on two runtimes' tables of one machine.

A table measured with one runtime is another device's table: ``lut_devices.py`` shows that onnxruntime
and LiteRT (XNNPACK) rank the blocks of the default space differently. Does that change what a search
finds? This script runs the *same* search (space, data, proxy recipe, trials, seed, sampler; budget: the
same fraction ``--fraction`` of ``mobilenetv2-cifar``'s predicted latency *on each table*) once on
``--a`` (default ``latency_tables/ort-cpu-1t.json``) and once on ``--b`` (default
``latency_tables/litert-cpu-1t.json``), then times both winners end to end on *both* runtimes (each
with its table's backend and protocol: interleaved passes, the fastest pass's median) and reports:

* whether the two runtimes got different networks (and which choices differ, block by block);
* on each runtime, how much slower (or faster) the other runtime's winner is than its own, measured
  and predicted, and whether it still meets that runtime's budget;
* the winners' proxy accuracy, so a faster network is not mistaken for a better one.

Outputs ``benchmarks/results/runtime_specialization.{md,json}`` (``--quick``:
``runtime_specialization_quick.*``, which only prove the script works: tiny space, fast timing,
3-trial searches on the embedded digits).

Both searches resume (their run folders are under ``--work``); the measurement at the end is
redone on every run. Needs the ``[litert]`` extra and both tables of this machine (a quiet one).

Full run (CIFAR-10 from ../shared/datasets/cifar10; about 40-50 minutes on an idle 2-core CPU: two
searches of ~15-22 min each with 24 trials, 3 epochs on 2,000 images and the confirmation, then ~2 min
timing the winners):
    python benchmarks/runtime_specialization.py
Quick check (~5-10 minutes; builds two tiny tables, ORT and LiteRT, for tests/fixtures/tiny_space.yaml):
    python benchmarks/runtime_specialization.py --quick
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from nas.arch import ArchSpec, parse_compact, reference_arch, to_compact
from nas.cli import main as nas_main
from nas.errors import NASError
from nas.latency import LatencyTable, MeasureSettings, TableEstimator, Timing, is_local_table, load_table, table_backend
from nas.latency.spaces import space_for_table
from nas.latency.validate import measure_networks
from nas.search.budget import default_budget
from nas.space import SearchSpace

from _common import CIFAR10, CPU_TABLE, REPO, RESULTS, log, machine, run_main  # beside this script

LITERT_TABLE = REPO / "latency_tables" / "litert-cpu-1t.json"
TINY_SPACE = REPO / "tests" / "fixtures" / "tiny_space.yaml"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", default=str(CPU_TABLE), help="first runtime's table (default: ort-cpu-1t.json)")
    p.add_argument("--b", default=str(LITERT_TABLE), help="second runtime's table, same space (default: litert-cpu-1t.json)")
    p.add_argument("--fraction", type=float, default=0.5,
                   help="budget on each table: this fraction of mobilenetv2-cifar's predicted latency there (0.5)")
    p.add_argument("--data", default=str(CIFAR10) if CIFAR10.exists() else "digits",
                   help="search data (default: CIFAR-10 from ../shared when present, else digits)")
    p.add_argument("--trials", type=int, default=24, help="trials per search (24)")
    p.add_argument("--subset", type=int, default=2000, help="proxy training images (2000)")
    p.add_argument("--epochs", type=int, default=3, help="proxy epochs (3)")
    p.add_argument("--seed", type=int, default=0, help="search seed, the same for both (0)")
    p.add_argument("--threads", type=int, default=1, help="training threads (1, so timing and training do not share)")
    p.add_argument("--work", default=str(REPO / "runs" / "runtime_specialization"),
                   help="where the two searches' run folders go (resumable)")
    p.add_argument("--out", default=str(RESULTS), help="results folder")
    p.add_argument("--quick", action="store_true", help="tiny tables and searches: proves the script works")
    args = p.parse_args(argv)
    if not 0 < args.fraction <= 10 or args.trials < 1 or args.subset < 10 or args.epochs < 1:
        p.error("--fraction in (0, 10], --trials >= 1, --subset >= 10 and --epochs >= 1 are required")
    return args


# ------------------------------------------------------------------------------------------ the tables
def build_quick_tables(folder: Path) -> tuple[Path, Path]:
    """An onnxruntime and a LiteRT table of the tiny test space, fast settings (quick mode)."""
    from nas.latency import build_table, get_backend
    from nas.space import load_space

    space = load_space(TINY_SPACE)
    settings = MeasureSettings(warmup=2, min_repeats=10, max_repeats=50, min_seconds=0.01, passes=2)
    paths = []
    for backend in ("ort-cpu", "litert"):
        path = folder / f"tiny-{backend}-1t.json"
        if not path.exists():
            log(f"building {path.name}")
            build_table(space, get_backend(backend, threads=1, settings=settings), path, calibration=4,
                        only_missing=(path.with_name(path.name + ".journal")).exists())
        paths.append(path)
    return paths[0], paths[1]


def budget_on(table: LatencyTable, space: SearchSpace, fraction: float) -> tuple[float, str]:
    """``fraction`` x mobilenetv2-cifar's predicted latency on ``table`` (or, where that network does not fit the
    space, the search's own default budget scaled by fraction / 0.5)."""
    estimator = TableEstimator(table, on_missing="interpolate", save=False)
    ref = reference_arch("mobilenetv2-cifar")
    if (ref.input_size, ref.in_ch, ref.num_classes) == (space.input_size, space.in_ch, space.num_classes):
        ref_ms = estimator.latency_ms(ref)
        return fraction * ref_ms, f"{fraction:.0%} of mobilenetv2-cifar's predicted {ref_ms:.3f} ms"
    default = default_budget(space, estimator)
    return default.ms * fraction / 0.5, f"{fraction / 0.5:g} x the search's default ({default.rule})"


# ------------------------------------------------------------------------------------------ the searches
def search(table_path: Path, space: SearchSpace, budget_ms: float, run_dir: Path, args: argparse.Namespace,
           quick: bool) -> dict[str, Any]:
    """``nas search`` on one table (resumes a finished or interrupted run); its best_arch.json."""
    command = ["search", "--target", str(table_path), "--space", str(space.source), "--latency-ms", f"{budget_ms:.6f}",
               "--data", args.data, "--trials", str(args.trials), "--subset", str(args.subset), "--epochs",
               str(args.epochs), "--seed", str(args.seed), "--threads", str(args.threads), "--no-baselines",
               "--out", str(run_dir)]
    if quick:
        command += ["--confirm-top", "0", "--batch-size", "16"]
    log("nas " + " ".join(command))
    code = nas_main(command)
    best = run_dir / "best_arch.json"
    if code != 0 or not best.exists():
        raise NASError(f"nas search on {table_path.name} ended with status {code} and no {best}; see its output above")
    return json.loads(best.read_text())


def differences(a: ArchSpec, b: ArchSpec) -> list[str]:
    """The choices in which two networks differ, in words."""
    out = []
    if len(a.blocks) != len(b.blocks):
        out.append(f"depth: {len(a.blocks)} vs {len(b.blocks)} blocks")
    for i, (x, y) in enumerate(zip(a.blocks, b.blocks)):
        for name in ("type", "mid_ch", "kernel", "se", "act", "out_ch"):
            vx, vy = getattr(x, name), getattr(y, name)
            if vx != vy:
                out.append(f"block {i}: {name} {vx} vs {vy}")
    return out


# ------------------------------------------------------------------------------------------ the report
def measure(archs: list[ArchSpec], table: LatencyTable) -> list[Timing]:
    """Each network timed end to end with the table's backend and protocol, interleaved."""
    backend = table_backend(table.metadata)
    return [Timing.best_of(t) for t in measure_networks(archs, backend, desc=f"timing on {table.metadata['backend']}")]


def report(names: list[str], tables: list[LatencyTable], budgets: list[tuple[float, str]],
           winners: list[dict[str, Any]], archs: list[ArchSpec], measured: list[list[Timing]],
           predicted: list[list[float]], args: argparse.Namespace, note: str, seconds: float) -> str:
    same = to_compact(archs[0]) == to_compact(archs[1])
    lines = [f"# Device-specific search across runtimes: {names[0]} vs {names[1]}", "",
             f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}; {machine()}." + (f" {note}" if note else ""),
             "", f"The same search on each table: space '{space_name(tables[0])}', data {args.data}, {args.trials} "
                 f"trials, proxy {args.epochs} epoch(s) on {args.subset} images, seed {args.seed}; budget on each "
                 f"table: {budgets[0][1]} ({names[0]}), {budgets[1][1]} ({names[1]}).", "",
             "| runtime (table) | backend | budget ms | winner | proxy accuracy | predicted ms |",
             "|---|---|---:|---|---:|---:|"]
    for i in range(2):
        meta = tables[i].metadata
        acc = winners[i].get("confirmed", {}).get("mean_acc", winners[i]["val_acc"])
        lines.append(f"| {names[i]} | {meta['backend']} {meta['backend_version']}, {meta['threads']} thread(s) | "
                     f"{budgets[i][0]:.3f} | `{to_compact(archs[i])}` | {acc:.4f} | {winners[i]['latency_ms']:.3f} |")
    lines += ["", "## Each winner timed on both runtimes", "",
              "| winner of | " + " | ".join(f"on {n}: measured ms (predicted)" for n in names) + " |",
              "|---|---:|---:|"]
    for w in range(2):
        cells = [f"{measured[r][w].median:.3f} ({predicted[r][w]:.3f})" for r in range(2)]
        lines.append(f"| {names[w]} | " + " | ".join(cells) + " |")
    lines += ["", "## Verdict", ""]
    if same:
        lines.append("* **The two runtimes got the same network**: at this budget and search, the runtime did not "
                     "change the winner.")
    else:
        diff = differences(archs[0], archs[1])
        lines.append(f"* **The runtimes got different networks**; they differ in {len(diff)} choice(s): "
                     + "; ".join(diff[:12]) + (" ..." if len(diff) > 12 else "") + ".")
    for r in range(2):
        own, other = measured[r][r].median, measured[r][1 - r].median
        fits = other <= budgets[r][0]
        lines.append(f"* On {names[r]}: {names[1 - r]}'s winner measures {other:.3f} ms against its own winner's "
                     f"{own:.3f} ms ({other / own - 1:+.1%}; predicted {predicted[r][1 - r] / predicted[r][r] - 1:+.1%})"
                     f", {'within' if fits else 'over'} this runtime's budget of {budgets[r][0]:.3f} ms.")
    lines += ["", f"Run time {seconds / 60:.1f} min. Runs: `{args.work}`. Command: `python benchmarks/"
                  f"runtime_specialization.py{' --quick' if args.quick else ''}`.", ""]
    return "\n".join(lines)


def space_name(table: LatencyTable) -> str:
    return str(table.metadata.get("space", {}).get("name"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    tmp = None
    note = ""
    if args.quick:
        tmp = tempfile.TemporaryDirectory()
        args.work = tmp.name
        args.a, args.b = map(str, build_quick_tables(Path(tmp.name)))
        args.data, args.trials, args.subset, args.epochs = "digits", 3, 200, 1
        note = "Quick mode: tiny test space, fast timing settings, 3-trial searches on digits; proves the script works, not a result."
    try:
        paths = [Path(args.a), Path(args.b)]
        tables = [load_table(p) for p in paths]
        for table, path in zip(tables, paths):
            if not is_local_table(table):
                raise NASError(f"{path}: measured on '{table.metadata['device']}' with {table.metadata['backend']}, not "
                               "on this machine with its backend installed; both winners are timed here, so both "
                               "tables must be this machine's (build them with nas lut build)")
        space = space_for_table(tables[0], str(TINY_SPACE) if args.quick else None)
        if tables[1].space_digest != tables[0].space_digest:
            raise NASError(f"{paths[1]}: built for another space than {paths[0]}; compare two tables of one space")
        names = [p.stem for p in paths]
        budgets = [budget_on(t, space, args.fraction) for t in tables]
        winners = [search(paths[i], space, budgets[i][0], Path(args.work) / names[i], args, args.quick)
                   for i in range(2)]
        archs = [parse_compact(w["compact"]) for w in winners]
        log("timing both winners on both runtimes")
        measured = [measure(archs, t) for t in tables]
        predicted = [[TableEstimator(t, on_missing="interpolate", save=False).latency_ms(a) for a in archs]
                     for t in tables]
        text = report(names, tables, budgets, winners, archs, measured, predicted, args, note,
                      time.monotonic() - started)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        stem = "runtime_specialization_quick" if args.quick else "runtime_specialization"
        (out / f"{stem}.md").write_text(text)
        raw = {"tables": [str(p) for p in paths], "budgets_ms": [b[0] for b in budgets],
               "budget_rules": [b[1] for b in budgets], "winners": winners,
               "measured_ms": [[t.to_dict() for t in row] for row in measured], "predicted_ms": predicted,
               "same_network": to_compact(archs[0]) == to_compact(archs[1]), "args": vars(args)}
        (out / f"{stem}.json").write_text(json.dumps(raw, indent=2, default=str) + "\n")
        print(text)
        print(f"wrote {out / stem}.md and .json")
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    run_main(main)
