"""How good is the search? Its regret against NAS-Bench-Macro's known answers (no training).

NAS-Bench-Macro trained every one of the 6,561 networks of ``search_spaces/nas_bench_macro.yaml``
three times on CIFAR-10, and ``latency_tables/ort-cpu-1t-macro.json`` predicts every network's
latency on this project's CPU. So a search on that space, scored by the file instead of training
(:class:`nas.search.ground_truth.TableEvaluator`, what ``nas search --accuracy-table`` uses), can be
judged exactly, in well under a second, hundreds of times:

* budgets: the 25 %, 50 % and 75 % quantiles of the predicted latency of all 6,561 networks;
* samplers: random, tpe, evolution (reward objective, hard constraint: the reward is the accuracy
  within the budget) and nsga2 (pareto objective; its winner is the most accurate network within
  the budget); every search is the real loop (:func:`nas.search.run_search`: latency-screened
  proposals, redraws, repair, de-duplication, the fastest network as the first trial), with the
  winner chosen as ``nas search`` chooses it (the 3 best networks evaluated with 2 more seeds, the
  best mean wins), in an in-memory study;
* 24, 100 and 300 trials (each its own search: the samplers size themselves by the trial count);
* ``--seeds`` repeated searches per cell (default 100): seed ``s`` drives the sampler and which
  recorded training seed each evaluation returns;
* regret = the best true mean accuracy within the budget minus the winner's true mean accuracy
  (points; true = the file's mean over its three training seeds);
* evaluator noise: the recorded seeds (the real seed-to-seed noise, about 0.15-0.2 points), and the
  true mean plus Gaussian noise of 0.5, 1.0 and 2.1 points (2.1: this project's measured CPU proxy
  noise, ``proxy_noise.py``), for the samplers in ``--noise-samplers``: how good must an accuracy
  estimator be;
* statistics per cell: mean regret with a 95 % t-interval, median, share of searches that found the
  best network; each sampler against random sampling on the same seeds (same budget, trials and
  noise): Wilcoxon signed-rank test, one-sided (the sampler's regret is lower), p-value, and the
  median paired difference.

Results: ``benchmarks/results/search_regret.{md,json,png}`` (``--name N`` adds ``_N``). Every search's
regret is kept in ``--work`` (default ``runs/search_regret``) as it finishes: an interrupted run
resumes where it stopped.

    python benchmarks/search_regret.py              # the whole grid on 2 processes
    python benchmarks/search_regret.py --quick      # proves it runs (seconds)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
import warnings
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from scipy import stats

from nas.latency import TableEstimator, load_table
from nas.search import HARD, SearchConfig, best_trial, run_search
from nas.search.budget import extreme_params
from nas.search._storage import MemoryStorage
from nas.search.confirm import Confirmation, run_confirmation
from nas.search.ground_truth import AccuracyTable, TableEvaluator, load_accuracy_table
from nas.search.outputs import feasible_trials
from nas.space import SearchSpace, load_space
from nas.space.keys import arch_to_key, key_to_arch

from _common import REPO, RESULTS, SHARED, log, machine, publish, stem  # beside this script

SPACE = REPO / "search_spaces" / "nas_bench_macro.yaml"
TABLE = REPO / "latency_tables" / "ort-cpu-1t-macro.json"
ACCURACIES = SHARED / "benchmarks" / "nas-bench-macro" / "nas-bench-macro_cifar10.json"
SAMPLERS = ("random", "tpe", "evolution", "nsga2")
TRIALS = (24, 100, 300)
QUANTILES = (0.25, 0.5, 0.75)
NOISES = ("seed", 0.5, 1.0, 2.1)  # "seed": the recorded seeds; a number: the mean + Gaussian noise (points)
CONFIRM = Confirmation(top=3, seeds=2)  # nas search's default


@dataclass(frozen=True)
class Task:
    quantile: float
    sampler: str
    trials: int
    noise: str | float
    seed: int

    @property
    def key(self) -> str:
        return f"q{self.quantile:g}|{self.sampler}|t{self.trials}|n{self.noise}|s{self.seed}"


@dataclass
class Setup:
    space: SearchSpace
    estimator: TableEstimator
    table: AccuracyTable
    latency: dict[str, float]  # key -> predicted ms
    truth: dict[str, float]  # key -> true mean accuracy (fraction)
    budgets: dict[float, float]  # quantile -> ms
    best: dict[float, float]  # quantile -> best true mean accuracy within the budget
    fastest: dict[str, Any]


_SETUP: Setup | None = None


def make_setup(space_file: Path = SPACE, table_file: Path = TABLE, accuracies: Path = ACCURACIES) -> Setup:
    space = load_space(space_file)
    estimator = TableEstimator(load_table(table_file), on_missing="error", save=False, remember=True)
    table = load_accuracy_table(accuracies, space)
    latency = {key: estimator.latency_ms(key_to_arch(space, key)) for key in table.entries}
    truth = {key: table.mean(key) for key in table.entries}
    values = np.array(list(latency.values()))
    budgets = {q: float(np.quantile(values, q)) for q in QUANTILES}
    best = {q: max(truth[k] for k, ms in latency.items() if ms <= b) for q, b in budgets.items()}
    return Setup(space, estimator, table, latency, truth, budgets, best, extreme_params(space, estimator))


def _init() -> None:
    global _SETUP
    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    _SETUP = make_setup()


def one_search(task: Task, setup: Setup | None = None, *, tpe_neighbours: bool = True) -> dict[str, Any]:
    """One search on the ground truth; its winner's regret (points) and what it cost.

    ``tpe_neighbours=False``: TPE asks again instead of taking an unusable draw's neighbour (the
    proposer before 2026-12-04; ``tpe_neighbours.py`` compares the two).
    """
    s = setup or _SETUP
    assert s is not None
    budget = s.budgets[task.quantile]
    noise = 0.0 if task.noise == "seed" else float(task.noise)
    evaluator = TableEvaluator(s.table, s.space, seed=task.seed, noise=noise)
    pareto = task.sampler == "nsga2"
    config = SearchConfig(n_trials=task.trials, budget_ms=budget, run_dir=Path(os.devnull),
                          objective="pareto" if pareto else "reward", reward=HARD, sampler=task.sampler,
                          seed=task.seed, skip_over=1.0, prune=False, tpe_neighbours=tpe_neighbours)
    start = time.perf_counter()
    study = run_search(config, s.space, s.estimator, evaluator, fingerprint={}, warm_start=s.fastest,
                       storage=MemoryStorage())
    run_confirmation(study, feasible_trials(study, budget, confirmed=False), evaluator, objective=config.strategy,
                     confirmation=CONFIRM, base_seed=task.seed, log=lambda line: None)
    winner = best_trial(study, budget, config.strategy)
    assert winner is not None  # the fastest network is the first trial and meets every budget
    key = arch_to_key(s.space, winner.arch)
    return {"key": task.key, "regret": 100 * (s.best[task.quantile] - s.truth[key]), "winner": key,
            "winner_latency_ms": s.latency[key], "seconds": round(time.perf_counter() - start, 3),
            "networks": len({t.user_attrs.get("hash") for t in study.get_trials(deepcopy=False)})}


# ------------------------------------------------------------------------------------ the grid
def grid(seeds: int, trials: Iterable[int], samplers: Iterable[str], noise_samplers: Iterable[str],
         noise_trials: Iterable[int]) -> list[Task]:
    out = []
    for q in QUANTILES:
        for t in trials:
            for noise in NOISES:
                if noise != "seed" and t not in noise_trials:
                    continue
                for sampler in (samplers if noise == "seed" else noise_samplers):
                    out += [Task(q, sampler, t, noise, seed) for seed in range(seeds)]
    return out


def _done_keys(work: Path) -> set[str]:
    path = work / "results.jsonl"
    if not path.exists():
        return set()
    return {json.loads(line)["key"] for line in path.read_text().splitlines() if line.strip()}


def run_grid(tasks: list[Task], work: Path, processes: int) -> dict[str, dict[str, Any]]:
    """Every task's result, from ``work/results.jsonl`` or computed (appended as each finishes)."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / "results.jsonl"
    done: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[row["key"]] = row
    todo = [t for t in tasks if t.key not in done]
    log(f"{len(tasks)} searches, {len(tasks) - len(todo)} done before, {len(todo)} to run on {processes} process(es)")
    start, last = time.perf_counter(), 0.0
    with open(path, "a") as out:
        if processes <= 1:
            _init()
            results: Iterable[dict[str, Any]] = map(one_search, todo)
            pool = None
        else:
            pool = ProcessPoolExecutor(processes, initializer=_init)
            results = pool.map(one_search, todo, chunksize=4)
        try:
            for n, row in enumerate(results, 1):
                done[row["key"]] = row
                out.write(json.dumps(row) + "\n")
                out.flush()
                if time.perf_counter() - last > 30 or n == len(todo):
                    last = time.perf_counter()
                    rate = n / (last - start)
                    log(f"{n}/{len(todo)} searches, {rate:.1f}/s, about {(len(todo) - n) / rate / 60:.1f} min left")
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    return done


