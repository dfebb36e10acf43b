"""Does a supernet rank networks like the truth? NAS-Bench-Macro's accuracies against supernet scores.

Settings, fixed before any run:

* supernet: ``search_spaces/nas_bench_macro.yaml`` trained with ``nas supernet train`` on the shared
  CIFAR-10 training folder (45,000 training / 5,000 validation images, data seed 0): the sandwich rule
  (largest + smallest + 2 random sub-networks a step, in-place distillation), ``EPOCHS`` (5, about 75 min; fixed at 5 so that training and scoring fit one 3 h working session) epochs, batch 128,
  peak learning rate 0.04 after a 1-epoch warm-up (a first attempt at 0.1 without warm-up diverged within
  10 steps: the step's loss is the sum of 4 sub-networks'), random crop and flip, 2 threads. Resumable: interrupt it (Ctrl-C, kill -9) and
  run the script again, it continues from the last save (every epoch, and every 10 minutes inside one);
* scoring (:class:`nas.supernet.SupernetEvaluator`): BatchNorm re-estimated on 256 training images, then
  accuracy on 1,000 validation images, a fixed class-stratified sample (the first run scored the split's
  first 1,000 images, two classes of ten: ``results/supernet_rank_first1000.*``);
* networks: a stratified sample of ``SAMPLE`` of the 6,561 (every ``6561 / SAMPLE``-th by true accuracy,
  seeded offsets) plus the 60 networks of ``proxy_rank.py`` (40 in its +-10 % latency band, 20 across);
* statistics: Kendall tau and Spearman rho against the true mean accuracy with bootstrap 95 % intervals,
  on the sample (overall and inside the band), and on proxy_rank's 60 networks next to the proxy's and
  the FLOPs' figures on the same networks (read from ``benchmarks/results/proxy_rank.json``).

Goals (issue 22): tau >= 0.6 overall and >= 0.4 in the band, both above the proxy's.

    python benchmarks/supernet_rank.py            # train (or resume) the supernet, score, write the table
    python benchmarks/supernet_rank.py --quick    # a tiny supernet and 40 networks: proves it runs

``--against FILE`` (another run's results JSON, e.g. ``results/supernet_rank.json``) adds how far the
figures move between two training runs of the supernet: per group, both taus and their difference with a
paired bootstrap 95 % interval (the same networks resampled for both), and the tau between the two runs'
scores. ``--work`` and ``--name`` keep a second supernet and its results apart.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from nas.arch import arch_cost
from nas.latency import TableEstimator, load_table
from nas.search.ground_truth import load_accuracy_table
from nas.space import load_space
from nas.space.keys import key_to_arch
from nas.supernet import SupernetEvaluator, SupernetScoring, SupernetTrainJob, load_supernet, run_supernet_train
from nas.supernet.store import supernet_splits

from _common import CIFAR10, REPO, RESULTS, log, machine, publish, run_main, stem  # beside this script
from proxy_rank import ACCURACIES, BAND, BOOTSTRAP, SPACE, TABLE, rank_stats, select

EPOCHS, SAMPLE = 5, 1000
QUICK = {"epochs": 1, "subset": 600, "sample": 40}


def _sample(truth: dict[str, float], n: int, seed: int = 2026) -> list[str]:
    """``n`` keys stratified by true accuracy: one at a random offset within each of ``n`` equal rank bins."""
    keys = sorted(truth, key=lambda k: (truth[k], k))
    edges = np.linspace(0, len(keys), n + 1).astype(int)
    rng = np.random.default_rng(seed)
    return [keys[int(rng.integers(lo, hi))] for lo, hi in zip(edges[:-1], edges[1:]) if hi > lo]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=REPO / "runs" / "supernet_rank",
                   help="folder of the supernet and its kept scores (default: runs/supernet_rank); resumed")
    p.add_argument("--quick", action="store_true", help="a tiny supernet and 40 networks: proves it runs")
    p.add_argument("--name", default="", help="write results/supernet_rank_NAME.{md,json}")
    p.add_argument("--against", type=Path, default=None,
                   help="another run's results JSON: add the paired comparison of the two runs' figures")
    args = p.parse_args(argv)
    other = _other_run(args.against) if args.against else None  # read first: a bad file fails at once
    if args.quick:
        args.work, args.name = args.work.with_name(args.work.name + "_quick"), args.name or "quick"
    torch.set_num_threads(2)
    epochs = QUICK["epochs"] if args.quick else EPOCHS
    started = time.perf_counter()
    job = SupernetTrainJob(space=str(SPACE), data=str(CIFAR10), out=str(args.work / "supernet"), epochs=epochs,
                           batch_size=128, lr=0.04, warmup_epochs=1.0, device="cpu", threads=2,
                           subset=QUICK["subset"] if args.quick else None)
    result = run_supernet_train(job, progress=True, log=log)
    if result.status != "completed":
        log(f"supernet training {result.status}: {result.message}")
        return 1
    loaded = load_supernet(args.work / "supernet")
    splits = supernet_splits(loaded)
    # scores are kept in the supernet directory (SupernetEvaluator(keep=True)): a rerun, and supernet_regret.py,
    # look them up instead of scoring again
    evaluator = SupernetEvaluator(loaded, splits, SupernetScoring(calibration_images=256, val_images=1000),
                                  device="cpu", keep=True)
    space = load_space(SPACE)
    truth_table = load_accuracy_table(ACCURACIES, space)
    truth = {k: truth_table.mean(k) for k in truth_table.entries}
    estimator = TableEstimator(load_table(TABLE), on_missing="error", save=False)
    latency = {k: estimator.latency_ms(key_to_arch(space, k)) for k in truth}
    proxy_nets = select(latency)
    sample = _sample(truth, QUICK["sample"] if args.quick else SAMPLE)
    keys = list(dict.fromkeys(sample + proxy_nets["band"] + proxy_nets["across"]))
    if other is not None:
        _same_scoring(other, evaluator.settings(), keys, args.against)
    evaluations = {}
    for n, key in enumerate(keys, 1):
        evaluations[key] = evaluator.evaluate(key_to_arch(space, key))
        if n % 100 == 0 or n == len(keys):
            log(f"[{n}/{len(keys)}] scored")
    scores = {k: ev.accuracy for k, ev in evaluations.items()}
    lo, hi = proxy_nets["band_ms"]
    in_band = [k for k in sample if lo <= latency[k] <= hi]
    rng = np.random.default_rng(0)
    groups = {"sample, all": sample, "sample, band": in_band, "proxy_rank's 60": proxy_nets["band"] +
              proxy_nets["across"], "proxy_rank's band 40": proxy_nets["band"]}
    flops = {k: float(arch_cost(key_to_arch(space, k)).macs) for k in keys}
    results = {g: {"supernet": rank_stats([scores[k] for k in ks], [truth[k] for k in ks], rng),
                   "flops": rank_stats([flops[k] for k in ks], [truth[k] for k in ks], rng)}
               for g, ks in groups.items()}
    proxy_file = RESULTS / "proxy_rank.json"
    proxy = json.loads(proxy_file.read_text())["results"] if proxy_file.exists() and not args.quick else {}
    res = {"machine": machine(), "command": " ".join(["python benchmarks/supernet_rank.py", *(argv if argv is not None else sys.argv[1:])]),
           "supernet": {"epochs": loaded.epochs, "train_minutes": result.wall_seconds / 60,
                        "settings": loaded.info["settings"], "data": loaded.info["data"]["source"],
                        "images": loaded.info["data"]["images"]},
           "scoring": evaluator.settings(), "fingerprint": evaluator.fingerprint, "band_ms": [lo, hi], "groups": {g: len(ks) for g, ks in groups.items()},
           "results": results, "proxy_rank": proxy,
           "seconds_per_candidate": float(np.mean([ev.seconds for ev in evaluations.values()])),
           "minutes_this_run": (time.perf_counter() - started) / 60, "scores": scores}
    if other is not None:
        res["against"] = {"file": str(args.against), "fingerprint": other.get("fingerprint", "not recorded"),
                          "supernet": other["supernet"],
                          "groups": {g: against(scores, other["scores"], ks, truth, np.random.default_rng(1))
                                     for g, ks in groups.items()}}
    publish(stem("supernet_rank", args.name), report(res), res)
    return 0


def _other_run(path: Path) -> dict[str, Any]:
    """Another run's results JSON, with what ``--against`` reads (one clear line otherwise)."""
    try:
        other = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"--against {path}: cannot read it as a results JSON ({exc})") from None
    missing = [k for k in ("scores", "scoring", "supernet") if k not in other]
    if missing:
        raise SystemExit(f"--against {path}: no '{missing[0]}' in it; expected a results JSON of supernet_rank.py")
    return other


