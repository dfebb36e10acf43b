"""Seconds and scores of a supernet's candidates: BatchNorm folded or not, float32 or bfloat16 on the CPU.

Settings, fixed before the run (2026-12-06):

* supernet: a trained ``nas supernet train`` directory, ``--supernet`` (the run of 2026-12-06 used
  ``runs/sn-nbm-9k``: ``nas supernet train --space search_spaces/nas_bench_macro.yaml --data
  ../shared/datasets/cifar10 --out runs/sn-nbm-9k --subset 10000 --epochs 3 --batch-size 64 --lr 0.04
  --warmup-epochs 0.5 --threads 1``, 10,000 training and 2,500 validation images);
* networks: ``--networks`` (60) random networks of the supernet's space (seeds 1-60), the same in every arm,
  after one warm-up network (seed 0) that is not counted;
* scoring (:class:`nas.supernet.SupernetEvaluator`, nothing kept or reused): BatchNorm re-estimated on
  ``--calibration-images`` (256) training images, then accuracy on each ``--val-images`` size (150 and the
  whole validation split);
* three arms, each in its own process, for ``--reps`` repetitions, each repetition starting with the next
  arm (3 since the second run, so that each arm runs once first, once second and once last; the first run had
  2): ``unfolded``, the code before 2026-12-06 (the validation pass on the network as extracted,
  float32); ``fp32``, the code as it is by default (the validation pass on a copy with its BatchNorm
  folded into the convolutions); ``bf16``, the code with ``--cpu-bf16`` (both passes under bfloat16 autocast;
  needs a CPU with native bfloat16);
* 2 torch threads, on a machine doing nothing else.

Reported, per size: each arm's mean seconds per candidate (each network's mean over the repetitions) with a
95 % t-interval over the networks; the paired differences ``unfolded - fp32`` and ``fp32 - bf16`` network by
network, and each repetition's mean difference; and how the scores agree with ``unfolded``'s: the networks
whose score differs, the mean and largest difference in points, Kendall's tau over the networks and where
``unfolded``'s best network ranks. Goal (issue 22): at most 1 s per candidate at 32x32 on 2 cores.

    python benchmarks/supernet_score_precision.py --supernet DIR [--networks 60] [--val-images 150 0] [--reps 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from scipy import stats

from _common import REPO, machine, publish, run_main, stem  # beside this script
from supernet_score_cost import GOAL_S, arm_arguments, arm_order, interval, read_results, run_arms

ARMS = ("unfolded", "fp32", "bf16")
#: The paired differences reported: (slower arm, faster arm).
PAIRS = (("unfolded", "fp32"), ("fp32", "bf16"))


def _worker(args: argparse.Namespace) -> int:
    """One arm in this process: seconds and score per network and size, written to ``args.worker_out``."""
    import nas.supernet.evaluate as evaluate
    from nas.space import random_arch
    from nas.supernet import SupernetEvaluator, SupernetScoring, load_supernet
    from nas.supernet.store import supernet_splits

    if args.arm == "unfolded":
        evaluate.fold_batchnorm = lambda model, channels_last=False: model  # the code before: no folding
    torch.set_num_threads(2)
    loaded = load_supernet(args.supernet)
    splits = supernet_splits(loaded)
    archs = [random_arch(loaded.space, seed) for seed in range(args.networks + 1)]
    sizes = []
    for val in args.val_images:
        scoring = SupernetScoring(calibration_images=args.calibration_images, val_images=val or None,
                                  cpu_bf16=args.arm == "bf16")
        evaluator = SupernetEvaluator(loaded, splits, scoring, device="cpu", keep=False)
        seconds, scores = [], []
        for arch in archs:
            start = time.perf_counter()
            scores.append(evaluator.evaluate(arch).accuracy)
            seconds.append(time.perf_counter() - start)
        images = len(splits.val) if not val else min(val, len(splits.val))
        sizes.append({"val_images": images, "seconds": seconds[1:], "scores": scores[1:]})  # first: warm-up
    Path(args.worker_out).write_text(json.dumps({
        "space": loaded.space.name, "input_size": loaded.space.input_size, "epochs": loaded.epochs,
        "sizes": sizes}))
    return 0


def _agreement(reference: list[float], other: list[float]) -> dict[str, Any]:
    """How ``other``'s scores agree with ``reference``'s, network by network (scores in [0, 1]): the signed
    difference ``other - reference`` in points with a 95 % t-interval (a bias), the absolute ones, Kendall's
    tau and the rank of ``reference``'s best network among ``other``'s scores."""
    from search_vs_baselines import paired_difference

    signed = paired_difference([x * 100 for x in other], [x * 100 for x in reference])
    diffs = [abs(a - b) * 100 for a, b in zip(reference, other)]
    best = max(range(len(reference)), key=lambda i: (reference[i], -i))
    rank = 1 + sum(1 for x in other if x > other[best])  # ties count in its favour
    tau = stats.kendalltau(reference, other).statistic if len(reference) > 1 else float("nan")
    return {"differ": sum(d > 0 for d in diffs), "mean_points": signed["mean"], "mean_points_ci": signed["ci"],
            "mean_abs_points": statistics.fmean(diffs),
            "max_abs_points": max(diffs), "kendall_tau": float(tau), "best_rank": rank}


def _rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from search_vs_baselines import paired_difference

    reps = sorted({r["rep"] for r in runs})
    rows = []
    for i, size in enumerate(runs[0]["sizes"]):
        row: dict[str, Any] = {"val_images": size["val_images"]}
        per_arm: dict[str, list[float]] = {}
        scores: dict[str, list[float]] = {}
        for arm in ARMS:
            mine = [r["sizes"][i] for r in sorted((r for r in runs if r["arm"] == arm), key=lambda r: r["rep"])]
            per_arm[arm] = [statistics.fmean(values) for values in zip(*(m["seconds"] for m in mine))]
            scores[arm] = mine[0]["scores"]
            low, high = interval(per_arm[arm])
            row[arm] = {"mean_s": statistics.fmean(per_arm[arm]), "ci95": [low, high], "seconds": per_arm[arm],
                        "scores": scores[arm], "deterministic": all(m["scores"] == scores[arm] for m in mine)}
        for slow, fast in PAIRS:
            by_rep = []
            for rep in reps:
                mean = {arm: statistics.fmean(next(r for r in runs if r["arm"] == arm and r["rep"] == rep)
                                              ["sizes"][i]["seconds"]) for arm in (slow, fast)}
                by_rep.append(mean[slow] - mean[fast])
            row[f"{slow}-{fast}"] = {**paired_difference(per_arm[slow], per_arm[fast]), "by_repetition": by_rep}
        row["agreement"] = {arm: _agreement(scores["unfolded"], scores[arm]) for arm in ARMS[1:]}
        row["goal_met"] = {arm: row[arm]["mean_s"] <= GOAL_S for arm in ARMS}
        rows.append(row)
    return rows


def _ci(d: dict[str, Any]) -> str:
    return f"{d['mean']:+.2f} [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}] ({' / '.join(f'{x:+.2f}' for x in d['by_repetition'])})"


def report(res: dict[str, Any]) -> str:
    """The results tables (Markdown) of a run's results (``res``, as written to the JSON file)."""
    first = res["runs"][0]
    orders = "; ".join(", ".join(arm_order(ARMS, rep, True)) for rep in range(res["reps"]))
    unbalanced = " (not every arm in every place: a bias of the order is not balanced out)"
    lines = [f"# A supernet's candidates: seconds and scores by BatchNorm folding and CPU precision "
             f"({first['space']}, {first['input_size']}x{first['input_size']})", "",
             f"- machine: {res['machine']}, 2 torch threads; command: `{res['command'].strip()}`",
             f"- supernet: {res['supernet']} ({first['epochs']} epoch(s)); {res['networks']} random networks of its "
             f"space (seeds 1-{res['networks']}, after one warm-up network); each size a fresh evaluator (nothing "
             f"kept or reused); BatchNorm re-estimated on {res['calibration_images']} training images; "
             f"{res['reps']} repetition(s) of the three arms, each in its own process, in the order "
             f"{orders}{'' if res['reps'] % len(ARMS) == 0 else unbalanced}",
             "- arms: `unfolded`, the code before 2026-12-06 (float32, the validation pass on the extracted network); "
             "`fp32`, the default now (the validation pass on a copy with BatchNorm folded into the convolutions); "
             "`bf16`, with `--cpu-bf16` (both passes under bfloat16 autocast)", "",
             "| validation images | unfolded: mean s [95 %] | fp32: mean s [95 %] | bf16: mean s [95 %] "
             "| unfolded - fp32, s (by repetition) | fp32 - bf16, s (by repetition) | goal <= 1 s: fp32 / bf16 |",
             "|---:|---:|---:|---:|---|---|---|"]
    for r in res["rows"]:
        cells = [f"{r[a]['mean_s']:.2f} [{r[a]['ci95'][0]:.2f}, {r[a]['ci95'][1]:.2f}]" for a in ARMS]
        goal = " / ".join("met" if r["goal_met"][a] else "missed" for a in ("fp32", "bf16"))
        lines.append(f"| {r['val_images']} | {' | '.join(cells)} | {_ci(r['unfolded-fp32'])} | "
                     f"{_ci(r['fp32-bf16'])} | {goal} |")
    lines += ["", "Scores against `unfolded`'s, network by network (the first repetition's; an arm's scores are "
                  "the same in each, last column):", "",
              "| validation images | arm | networks whose score differs | mean difference, points [95 %] | mean "
              "\\|difference\\|, points | largest \\|difference\\|, points | Kendall tau | rank of `unfolded`'s "
              "best | same in every repetition |",
              "|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in res["rows"]:
        for arm, a in r["agreement"].items():
            signed = (f"{a['mean_points']:+.2f} [{a['mean_points_ci'][0]:+.2f}, {a['mean_points_ci'][1]:+.2f}]"
                      if "mean_points" in a else "-")  # not computed before 2026-12-06's second run
            lines.append(f"| {r['val_images']} | {arm} | {a['differ']} of {res['networks']} | {signed} | "
                         f"{a['mean_abs_points']:.2f} | {a['max_abs_points']:.2f} | {a['kendall_tau']:.3f} | "
                         f"{a['best_rank']} | {'yes' if r[arm]['deterministic'] else 'NO'} |")
    lines += ["", "Wall-clock seconds per candidate: extracting the sub-network, re-estimating its BatchNorm, "
                  "scoring the validation sample; each network's mean over the repetitions, with a 95 % t-interval "
                  "over the networks. The paired differences are network by network; their intervals leave out the "
                  "spread between runs (in brackets after them: each repetition's mean difference), so they are "
                  "optimistic. A score is the accuracy on the validation sample, the same in each repetition of an "
                  "arm (last column)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--supernet", type=Path, help="a trained supernet directory (required unless --summarize)")
    arm_arguments(p, ARMS, networks=60, val_images=[150, 0], results="supernet_score_precision", reps=3)
    args = p.parse_args(argv)
    if args.arm:
        return _worker(args)
    if args.summarize:
        res = read_results(args.summarize)
        res["rows"] = _rows(res["runs"])  # from the raw figures: columns added since are filled in
        publish(args.summarize.stem, report(res), res)
        return 0
    if args.supernet is None:
        raise SystemExit("error: --supernet DIR: required, a trained supernet directory (nas supernet train)")
    from nas.train.device import cpu_has_native_bf16

    if not cpu_has_native_bf16():
        raise SystemExit("error: this CPU has no native bfloat16 (avx512_bf16 or amx_bf16): the bf16 arm would time "
                         "an emulation; run this on a CPU that has it")
    runs = run_arms(args, argv, ARMS, __file__, rotate=True)
    shown = args.supernet.resolve().relative_to(REPO) if args.supernet.resolve().is_relative_to(REPO) else args.supernet
    res = {"machine": machine(), "command": "python benchmarks/supernet_score_precision.py " + " ".join(argv),
           "supernet": str(shown), "networks": args.networks, "reps": args.reps,
           "calibration_images": args.calibration_images, "rows": _rows(runs), "runs": runs}
    publish(stem("supernet_score_precision", args.name), report(res), res)
    return 0


if __name__ == "__main__":
    run_main(main)