# ------------------------------------------------------------------------------------ statistics
def cell_stats(regrets: list[float]) -> dict[str, float]:
    n = len(regrets)
    mean = statistics.fmean(regrets)
    sd = statistics.stdev(regrets) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n) if n > 1 else float("nan")
    return {"n": n, "mean": mean, "ci_low": mean - half, "ci_high": mean + half, "median": statistics.median(regrets),
            "found_best": sum(r <= 1e-9 for r in regrets) / n}


def paired(a: list[float], b: list[float]) -> dict[str, float]:
    """``a`` against ``b`` on the same seeds: one-sided Wilcoxon signed-rank (a lower), median difference."""
    diff = [x - y for x, y in zip(a, b)]
    if all(abs(d) < 1e-12 for d in diff):
        p = 1.0
    else:
        p = float(stats.wilcoxon(a, b, alternative="less", zero_method="wilcox").pvalue)
    return {"p_less": p, "median_diff": statistics.median(diff), "mean_diff": statistics.fmean(diff),
            "wins": sum(d < -1e-12 for d in diff), "losses": sum(d > 1e-12 for d in diff)}


def analyse(tasks: list[Task], done: dict[str, dict[str, Any]]) -> dict[str, Any]:
    cells: dict[tuple[float, str, int, str], dict[int, float]] = {}
    for t in tasks:
        cells.setdefault((t.quantile, t.sampler, t.trials, str(t.noise)), {})[t.seed] = done[t.key]["regret"]
    rows = []
    noises = [str(n) for n in NOISES]
    for (q, sampler, trials, noise), by_seed in sorted(cells.items(), key=lambda kv: (
            noises.index(kv[0][3]), kv[0][0], kv[0][2], SAMPLERS.index(kv[0][1]))):
        row: dict[str, Any] = {"quantile": q, "sampler": sampler, "trials": trials, "noise": noise,
                               **cell_stats(list(by_seed.values()))}
        ref = cells.get((q, "random", trials, noise))
        if sampler != "random" and ref is not None:
            seeds = sorted(set(by_seed) & set(ref))
            row["vs_random"] = paired([by_seed[s] for s in seeds], [ref[s] for s in seeds])
        rows.append(row)
    head = []  # the default sampler against evolution, the candidate to replace it (two-sided)
    for (q, sampler, trials, noise), a in sorted(cells.items(), key=lambda kv: (noises.index(kv[0][3]), kv[0][0],
                                                                                    kv[0][2])):
        b = cells.get((q, "evolution", trials, noise))
        if sampler == "tpe" and b is not None:
            seeds = sorted(set(a) & set(b))
            x, y = [a[s] for s in seeds], [b[s] for s in seeds]
            diff = [u - v for u, v in zip(x, y)]
            p = 1.0 if all(abs(d) < 1e-12 for d in diff) else float(stats.wilcoxon(x, y).pvalue)
            head.append({"quantile": q, "trials": trials, "noise": noise, "mean_diff": statistics.fmean(diff),
                         "wins": sum(d < -1e-12 for d in diff), "losses": sum(d > 1e-12 for d in diff), "p": p})
    seconds = {}
    for sampler in SAMPLERS:
        for trials in sorted({t.trials for t in tasks}):
            secs = [done[t.key]["seconds"] for t in tasks if t.sampler == sampler and t.trials == trials]
            if secs:
                seconds[f"{sampler}/{trials}"] = statistics.fmean(secs)
    return {"rows": rows, "tpe_vs_evolution": head, "seconds_per_search": seconds}


