"""Searched networks versus random search, the width multiplier and the CSE mix model at one budget (CIFAR-10).

The question of ``nas search``'s issue: at a budget of half of the reference MobileNetV2's
predicted latency on the shipped onnxruntime CPU table (``--fraction``), does the search find a
network that beats both

* random sampling with the same number of trials (same proposals pipeline: candidates over the
  budget are redrawn, then repaired to the budget; only the sampler differs), and
* ``mobilenetv2-cifar`` scaled by the width multiplier to meet the budget (the largest alpha on
  a 0.05 grid predicted within it; if none is, the alpha with the lowest predicted latency,
  flagged as over the budget), and the next alpha on the grid (``width-over``: over the budget, so
  slower than any network within it; the width multiplier's point on the other side of the searched
  network's latency),

at the same or lower latency, by more than the seed-to-seed spread? And (issue 6's goal) does it
match the accuracy of the CSE paper's mix model ``cse-mix-cifar``, retrained with the same recipe
and seeds, at a clearly lower measured latency?

1. Two searches through the library entry point (:func:`nas.search.run_search_job`, exactly what
   ``nas search`` runs): Optuna TPE and random sampling, ``--trials`` each, on a stratified
   ``--search-subset`` of CIFAR-10 train (a quarter as large again for validation, carved from
   train), ``--search-epochs`` of proxy training, reward objective with the hard constraint and
   ``--skip-over 1`` (only networks within the budget are trained). Each search's winner is
   chosen as ``nas search`` chooses it: the best mean proxy accuracy over ``1 + --confirm-seeds``
   training seeds among the ``--confirm-top`` best networks within the budget.
2. The two winners, the width-scaled networks and ``cse-mix-cifar`` are retrained with the same
   short recipe (``--retrain-epochs`` on a stratified ``--retrain-subset`` of train, SGD + cosine,
   augmentation, the shared training loop), once per seed in ``--seeds``.
3. Validation accuracy (the held-out part of train) and test accuracy (the CIFAR-10 test split,
   ``--test-images``, stratified when not all; never seen by search or training), mean +- std
   over seeds; latency predicted by the table and measured end to end (ONNX, onnxruntime CPU,
   1 thread, batch 1; the minimum over 5 passes of the per-pass median, ``--latency-seconds``
   of timing in all).

Everything finished is kept under ``--work`` (search studies in SQLite, training checkpoints,
evaluations, latency measurements): re-running the same command continues where it stopped.
Results: ``benchmarks/results/search_vs_baselines.{md,json}`` (``--name N``: ``search_vs_baselines_N.*``, to
keep runs of other sizes apart; ``--quick``: ``search_vs_baselines_quick.*``, which only prove the script
works and are not the figures).

Full run (defaults; several hours in one process on an idle 2-core CPU: each search 15-22 min, each
retraining 7-20 min per network and seed):
    python benchmarks/search_vs_baselines.py
The same as processes side by side, one per core (the README's third run did ``--only tpe`` and
``--only random`` so, in 70 min; ``--threads 1`` on the last line too, so that the table says how
the networks were trained):
    python benchmarks/search_vs_baselines.py --threads 1 --train-only --only tpe width &
    python benchmarks/search_vs_baselines.py --threads 1 --train-only --only random width-over cse-mix; wait
    python benchmarks/search_vs_baselines.py --threads 1  # all cached: times the networks, writes the table
Quick check (a few minutes):
    python benchmarks/search_vs_baselines.py --quick

The supernet issue's comparison on the project's own space (``--supernet DIR``, a supernet of the
table's space trained with ``nas supernet train`` on the same data) adds these rows:

* ``supernet``: the winner of ``nas search --supernet DIR`` at the same budget (evolution,
  ``--supernet-trials`` trials, scored on ``--supernet-val-images`` validation images, 0: the whole
  split, as ``nas search`` does; the top candidates re-scored on other calibration samples as
  ``nas search`` chooses its winner);
* ``width-matched``: ``mobilenetv2-cifar`` scaled by the width multiplier to the supernet winner's
  *measured* latency: alphas on a 0.01 grid, bisected on measured latency (which grows with alpha) until
  one is within ``--match-tolerance`` (3 %) of it; the closest measured alpha otherwise, flagged;
* ``width-other-side`` (only when that match misses): the next alpha on the 0.01 grid whose measured
  latency lies on the other side of the winner's, so that the two width rows bracket the winner (added
  on 2026-12-06 after the full run, where alpha 0.55 measured 0.780 ms, 0.56 0.998 ms, and the winner
  0.869 ms: no width multiplier is within 3 % of it on that CPU).

and a table of paired differences: the supernet winner's test accuracy minus each other row's, seed by
seed (the same seeds, so the same data order and initialisation stream), the mean with a 95 %
t-interval. The issue's recipe: 5 seeds of the same retraining for the three networks it names,
    nas supernet train --space search_spaces/mobilenet_cse_cifar.yaml --data ../shared/datasets/cifar10 \
        --out runs/supernet_cse_cifar --subset 0 --epochs 5 --batch-size 128 --lr 0.04 --warmup-epochs 1 \
        --threads 2
    python benchmarks/search_vs_baselines.py --supernet runs/supernet_cse_cifar --supernet-val-images 1000 \
        --threads 2 --only supernet tpe width-matched width-other-side --seeds 0 1 2 3 4 --work runs/svb-full \
        --name supernet
On this project's 2-core machine every stage resumes where it stopped, so ``benchmarks/own_space_full.sh`` runs
the recipe in pieces (the README gives the times); on a CUDA machine the script trains with AMP and
channels-last. Latencies are cached per CPU model: a run resumed on another CPU matches the width again, which
may retrain that row for a new alpha (entries of the cache written before this, without a CPU in their key, are
not read). The CPU model is the model name with vendor, family, model and stepping (since 2026-12-06: a VM's
model name alone can be ``AMD EPYC`` for several generations). The table's measured latencies are taken
together at the end, one network after the other in one invocation and kept as one entry, so they come from one
session on one machine whenever the pieces before ran; the table says on which CPU, when, and at what load (the
width-matched row's note gives the measurements it was matched on). A CPU-scale run
(a supernet of 6 epochs on 2,000 images, ``--name supernet-cpu-scale``; the README gives its commands and figures)
took about 2.5 hours. ``match_width`` then assumed measured latency grows with alpha; on that run's Intel CPU
it did not (alpha 0.43 measured slower than 0.55), and the row came out 5 % off, flagged. Since then it
measures up to 20 alphas next to the closest when the bisection misses (not re-run).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from nas.arch import ArchSpec, arch_cost, arch_hash, build_model, reference_arch, to_compact, width_multiplier
from nas.data import DatasetSplits, load_dataset
from nas.latency import DEFAULT_PASSES, TableEstimator, load_table
from nas.search import HARD, Confirmation, SearchJob, cpu_threads, run_search_job
from nas.train import TrainConfig, evaluate, load_weights, save_weights, train_model

from _common import (CIFAR10, CPU_TABLE, REPO, Cache, cpu_identity, log, machine, mean_std, measured_ms, pct,
                     publish, stem, with_test_images)  # beside this script

REFERENCE = "mobilenetv2-cifar"
MIX = "cse-mix-cifar"  # the CSE paper's mix model: issue 6's yardstick (not sized to the budget)
CONTENDERS = ("tpe", "random", "width", "width-over", "cse-mix")
SUPERNET_ROWS = ("supernet", "width-matched", "width-other-side")  # with --supernet only (the supernet issue's)
WIDTH = f"{REFERENCE} x width"
WIDTH_OVER = f"{REFERENCE} x width, next alpha"
WIDTH_MATCHED = f"{REFERENCE} x width, at the supernet winner's measured latency"
WIDTH_OTHER_SIDE = f"{REFERENCE} x width, next alpha on the other side of the supernet winner's measured latency"
SUPERNET = "search on the supernet"


@dataclass(frozen=True)
class Config:
    data: str = str(CIFAR10)
    table: str = str(CPU_TABLE)
    fraction: float = 0.5
    trials: int = 24
    search_subset: int = 2000
    search_epochs: int = 3
    search_batch: int = 32
    confirm_top: int = 3  # the winner: best mean over 1 + confirm_seeds proxy trainings among the top confirm_top
    confirm_seeds: int = 2
    retrain_subset: int = 5000
    retrain_epochs: int = 10
    retrain_batch: int = 64
    lr: float = 0.05
    seeds: tuple[int, ...] = (0, 1, 2)
    test_images: int = 10000
    latency_seconds: float = 2.0
    threads: int = 0
    work: str = str(REPO / "runs" / "search_vs_baselines")
    only: tuple[str, ...] = CONTENDERS
    supernet: str = ""  # a trained supernet of the table's space: adds SUPERNET_ROWS (see the docstring)
    supernet_trials: int = 2000
    supernet_val_images: int = 0  # 0: the whole validation split (nas search --supernet --val-images 0)
    supernet_device: str = "cpu"  # a study resumed on another machine must score on the same kind of device
    match_tolerance: float = 0.03  # width-matched: within this fraction of the supernet winner's measured latency
    name: str = ""  # results go to search_vs_baselines[_NAME].{md,json}
    train_only: bool = False  # search and retrain, then stop: latency is measured by a later run on a quiet machine
    quick: bool = False


QUICK = {"trials": 4, "supernet_trials": 40, "supernet_val_images": 100,
         "search_subset": 200, "search_epochs": 1, "confirm_top": 2, "confirm_seeds": 1, "retrain_subset": 200, "retrain_epochs": 1,
         "seeds": (0, 1), "test_images": 200, "latency_seconds": 0.2}


# ------------------------------------------------------------------------------------ pieces
def width_baseline(estimator: TableEstimator, budget_ms: float, over: bool = False) -> tuple[float, ArchSpec, bool]:
    """``(alpha, arch, within_budget)`` on a 0.05 grid of alphas.

    The largest alpha within the budget, else the fastest; with ``over``, the smallest alpha over the
    budget (slower than any network within it), else the largest alpha.
    """
    ref = reference_arch(REFERENCE)
    grid = [round(a, 2) for a in np.arange(0.1, 1.0001, 0.05)]
    lat = {a: estimator.latency_ms(width_multiplier(ref, a)) for a in grid}
    within = [a for a in grid if lat[a] <= budget_ms]
    if over:
        beyond = [a for a in grid if lat[a] > budget_ms]
        alpha = min(beyond) if beyond else max(grid)
    else:
        alpha = max(within) if within else min(grid, key=lat.__getitem__)
    return alpha, width_multiplier(ref, alpha), lat[alpha] <= budget_ms


def search(cfg: Config, sampler: str, budget_ms: float) -> dict[str, Any]:
    """One search (resumed if its study exists); returns its best network within the budget."""
    job = SearchJob(target=cfg.table, data=cfg.data, latency_ms=budget_ms, trials=cfg.trials, objective="reward",
                    reward=HARD, sampler=sampler, epochs=cfg.search_epochs, subset=cfg.search_subset,
                    batch_size=cfg.search_batch, out=str(Path(cfg.work) / f"search-{sampler}"), seed=cfg.seeds[0],
                    baselines=False, skip_over=1.0, threads=cfg.threads,
                    confirm=Confirmation(top=cfg.confirm_top, seeds=cfg.confirm_seeds))
    return _winner(job, sampler, budget_ms)


def search_on_supernet(cfg: Config, budget_ms: float) -> dict[str, Any]:
    """``nas search --supernet`` at the budget (its sampler and its winner rule), resumed if its study exists."""
    job = SearchJob(target=cfg.table, latency_ms=budget_ms, supernet=cfg.supernet, trials=cfg.supernet_trials,
                    objective="reward", reward=HARD, out=str(Path(cfg.work) / "search-supernet"), seed=cfg.seeds[0],
                    baselines=False, skip_over=1.0, threads=cfg.threads, val_images=cfg.supernet_val_images,
                    device=cfg.supernet_device, confirm=Confirmation(top=cfg.confirm_top, seeds=cfg.confirm_seeds))
    return _winner(job, "supernet", budget_ms)


def _winner(job: SearchJob, label: str, budget_ms: float) -> dict[str, Any]:
    result = run_search_job(job, log=lambda m: log(f"{label}: {m}"))
    if result["best"] is None:
        raise SystemExit(f"the {label} search found no network within {budget_ms:.3f} ms; raise its trials")
    return result["best"]


def match_width(measure: Callable[[float], float], target_ms: float, tolerance: float,
                scan: int = 20) -> tuple[float, float, bool]:
    """``(alpha, its measured ms, within tolerance)``: the width multiplier at ``target_ms`` measured.

    Bisection over alphas 0.10-1.00 (a 0.01 grid) on ``measure(alpha)`` until one is within ``tolerance`` x
    ``target_ms``. Measured latency need not grow with alpha (channels round to multiples of 8, and a
    CPU's kernels favour some widths), so when the bisection misses, up to ``scan`` more alphas are
    measured, nearest the closest one first, until one is within. Else the alpha whose measurement came
    closest (ties: the larger, more channels for the same time). ``measure`` should keep its results per
    network: many alphas build the same one.
    """
    grid = [round(float(a), 2) for a in np.arange(0.10, 1.0001, 0.01)]
    seen: dict[float, float] = {}

    def within(a: float) -> bool:
        return abs(seen[a] - target_ms) <= tolerance * target_ms

    def closest() -> float:
        return min(seen, key=lambda a: (abs(seen[a] - target_ms), -a))

    lo, hi = 0, len(grid) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        ms = seen[grid[mid]] = measure(grid[mid])
        if within(grid[mid]):
            return grid[mid], ms, True
        lo, hi = (mid + 1, hi) if ms < target_ms else (lo, mid - 1)
    centre = closest()
    for a in sorted((a for a in grid if a not in seen), key=lambda a: (abs(a - centre), -a))[:scan]:
        seen[a] = measure(a)
        if within(a):
            return a, seen[a], True
    alpha = closest()
    return alpha, seen[alpha], within(alpha)


def other_side(measure: Callable[[float], float], alpha: float, target_ms: float) -> tuple[float, float] | None:
    """``(alpha, its measured ms)``: the nearest alpha from ``alpha`` on the 0.01 grid, stepping away from
    ``target_ms``'s side, whose measured latency lies on the other side of ``target_ms`` (``None`` when no
    alpha in 0.10-1.00 does). With ``match_width``'s alpha, the two bracket the target."""
    up = measure(alpha) < target_ms
    step = 1 if up else -1
    for i in range(1, 91):
        a = round(alpha + step * 0.01 * i, 2)
        if not 0.10 <= a <= 1.00:
            return None
        ms = measure(a)
        if (ms >= target_ms) if up else (ms <= target_ms):
            return a, ms
    return None


