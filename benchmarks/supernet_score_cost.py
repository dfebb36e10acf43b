"""Seconds a supernet takes to score one candidate, by the size of the validation sample and the CPU heap.

Settings, fixed before the run (2026-12-05; the heap arms added 2026-12-05 before their run):

* supernet: a trained ``nas supernet train`` directory (default ``runs/supernet_rank_third/supernet``, the
  NAS-Bench-Macro supernet of ``supernet_rank.py``'s third run: CIFAR-10, 32x32);
* networks: ``--networks`` (20) random networks of the supernet's space (seed 0), the same for every setting,
  after one warm-up network that is not counted;
* scoring (:class:`nas.supernet.SupernetEvaluator`, nothing kept or reused): BatchNorm re-estimated on
  ``--calibration-images`` (256, the default) training images, then accuracy on each ``--val-images`` size
  (150, 1,000 and the whole validation split);
* two arms, each in its own process, alternating for ``--reps`` (2) repetitions: ``heap``, the code as it is
  (on the CPU, glibc serves large blocks from its heap: ``nas.train.memory.keep_large_blocks_in_heap``), and
  ``glibc-default``, the same code with that call taken out (glibc maps every large block afresh). Per arm
  and size: the mean seconds per candidate (each network's mean over the repetitions) with a 95 %
  t-interval over the networks, and the paired difference ``glibc-default - heap`` network by network; per
  arm, the worker's system CPU time and minor page faults (``getrusage``);
* 2 torch threads, on a machine doing nothing else: the seconds are wall-clock time per candidate.

Goal (issue 22): at most 1 s per candidate at 32x32 on 2 cores (the ``heap`` arm: the product's code).

    python benchmarks/supernet_score_cost.py [--supernet DIR] [--networks 20] [--val-images 150 1000 0] [--reps 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from scipy import stats

from _common import REPO, log, machine, publish, run_main, stem  # beside this script

GOAL_S = 1.0
ARMS = ("glibc-default", "heap")


def interval(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, mean
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return mean - half, mean + half


def _worker(args: argparse.Namespace) -> int:
    """One arm in this process: seconds per network and size, and the process's system time and page faults,
    written to ``args.worker_out`` as JSON."""
    import nas.supernet.evaluate as evaluate
    from nas.space import random_arch
    from nas.supernet import SupernetEvaluator, SupernetScoring, load_supernet
    from nas.supernet.store import supernet_splits

    if args.arm == "glibc-default":
        evaluate.keep_large_blocks_in_heap = lambda: False  # the product's code without that one call
    torch.set_num_threads(2)
    loaded = load_supernet(args.supernet)
    splits = supernet_splits(loaded)
    archs = [random_arch(loaded.space, seed) for seed in range(args.networks + 1)]
    before = resource.getrusage(resource.RUSAGE_SELF)
    sizes = []
    for val in args.val_images:
        scoring = SupernetScoring(calibration_images=args.calibration_images, val_images=val or None)
        evaluator = SupernetEvaluator(loaded, splits, scoring, device="cpu", keep=False)
        seconds = []
        for arch in archs:
            start = time.perf_counter()
            evaluator.evaluate(arch)
            seconds.append(time.perf_counter() - start)
        images = len(splits.val) if not val else min(val, len(splits.val))
        sizes.append({"val_images": images, "seconds": seconds[1:]})  # the first is the warm-up
    after = resource.getrusage(resource.RUSAGE_SELF)
    Path(args.worker_out).write_text(json.dumps({
        "space": loaded.space.name, "input_size": loaded.space.input_size, "epochs": loaded.epochs,
        "sizes": sizes, "sys_s": after.ru_stime - before.ru_stime, "user_s": after.ru_utime - before.ru_utime,
        "minor_faults": after.ru_minflt - before.ru_minflt}))
    return 0


def arm_order(arms: tuple[str, ...], rep: int, rotate: bool) -> tuple[str, ...]:
    """The arms in the order repetition ``rep`` runs them: with ``rotate`` starting at the next arm each time."""
    shift = rep % len(arms) if rotate else 0
    return arms[shift:] + arms[:shift]


def run_arms(args: argparse.Namespace, argv: list[str], arms: tuple[str, ...] = ARMS, script: str = __file__,
              rotate: bool = False) -> list[dict[str, Any]]:
    """Each arm's worker (``script --arm ARM``), alternating, ``args.reps`` times: ``[{"arm", "rep", ...worker
    JSON}]``; ``rotate`` starts each repetition with the next arm (else every one starts with the first)."""
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for arm in arm_order(arms, rep, rotate):
                out = Path(tmp) / f"{arm}-{rep}.json"
                log(f"repetition {rep + 1}/{args.reps}, arm {arm}")
                code = subprocess.run([sys.executable, script, *argv, "--arm", arm, "--worker-out", str(out)]
                                      ).returncode
                if code != 0:
                    raise SystemExit(f"error: the {arm} arm's process failed (exit {code}); its message is above")
                runs.append({"arm": arm, "rep": rep, **json.loads(out.read_text())})
    return runs


def _rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from search_vs_baselines import paired_difference

    rows = []
    for i, size in enumerate(runs[0]["sizes"]):
        per_arm = {}
        for arm in ARMS:  # each network's mean over the repetitions
            by_rep = [r["sizes"][i]["seconds"] for r in runs if r["arm"] == arm]
            per_arm[arm] = [statistics.fmean(values) for values in zip(*by_rep)]
        row: dict[str, Any] = {"val_images": size["val_images"]}
        for arm, seconds in per_arm.items():
            low, high = interval(seconds)
            row[arm] = {"mean_s": statistics.fmean(seconds), "ci95": [low, high],
                        "median_s": statistics.median(seconds), "seconds": seconds}
        row["difference"] = paired_difference(per_arm["glibc-default"], per_arm["heap"])
        row["goal_met"] = row["heap"]["mean_s"] <= GOAL_S
        rows.append(row)
    return rows


def _by_repetition(runs: list[dict[str, Any]]) -> list[list[float]]:
    """Per size, each repetition's mean ``glibc-default - heap`` over the networks (the spread between runs)."""
    reps = sorted({r["rep"] for r in runs})
    out = []
    for i in range(len(runs[0]["sizes"])):
        arm_mean = {(r["arm"], r["rep"]): statistics.fmean(r["sizes"][i]["seconds"]) for r in runs}
        out.append([arm_mean["glibc-default", rep] - arm_mean["heap", rep] for rep in reps])
    return out


