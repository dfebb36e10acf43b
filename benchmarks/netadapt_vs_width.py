"""NetAdapt versus the width multiplier at the same latency, on CIFAR-10 (a CPU-sized version).

NetAdapt reports that a network adapted to a latency target is 1.7x faster at equal accuracy
than MobileNetV1 scaled down by its width multiplier (mobile CPU). This script asks the same
question for ``mobilenetv2-cifar`` on the shipped onnxruntime CPU table:

1. *start*: ``mobilenetv2-cifar`` trained from scratch with a short recipe (``--pretrain-epochs``
   on a stratified ``--subset`` of CIFAR-10 train; SGD + cosine, the shared training loop);
2. *NetAdapt*: ``nas adapt``'s library entry point (:func:`nas.adapt.run_adapt_job`) shrinks it to
   ``--fraction`` (50 %) of its predicted latency, then the result is fine-tuned for
   ``--final-epochs`` (one fine-tuning per seed);
3. *width*: ``mobilenetv2-cifar@alpha`` with the largest alpha whose predicted latency is within
   the same budget (bisection on alpha; channels rounded to 8 by ``nas.arch.width_multiplier``),
   trained from scratch for the same total number of SGD steps as the NetAdapt network got
   (pretraining + T steps per kept proposal + final fine-tuning), same recipe;
4. extra width points (``--curve`` fractions of the start latency, first seed only), so the
   latency at which the width-scaled family reaches NetAdapt's accuracy can be interpolated
   (the speed-up at equal accuracy).

Accuracy is top-1 on the CIFAR-10 test split (``--test-images``, stratified when not all),
never seen by training or adaptation (those use train and a validation split carved from
train). Latency is predicted from the table and measured end to end: each network exported
to ONNX and timed with onnxruntime on the CPU, 1 thread, batch 1, the minimum over 5 passes
of the per-pass median.

Seeds. The pretraining and the adaptation run once (seed ``--seeds[0]``; ``--adapt-per-seed``
repeats the adaptation for every seed); the final fine-tuning of the adapted network and the
width baseline's training are repeated for every seed (mean +- std over seeds).

The latency table is copied into the cache first: channel counts it lacks are measured on
this machine into the copy (``--on-missing auto``, the table being this machine's), never into
``latency_tables/``. Every finished piece (training runs, adaptation iterations, evaluations,
latency measurements) is cached under ``--cache``; re-running the same command continues
where it stopped. Results: ``benchmarks/results/netadapt_vs_width.{md,json}`` (``--quick``:
``netadapt_vs_width_quick.*``, which only proves the script works and are not the figures).

Full run (defaults; roughly 1-1.5 h on an idle 2-core CPU, 2-3 h on a busy shared one):
    python benchmarks/netadapt_vs_width.py
Quick check (a few minutes):
    python benchmarks/netadapt_vs_width.py --quick
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from nas.adapt import AdaptJob, AdaptSettings, run_adapt_job
from nas.arch import (ArchSpec, arch_cost, arch_hash, build_model, load_arch_file, reference_arch, to_compact,
                      width_multiplier)
from nas.data import DatasetSplits, load_dataset
from nas.latency import DEFAULT_PASSES, TableEstimator, is_local_table, load_table
from nas.train import TrainConfig, evaluate, load_weights, save_weights, train_model
from nas.train.schedule import plan_steps

from _common import (CIFAR10, CPU_TABLE, REPO, RESULTS, Cache, log, machine_info, mean_std, measured_ms, publish,
                     stem, subset_of, with_test_images)  # beside this script

START = "mobilenetv2-cifar"


@dataclass(frozen=True)
class Config:
    data: str = str(CIFAR10)
    table: str = str(CPU_TABLE)
    fraction: float = 0.5
    subset: int = 2500
    val_images: int = 250
    test_images: int = 2500
    batch_size: int = 32
    lr: float = 0.05
    warmup_epochs: float = 0.5
    pretrain_epochs: int = 6
    delta: float = 0.05
    delta_decay: float = 1.0
    steps: int = 6
    adapt_lr: float = 0.01
    rule: str = "ratio"
    final_epochs: int = 2
    final_lr: float = 0.02
    seeds: tuple[int, ...] = (0, 1, 2)
    curve: tuple[float, ...] = (0.35, 0.75)
    adapt_per_seed: bool = False
    on_missing: str = "auto"
    timing_seconds: float = 2.0

    def key(self, table_digest: str) -> str:
        fields = {k: v for k, v in asdict(self).items() if k not in ("timing_seconds",)}
        text = json.dumps({**fields, "table_digest": table_digest}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


#: --quick: proves the script works end to end in a few minutes; its figures mean nothing.
QUICK = Config(fraction=0.8, subset=200, val_images=60, test_images=200, batch_size=16, pretrain_epochs=1, delta=0.1,
               steps=1, final_epochs=1, seeds=(0, 1), curve=(0.6,), on_missing="interpolate", timing_seconds=0.3)


# ------------------------------------------------------------------------------------ data
def load_splits(cfg: Config) -> DatasetSplits:
    splits = load_dataset(cfg.data, input_size=32, seed=0, subset=cfg.subset)
    splits = replace(splits, val=subset_of(splits.val, cfg.val_images, seed=1))
    return with_test_images(splits, cfg.test_images, seed=2)


# ------------------------------------------------------------------------------------ pieces
def train_config(cfg: Config, *, epochs: int, seed: int, lr: float | None = None, warmup: float | None = None,
                 steps_per_epoch: int | None = None) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=cfg.batch_size, lr=lr or cfg.lr, seed=seed, device="auto",
                       warmup_epochs=cfg.warmup_epochs if warmup is None else warmup, steps_per_epoch=steps_per_epoch)


def train(cache: Cache, arch: ArchSpec, splits: DatasetSplits, config: TrainConfig, out: Path, *,
          init: Path | None = None) -> Path:
    """Train (or resume, or reuse) into ``out``; returns ``out/weights.pt`` (wall time kept in the cache)."""
    return Path(cache.get(f"train/{out.name}", lambda: str(_train(arch, splits, config, out, init=init))))


def _train(arch: ArchSpec, splits: DatasetSplits, config: TrainConfig, out: Path, *, init: Path | None) -> Path:
    weights = out / "weights.pt"
    if weights.exists():
        return weights
    torch.manual_seed(config.seed)
    model = build_model(arch)
    if init is not None:
        load_weights(model, init)
    result = train_model(model, splits, config, out_dir=out, progress=True)
    if result.status != "completed":
        raise SystemExit(f"training in {out} ended with status {result.status}: {result.message}")
    save_weights(model, weights)
    return weights


def test_accuracy(arch: ArchSpec, weights: Path, splits: DatasetSplits) -> float:
    model = build_model(arch)
    load_weights(model, weights)
    assert splits.test is not None
    return float(evaluate(model, splits.test, mean=splits.mean, std=splits.std, device="auto")[1])


def width_alpha(ref: ArchSpec, estimator: TableEstimator, budget_ms: float) -> float:
    """The largest alpha (to 1e-3) whose width-scaled network is predicted within ``budget_ms``."""
    lo, hi = 0.05, 1.0
    if estimator.latency_ms(width_multiplier(ref, lo)) > budget_ms:
        raise SystemExit(f"even {START}@{lo} is predicted above the budget {budget_ms:.3f} ms")
    while hi - lo > 1e-3:
        mid = (lo + hi) / 2
        if estimator.latency_ms(width_multiplier(ref, mid)) <= budget_ms:
            lo = mid
        else:
            hi = mid
    return round(lo, 4)


def equal_accuracy_speedup(target_acc: float, target_ms: float, curve: list[tuple[float, float]]) -> dict[str, Any]:
    """Where the width curve (measured ms, accuracy) reaches ``target_acc``, linearly between points."""
    pts = sorted(curve)
    for (l0, a0), (l1, a1) in zip(pts, pts[1:]):
        if a0 < a1 and a0 <= target_acc <= a1:  # only where the width family gains accuracy with latency
            at = l0 + (l1 - l0) * (target_acc - a0) / (a1 - a0)
            return {"measurable": True, "width_ms_at_equal_accuracy": at, "speedup": at / target_ms}
    accs = [a for _, a in pts]
    if not pts:
        return {"measurable": False, "why": "no width-scaled points"}
    if target_acc > max(accs):
        best = max(pts, key=lambda p: p[1])
        return {"measurable": False, "speedup_at_least": best[0] / target_ms,
                "why": f"NetAdapt's accuracy is above every width-scaled point (best {best[1]:.4f} at {best[0]:.3f} ms)"}
    return {"measurable": False, "why": "NetAdapt's accuracy is below every width-scaled point, or the width curve "
                                        "is not monotone around it"}


# ------------------------------------------------------------------------------------ main
def run(cfg: Config, cache_dir: Path, results_stem: str) -> dict[str, Any]:
    source_table = Path(cfg.table)
    digest = hashlib.sha256(source_table.read_bytes()).hexdigest()[:16]
    cache = Cache(cache_dir / cfg.key(digest), "results.json")
    log(f"cache: {cache.root}")
    table_path = cache.root / "table.json"
    if not table_path.exists():
        shutil.copyfile(source_table, table_path)
    table = load_table(table_path)
    local = is_local_table(table)
    ref = reference_arch(START)
    if local:  # the start network's own parts are measured (not interpolated) in any mode
        TableEstimator(table, on_missing="measure").latency_ms(ref)
    estimator = TableEstimator(table, on_missing=cfg.on_missing)
    start_pred = estimator.latency_ms(ref)
    budget = cfg.fraction * start_pred
    how = {"measure": "measured here", "interpolate": "interpolated"}[estimator.on_missing]
    log(f"{START}: predicted {start_pred:.3f} ms; budget {budget:.3f} ms ({cfg.fraction:.0%}); table {source_table} "
        f"({table.metadata.get('device')}); widths missing from it are {how}")

    splits = load_splits(cfg)
    log(f"data: {len(splits.train)} train / {len(splits.val)} val / {len(splits.test or [])} test images")
    steps_per_epoch = plan_steps(len(splits.train), batch_size=cfg.batch_size, epochs=1, warmup_epochs=0,
                                 steps_per_epoch=None).steps_per_epoch
    seed0 = cfg.seeds[0]

    # 1. the start network
    log(f"1/4 pretraining {START} for {cfg.pretrain_epochs} epochs")
    pre = train(cache, ref, splits, train_config(cfg, epochs=cfg.pretrain_epochs, seed=seed0), cache.root / "pretrain")
    pretrain_steps = cfg.pretrain_epochs * steps_per_epoch

    # 2. NetAdapt (+ final fine-tuning per seed)
    settings = AdaptSettings(budget_ms=budget, delta=cfg.delta, delta_decay=cfg.delta_decay, steps=cfg.steps,
                             lr=cfg.adapt_lr, batch_size=cfg.batch_size, final_epochs=0, rule=cfg.rule, seed=seed0)
    adapted: dict[int, tuple[ArchSpec, Path, int]] = {}
    for seed in cfg.seeds if cfg.adapt_per_seed else (seed0,):
        out = cache.root / f"adapt-s{seed}"
        log(f"2/4 NetAdapt (seed {seed}) -> {out}")
        job = AdaptJob(arch=ref, weights=pre, target=table_path, out=out, settings=replace(settings, seed=seed),
                       on_missing=cfg.on_missing)
        result = cache.get(f"adapt/{out.name}", lambda: run_adapt_job(job, splits=splits, estimator=estimator,
                                                                       log=log).to_dict())
        if result["status"] != "met":
            log(f"warning: NetAdapt did not reach the budget: {result['message']}")
        adapted[seed] = (load_arch_file(out / "arch.json"), out / "weights.pt", result["iterations"])
    netadapt_runs = []
    for seed in cfg.seeds:
        arch, weights, iterations = adapted[seed if cfg.adapt_per_seed else seed0]
        log(f"2/4 final fine-tuning of the adapted network, seed {seed}")
        tuned = train(cache, arch, splits, train_config(cfg, epochs=cfg.final_epochs, seed=seed, lr=cfg.final_lr, warmup=0),
                      cache.root / f"final-s{seed}-{arch_hash(arch)}", init=weights)
        total = pretrain_steps + iterations * cfg.steps + cfg.final_epochs * steps_per_epoch
        acc = cache.get(f"test/netadapt/s{seed}/{arch_hash(arch)}", lambda: test_accuracy(arch, tuned, splits))
        netadapt_runs.append({"seed": seed, "arch": to_compact(arch), "iterations": iterations, "steps": total,
                              "test_acc": acc})

    # 3. width-scaled baselines with the same number of steps
    total_steps = max(r["steps"] for r in netadapt_runs)
    epochs = cfg.pretrain_epochs + cfg.final_epochs
    width_epoch_steps = math.ceil(total_steps / epochs)
    width_runs = []
    for fraction in (cfg.fraction, *cfg.curve):
        alpha = cache.get(f"alpha/{fraction}", lambda: width_alpha(ref, estimator, fraction * start_pred))
        arch = width_multiplier(ref, alpha)
        for seed in cfg.seeds if fraction == cfg.fraction else (seed0,):
            log(f"3/4 width baseline {START}@{alpha:g} ({fraction:.0%} budget), seed {seed}: "
                f"{epochs} x {width_epoch_steps} steps")
            config = train_config(cfg, epochs=epochs, seed=seed, steps_per_epoch=width_epoch_steps)
            weights = train(cache, arch, splits, config, cache.root / f"width-{alpha:g}-s{seed}")
            acc = cache.get(f"test/width/{alpha:g}/s{seed}", lambda: test_accuracy(arch, weights, splits))
            width_runs.append({"fraction": fraction, "alpha": alpha, "seed": seed, "arch": to_compact(arch),
                               "steps": epochs * width_epoch_steps, "test_acc": acc})
    start_acc = cache.get("test/start", lambda: test_accuracy(ref, pre, splits))

    # 4. latency: predicted and measured
    log("4/4 measuring latency (onnxruntime CPU, 1 thread, batch 1)")
    archs: dict[str, ArchSpec] = {to_compact(ref): ref}
    archs |= {to_compact(a): a for a, _, _ in adapted.values()}
    archs |= {r["arch"]: width_multiplier(ref, r["alpha"]) for r in width_runs}
    latency = {}
    for name, a in archs.items():
        measured = cache.get(f"measured/{arch_hash(a)}-p{DEFAULT_PASSES}", lambda a=a: measured_ms(a, cfg.timing_seconds))
        latency[name] = {"predicted_ms": estimator.latency_ms(a), "measured_ms": measured,
                         "params": arch_cost(a).params, "macs": arch_cost(a).macs}
    report = summarise(cfg, cache, start_pred, budget, start_acc, pretrain_steps, netadapt_runs, width_runs, latency)
    write_report(report, results_stem)
    return report


def summarise(cfg: Config, cache: Cache, start_pred: float, budget: float, start_acc: float, pretrain_steps: int,
              netadapt_runs: list[dict[str, Any]], width_runs: list[dict[str, Any]],
              latency: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rows = [{"kind": "start", "network": f"{START} (start, pretrained only)", "arch": to_compact(reference_arch(START)),
             "steps": pretrain_steps, "accs": [start_acc]}]
    for arch in dict.fromkeys(r["arch"] for r in netadapt_runs):
        runs = [r for r in netadapt_runs if r["arch"] == arch]
        rows.append({"kind": "netadapt", "network": f"NetAdapt @{cfg.fraction:.0%} ({runs[0]['iterations']} iterations)",
                     "arch": arch, "steps": runs[0]["steps"], "accs": [r["test_acc"] for r in runs]})
    for alpha in dict.fromkeys(r["alpha"] for r in width_runs):
        runs = [r for r in width_runs if r["alpha"] == alpha]
        rows.append({"kind": "width" if runs[0]["fraction"] == cfg.fraction else "curve",
                     "network": f"width {START}@{alpha:g} (@{runs[0]['fraction']:.0%})", "arch": runs[0]["arch"],
                     "steps": runs[0]["steps"], "accs": [r["test_acc"] for r in runs]})
    for row in rows:
        row |= latency[row["arch"]]
        row["acc_mean"], row["acc_std"] = mean_std(row["accs"])
    # NetAdapt as a method: every run's accuracy, its networks' mean latency (one network unless --adapt-per-seed).
    na_rows = [r for r in rows if r["kind"] == "netadapt"]
    na_acc = statistics.fmean(r["test_acc"] for r in netadapt_runs)
    na_ms = statistics.fmean(r["measured_ms"] for r in na_rows)
    width_main = next(r for r in rows if r["kind"] == "width")
    curve = [(r["measured_ms"], r["acc_mean"]) for r in rows if r["kind"] in ("width", "curve")]
    return {"config": asdict(cfg), "machine": machine_info(),
            "start_predicted_ms": start_pred, "budget_ms": budget, "rows": rows,
            "netadapt": {"acc_mean": na_acc, "measured_ms": na_ms},
            "accuracy_gain_at_equal_latency": na_acc - width_main["acc_mean"],
            "measured_speedup_at_equal_budget": width_main["measured_ms"] / na_ms,
            "equal_accuracy": equal_accuracy_speedup(na_acc, na_ms, curve), "seconds": cache.seconds}


def write_report(report: dict[str, Any], name: str) -> None:
    cfg = report["config"]
    lines = [f"# NetAdapt vs width multiplier ({START}, CIFAR-10, {cfg['fraction']:.0%} of the predicted latency)", "",
             f"Table {cfg['table']}; start predicted {report['start_predicted_ms']:.3f} ms, budget "
             f"{report['budget_ms']:.3f} ms. Data: {cfg['subset']} train images, {cfg['val_images']} validation "
             f"(adaptation), {cfg['test_images'] or 'all'} test images (accuracy below). Seeds {list(cfg['seeds'])}.",
             "", "| network | predicted ms | measured ms | params | MMACs | train steps | test acc (mean +- std, n) |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['network']} | {r['predicted_ms']:.3f} | {r['measured_ms']:.3f} | {r['params']:,} | "
                     f"{r['macs'] / 1e6:.1f} | {r['steps']} | {r['acc_mean']:.4f} +- {r['acc_std']:.4f} "
                     f"(n={len(r['accs'])}) |")
    speed = report["equal_accuracy"]
    lines += ["", f"- accuracy gain of NetAdapt over the width multiplier at the same predicted budget: "
                  f"{report['accuracy_gain_at_equal_latency'] * 100:+.2f} points (measured latency ratio width / "
                  f"NetAdapt {report['measured_speedup_at_equal_budget']:.2f})"]
    if speed.get("measurable"):
        lines.append(f"- speed-up at equal accuracy (measured latency; width curve interpolated): "
                     f"{speed['speedup']:.2f}x (the width family reaches NetAdapt's accuracy at "
                     f"{speed['width_ms_at_equal_accuracy']:.3f} ms). NetAdapt paper: 1.7x over MobileNetV1 on a "
                     "mobile CPU.")
    else:
        extra = f" (at least {speed['speedup_at_least']:.2f}x)" if "speedup_at_least" in speed else ""
        lines.append(f"- speed-up at equal accuracy: not measurable{extra}: {speed['why']}. NetAdapt paper: 1.7x.")
    lines += ["", "Architectures:", ""] + [f"- {r['network']}: `{r['arch']}`" for r in report["rows"]]
    lines += ["", "Settings: " + ", ".join(f"{k}={v}" for k, v in cfg.items() if k not in ("data", "table")), "",
              "Seconds per cached piece: " + ", ".join(f"{k} {v}" for k, v in report["seconds"].items()), ""]
    publish(name, "\n".join(lines), report, indent=1)


def parse_args(argv: list[str] | None = None) -> tuple[Config, Path, str, int]:
    d = Config()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes: only proves the script works (a few minutes)")
    p.add_argument("--data", default=d.data, help="CIFAR-10 image folder (train/ and test/)")
    p.add_argument("--table", default=d.table, help="latency table (copied into the cache, never modified)")
    p.add_argument("--fraction", type=float, default=d.fraction, help="budget as a fraction of the start latency")
    p.add_argument("--subset", type=int, default=d.subset, help="training images (stratified subset of train)")
    p.add_argument("--val-images", type=int, default=d.val_images, help="validation images used by NetAdapt")
    p.add_argument("--test-images", type=int, default=d.test_images, help="test images for accuracy (0: all)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate of pretraining and width baselines")
    p.add_argument("--pretrain-epochs", type=int, default=d.pretrain_epochs)
    p.add_argument("--delta", type=float, default=d.delta, help="NetAdapt latency cut per iteration (of the start)")
    p.add_argument("--delta-decay", type=float, default=d.delta_decay)
    p.add_argument("--steps", type=int, default=d.steps, help="NetAdapt fine-tuning steps T per proposal")
    p.add_argument("--adapt-lr", type=float, default=d.adapt_lr)
    p.add_argument("--rule", choices=("ratio", "accuracy"), default=d.rule)
    p.add_argument("--final-epochs", type=int, default=d.final_epochs)
    p.add_argument("--final-lr", type=float, default=d.final_lr)
    p.add_argument("--seeds", default=",".join(map(str, d.seeds)), help="comma-separated training seeds")
    p.add_argument("--curve", default=",".join(map(str, d.curve)),
                   help="extra width-scaled points (fractions of the start latency; first seed only)")
    p.add_argument("--adapt-per-seed", action="store_true", help="repeat the adaptation for every seed")
    p.add_argument("--on-missing", choices=("auto", "interpolate"), default=d.on_missing,
                   help="table entries NetAdapt and the alpha search lack: auto = measure here (the table is this "
                        "machine's), interpolate = estimate from measured entries")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for training (1 is fastest on a busy shared machine; 0: torch's default)")
    p.add_argument("--cache", default=str(REPO / "runs" / "bench-netadapt-vs-width"), help="cache folder")
    a = p.parse_args(argv)
    base = QUICK if a.quick else d
    given = {k: v for k, v in vars(a).items() if p.get_default(k) != v}

    def pick(name: str, value: Any) -> Any:
        return value if name in given else getattr(base, name)

    cfg = Config(data=a.data, table=a.table, fraction=pick("fraction", a.fraction), subset=pick("subset", a.subset),
                 val_images=pick("val_images", a.val_images), test_images=pick("test_images", a.test_images),
                 batch_size=pick("batch_size", a.batch_size), lr=pick("lr", a.lr),
                 warmup_epochs=base.warmup_epochs, pretrain_epochs=pick("pretrain_epochs", a.pretrain_epochs),
                 delta=pick("delta", a.delta), delta_decay=pick("delta_decay", a.delta_decay),
                 steps=pick("steps", a.steps), adapt_lr=pick("adapt_lr", a.adapt_lr), rule=pick("rule", a.rule),
                 final_epochs=pick("final_epochs", a.final_epochs), final_lr=pick("final_lr", a.final_lr),
                 seeds=tuple(int(s) for s in a.seeds.split(",")) if "seeds" in given else base.seeds,
                 curve=tuple(float(c) for c in a.curve.split(",") if c) if "curve" in given else base.curve,
                 adapt_per_seed=a.adapt_per_seed, on_missing=pick("on_missing", a.on_missing),
                 timing_seconds=base.timing_seconds)
    return cfg, Path(a.cache), stem("netadapt_vs_width", "quick" if a.quick else ""), a.threads


def main(argv: list[str] | None = None) -> int:
    cfg, cache, results_stem, threads = parse_args(argv)
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    run(cfg, cache, results_stem)
    log(f"done in {time.perf_counter() - start:.0f} s; results in {RESULTS}/{results_stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
