"""TPE with and without the proposer's neighbours: same regret, a fraction of the cost?

Late in a search of a small space TPE keeps drawing networks already evaluated (or over the budget),
and every ask refits its estimators over all trials: before 2026-12-04 the proposer asked again up to
ten times a trial, then let the trial repeat an earlier network. Now an unusable draw is replaced by
its nearest usable neighbour (:mod:`nas.search._proposer`). This script runs both on NAS-Bench-Macro's
ground truth exactly as ``search_regret.py`` runs a search (same budgets, winner choice and regret),
on the same seeds, and compares them per search:

* regret (points): mean per policy, the paired difference (new minus old) with a 95 % t-interval
  and a two-sided Wilcoxon signed-rank p-value;
* seconds per search, and the distinct networks a search evaluated.

Seeds start at 1000, apart from ``search_regret.py``'s 0..99. Results:
``benchmarks/results/tpe_neighbours.{md,json}``.

    python benchmarks/tpe_neighbours.py               # 20 seeds x 3 budgets x 100 and 300 trials
    python benchmarks/tpe_neighbours.py --quick       # proves it runs
"""

from __future__ import annotations

import argparse
import math
import statistics
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from scipy import stats

import search_regret as sr  # beside this script
from _common import log, machine, publish, run_main, stem

POLICIES = {"neighbours": True, "ask again": False}


def _one(job: tuple[sr.Task, bool]) -> dict[str, Any]:
    task, neighbours = job
    row = sr.one_search(task, tpe_neighbours=neighbours)
    return {**row, "quantile": task.quantile, "trials": task.trials, "seed": task.seed, "neighbours": neighbours}


def compare(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (budget, trials): both policies' means and the paired difference, new minus old."""
    out = []
    for q in sorted({r["quantile"] for r in rows}):
        for trials in sorted({r["trials"] for r in rows}):
            by = {pol: {r["seed"]: r for r in rows if r["quantile"] == q and r["trials"] == trials
                        and r["neighbours"] == flag} for pol, flag in POLICIES.items()}
            seeds = sorted(set(by["neighbours"]) & set(by["ask again"]))
            if not seeds:
                continue
            new, old = ([by[p][s] for s in seeds] for p in POLICIES)
            diff = [a["regret"] - b["regret"] for a, b in zip(new, old)]
            n, mean = len(diff), statistics.fmean(diff)
            half = float(stats.t.ppf(0.975, n - 1)) * statistics.stdev(diff) / math.sqrt(n) if n > 1 else math.nan
            p = 1.0 if all(abs(d) < 1e-12 for d in diff) else float(stats.wilcoxon(diff).pvalue)
            out.append({"quantile": q, "trials": trials, "n": n, "p": p, "diff_mean": mean,
                        "diff_ci": [mean - half, mean + half],
                        **{f"{key}_{tag}": statistics.fmean(r[field] for r in group)
                           for tag, group in (("new", new), ("old", old))
                           for key, field in (("regret", "regret"), ("seconds", "seconds"), ("networks", "networks"))}})
    return out


def report(res: dict[str, Any]) -> str:
    lines = ["# TPE: an unusable draw's nearest neighbour instead of asking again", "",
             f"- machine: {res['machine']}; {res['processes']} processes; command: `{res['command']}`",
             "- NAS-Bench-Macro ground truth, searches as `search_regret.py` runs them (recorded-seed noise, "
             f"the 3 best confirmed with 2 more seeds); seeds {res['seeds'][0]}..{res['seeds'][-1]} per cell, "
             "each run with both policies",
             "- regret in points; difference = neighbours minus ask again, same seed, with a 95 % t-interval and "
             "a two-sided Wilcoxon signed-rank p-value; seconds per search (both policies ran side by side, "
             "so under the same load); networks: distinct networks a search evaluated", "",
             "| budget | trials | regret: neighbours | ask again | difference [95 % CI] | p | s/search: neighbours "
             "| ask again | networks: neighbours | ask again |",
             "|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in res["rows"]:
        lo, hi = r["diff_ci"]
        lines.append(f"| {r['quantile']:.0%} | {r['trials']} | {r['regret_new']:.3f} | {r['regret_old']:.3f} | "
                     f"{r['diff_mean']:+.3f} [{lo:+.3f}, {hi:+.3f}] | {r['p']:.2g} | {r['seconds_new']:.2f} | "
                     f"{r['seconds_old']:.2f} | {r['networks_new']:.0f} | {r['networks_old']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=20, help="searches per cell and policy (default 20)")
    ap.add_argument("--trials", type=int, nargs="+", default=[100, 300], help="default: 100 300")
    ap.add_argument("--processes", type=int, default=2, help="default 2")
    ap.add_argument("--quick", action="store_true", help="2 seeds, 24 trials, one process: proves it runs")
    ap.add_argument("--name", default="", help="write tpe_neighbours_NAME.{md,json}")
    args = ap.parse_args()
    seeds = list(range(1000, 1000 + (2 if args.quick else args.seeds)))
    trials = [24] if args.quick else args.trials
    jobs = [(sr.Task(q, "tpe", t, "seed", s), flag) for t in trials for q in sr.QUANTILES for s in seeds
            for flag in POLICIES.values()]
    log(f"{len(jobs)} searches on {1 if args.quick else args.processes} process(es)")
    if args.quick or args.processes <= 1:
        sr._init()
        rows = [_one(j) for j in jobs]
    else:
        with ProcessPoolExecutor(args.processes, initializer=sr._init) as pool:
            rows = list(pool.map(_one, jobs, chunksize=2))
    command = "python benchmarks/tpe_neighbours.py" + (" --quick" if args.quick else "")
    res = {"machine": machine(), "processes": 1 if args.quick else args.processes, "command": command,
           "seeds": seeds, "trials": trials, "rows": compare(rows), "searches": rows}
    publish(stem("tpe_neighbours", args.name, "quick" if args.quick else ""), report(res), res)
    return 0


if __name__ == "__main__":
    run_main(main)
