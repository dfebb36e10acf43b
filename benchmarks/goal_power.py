"""How often can the search-vs-baselines goal be met? Its verdict rule against the measured spreads.

The goal of ``search_vs_baselines.py`` (issue 4): the searched network beats random sampling's by
more than the seed-to-seed spread (the larger sample standard deviation of the two networks' test
accuracies over ``--retrain-seeds`` retrainings) at the same or lower latency. How likely that
verdict is depends on two figures that the runs so far have measured, with no new training here:

* sigma_w, one network's test accuracy from seed to seed (pooled over the searched networks
  retrained with the default recipe: 10 epochs on 5,000 images, 10,000 test images), and
* sigma_b, how much the searched networks' *true* accuracies differ: the standard deviation of
  their seed means, less the part that seed noise alone explains (sigma_w^2 / seeds).

The table then gives, for a true advantage ``delta`` of the searched network over random sampling's,
the probability that the verdict says "beats it by more than the spread" (normal seed noise of
sigma_w, ``--sims`` simulated pairs of retrainings). For scale: with a proxy that ranks perfectly,
the best of ``--trials`` networks drawn at random is E[max of N standard normals] x sigma_b above
an average one, and random sampling with that proxy would find it too.

Assumptions: normal seed noise, the same sigma_w for every network, searched networks' true
accuracies normal with sigma_b. Results: ``benchmarks/results/goal_power.{md,json}``.

    python benchmarks/goal_power.py     # seconds
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

from _common import RESULTS, machine, publish  # beside this script
from proxy_noise import networks  # beside this script

DELTAS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)  # accuracy points


def spreads(accs: list[list[float]]) -> tuple[float, float]:
    """(sigma_w, sigma_b) in points from per-network seed accuracies (fractions), equal seeds per network."""
    seeds = {len(a) for a in accs}
    if len(accs) < 2 or len(seeds) != 1 or min(seeds) < 2:
        raise ValueError(f"expected >= 2 networks with the same number (>= 2) of seeds, got {[len(a) for a in accs]}")
    n = seeds.pop()
    within = statistics.mean(statistics.variance([100 * x for x in a]) for a in accs)
    between = statistics.variance([100 * statistics.mean(a) for a in accs]) - within / n
    return math.sqrt(within), math.sqrt(max(0.0, between))


def p_goal(delta: float, sigma_w: float, seeds: int, sims: int, rng: np.random.Generator) -> float:
    """P(mean(a) - mean(b) > max(sd(a), sd(b))) when a's true accuracy is ``delta`` above b's."""
    a = rng.normal(delta, sigma_w, (sims, seeds))
    b = rng.normal(0.0, sigma_w, (sims, seeds))
    gap = a.mean(axis=1) - b.mean(axis=1)
    return float(np.mean(gap > np.maximum(a.std(axis=1, ddof=1), b.std(axis=1, ddof=1))))


def expected_max(n: int, sims: int, rng: np.random.Generator) -> float:
    """E[max of n standard normals] (Monte Carlo)."""
    return float(rng.standard_normal((sims, n)).max(axis=1).mean())


def analyse(nets: list[dict[str, Any]], trials: int, sims: int, seed: int = 0) -> dict[str, Any]:
    searched = [n for n in nets if n["network"].startswith("search")]
    accs = [n["test_acc"] for n in searched]
    sigma_w, sigma_b = spreads(accs)
    seeds = len(accs[0])
    rng = np.random.default_rng(seed)
    return {"networks": [{"network": n["network"], "test_acc": n["test_acc"]} for n in searched],
            "seeds": seeds, "sigma_w": sigma_w, "sigma_b": sigma_b, "trials": trials,
            "best_of_trials": sigma_b * expected_max(trials, sims, rng),
            "power": [{"delta": d, "p": p_goal(d, sigma_w, seeds, sims, rng)} for d in DELTAS]}


def report(res: dict[str, Any]) -> str:
    a = res["analysis"]
    lines = ["# How often the search-vs-baselines goal can be met", "",
             f"From {len(a['networks'])} searched networks retrained with the default recipe "
             f"({', '.join(res['config']['results'])}), {a['seeds']} seeds each: seed-to-seed standard deviation "
             f"sigma_w = {a['sigma_w']:.2f} points (pooled); spread of the networks' true accuracies sigma_b = "
             f"{a['sigma_b']:.2f} points (standard deviation of their means less seed noise).", "",
             f"Probability that the verdict says \"beats it by more than the spread\" ({a['seeds']} seeds each, "
             f"spread = the larger sample standard deviation) when the searched network is truly delta points "
             f"better ({res['config']['sims']} simulated pairs):", "",
             "| delta (points) | delta / sigma_b | P(goal met) |", "|---:|---:|---:|"]
    for row in a["power"]:
        ratio = row["delta"] / a["sigma_b"] if a["sigma_b"] > 0 else float("inf")
        lines.append(f"| {row['delta']:.1f} | {ratio:.1f} | {row['p']:.2f} |")
    lines += ["", f"For scale: with a proxy that ranks perfectly, the best of {a['trials']} random networks is "
                  f"{a['best_of_trials']:.2f} points above an average one (E[max of {a['trials']} standard normals] "
                  f"x sigma_b).", "", f"Machine: {res['machine']}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", nargs="+", type=Path, default=None,
                   help="search_vs_baselines results (.json); default: all in benchmarks/results/")
    p.add_argument("--trials", type=int, default=24, help="trials per search (the benchmark's default)")
    p.add_argument("--sims", type=int, default=200_000, help="simulated pairs per row")
    args = p.parse_args(argv)
    paths = args.results or sorted(p for p in RESULTS.glob("search_vs_baselines*.json") if "quick" not in p.name)
    nets = networks(paths)
    try:
        analysis = analyse(nets, args.trials, args.sims)
    except ValueError as e:
        raise SystemExit(f"{[str(p) for p in paths]}: {e}") from None
    used = sorted({name for n in nets for name in n["from"]})
    res = {"config": {"results": used, "trials": args.trials, "sims": args.sims}, "analysis": analysis,
           "machine": machine()}
    publish("goal_power", report(res), res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