# ------------------------------------------------------------------------------------ report
def _fmt_p(p: float) -> str:
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def report(res: dict[str, Any]) -> str:
    s = res["setup"]
    lines = ["# Search regret on NAS-Bench-Macro (ground truth, no training)", "",
             f"- machine: {res['machine']}; {res['searches']} searches, {res['search_minutes']:.0f} min of search "
             f"time in all (the sum over searches; about half that on 2 processes), of which this invocation ran "
             f"{res['run_now']} in {res['minutes']:.1f} min on {res['processes']} process(es) (the others were "
             f"kept from earlier ones); command: `{res['command']}`",
             f"- space `{s['space']}`, latency table `{s['table']}`, accuracies `{s['accuracies']}`",
             "- budgets (quantiles of the 6,561 networks' predicted latency): " + ", ".join(
                 f"{100 * float(q):.0f} %: {b:.3f} ms (best true mean accuracy within it {100 * s['best'][q]:.2f} %)"
                 for q, b in s["budgets"].items()),
             "- regret: best true mean accuracy within the budget minus the winner's, in points; the winner as "
             "`nas search` chooses it (3 best, 2 more seeds each, best mean); "
             f"{res['seeds']} searches per cell (seeds 0..{res['seeds'] - 1}), each sampler paired with random "
             "sampling on the same seeds (one-sided Wilcoxon signed-rank: is its regret lower?)", ""]
    for noise in dict.fromkeys(r["noise"] for r in res["rows"]):
        title = "the recorded training seeds" if noise == "seed" else f"the true mean + Gaussian noise of {noise} points"
        lines += [f"## Evaluator: {title}", "",
                  "| budget | trials | sampler | mean regret [95 % CI] | median | found the best | vs random: "
                  "median diff | wins/losses | p (lower) |", "|---:|---:|---|---|---:|---:|---:|---:|---:|"]
        for r in (r for r in res["rows"] if r["noise"] == noise):
            vs = r.get("vs_random")
            cmp = (f"{vs['median_diff']:+.2f} | {vs['wins']}/{vs['losses']} | {_fmt_p(vs['p_less'])}" if vs else
                   "- | - | -")
            lines.append(f"| {100 * r['quantile']:.0f} % | {r['trials']} | {r['sampler']} | {r['mean']:.2f} "
                         f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}] | {r['median']:.2f} | {100 * r['found_best']:.0f} % | "
                         f"{cmp} |")
        lines.append("")
    if res.get("tpe_vs_evolution"):
        lines += ["## tpe (the default) against evolution, on the same seeds", "",
                  "Two-sided Wilcoxon signed-rank; a negative difference: tpe's regret is lower.", "",
                  "| evaluator | budget | trials | mean diff (tpe - evolution) | tpe lower/higher | p |",
                  "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {h['noise']} | {100 * h['quantile']:.0f} % | {h['trials']} | {h['mean_diff']:+.3f} | "
                  f"{h['wins']}/{h['losses']} | {_fmt_p(h['p'])} |" for h in res["tpe_vs_evolution"]]
        lines.append("")
    lines += ["## Goals", ""] + [f"- {g}" for g in res["goals"]] + ["", "## Seconds per search (mean)", "",
                                                                     "| sampler | " + " | ".join(
                                                                         f"{t} trials" for t in res["trials"]) + " |",
                                                                     "|---|" + "---:|" * len(res["trials"])]
    for sampler in SAMPLERS:
        cells = [res["seconds_per_search"].get(f"{sampler}/{t}") for t in res["trials"]]
        if any(c is not None for c in cells):
            lines.append(f"| {sampler} | " + " | ".join("-" if c is None else f"{c:.2f}" for c in cells) + " |")
    return "\n".join(lines) + "\n"