def report(res: dict[str, Any]) -> str:
    """The results table (Markdown) of a run's results (``res``, as written to the JSON file)."""
    runs, first = res["runs"], res["runs"][0]
    lines = [f"# Seconds per candidate scored by a supernet ({first['space']}, {first['input_size']}x"
             f"{first['input_size']})", "",
             f"- machine: {res['machine']}, 2 torch threads; command: `{res['command'].strip()}`",
             f"- supernet: {res['supernet']} ({first['epochs']} epoch(s)); {res['networks']} random networks of its "
             f"space (seeds 1-{res['networks']}, after one warm-up network), each setting a fresh evaluator "
             f"(nothing kept or reused); {res['reps']} repetition(s) of each arm, alternating (`glibc-default` "
             "first in each), each in its own process",
             "- arms: `heap`, the code as it is (on the CPU, glibc serves large blocks from its heap); "
             "`glibc-default`, the same without that call (every large block mapped afresh)", "",
             "| calibration images | validation images | heap: mean s | 95 % interval | glibc-default: mean s "
             "| 95 % interval | paired difference s | by repetition s | goal <= 1 s (heap) |",
             "|---:|---:|---:|---|---:|---|---|---|---|"]
    for r, reps in zip(res["rows"], _by_repetition(runs)):
        h, g, d = r["heap"], r["glibc-default"], r["difference"]
        lines.append(f"| {res['calibration_images']} | {r['val_images']} | {h['mean_s']:.2f} | [{h['ci95'][0]:.2f}, "
                     f"{h['ci95'][1]:.2f}] | {g['mean_s']:.2f} | [{g['ci95'][0]:.2f}, {g['ci95'][1]:.2f}] | "
                     f"{d['mean']:+.2f} [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}] | "
                     f"{' / '.join(f'{x:+.2f}' for x in reps)} | {'met' if r['goal_met'] else 'missed'} |")
    lines += ["", "| arm | system CPU s per run | user CPU s per run | minor page faults per run |", "|---|---:|---:|---:|"]
    for arm in ARMS:
        mine = [r for r in runs if r["arm"] == arm]
        lines.append(f"| {arm} | {statistics.fmean(r['sys_s'] for r in mine):.1f} | "
                     f"{statistics.fmean(r['user_s'] for r in mine):.1f} | "
                     f"{statistics.fmean(r['minor_faults'] for r in mine):,.0f} |")
    lines += ["", "Wall-clock seconds per candidate: extracting the sub-network, re-estimating its BatchNorm, "
                  "scoring the validation sample; each network's mean over the repetitions. The paired difference "
                  "is `glibc-default - heap`, network by network, with a 95 % t-interval over the networks; it "
                  "leaves out the spread between runs (the column after it: each repetition's mean difference), "
                  "so it is optimistic. CPU times and page faults cover a worker's whole scoring (every size, "
                  "warm-ups included), not its start."]
    return "\n".join(lines) + "\n"


