"""Does the proxy rank networks like the truth? The search's proxy training on 60 NAS-Bench-Macro networks.

The yardstick every later accuracy estimator (a supernet, say) has to beat. Sixty networks of
``search_spaces/nas_bench_macro.yaml`` are proxy-trained on the shared CIFAR-10 folder exactly as
``nas search`` trains a candidate (:class:`nas.search.ProxyEvaluator`) and ranked against the
accuracy NAS-Bench-Macro measured for them (the mean of three full 50-epoch trainings):

* networks (drawn once, seeded): 40 inside one latency band (+-10 % around the median predicted
  latency of the 6,561 networks on ``latency_tables/ort-cpu-1t-macro.json``), where a search under
  a budget has to tell similar networks apart, and 20 across the whole range (evenly spaced ranks
  of the predicted latency);
* proxies: ``default``, the search's defaults (``--subset 500 --epochs 2 --batch-size 32``: 500
  training and 125 validation images), and ``4x``, four times the training images (``--subset
  2000``: 2,000 and 500), same epochs and recipe; data seed 0, training seed 0;
* baselines: the parameter count and the FLOPs (multiply-adds) as predictors of accuracy;
* statistics: Kendall tau and Spearman rho against the true mean accuracy, on the band, the range
  and all 60, with bootstrap 95 % intervals (2,000 resamples of the networks).

Every network's result is cached in ``--work`` as soon as it is known: interrupt and re-run to
continue, or run the proxies in parts (``--only default``, then ``--only 4x``). Results:
``benchmarks/results/proxy_rank.{md,json}``.

    python benchmarks/proxy_rank.py                 # both proxies, 2 processes of 1 thread
    python benchmarks/proxy_rank.py --quick         # 4 networks, tiny proxy: proves it runs
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from nas.arch import arch_cost
from nas.latency import TableEstimator, load_table
from nas.search import ProxyEvaluator, ProxySettings
from nas.search.ground_truth import load_accuracy_table
from nas.space import load_space
from nas.space.keys import key_to_arch

from _common import CIFAR10, REPO, SHARED, Cache, log, machine, publish, run_main, stem  # beside this script

SPACE = REPO / "search_spaces" / "nas_bench_macro.yaml"
TABLE = REPO / "latency_tables" / "ort-cpu-1t-macro.json"
ACCURACIES = SHARED / "benchmarks" / "nas-bench-macro" / "nas-bench-macro_cifar10.json"
#: name -> (training images (validation: a quarter as many), epochs, batch size)
PROXIES = {"default": (500, 2, 32), "4x": (2000, 2, 32)}
QUICK_PROXIES = {"default": (60, 1, 20), "4x": (120, 1, 20)}
BAND, IN_BAND, ACROSS, SELECTION_SEED = 0.10, 40, 20, 2026
BOOTSTRAP = 2000


def select(latency: dict[str, float], n_band: int = IN_BAND, n_across: int = ACROSS,
           seed: int = SELECTION_SEED) -> dict[str, list[str]]:
    """The networks: ``n_band`` keys within +-10 % of the median latency, ``n_across`` at evenly spaced ranks."""
    keys = sorted(latency, key=lambda k: (latency[k], k))
    median = float(np.median([latency[k] for k in keys]))
    band = [k for k in keys if abs(latency[k] / median - 1) <= BAND]
    rng = np.random.default_rng(seed)
    chosen_band = sorted(rng.choice(band, size=n_band, replace=False).tolist(), key=keys.index)
    ranks = np.linspace(0, len(keys) - 1, n_across).round().astype(int)
    across = [keys[r] for r in ranks if keys[r] not in chosen_band]
    return {"band": chosen_band, "across": across, "band_ms": [median * (1 - BAND), median * (1 + BAND)]}


_SPLITS: dict[int, Any] = {}


def _proxy_accuracy(job: tuple[str, str, tuple[int, int, int]]) -> tuple[str, str, float, float]:
    """Proxy-train one network (in a worker process of one thread); ``(proxy, key, accuracy, seconds)``."""
    import torch

    from nas.data import load_dataset

    proxy, key, (images, epochs, batch) = job
    torch.set_num_threads(1)
    if images not in _SPLITS:
        _SPLITS[images] = load_dataset(str(CIFAR10), input_size=32, seed=0, subset=images)
    evaluator = ProxyEvaluator(_SPLITS[images], ProxySettings(epochs=epochs, batch_size=batch, seed=0), device="cpu")
    ev = evaluator.evaluate(key_to_arch(load_space(SPACE), key))
    return proxy, key, ev.accuracy, ev.seconds


def rank_stats(pred: list[float], truth: list[float], rng: np.random.Generator) -> dict[str, Any]:
    """Kendall tau and Spearman rho of ``pred`` against ``truth``, each with a bootstrap 95 % interval."""
    x, y = np.asarray(pred), np.asarray(truth)
    out: dict[str, Any] = {"n": len(x)}
    for name, fn in (("kendall", stats.kendalltau), ("spearman", stats.spearmanr)):
        value = float(fn(x, y)[0])
        boots = []
        for _ in range(BOOTSTRAP):
            idx = rng.integers(0, len(x), len(x))
            if len(set(x[idx])) > 1 and len(set(y[idx])) > 1:
                boots.append(float(fn(x[idx], y[idx])[0]))
        low, high = np.percentile(boots, [2.5, 97.5]) if boots else (float("nan"), float("nan"))
        out[name] = {"value": value, "ci": [float(low), float(high)]}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="+", choices=list(PROXIES), default=list(PROXIES), help="proxies to run now")
    p.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                   help="networks trained at once, one thread each (default: the CPUs)")
    p.add_argument("--work", type=Path, default=REPO / "runs" / "proxy_rank")
    p.add_argument("--name", default="")
    p.add_argument("--quick", action="store_true", help="4 networks, a tiny proxy: proves it runs")
    args = p.parse_args(argv)
    proxies = QUICK_PROXIES if args.quick else PROXIES
    if args.quick:
        args.work, args.name = args.work.with_name(args.work.name + "_quick"), args.name or "quick"
    started = time.perf_counter()
    space = load_space(SPACE)
    estimator = TableEstimator(load_table(TABLE), on_missing="error", save=False)
    truth_table = load_accuracy_table(ACCURACIES, space)
    latency = {k: estimator.latency_ms(key_to_arch(space, k)) for k in truth_table.entries}
    chosen = select(latency, 3, 1) if args.quick else select(latency)
    keys = chosen["band"] + chosen["across"]
    cache = Cache(args.work)
    jobs = [(proxy, key, proxies[proxy]) for proxy in args.only for key in keys
            if f"{proxy}/{key}" not in cache.data]
    log(f"{len(keys)} networks x {len(args.only)} proxies: {len(jobs)} trainings to run on {args.processes} process(es)")
    with ProcessPoolExecutor(args.processes) as pool:
        for n, (proxy, key, acc, seconds) in enumerate(pool.map(_proxy_accuracy, jobs), 1):
            cache.get(f"{proxy}/{key}", lambda: {"acc": acc, "seconds": seconds})
            log(f"[{n}/{len(jobs)}] {proxy} {key}: proxy accuracy {acc:.4f} in {seconds:.0f} s "
                f"(true {100 * truth_table.mean(key):.2f} %)")
    missing = [f"{proxy}/{key}" for proxy in proxies for key in keys if f"{proxy}/{key}" not in cache.data]
    if missing:
        log(f"{len(missing)} results still missing (e.g. {missing[0]}); run the other --only parts, then again")
        return 0
    rng = np.random.default_rng(0)
    groups = {"band": chosen["band"], "across": chosen["across"], "all": keys}
    predictors: dict[str, dict[str, float]] = {
        **{proxy: {k: cache.data[f"{proxy}/{k}"]["acc"] for k in keys} for proxy in proxies},
        "params": {k: float(arch_cost(key_to_arch(space, k)).params) for k in keys},
        "flops": {k: float(arch_cost(key_to_arch(space, k)).macs) for k in keys}}
    truth = {k: truth_table.mean(k) for k in keys}
    results = {name: {g: rank_stats([pred[k] for k in ks], [truth[k] for k in ks], rng) for g, ks in groups.items()}
               for name, pred in predictors.items()}
    seconds = {proxy: float(np.mean([cache.data[f"{proxy}/{k}"]["seconds"] for k in keys])) for proxy in proxies}
    res = {"machine": machine(), "command": "python benchmarks/proxy_rank.py" + (" --quick" if args.quick else ""),
           "proxies": {k: {"train_images": v[0], "val_images": v[0] // 4, "epochs": v[1], "batch": v[2]}
                       for k, v in proxies.items()},
           "networks": {g: ks for g, ks in groups.items()}, "band_ms": chosen["band_ms"],
           "truth": truth, "predictions": predictors, "results": results, "seconds_per_network": seconds,
           "minutes_this_run": (time.perf_counter() - started) / 60}
    publish(stem("proxy_rank", args.name), report(res), res)
    return 0


def _cell(r: dict[str, Any], name: str) -> str:
    v = r[name]
    return f"{v['value']:+.2f} [{v['ci'][0]:+.2f}, {v['ci'][1]:+.2f}]"


def report(res: dict[str, Any]) -> str:
    lo, hi = res["band_ms"]
    n = {g: len(ks) for g, ks in res["networks"].items()}
    lines = ["# Proxy rank correlation on NAS-Bench-Macro", "",
             f"- machine: {res['machine']}; command: `{res['command']}`",
             f"- networks: {n['band']} in the band {lo:.3f}-{hi:.3f} ms (+-10 % around the median predicted latency "
             f"on ort-cpu-1t-macro.json), {n['across']} across the whole range; truth: NAS-Bench-Macro's mean "
             "CIFAR-10 test accuracy over 3 trainings of 50 epochs",
             "- proxies (the search's ProxyEvaluator on ../shared/datasets/cifar10, data seed 0, training seed 0): "
             + "; ".join(f"`{k}`: {v['train_images']} training / {v['val_images']} validation images, {v['epochs']} "
                         f"epochs, batch {v['batch']}, {res['seconds_per_network'][k]:.0f} s per network on 1 thread"
                         for k, v in res["proxies"].items()),
             "- Kendall tau and Spearman rho against the truth, with bootstrap 95 % intervals (2,000 resamples)", "",
             "| predictor | tau, band | tau, across | tau, all | rho, band | rho, across | rho, all |",
             "|---|---|---|---|---|---|---|"]
    for name, r in res["results"].items():
        lines.append(f"| {name} | {_cell(r['band'], 'kendall')} | {_cell(r['across'], 'kendall')} | "
                     f"{_cell(r['all'], 'kendall')} | {_cell(r['band'], 'spearman')} | "
                     f"{_cell(r['across'], 'spearman')} | {_cell(r['all'], 'spearman')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_main(main)