def goals(res: dict[str, Any], default: str) -> list[str]:
    out = []
    rows = [r for r in res["rows"] if r["noise"] == "seed"]
    at100 = [r for r in rows if r["sampler"] == default and r["trials"] == 100 and "vs_random" in r]
    if at100:
        ok = all(r["vs_random"]["p_less"] < 0.01 for r in at100)
        ps = ", ".join(f"{100 * r['quantile']:.0f} %: p = {_fmt_p(r['vs_random']['p_less'])}" for r in at100)
        out.append(f"{default} at 100 trials has lower regret than random sampling with p < 0.01 at every budget: "
                   f"{'met' if ok else 'NOT met'} ({ps})")
    at300 = [r for r in rows if r["sampler"] == default and r["trials"] == 300]
    if at300:
        ok = all(r["median"] <= 0.3 for r in at300)
        meds = ", ".join(f"{100 * r['quantile']:.0f} %: {r['median']:.2f}" for r in at300)
        out.append(f"{default}'s median regret at 300 trials is at most 0.3 points with the recorded seeds: "
                   f"{'met' if ok else 'NOT met'} ({meds})")
    return out


def save_plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    quantiles = sorted({r["quantile"] for r in res["rows"]})
    fig, axes = plt.subplots(1, len(quantiles), figsize=(4.2 * len(quantiles), 3.8), sharey=True, squeeze=False)
    for ax, q in zip(axes[0], quantiles):
        for sampler in SAMPLERS:
            rows = sorted((r for r in res["rows"] if r["quantile"] == q and r["sampler"] == sampler
                           and r["noise"] == "seed"), key=lambda r: r["trials"])
            if not rows:
                continue
            x = [r["trials"] for r in rows]
            y = [r["mean"] for r in rows]
            err = [[r["mean"] - r["ci_low"] for r in rows], [r["ci_high"] - r["mean"] for r in rows]]
            ax.errorbar(x, y, yerr=err, marker="o", ms=4, capsize=3, label=sampler)
        ax.set_xscale("log")
        ax.set_xticks(res["trials"], [str(t) for t in res["trials"]])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # no "3x10^1" beside "24"
        ax.set_title(f"budget: {100 * q:.0f} % quantile ({res['setup']['budgets'][str(q)]:.2f} ms)", fontsize=9)
        ax.set_xlabel("trials")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("regret (points, mean and 95 % CI)")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle(f"NAS-Bench-Macro, recorded-seed evaluator, {res['seeds']} searches per point", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=100, help="repeated searches per cell (default 100)")
    p.add_argument("--trials", type=int, nargs="+", default=list(TRIALS))
    p.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    p.add_argument("--noise-samplers", nargs="+", default=["tpe", "evolution", "random"], choices=SAMPLERS,
                   help="samplers also run with the Gaussian-noise evaluators (default: tpe, evolution, random)")
    p.add_argument("--noise-trials", type=int, nargs="+", default=[100],
                   help="trial counts also run with the Gaussian-noise evaluators (default: 100)")
    p.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    p.add_argument("--work", type=Path, default=REPO / "runs" / "search_regret")
    p.add_argument("--name", default="")
    p.add_argument("--quick", action="store_true", help="3 seeds, 24 trials: proves it runs; figures mean nothing")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.trials, args.noise_trials, args.name = 3, [24], [24], args.name or "quick"
        args.work = args.work.with_name(args.work.name + "_quick")
    started = time.perf_counter()
    setup = make_setup()
    tasks = grid(args.seeds, args.trials, args.samplers, args.noise_samplers, args.noise_trials)
    before = _done_keys(args.work)
    done = run_grid(tasks, args.work, args.processes)
    res: dict[str, Any] = {
        "machine": machine(), "seeds": args.seeds, "trials": sorted(args.trials), "searches": len(tasks),
        "processes": args.processes, "minutes": (time.perf_counter() - started) / 60,
        "run_now": sum(t.key not in before for t in tasks),
        "search_minutes": sum(done[t.key]["seconds"] for t in tasks) / 60,
        "command": "python benchmarks/search_regret.py" + (" --quick" if args.quick else ""),
        "setup": {"space": str(SPACE.relative_to(REPO)), "table": str(TABLE.relative_to(REPO)),
                  "accuracies": "../shared/benchmarks/nas-bench-macro/nas-bench-macro_cifar10.json",
                  "budgets": {str(q): b for q, b in setup.budgets.items()},
                  "best": {str(q): b for q, b in setup.best.items()}},
        **analyse(tasks, done)}
    res["goals"] = [g for sampler in args.samplers if sampler != "random" for g in goals(res, sampler)]
    out = stem("search_regret", args.name)
    publish(out, report(res), res)
    save_plot(res, RESULTS / f"{out}.png")
    print(f"wrote {RESULTS / out}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