def _same_scoring(other: dict[str, Any], scoring: dict[str, Any], keys: list[str], path: Path) -> None:
    """Refuses another run scored with other settings, or without every network of this one."""
    for name in ("calibration_images", "val_images", "batch_size", "seed"):
        if other["scoring"].get(name) != scoring[name]:
            raise SystemExit(f"--against {path}: scored with {name} {other['scoring'].get(name)!r}, this run with "
                             f"{scoring[name]!r}; expected the same scoring settings")
    missing = [k for k in keys if k not in other["scores"]]
    if missing:
        raise SystemExit(f"--against {path}: the other run scored no {missing[0]} (and {len(missing) - 1} more); "
                         "expected a results file of the same networks")


def against(mine: dict[str, float], theirs: dict[str, float], keys: list[str], truth: dict[str, float],
            rng: np.random.Generator) -> dict[str, Any]:
    """Kendall tau against the truth of two runs' scores of the same ``keys``: both, their difference (mine minus
    theirs) with a paired bootstrap 95 % interval, and the tau between the two runs' scores."""
    missing = [k for k in keys if k not in theirs]
    if missing:
        raise SystemExit(f"--against: the other run scored no {missing[0]} (and {len(missing) - 1} more); "
                         "expected a results file of the same networks")
    a, b, y = (np.asarray([d[k] for k in keys]) for d in (mine, theirs, truth))
    tau = lambda x, z: float(stats.kendalltau(x, z)[0])  # noqa: E731
    boots = []
    for _ in range(BOOTSTRAP):
        idx = rng.integers(0, len(keys), len(keys))
        boots.append(tau(a[idx], y[idx]) - tau(b[idx], y[idx]))
    low, high = np.nanpercentile(boots, [2.5, 97.5])
    return {"n": len(keys), "mine": tau(a, y), "theirs": tau(b, y), "difference": tau(a, y) - tau(b, y),
            "ci": [float(low), float(high)], "between_runs": tau(a, b)}


