"""How noisy is the search's proxy accuracy? The same networks proxy-trained with several seeds.

A search ranks networks by one proxy training each (``nas search``'s default recipe as the
CIFAR-10 benchmark runs it: 3 epochs on a stratified 2,000-image subset of CIFAR-10 train,
validated on 500 images). If one network's proxy accuracy varies between training seeds about as
much as different networks' accuracies do, the search's winner is mostly the luckiest draw, and
no sampler can beat another by much at a few dozen trials.

The networks are the rows of ``search_vs_baselines`` results files (``--results``; by default
every ``benchmarks/results/search_vs_baselines*.json`` retrained with the default recipe), each
proxy-trained with seeds ``--seeds``; the data split is the searches' own (seed 0), only the
training seed (initialisation and batch order) changes. ``--val-images N`` validates on N images
of the whole held-out split instead of the search's quarter of ``--subset`` (same training images).
The table sets each network's proxy accuracy (mean, standard deviation, range) beside its retrained
test accuracy from the results file. Results: ``benchmarks/results/proxy_noise.{md,json}``
(``--name N``: ``proxy_noise_N.*``).

    python benchmarks/proxy_noise.py              # ~25 min on 2 cores
    python benchmarks/proxy_noise.py --results benchmarks/results/search_vs_baselines{,_run4,_small-search}.json \\
        --val-images 5000 --name val5000          # the README's second table: ~30 min on 2 cores
    python benchmarks/proxy_noise.py --quick      # proves it runs
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from nas.arch import parse_compact
from nas.data import DatasetSplits, load_dataset
from nas.search import cpu_threads
from nas.search.evaluator import ProxyEvaluator, ProxySettings

from _common import CIFAR10, RESULTS, log, machine, pct, publish, stem, subset_of  # beside this script


def networks(paths: list[Path]) -> list[dict[str, Any]]:
    """One entry per distinct network of the results files: name, compact string, retrained test accuracies."""
    seen: dict[str, dict[str, Any]] = {}
    for path in paths:
        res = json.loads(path.read_text())
        c = res["config"]
        if (c["retrain_epochs"], c["retrain_subset"], res["test_images"]) != (10, 5000, 10000):
            continue  # another retraining recipe: its accuracies are not comparable
        run = path.stem.removeprefix("search_vs_baselines").lstrip("_") or "defaults"
        for row in res["rows"]:
            entry = seen.setdefault(row["compact"], {"network": f"{row['network']} ({run})", "compact": row["compact"],
                                                     "predicted_ms": row["predicted_ms"], "test_acc": [],
                                                     "from": []})
            entry["from"].append(path.name)
            if not entry["test_acc"]:  # the same network retrained again gives the same (cached) figures
                entry["test_acc"] = row["test_acc"]
    return list(seen.values())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", nargs="+", type=Path, default=None,
                   help="search_vs_baselines results (.json); default: all in benchmarks/results/")
    p.add_argument("--data", default=str(CIFAR10))
    p.add_argument("--subset", type=int, default=2000, help="proxy training images (the search's --subset)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    p.add_argument("--val-images", type=int, default=None,
                   help="validate on this many held-out images (stratified from the validation split; same training "
                        "images): does a larger validation set make the proxy less noisy? default: the search's, "
                        "a quarter of --subset")
    p.add_argument("--name", default="", help="write benchmarks/results/proxy_noise_NAME.{md,json}")
    p.add_argument("--quick", action="store_true", help="1 epoch on 200 images, 2 seeds: proves it runs")
    args = p.parse_args(argv)
    if args.quick:
        args.subset, args.epochs, args.seeds = 200, 1, [0, 1]
    paths = args.results or sorted(p for p in RESULTS.glob("search_vs_baselines*.json") if "quick" not in p.name)
    nets = networks(paths)
    if not nets:
        raise SystemExit(f"no results with the default retraining recipe in {[str(p) for p in paths]}")
    torch.set_num_threads(cpu_threads(args.threads))
    splits = load_dataset(args.data, input_size=32, seed=0, subset=args.subset)
    if args.val_images is not None:
        splits = with_val_images(splits, load_dataset(args.data, input_size=32, seed=0), args.val_images)
    start = time.perf_counter()
    for net in nets:
        arch = parse_compact(net["compact"])
        net["proxy_acc"] = []
        for seed in args.seeds:
            ev = ProxyEvaluator(splits, ProxySettings(epochs=args.epochs, seed=seed)).evaluate(arch)
            net["proxy_acc"].append(ev.accuracy)
            log(f"{net['network']} seed {seed}: proxy {ev.accuracy:.3f}")
    used = sorted({name for n in nets for name in n["from"]})
    res = {"config": {"results": used, "subset": args.subset, "epochs": args.epochs, "seeds": args.seeds,
                      "threads": torch.get_num_threads(), "train_images": len(splits.train),
                      "val_images": len(splits.val)},
           "networks": nets, "seconds": time.perf_counter() - start,
           "machine": machine()}
    publish(stem("proxy_noise", args.name, "quick" if args.quick else ""), report(res), res)
    return 0


def with_val_images(splits: DatasetSplits, full: DatasetSplits, n: int) -> DatasetSplits:
    """``splits`` validated on a stratified ``n`` of ``full``'s validation split instead (same seed: no image
    of it is in ``splits.train``)."""
    if not 0 < n <= len(full.val):
        raise SystemExit(f"--val-images: expected 1..{len(full.val)} (the validation split's size), got {n}")
    return replace(splits, val=subset_of(full.val, n, seed=0))


def report(res: dict[str, Any]) -> str:
    c, nets = res["config"], res["networks"]
    lines = ["# Proxy accuracy across training seeds", "",
             f"Proxy: {c['epochs']} epochs on {c['train_images']} CIFAR-10 training images, validated on "
             f"{c['val_images']}; training seeds {', '.join(map(str, c['seeds']))} ({c['threads']} thread(s)); "
             f"networks from {', '.join(c['results'])}. Accuracies in %, mean +- standard deviation.", "",
             "| network | predicted ms | proxy accuracy over seeds | proxy min-max | retrained test accuracy |",
             "|---|---:|---:|---:|---:|"]
    for n in nets:
        lines.append(f"| {n['network']} | {n['predicted_ms']:.3f} | {pct(n['proxy_acc'], 1)} | "
                     f"{100 * min(n['proxy_acc']):.1f}-{100 * max(n['proxy_acc']):.1f} | {pct(n['test_acc'], 1)} |")
    if len(c["seeds"]) > 1 and len(nets) > 1:
        within = statistics.mean(statistics.stdev(n["proxy_acc"]) for n in nets)
        between = statistics.stdev(statistics.mean(n["proxy_acc"]) for n in nets)
        lines += ["", f"Mean seed-to-seed standard deviation of one network's proxy accuracy: {100 * within:.1f} "
                      f"points; standard deviation between the networks' mean proxy accuracies: {100 * between:.1f} "
                      "points."]
    lines += ["", f"Machine: {res['machine']}; {res['seconds'] / 60:.1f} min.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
