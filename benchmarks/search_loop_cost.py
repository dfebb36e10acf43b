"""What a search costs when nothing is trained: the seconds of ``nas search --accuracy-table`` for N trials.

This is the cost of specialising a trained supernet for one more device once the scores it needs
are kept (issue 22's goal: 2,000 candidates in at most 2 minutes): a kept score is a lookup, and so
is an accuracy-table score, so the time is the search loop's own (proposals, the sampler, the
latency table, the SQLite study, the outputs). The command, with the search's defaults otherwise:

    nas search --space search_spaces/nas_bench_macro.yaml --target latency_tables/ort-cpu-1t-macro.json \\
        --accuracy-table ../shared/benchmarks/nas-bench-macro/nas-bench-macro_cifar10.json \\
        --sampler evolution --constraint hard --trials N --out <a new folder>

timed from start to exit (start-up and outputs included), ``--repeats`` times. With ``--against REV``
every repeat also runs the same command on a checkout of git revision ``REV`` (a temporary
worktree), interleaved (this tree first in odd repeats, ``REV`` first in even ones) so that the
machine's drift hits both alike, and the table gives each pair's ratio. When the change is meant to
leave the search's results alone, both must choose the same winner and run the same trials (every
trial's number, state, network hash and accuracy in ``trials.csv``); the table says whether they did.

Results: ``benchmarks/results/search_loop_cost.{md,json}`` (``--name N`` adds ``_N``).

    python benchmarks/search_loop_cost.py --against HEAD~1      # 3 pairs of 2,000-trial searches
    python benchmarks/search_loop_cost.py --trials 100 --repeats 1   # proves it runs
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, SHARED, log, machine, publish, stem  # beside this script

SPACE = REPO / "search_spaces" / "nas_bench_macro.yaml"
TABLE = REPO / "latency_tables" / "ort-cpu-1t-macro.json"
ACCURACIES = SHARED / "benchmarks" / "nas-bench-macro" / "nas-bench-macro_cifar10.json"
GOAL_TRIALS, GOAL_S = 2000, 120.0


def run_once(tree: Path, trials: int, sampler: str, out: Path) -> dict[str, Any]:
    """One search with the ``nas`` of ``tree``; its wall time and winner."""
    cmd = [sys.executable, "-m", "nas", "search", "--space", str(SPACE), "--target", str(TABLE),
           "--accuracy-table", str(ACCURACIES), "--sampler", sampler, "--constraint", "hard",
           "--trials", str(trials), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"search_loop_cost: the search in {tree} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    best = json.loads((out / "best_arch.json").read_text())
    with open(out / "trials.csv", newline="") as f:  # every trial: its network, state and accuracy, in order
        history = [[row["number"], row["state"], row["hash"], row["val_acc"]] for row in csv.DictReader(f)]
    return {"seconds": round(seconds, 2), "winner": json.dumps(best, sort_keys=True),
            "trials": hashlib.sha256(json.dumps(history).encode()).hexdigest()[:16]}


def worktree(rev: str, where: Path) -> str:
    """A detached checkout of ``rev`` at ``where``; the commit's full hash."""
    commit = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=REPO, capture_output=True,
                            text=True)
    if commit.returncode != 0:
        raise SystemExit(f"search_loop_cost: --against {rev!r}: not a commit of this repository")
    subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(where), commit.stdout.strip()], cwd=REPO,
                   check=True)
    return commit.stdout.strip()