def arm_arguments(p: argparse.ArgumentParser, arms: tuple[str, ...], *, networks: int, val_images: list[int],
                  results: str, reps: int = 2) -> None:
    """The options of an arms benchmark (this one and ``supernet_score_precision.py``) after ``--supernet``."""
    p.add_argument("--networks", type=int, default=networks, help="random networks timed per setting")
    p.add_argument("--calibration-images", type=int, default=256)
    p.add_argument("--val-images", type=int, nargs="+", default=val_images,
                   help="validation sample sizes (0: the whole split)")
    p.add_argument("--reps", type=int, default=reps, help=f"repetitions of the {len(arms)} arms, alternating")
    p.add_argument("--name", default="", help=f"write results/{results}_NAME.{{md,json}}")
    p.add_argument("--summarize", type=Path, metavar="JSON",
                   help="rebuild the tables from an earlier run's results JSON (nothing is timed)")
    p.add_argument("--arm", choices=arms, help=argparse.SUPPRESS)  # a worker process
    p.add_argument("--worker-out", help=argparse.SUPPRESS)


def read_results(path: Path) -> dict[str, Any]:
    """An earlier run's results JSON (``--summarize``), or exit with one line."""
    if not path.is_file():
        raise SystemExit(f"error: --summarize {path}: no such file; give a results JSON this script wrote")
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--supernet", type=Path, default=REPO / "runs" / "supernet_rank_third" / "supernet",
                   help="a trained supernet directory (default: supernet_rank.py's third run)")
    arm_arguments(p, ARMS, networks=20, val_images=[150, 1000, 0], results="supernet_score_cost")
    args = p.parse_args(argv)
    if args.arm:
        return _worker(args)
    if args.summarize:
        res = read_results(args.summarize)
        res.setdefault("calibration_images", args.calibration_images)  # not recorded before 2026-12-05's second run
        publish(args.summarize.stem, report(res), res)
        return 0
    runs = run_arms(args, argv)
    shown = args.supernet.resolve().relative_to(REPO) if args.supernet.resolve().is_relative_to(REPO) else args.supernet
    res = {"machine": machine(), "command": "python benchmarks/supernet_score_cost.py " + " ".join(argv),
           "supernet": str(shown), "epochs": runs[0]["epochs"], "space": runs[0]["space"], "networks": args.networks,
           "reps": args.reps, "calibration_images": args.calibration_images, "rows": _rows(runs), "runs": runs}
    publish(stem("supernet_score_cost", args.name), report(res), res)
    return 0


if __name__ == "__main__":
    run_main(main)