def paired_difference(a: list[float], b: list[float], confidence: float = 0.95) -> dict[str, Any]:
    """``a - b`` seed by seed: the mean difference with a ``confidence`` t-interval (``nan`` with one seed)."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired values need the same seeds: got {len(a)} and {len(b)} values")
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    mean = float(diff.mean())
    if len(diff) < 2:
        return {"mean": mean, "ci": [float("nan"), float("nan")], "n": 1}
    half = float(stats.t.ppf(0.5 + confidence / 2, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff)))
    return {"mean": mean, "ci": [mean - half, mean + half], "n": len(diff)}


def load_splits(cfg: Config) -> DatasetSplits:
    splits = load_dataset(cfg.data, input_size=32, seed=cfg.seeds[0], subset=cfg.retrain_subset)
    return with_test_images(splits, cfg.test_images, seed=12345)


def retrain(cfg: Config, cache: Cache, name: str, arch: ArchSpec, splits: DatasetSplits, seed: int) -> dict[str, Any]:
    """Train (resuming from the last save) and evaluate one network for one seed."""
    key = f"retrain/{name}-{arch_hash(arch)[:12]}-e{cfg.retrain_epochs}-n{cfg.retrain_subset}-s{seed}"
    out = Path(cfg.work) / key

    def run() -> dict[str, Any]:
        config = TrainConfig(epochs=cfg.retrain_epochs, batch_size=cfg.retrain_batch, lr=cfg.lr,
                             warmup_epochs=min(0.5, cfg.retrain_epochs / 2), augment=True, seed=seed, device="auto")
        torch.manual_seed(seed)
        model = build_model(arch)
        log(f"retrain {name} seed {seed}: {cfg.retrain_epochs} epochs on {len(splits.train)} images")
        result = train_model(model, splits, config, out_dir=out, progress=True)
        weights = out / "weights.pt"
        save_weights(model, weights)
        model = build_model(arch)
        load_weights(model, weights)
        _, test_acc = evaluate(model, splits.test, mean=splits.mean, std=splits.std, device="auto")
        return {"val_acc": result.final_val_acc, "test_acc": test_acc, "status": result.status,
                "train_seconds": result.wall_seconds}

    return cache.get(key + f"-t{len(splits.test)}", run)


def _cpu_key() -> str:
    return hashlib.sha256(cpu_identity().encode()).hexdigest()[:8]


def measured(cfg: Config, cache: Cache, arch: ArchSpec) -> float:
    """``arch``'s measured latency (:func:`measured_ms`), cached per CPU model (:func:`cpu_identity`): a run
    resumed on another CPU matches the width again (which may retrain that row)."""
    key = f"latency/{arch_hash(arch)[:16]}-{cfg.latency_seconds:g}s-p{DEFAULT_PASSES}-cpu{_cpu_key()}"
    return float(cache.get(key, lambda: measured_ms(arch, cfg.latency_seconds)))


def final_latencies(cfg: Config, cache: Cache, archs: dict[str, ArchSpec]) -> dict[str, float]:
    """The table's measured latencies, every network one after the other in one invocation, kept as one entry
    (per CPU model): all of them come from one session on one machine, whenever the pieces before ran (the
    width was matched on measurements of its own, which its row's note gives)."""
    digest = hashlib.sha256(" ".join(f"{k}={arch_hash(a)}" for k, a in sorted(archs.items())).encode()).hexdigest()
    key = f"latency-final/{digest[:16]}-{cfg.latency_seconds:g}s-p{DEFAULT_PASSES}-cpu{_cpu_key()}"

    def measure() -> dict[str, Any]:
        log(f"measuring the {len(archs)} networks' latencies on {cpu_identity()}")
        return {"ms": {k: measured_ms(a, cfg.latency_seconds) for k, a in archs.items()}, "cpu": cpu_identity(),
                "load_average": list(os.getloadavg()), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    return cache.get(key, measure)


# ------------------------------------------------------------------------------------ main
def run(cfg: Config) -> dict[str, Any] | None:
    """The results (``None`` with ``--train-only``: searches and retraining only, nothing timed)."""
    start = time.perf_counter()
    torch.set_num_threads(cpu_threads(cfg.threads))
    cache = Cache(Path(cfg.work))
    table = load_table(cfg.table)
    estimator = TableEstimator(table, on_missing="interpolate", save=False)
    ref_ms = estimator.latency_ms(reference_arch(REFERENCE))
    budget_ms = cfg.fraction * ref_ms
    log(f"budget {budget_ms:.3f} ms = {cfg.fraction:g} x {REFERENCE}'s predicted {ref_ms:.3f} ms on {cfg.table}")

    contenders: dict[str, tuple[str, ArchSpec, str]] = {}  # slug -> (name, arch, how it was chosen)
    for sampler in ("tpe", "random"):
        if sampler in cfg.only:
            best = search(cfg, sampler, budget_ms)
            how = (f"best mean over {len(best['confirmed']['accs'])} proxy seeds of the top {cfg.confirm_top} of "
                   f"{cfg.trials} trials (trial {best['trial']})" if "confirmed" in best
                   else f"best of {cfg.trials} trials (trial {best['trial']})")
            contenders[sampler] = (f"search, {sampler} sampler", ArchSpec.from_dict(best["arch"]), how)
    if "width" in cfg.only:
        alpha, width_arch, within = width_baseline(estimator, budget_ms)
        note = f"alpha {alpha:g}" + ("" if within else ": no alpha meets the budget, this is the fastest")
        contenders["width"] = (WIDTH, width_arch, note)
    if "width-over" in cfg.only:
        alpha, width_arch, within = width_baseline(estimator, budget_ms, over=True)
        note = (f"alpha {alpha:g}, the next on the grid: over the budget" if not within
                else f"alpha {alpha:g}: every alpha meets the budget, this is the largest")
        contenders["width-over"] = (WIDTH_OVER, width_arch, note)
    if "cse-mix" in cfg.only:
        contenders["cse-mix"] = (MIX, reference_arch(MIX),
                                 "the CSE paper's mix model (Table 1), not sized to the budget")
    if set(SUPERNET_ROWS) & set(cfg.only):
        best = search_on_supernet(cfg, budget_ms)
        winner = ArchSpec.from_dict(best["arch"])
        contenders["supernet"] = (SUPERNET, winner, f"winner of {cfg.supernet_trials} trials on `{cfg.supernet}` "
                                                    f"(trial {best['trial']})")
        if "width-matched" in cfg.only or "width-other-side" in cfg.only:
            # measured before any training, so that a --train-only run retrains the matched network too
            target = measured(cfg, cache, winner)
            ref = reference_arch(REFERENCE)

            def measure(a: float) -> float:
                return measured(cfg, cache, width_multiplier(ref, a))

            alpha, ms, within = match_width(measure, target, cfg.match_tolerance)
            note = (f"alpha {alpha:g}: {ms:.3f} ms measured against the winner's {target:.3f} ms"
                    + ("" if within else f", NOT within {100 * cfg.match_tolerance:g} %"))
            if "width-matched" in cfg.only:
                contenders["width-matched"] = (WIDTH_MATCHED, width_multiplier(ref, alpha), note)
            wanted = "width-other-side" in cfg.only
            other = other_side(measure, alpha, target) if wanted and not within else None
            if other is not None:
                contenders["width-other-side"] = (
                    WIDTH_OTHER_SIDE, width_multiplier(ref, other[0]),
                    f"alpha {other[0]:g}: {other[1]:.3f} ms measured against the winner's {target:.3f} ms "
                    f"(alpha {alpha:g}: {ms:.3f} ms)")
            elif wanted:
                log("width-other-side: left out: " + ("the width match is within the tolerance" if within
                                                       else "no alpha lies on the other side of the winner"))
        if "supernet" not in cfg.only:
            del contenders["supernet"]

    splits = load_splits(cfg)
    trained = {slug: [retrain(cfg, cache, slug, arch, splits, seed) for seed in cfg.seeds]
               for slug, (_, arch, _) in contenders.items()}
    if cfg.train_only:
        return None
    timed = final_latencies(cfg, cache, {**{slug: arch for slug, (_, arch, _) in contenders.items()},
                                         "reference": reference_arch(REFERENCE)})
    rows = []
    for slug, (name, arch, how) in contenders.items():
        runs = trained[slug]
        cost = arch_cost(arch)
        pred = estimator.latency_ms(arch)
        rows.append({"network": name, "how": how, "compact": to_compact(arch), "predicted_ms": pred,
                     "measured_ms": timed["ms"][slug], "within_budget": pred <= budget_ms,
                     "params": cost.params, "macs": cost.macs, "val_acc": [r["val_acc"] for r in runs],
                     "test_acc": [r["test_acc"] for r in runs], "seeds": list(cfg.seeds)})
    ref_measured = timed["ms"]["reference"]
    paired = []
    if "supernet" in trained:
        mine = [r["test_acc"] for r in trained["supernet"]]
        paired = [{"network": contenders[slug][0], **paired_difference(mine, [r["test_acc"] for r in runs])}
                  for slug, runs in trained.items() if slug != "supernet"]
    return {"paired": paired, "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
            "budget_ms": budget_ms, "reference_predicted_ms": ref_ms, "reference_measured_ms": ref_measured,
            "rows": rows, "train_images": len(splits.train), "val_images": len(splits.val),
            "test_images": len(splits.test), "machine": machine(), "threads": torch.get_num_threads(),
            "latencies": {k: v for k, v in timed.items() if k != "ms"},
            "load_average": os.getloadavg(), "seconds": time.perf_counter() - start}


def verdict(res: dict[str, Any]) -> list[str]:
    """The two goals, computed from the rows: TPE's winner vs random and width (issue 4), vs the mix model (issue 6)."""
    rows = {r["network"]: r for r in res["rows"]}
    tpe = rows.get("search, tpe sampler")
    if tpe is None:
        return []

    def mean(r: dict[str, Any]) -> float:
        return mean_std(r["test_acc"])[0]

    def spread(r: dict[str, Any]) -> float:
        return mean_std(r["test_acc"])[1]

    lines = ["Goals, on test accuracy (spread: the larger sample standard deviation of the two):", ""]
    outcomes: dict[str, tuple[bool, bool]] = {}  # name -> (ahead by more than the spread, same or lower latency)
    for name in ("search, random sampler", WIDTH, WIDTH_OVER):
        if name not in rows:
            continue
        other = rows[name]
        gap, sd = mean(tpe) - mean(other), max(spread(tpe), spread(other))
        outcomes[name] = ahead, faster = gap > sd, tpe["measured_ms"] <= other["measured_ms"] * 1.02
        missed = [why for why, ok in (("not ahead by more than the spread", ahead), ("slower", faster)) if not ok]
        why = (f"goal NOT met ({'; '.join(missed)})" if missed
               else "beats it by more than the spread at the same or lower latency")
        lines.append(f"- TPE winner vs {name}: {100 * gap:+.2f} points (spread {100 * sd:.2f}), measured "
                     f"{tpe['measured_ms']:.3f} vs {other['measured_ms']:.3f} ms -> {why}.")
    widths = [outcomes[n] for n in (WIDTH, WIDTH_OVER) if n in outcomes]
    if WIDTH_OVER in outcomes:
        met = all(ahead for ahead, _ in widths) and any(faster for _, faster in widths)
        lines.append("- TPE winner vs the width multiplier at its latency (the width rows: ahead of each by more "
                     "than the spread, and at most as slow as one of them) -> "
                     + ("beats it by more than the spread at the same or lower latency." if met else "goal NOT met."))
    if MIX in rows:
        mix = rows[MIX]
        gap, ratio = mean(tpe) - mean(mix), mix["measured_ms"] / tpe["measured_ms"]
        sd = max(spread(tpe), spread(mix))
        matched = gap >= -sd
        outcome = ("matches its accuracy (within the spread) at a clearly lower latency" if matched and ratio > 1.2
                   else "goal NOT met")
        lines.append(f"- TPE winner vs {MIX} (issue 6): {100 * gap:+.2f} points (spread {100 * sd:.2f}) at "
                     f"{ratio:.2f}x lower measured latency ({tpe['measured_ms']:.3f} vs {mix['measured_ms']:.3f} "
                     f"ms) -> {outcome} (short recipe: a CPU-scale check, not the full-recipe comparison).")
    return lines if len(lines) > 2 else []  # nothing to compare TPE's winner with


def _winner_rule(c: dict[str, Any]) -> str:
    top, seeds = c.get("confirm_top", 0), c.get("confirm_seeds", 0)
    if not (top and seeds):
        return "; the winner is the best single proxy result"
    return (f"; the winner is the best mean proxy accuracy over {1 + seeds} training seeds among the {top} best "
            "networks (`--confirm-top`)")


def _timed_note(res: dict[str, Any]) -> str:
    t = res.get("latencies")  # absent in results written before 2026-12-06
    if not t:
        return ""
    return (f"; every network timed one after the other on {t['cpu']} at {t['when']} (load average then "
            f"{', '.join(f'{x:.1f}' for x in t['load_average'])})")


def report(res: dict[str, Any]) -> str:
    c = res["config"]
    lines = ["# Search vs random search vs width multiplier (CIFAR-10)", "",
             f"Budget: **{res['budget_ms']:.3f} ms** predicted = {c['fraction']:g} x {REFERENCE}'s predicted "
             f"{res['reference_predicted_ms']:.3f} ms on `{Path(c['table']).name}` (measured here: "
             f"{res['reference_measured_ms']:.3f} ms).", "",
             f"Search: {c['trials']} trials per sampler, proxy {c['search_epochs']} epochs on {c['search_subset']} "
             f"train images (batch {c['search_batch']}), reward objective with the hard constraint, only networks "
             f"within the budget trained{_winner_rule(c)}. Retraining: {c['retrain_epochs']} epochs on {res['train_images']} train "
             f"images (batch {c['retrain_batch']}, lr {c['lr']:g}, cosine, flips and crops), seeds "
             f"{', '.join(map(str, c['seeds']))}; validation on {res['val_images']} held-out train images, test on "
             f"{res['test_images']} CIFAR-10 test images. Latency measured with onnxruntime CPU, 1 thread, batch 1, "
             "the minimum over 5 passes of the per-pass median" + _timed_note(res) + ".", "",
             "| network | chosen | predicted ms | measured ms | params | MMACs | val acc % | test acc % |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in res["rows"]:
        flag = "" if r["within_budget"] else " (over)"
        lines.append(f"| {r['network']} | {r['how']} | {r['predicted_ms']:.3f}{flag} | {r['measured_ms']:.3f} | "
                     f"{r['params']:,} | {r['macs'] / 1e6:.1f} | {pct(r['val_acc'])} | {pct(r['test_acc'])} |")
    lines += ["", "Accuracies: mean +- sample standard deviation over the seeds."]
    left_out = [slug for slug in CONTENDERS if slug not in c["only"]]
    if c.get("supernet"):
        lines.append(f"Supernet search: `nas search --supernet {c['supernet']}`, {c['supernet_trials']} trials "
                     "(evolution), scores on " + (f"{c['supernet_val_images']} validation images"
                                                    if c["supernet_val_images"] else "the whole validation split")
                     + "; the width-matched row's alpha is set by measured latency.")
    if left_out:
        lines.append(f"Left out of this run (`--only`): {', '.join(left_out)}.")
    if res.get("paired"):
        lines += ["", f"Paired differences on test accuracy: {SUPERNET} minus each other network, seed by seed "
                  "(the same seeds), mean with a 95 % t-interval, points:", "",
                  "| other network | difference [95 % CI] | seeds |", "|---|---|---:|"]
        lines += [f"| {p['network']} | {100 * p['mean']:+.2f} [{100 * p['ci'][0]:+.2f}, {100 * p['ci'][1]:+.2f}] | "
                  f"{p['n']} |" for p in res["paired"]]
    lines += ["", *verdict(res), ""]
    for r in res["rows"]:
        lines.append(f"- {r['network']}: `{r['compact']}`")
    if res.get("command"):
        lines += ["", f"Command: `{res['command']}`"]
    lines += ["", f"Machine: {res['machine']}; training threads {res['threads']}; load average at the end "
              f"{', '.join(f'{x:.1f}' for x in res['load_average'])}; this invocation took {res['seconds'] / 60:.1f} "
              "min (cached pieces excluded).", ""]
    if c["quick"]:
        lines.insert(1, "\n**Quick mode: tiny sizes that only prove the script runs. Not the figures.**")
    return "\n".join(lines)


HELP = {"supernet": "a supernet of the table's space (nas supernet train): adds the rows 'supernet', "
                    "'width-matched' and 'width-other-side' (when the match misses) and the paired differences "
                    "(default: none)",
        "supernet_trials": "trials of the search on the supernet (default: 2000)",
        "supernet_val_images": "validation images per supernet score; 0: the whole split (default: 0)",
        "supernet_device": "device of the supernet's scores (default: cpu, also on a GPU machine: a search resumed "
                           "on another machine is refused on another kind of device, and the pieces of a long "
                           "run may move between machines)",
        "match_tolerance": "width-matched: within this fraction of the supernet winner's measured latency "
                           "(default: 0.03)"}


def parse(argv: list[str] | None) -> Config:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    defaults = Config()
    for f in fields(Config):
        if f.name in ("quick", "train_only"):
            continue
        value = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        if f.name == "only":
            p.add_argument(flag, nargs="+", choices=CONTENDERS + SUPERNET_ROWS, default=None,
                           help="only these rows (e.g. run '--only tpe' and '--only random' side by side with the "
                                "same --work, then once with both to write the table); default: all (the "
                                "supernet rows with --supernet only)")
        elif f.name == "name":
            p.add_argument(flag, default=None, help="write benchmarks/results/search_vs_baselines_NAME.{md,json} "
                                                    "(runs of other sizes kept apart); default: no suffix")
        elif isinstance(value, tuple):
            p.add_argument(flag, type=int, nargs="+", default=None, help=f"default: {' '.join(map(str, value))}")
        else:
            p.add_argument(flag, type=type(value), default=None, help=HELP.get(f.name, f"default: {value}"))
    p.add_argument("--quick", action="store_true", help="tiny sizes, a few minutes: proves the script runs")
    p.add_argument("--train-only", action="store_true",
                   help="search and retrain, then stop (for runs side by side, whose latency timings would "
                        "disturb each other); a later run measures and writes the table. With width-matched, the "
                        "supernet winner and the alphas are timed first, before any training")
    args = p.parse_args(argv)
    cfg = replace(defaults, **QUICK, quick=True) if args.quick else defaults
    if args.quick and args.work is None:
        cfg = replace(cfg, work=cfg.work + "_quick")
    given = {f.name: getattr(args, f.name) for f in fields(Config) if f.name != "quick"
             and getattr(args, f.name) is not None}
    cfg = replace(cfg, **{k: tuple(v) if isinstance(v, list) else v for k, v in given.items()})
    if cfg.supernet and args.only is None:
        cfg = replace(cfg, only=CONTENDERS + SUPERNET_ROWS)
    if not cfg.supernet and set(cfg.only) & set(SUPERNET_ROWS):
        p.error(f"--only {' '.join(sorted(set(cfg.only) & set(SUPERNET_ROWS)))} needs --supernet DIR (a trained "
                "supernet of the table's space: nas supernet train)")
    if cfg.supernet and not (Path(cfg.supernet) / "supernet.json").is_file():
        p.error(f"--supernet {cfg.supernet}: no supernet.json there; train one with nas supernet train --out "
                f"{cfg.supernet}")
    return cfg


def main(argv: list[str] | None = None) -> int:
    cfg = parse(argv)
    res = run(cfg)
    if res is None:
        log("--train-only: searched and retrained; run again without it, on a quiet machine, to measure the "
            "latencies and write the table")
        return 0
    res["command"] = " ".join(["python benchmarks/search_vs_baselines.py", *(sys.argv[1:] if argv is None else argv)])
    publish(stem("search_vs_baselines", cfg.name, "quick" if cfg.quick else ""), report(res), res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
