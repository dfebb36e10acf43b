"""Seconds a supernet takes to score one candidate, by the size of the validation sample.

Settings, fixed before the run (2026-12-05):

* supernet: a trained ``nas supernet train`` directory (default ``runs/supernet_rank_third/supernet``, the
  NAS-Bench-Macro supernet of ``supernet_rank.py``'s third run: CIFAR-10, 32x32);
* networks: ``--networks`` (20) random networks of the supernet's space (seed 0), the same for every setting,
  after one warm-up network that is not counted;
* scoring (:class:`nas.supernet.SupernetEvaluator`, nothing kept or reused): BatchNorm re-estimated on
  ``--calibration-images`` (256, the default) training images, then accuracy on each ``--val-images`` size
  (150, 1,000 and the whole validation split);
* 2 torch threads, on a machine doing nothing else: the seconds are wall-clock time per candidate.

Goal (issue 22): at most 1 s per candidate at 32x32 on 2 cores.

    python benchmarks/supernet_score_cost.py [--supernet DIR] [--networks 20] [--val-images 150 1000 0]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from scipy import stats

from nas.space import random_arch
from nas.supernet import SupernetEvaluator, SupernetScoring, load_supernet
from nas.supernet.store import supernet_splits

from _common import REPO, log, machine, publish, run_main, stem  # beside this script

GOAL_S = 1.0


def _interval(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, mean
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return mean - half, mean + half


def _time(loaded: Any, splits: Any, scoring: SupernetScoring, archs: list[Any]) -> list[float]:
    evaluator = SupernetEvaluator(loaded, splits, scoring, device="cpu", keep=False)
    seconds = []
    for arch in archs:
        start = time.perf_counter()
        evaluator.evaluate(arch)
        seconds.append(time.perf_counter() - start)
    return seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--supernet", type=Path, default=REPO / "runs" / "supernet_rank_third" / "supernet",
                   help="a trained supernet directory (default: supernet_rank.py's third run)")
    p.add_argument("--networks", type=int, default=20, help="random networks timed per setting")
    p.add_argument("--calibration-images", type=int, default=SupernetScoring.calibration_images)
    p.add_argument("--val-images", type=int, nargs="+", default=[150, 1000, 0],
                   help="validation sample sizes (0: the whole split)")
    p.add_argument("--name", default="", help="write results/supernet_score_cost_NAME.{md,json}")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    loaded = load_supernet(args.supernet)
    shown = args.supernet.resolve().relative_to(REPO) if args.supernet.resolve().is_relative_to(REPO) else args.supernet
    splits = supernet_splits(loaded)
    archs = [random_arch(loaded.space, seed) for seed in range(args.networks + 1)]
    rows: list[dict[str, Any]] = []
    for val in args.val_images:
        scoring = SupernetScoring(calibration_images=args.calibration_images, val_images=val or None)
        images = len(splits.val) if not val else min(val, len(splits.val))
        log(f"{args.calibration_images} calibration + {images} validation images: {args.networks} networks")
        seconds = _time(loaded, splits, scoring, archs)[1:]  # the first is the warm-up
        low, high = _interval(seconds)
        rows.append({"calibration_images": args.calibration_images, "val_images": images,
                     "mean_s": statistics.fmean(seconds), "ci95": [low, high], "median_s": statistics.median(seconds),
                     "min_s": min(seconds), "max_s": max(seconds), "seconds": seconds,
                     "goal_met": statistics.fmean(seconds) <= GOAL_S})
    command = "python benchmarks/supernet_score_cost.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [f"# Seconds per candidate scored by a supernet ({loaded.space.name}, {loaded.space.input_size}x"
             f"{loaded.space.input_size})", "",
             f"- machine: {machine()}, 2 torch threads; command: `{command.strip()}`",
             f"- supernet: {shown} ({loaded.epochs} epoch(s)); {args.networks} random networks of its "
             f"space (seeds 1-{args.networks}, after one warm-up network), each setting a fresh evaluator "
             f"(nothing kept or reused)", "",
             "| calibration images | validation images | mean s | 95 % interval | median s | min-max s | goal <= 1 s |",
             "|---:|---:|---:|---|---:|---|---|"]
    for r in rows:
        lines.append(f"| {r['calibration_images']} | {r['val_images']} | {r['mean_s']:.2f} | [{r['ci95'][0]:.2f}, "
                     f"{r['ci95'][1]:.2f}] | {r['median_s']:.2f} | {r['min_s']:.2f}-{r['max_s']:.2f} | "
                     f"{'met' if r['goal_met'] else 'missed'} |")
    lines += ["", "Wall-clock seconds per candidate: extracting the sub-network, re-estimating its BatchNorm, "
                  "scoring the validation sample."]
    res = {"machine": machine(), "command": command, "supernet": str(shown), "epochs": loaded.epochs,
           "space": loaded.space.name, "networks": args.networks, "rows": rows}
    publish(stem("supernet_score_cost", args.name), "\n".join(lines) + "\n", res)
    return 0


if __name__ == "__main__":
    run_main(main)