def _cell(r: dict[str, Any], name: str) -> str:
    v = r[name]
    return f"{v['value']:+.2f} [{v['ci'][0]:+.2f}, {v['ci'][1]:+.2f}] (n={r['n']})"


def report(res: dict[str, Any]) -> str:
    s = res["supernet"]
    lo, hi = res["band_ms"]
    lines = ["# Supernet rank correlation on NAS-Bench-Macro", "",
             f"- machine: {res['machine']}; command: `{res['command']}`",
             f"- supernet: {s['epochs']} epochs on {s['data']} ({s['images']['train']} training images), "
             f"{s['train_minutes']:.0f} min of training; {s['settings']['rule']}, "
             f"{s['settings']['random_subnets']} random sub-networks a step",
             f"- scoring: BatchNorm re-estimated on {res['scoring']['calibration_images']} training images, accuracy "
             f"on {res['scoring']['val_images']} validation images; {res['seconds_per_candidate']:.2f} s per "
             "candidate (2 threads)",
             f"- band: {lo:.3f}-{hi:.3f} ms predicted on ort-cpu-1t-macro.json (+-{BAND:.0%} around the median)",
             "- Kendall tau against NAS-Bench-Macro's mean accuracy (3 trainings of 50 epochs), bootstrap 95 % "
             "intervals", "",
             "| networks | supernet | FLOPs | proxy (default) | proxy (4x) |", "|---|---|---|---|---|"]
    proxy_group = {"proxy_rank's 60": "all", "proxy_rank's band 40": "band"}
    for g, r in res["results"].items():
        px = res["proxy_rank"]
        key = proxy_group.get(g)
        cells = [(_cell(px[name][key], "kendall") if key and name in px else "-") for name in ("default", "4x")]
        lines.append(f"| {g} | {_cell(r['supernet'], 'kendall')} | {_cell(r['flops'], 'kendall')} | "
                     f"{cells[0]} | {cells[1]} |")
    if "against" in res:
        o = res["against"]
        lines += ["", f"## Against another training run: `{o['file']}`", "",
                  f"Its supernet: {o['supernet']['epochs']} epochs, {o['supernet']['train_minutes']:.0f} min of "
                  f"training, scores `{o['fingerprint']}`. The same networks and scoring settings; Kendall tau against "
                  "the truth of each run's scores, the difference (this run minus that one) with a paired bootstrap "
                  "95 % interval, and the tau between the two runs' scores.", "",
                  "| networks | this run | that run | difference [95 % CI] | between the runs |",
                  "|---|---:|---:|---|---:|"]
        for g, r in o["groups"].items():
            lines.append(f"| {g} (n={r['n']}) | {r['mine']:+.2f} | {r['theirs']:+.2f} | {r['difference']:+.2f} "
                         f"[{r['ci'][0]:+.2f}, {r['ci'][1]:+.2f}] | {r['between_runs']:+.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_main(main)