def report(res: dict[str, Any]) -> str:
    against = res.get("against")
    lines = ["# Search-loop cost: `nas search --accuracy-table`, nothing trained", "",
             f"- machine: {res['machine']}; command: `{res['command']}`",
             f"- search: NAS-Bench-Macro space, `latency_tables/ort-cpu-1t-macro.json`, {res['sampler']}, hard "
             f"constraint, default budget, {res['trials']} trials; seconds from start to exit (start-up included)",
             f"- this tree: {res['tree']}" + (f"; against: `{against['rev']}` ({against['commit'][:10]}), run in "
                                              "turn with it (who goes first alternates)" if against else ""), ""]
    if against:
        lines += ["| repeat | this tree (s) | against (s) | ratio | same winner | same trials |",
                  "|---:|---:|---:|---:|---|---|"]
        for i, r in enumerate(res["runs"], 1):
            same = [r["this"].get(k) is not None and r["this"].get(k) == r["against"].get(k) for k in ("winner", "trials")]
            lines.append(f"| {i} | {r['this']['seconds']:.1f} | {r['against']['seconds']:.1f} | "
                         f"{r['this']['seconds'] / r['against']['seconds']:.2f} | "
                         + " | ".join("yes" if ok else "NO" for ok in same) + " |")
        ratios = [r["this"]["seconds"] / r["against"]["seconds"] for r in res["runs"]]
        lines += ["", f"Ratio (this tree / against): median {statistics.median(ratios):.2f}, range "
                      f"{min(ratios):.2f}-{max(ratios):.2f} over {len(ratios)} pair(s)."]
    else:
        lines += ["| repeat | seconds |", "|---:|---:|"]
        lines += [f"| {i} | {r['this']['seconds']:.1f} |" for i, r in enumerate(res["runs"], 1)]
    if res["trials"] == GOAL_TRIALS:
        secs = [r["this"]["seconds"] for r in res["runs"]]
        met = sum(s <= GOAL_S for s in secs)
        lines += ["", f"Goal (issue 22): {GOAL_TRIALS:,} candidates in at most {GOAL_S:.0f} s: met in {met} of "
                      f"{len(secs)} run(s) of this tree (median {statistics.median(secs):.0f} s, max {max(secs):.0f} s)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=GOAL_TRIALS, help=f"trials per search (default {GOAL_TRIALS})")
    p.add_argument("--repeats", type=int, default=3, help="searches per tree (default 3)")
    p.add_argument("--sampler", default="evolution", choices=["evolution", "tpe", "random", "nsga2"])
    p.add_argument("--against", metavar="REV", help="also time git revision REV, in turn with this tree")
    p.add_argument("--name", default="")
    args = p.parse_args(argv)
    if args.trials < 1 or args.repeats < 1:
        p.error("--trials and --repeats: expected integers >= 1")
    if not ACCURACIES.exists():
        raise SystemExit(f"search_loop_cost: {ACCURACIES} is missing (NAS-Bench-Macro beside the repository)")
    scratch = Path(tempfile.mkdtemp(prefix="search_loop_cost_"))
    against: dict[str, Any] | None = None
    try:
        other = scratch / "against"
        if args.against:
            against = {"rev": args.against, "commit": worktree(args.against, other)}
        runs = []
        for i in range(args.repeats):
            order = ["this", "against"] if against else ["this"]
            if i % 2 == 1:
                order.reverse()
            row: dict[str, Any] = {}
            for who in order:
                out = scratch / f"{who}{i}"
                row[who] = run_once(REPO if who == "this" else other, args.trials, args.sampler, out)
                shutil.rmtree(out)
                log(f"repeat {i + 1}/{args.repeats}, {who}: {row[who]['seconds']:.1f} s")
            runs.append(row)
    finally:
        if against:
            subprocess.run(["git", "worktree", "remove", "--force", str(scratch / "against")], cwd=REPO)
        shutil.rmtree(scratch, ignore_errors=True)
    dirty = [line[3:] for line in subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                                                  capture_output=True, text=True).stdout.splitlines()]
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    command = "python benchmarks/search_loop_cost.py" + "".join(
        f" {flag} {value}" for flag, value, default in (("--trials", args.trials, GOAL_TRIALS),
                                                        ("--repeats", args.repeats, 3),
                                                        ("--sampler", args.sampler, "evolution"),
                                                        ("--against", args.against, None)) if value != default)
    res = {"machine": machine(), "command": command, "trials": args.trials, "sampler": args.sampler,
           "tree": head + (f" with uncommitted changes to {', '.join(dirty)}" if dirty else ""), "against": against,
           "runs": runs}
    publish(stem("search_loop_cost", args.name), report(res), res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
