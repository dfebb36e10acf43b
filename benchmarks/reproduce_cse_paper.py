"""Reproduce the CSE paper's CIFAR-10 results (its Tables 2 and 5) with the project's retraining code.

Trains ``mobilenetv2-cifar``, ``cse-mix-cifar`` and ``cse-only-cifar`` from scratch on
CIFAR-10 (all 50,000 training images, see :mod:`nas.retrain.data`), tests each on the
10,000 test images, exports it to ONNX (parity-checked) and reports, beside the paper's
figures: parameters, test accuracy, the measured CPU latency (onnxruntime, 1 thread,
batch 1, the timing protocol of ``latency_tables/ort-cpu-1t.json``) and the latency that
table predicts. Everything goes through :mod:`nas.retrain` (recipe, data, train/resume,
test, export, latency), so the figures are what ``nas retrain`` would give.

Modes (chosen automatically; the results file says which was used):

* **CUDA present: the full recipe** (:data:`nas.retrain.RECIPES` ``full``: cosine SGD,
  Nesterov 0.9, label smoothing 0.1, crop + flip, weight decay 5e-4) at batch 256 and peak
  lr 0.2 (linear scaling of 0.1 per 128), 2 warm-up epochs, bfloat16 autocast, channels-last,
  data on the GPU. Epochs: as many as fit ``--gpu-minutes`` (default 9) of training per
  network, capped at 200: a short calibration (40 timed steps after 15 warm-up steps) measures
  the step time on the real data; the chosen number is stored in ``plan.json`` so a resumed
  run keeps it, and written to the results. (Estimate for an H100: 2-4 s per epoch, i.e.
  roughly 130-200 epochs in 9 minutes.)
* **CPU only: the short recipe**, sized for a 2-core CPU: ``--cpu-epochs`` (default 3) epochs
  on a stratified ``--cpu-subset`` (default 3,000) of the training images, tested on the whole
  test split (10,000 images). **Its accuracies are a smoke test, not comparable to the paper's** (which come
  from full training); the results say so.
* ``--quick``: proves the script works in a few minutes (1 epoch on 100 images, 200 test
  images); writes under ``runs/`` only, never the committed results.

Resumable: every network trains in its own folder under ``--work`` (checkpoint after every
epoch); re-running the same command skips finished networks and resumes the current one.

Full CPU command: ``python benchmarks/reproduce_cse_paper.py``. Measured on the 2-core
development machine while shared with other jobs (load ~6): training 6-7.5 images/s, testing
18-27 images/s for each of the three networks, i.e. ~25 min training + ~8 min testing per
network, about 1.5-1.7 hours in all; on an idle machine (~40-50 training images/s) about
20-30 minutes. ``--threads 1`` can be faster on a busy machine.
GPU command (about 30 minutes on an H100): the same command on a CUDA machine.
Quick check:  python benchmarks/reproduce_cse_paper.py --quick
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from nas.arch import build_model, reference_arch
from nas.latency import load_table
from nas.retrain import LatencyProbe, Recipe, final_splits, make_recipe, train_and_export
from nas.retrain.data import FinalSplits
from nas.retrain.model import write_json
from nas.train import train_model
from nas.train.device import resolve_device

from _common import CIFAR10, CPU_TABLE, REPO, RESULTS, machine  # beside this script

#: name, the paper's parameters (millions) and CIFAR-10 test accuracy (%), Tables 2 and 5.
PAPER: tuple[tuple[str, float, float], ...] = (("mobilenetv2-cifar", 2.253, 91.74), ("cse-mix-cifar", 0.363, 90.03),
                                               ("cse-only-cifar", 0.228, 88.13))
COLUMNS = ("network", "params", "paper_params", "test_acc", "paper_test_acc", "measured_cpu_ms", "predicted_ms",
           "predicted_interpolated", "epochs", "train_images", "test_images", "train_minutes", "device", "parity")


def calibrate_epochs(name: str, splits: FinalSplits, recipe: Recipe, device: str, minutes: float) -> dict[str, Any]:
    """Epochs of ``recipe`` that fit ``minutes`` of training for ``name`` on this device (see module doc)."""
    config = dataclasses.replace(recipe.train_config(seed=0, device=device), epochs=1, warmup_epochs=0.0)
    torch.manual_seed(0)
    model = build_model(reference_arch(name))
    train_model(model, splits, dataclasses.replace(config, steps_per_epoch=15), progress=False)  # autotune, warm
    timed = train_model(model, splits, dataclasses.replace(config, steps_per_epoch=40), progress=False)
    images_per_s = timed.history[0].images_per_second
    epoch_s = len(splits.train) / images_per_s + 1.0  # + monitoring pass and checkpoint
    budget_s = minutes * 60 - 30  # test pass, export, latency
    epochs = int(max(1, min(recipe.epochs, math.floor(budget_s / epoch_s))))
    return {"epochs": epochs, "images_per_s": round(images_per_s, 1), "epoch_s": round(epoch_s, 2),
            "minutes": minutes}


def run_network(name: str, splits: FinalSplits, recipe: Recipe, folder: Path, device: str,
                probe: LatencyProbe) -> dict[str, Any]:
    result_file = folder / "result.json"
    if result_file.is_file():
        print(f"{name}: already done ({result_file})")
        return json.loads(result_file.read_text())
    arch = reference_arch(name)
    print(f"{name}: training in {folder} ({recipe.describe()})")
    trained = train_and_export(arch, splits, recipe, seed=0, folder=folder, device=device)
    onnx = folder / trained["onnx"] if trained.get("onnx") else None
    record = {**trained, **probe.predict(arch), **probe.measure(arch, onnx), "network": name}
    write_json(result_file, record)
    return record


def _row(name: str, paper_params: float, paper_acc: float, r: dict[str, Any]) -> dict[str, Any]:
    acc = r.get("test_acc")
    return {"network": name, "params": r["params"], "paper_params": int(paper_params * 1e6),
            "test_acc": None if acc is None else round(acc * 100, 2), "paper_test_acc": paper_acc,
            "measured_cpu_ms": None if r.get("measured_ms") is None else round(r["measured_ms"], 3),
            "predicted_ms": None if r.get("predicted_ms") is None else round(r["predicted_ms"], 3),
            "predicted_interpolated": r.get("predicted_interpolated"), "epochs": r["epochs_run"],
            "train_images": r["train_images"], "test_images": r["test_images"],
            "train_minutes": round(r["wall_s"] / 60, 1), "device": r.get("device"),
            "parity": None if r.get("parity_max_abs_diff") is None else f"{r['parity_max_abs_diff']:.1e}"}


def _fmt(v: Any, spec: str = "") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def write_table(rows: list[dict[str, Any]], mode_text: str, setup: list[str], md: Path, csv_path: Path) -> str:
    lines = ["# Reproducing the CSE paper on CIFAR-10", "",
             f"Date: {dt.date.today().isoformat()}. Machine: {machine()}.", "", mode_text, ""]
    lines += [f"- {s}" for s in setup]
    lines += ["", "| network | params | paper params | test acc % | paper acc % | measured CPU ms | predicted ms | "
                  "epochs | train / test images | train min |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        cells = [r["network"], f"{r['params']:,}", f"{r['paper_params']:,}", _fmt(r["test_acc"], ".2f"),
                 f"{r['paper_test_acc']:.2f}", _fmt(r["measured_cpu_ms"], ".3f"), _fmt(r["predicted_ms"], ".3f"),
                 str(r["epochs"]), f"{r['train_images']:,} / {r['test_images']:,}", str(r["train_minutes"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Parameters: ours count every weight, BatchNorm included, of the networks as `nas arch show` builds "
              "them; the paper's are its Tables 2 and 5. Measured CPU latency: the exported ONNX model (trained "
              "weights) in onnxruntime, 1 thread, batch 1, median of the table's timing protocol, on the machine "
              "above. Predicted: `latency_tables/ort-cpu-1t.json` (parts missing from it interpolated; count in the "
              "CSV).", ""]
    text = "\n".join(lines)
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(text)
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=str(CIFAR10), help="CIFAR-10 (image folders with train/ and test/)")
    p.add_argument("--table", default=str(CPU_TABLE), help="latency table for the predicted latency")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("--quick", action="store_true", help="a few-minute check of the script (results under runs/)")
    p.add_argument("--cpu-epochs", type=int, default=3, help="CPU mode: epochs of the short recipe")
    p.add_argument("--cpu-subset", type=int, default=3000, help="CPU mode: training images (stratified subset)")
    p.add_argument("--gpu-minutes", type=float, default=9.0, help="CUDA mode: training minutes per network")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--work", help="checkpoints and per-network results (default: runs/reproduce_cse_paper[-quick])")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    cuda = device.type == "cuda" and not args.quick
    work = Path(args.work or REPO / "runs" / f"reproduce_cse_paper{'-quick' if args.quick else ''}")
    if args.quick:
        recipe, subset, test_subset = make_recipe("short", epochs=1), 100, 200
        mode = ("**Quick check (`--quick`): 1 epoch on 100 images, 200 test images. The accuracies mean nothing; "
                "this only proves the script works.**")
    elif cuda:
        recipe, subset, test_subset = make_recipe("full", batch_size=256, lr=0.2), None, None
        recipe = dataclasses.replace(recipe, warmup_epochs=2.0)
        mode = "**Full recipe on CUDA** (epochs per network chosen to fit the time budget; see the table)."
    else:
        recipe, subset, test_subset = make_recipe("short", epochs=args.cpu_epochs), args.cpu_subset, None
        mode = (f"**Short CPU recipe ({args.cpu_epochs} epochs on {args.cpu_subset:,} of the 50,000 training images). "
                f"These accuracies are NOT comparable to the paper's, which come from full training: they only show "
                f"the pipeline end to end on a CPU. Run this script on a CUDA machine for the full recipe.**")
    splits = final_splits(args.data, input_size=32, subset=subset, test_subset=test_subset)
    probe = LatencyProbe(load_table(args.table), measure=True)
    plan_file = work / "plan.json"
    plan: dict[str, Any] = json.loads(plan_file.read_text()) if plan_file.is_file() else {}
    rows, setup = [], [f"data: {splits.source}: {len(splits.train):,} training images (train + validation), "
                       f"{len(splits.test):,} test images"]
    start = time.perf_counter()
    for name, paper_params, paper_acc in PAPER:
        net_recipe = recipe
        if cuda:
            if name not in plan:
                plan[name] = calibrate_epochs(name, splits, recipe, str(device), args.gpu_minutes)
                write_json(plan_file, plan)
            net_recipe = dataclasses.replace(recipe, epochs=plan[name]["epochs"])
            setup.append(f"{name}: {plan[name]['epochs']} epochs (calibrated: {plan[name]['images_per_s']:,} "
                         f"training images/s, {plan[name]['epoch_s']} s per epoch, budget {args.gpu_minutes} min)")
        folder = work / net_recipe.tag / name
        record = run_network(name, splits, net_recipe, folder, str(device), probe)
        rows.append(_row(name, paper_params, paper_acc, record))
    setup.insert(1, f"recipe: {recipe.describe()}" + (" (epochs per network below)" if cuda else ""))
    if args.quick:
        md, csv_path = work / "reproduce_cse_paper_quick.md", work / "reproduce_cse_paper_quick.csv"
    else:
        md, csv_path = RESULTS / "reproduce_cse_paper.md", RESULTS / "reproduce_cse_paper.csv"
    print(write_table(rows, mode, setup, md, csv_path))
    print(f"written {md} and {csv_path} ({time.perf_counter() - start:.0f} s this call)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
