"""Regret of a supernet-driven search on NAS-Bench-Macro: the winner's true accuracy against the true best.

Settings, fixed before any run:

* supernet: the one ``supernet_rank.py`` trains (``runs/supernet_rank/supernet``; ``--supernet DIR`` for
  another of ``search_spaces/nas_bench_macro.yaml``); scoring as there (BatchNorm re-estimated on 256
  training images, accuracy on the first 1,000 validation images);
* searches: the real loop (:func:`nas.search.run_search`, in-memory study) with the evolution sampler, the
  reward objective with the hard constraint, 2,000 trials, the winner chosen as ``nas search`` chooses it
  (the 3 best re-scored on 2 other calibration samples, best mean), at the budgets of ``search_regret.py``
  (25, 50 and 75 % quantiles of the predicted latency on ``latency_tables/ort-cpu-1t-macro.json``);
  ``--seeds`` searches per budget (default 5, seeds 0..4);
* regret = best true mean accuracy within the budget minus the winner's (points), NAS-Bench-Macro's truth.

A supernet score does not depend on the search that asks for it (deterministic, one sample per seed), so
every score is kept in the supernet directory (``SupernetEvaluator(keep=True)``, as ``nas search
--supernet`` keeps them) and shared by all searches and by ``supernet_rank.py``: an interrupted run
resumes, and later searches mostly look scores up. Goal (issue 22): at most 0.5
points of regret on average. Results: ``benchmarks/results/supernet_regret.{md,json}``.

    python benchmarks/supernet_regret.py
    python benchmarks/supernet_regret.py --quick --supernet runs/supernet_rank_quick/supernet
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from scipy import stats

from nas.search import HARD, SearchConfig, best_trial, run_search
from nas.search.confirm import run_confirmation
from nas.search.outputs import feasible_trials
from nas.space.keys import arch_to_key
from nas.supernet import SupernetEvaluator, SupernetScoring, load_supernet
from nas.supernet.store import supernet_splits

from _common import REPO, Cache, log, machine, publish, run_main, stem  # beside this script
from search_regret import CONFIRM, QUANTILES, Setup, make_setup

TRIALS, SEEDS = 2000, 5


def one_search(setup: Setup, scores: SupernetEvaluator, quantile: float, seed: int, trials: int) -> dict[str, Any]:
    budget = setup.budgets[quantile]
    config = SearchConfig(n_trials=trials, budget_ms=budget, run_dir=Path("/dev/null"), objective="reward",
                          reward=HARD, sampler="evolution", seed=seed, skip_over=1.0, prune=False)
    start = time.perf_counter()
    study = run_search(config, setup.space, setup.estimator, scores, fingerprint={}, warm_start=setup.fastest,
                       storage=optuna.storages.InMemoryStorage())
    run_confirmation(study, feasible_trials(study, budget, confirmed=False), scores, objective=config.strategy,
                     confirmation=CONFIRM, base_seed=seed, log=lambda line: None)
    winner = best_trial(study, budget, config.strategy)
    assert winner is not None  # the fastest network is the first trial and meets every budget
    key = arch_to_key(setup.space, winner.arch)
    return {"quantile": quantile, "seed": seed, "winner": key, "regret": 100 * (setup.best[quantile] - setup.truth[key]),
            "winner_latency_ms": setup.latency[key], "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--supernet", type=Path, default=REPO / "runs" / "supernet_rank" / "supernet")
    p.add_argument("--work", type=Path, default=REPO / "runs" / "supernet_regret")
    p.add_argument("--seeds", type=int, default=SEEDS)
    p.add_argument("--trials", type=int, default=TRIALS)
    p.add_argument("--quick", action="store_true", help="1 seed, 60 trials: proves it runs")
    p.add_argument("--name", default="")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.trials = 1, 60
        args.work, args.name = args.work.with_name(args.work.name + "_quick"), args.name or "quick"
    torch.set_num_threads(2)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    started = time.perf_counter()
    loaded = load_supernet(args.supernet)
    setup = make_setup()
    scores = SupernetEvaluator(loaded, supernet_splits(loaded), SupernetScoring(calibration_images=256, val_images=1000),
                               device="cpu", keep=True)
    done = Cache(args.work, f"searches_{loaded.fingerprint}_t{args.trials}.json")
    rows = []
    for seed in range(args.seeds):  # seeds outermost: a run with fewer --seeds is a complete, smaller grid
        for q in QUANTILES:
            row = done.get(f"q{q:g}/s{seed}", lambda q=q, seed=seed: one_search(setup, scores, q, seed, args.trials))
            log(f"budget {100 * q:.0f} %, seed {seed}: regret {row['regret']:.2f} points ({row['seconds']:.0f} s)")
            rows.append(row)
    summary = []
    for q in QUANTILES:
        regrets = [r["regret"] for r in rows if r["quantile"] == q]
        mean = statistics.fmean(regrets)
        half = (stats.t.ppf(0.975, len(regrets) - 1) * statistics.stdev(regrets) / np.sqrt(len(regrets))
                if len(regrets) > 1 else float("nan"))
        summary.append({"quantile": q, "budget_ms": setup.budgets[q], "mean": mean, "ci": [mean - half, mean + half],
                        "median": statistics.median(regrets), "n": len(regrets)})
    res = {"machine": machine(), "command": " ".join(["python benchmarks/supernet_regret.py", *(argv if argv is not None else sys.argv[1:])]),
           "supernet": {"directory": str(args.supernet), "epochs": loaded.epochs, "fingerprint": loaded.fingerprint},
           "scoring": scores.settings(), "trials": args.trials, "seeds": args.seeds, "summary": summary, "searches": rows,
           "scores_kept": len(scores.kept.scores) if scores.kept is not None else 0, "minutes_this_run": (time.perf_counter() - started) / 60}
    publish(stem("supernet_regret", args.name), report(res), res)
    return 0


def report(res: dict[str, Any]) -> str:
    s = res["supernet"]
    lines = ["# Regret of a supernet-driven search on NAS-Bench-Macro", "",
             f"- machine: {res['machine']}; command: `{res['command']}`",
             f"- supernet `{s['directory']}` ({s['epochs']} epochs); scoring: BatchNorm re-estimated on "
             f"{res['scoring']['calibration_images']} training images, {res['scoring']['val_images']} validation "
             f"images; {res['scores_kept']} networks scored (kept in the supernet directory)",
             f"- evolution, {res['trials']} trials, reward with the hard constraint, winner re-scored on 2 more "
             f"calibration samples; {res['seeds']} searches per budget; regret in points against NAS-Bench-Macro's "
             "mean accuracy; goal: at most 0.5 on average", "",
             "| budget | ms | mean regret [95 % CI] | median | searches |", "|---:|---:|---|---:|---:|"]
    lines += [f"| {100 * r['quantile']:.0f} % | {r['budget_ms']:.3f} | {r['mean']:.2f} [{r['ci'][0]:.2f}, "
              f"{r['ci'][1]:.2f}] | {r['median']:.2f} | {r['n']} |" for r in res["summary"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_main(main)
