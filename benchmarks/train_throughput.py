"""Training throughput (images/second) of the reference networks, measured with the shared training loop.

Each (device, network) pair runs :func:`nas.train.train_model` itself, the loop that proxy
training, NetAdapt fine-tuning and full retraining use (forward, label-smoothed loss, backward,
Nesterov SGD step, on-device batching with random crop + flip), on synthetic 32x32 uint8
images (throughput does not depend on pixel values):

1. warm-up: one short run of ``--warmup-steps`` steps (allocator, thread pools, cuDNN autotuning),
   also used to estimate the step time;
2. timed window: a second run of as many steps as fit in ``--window`` seconds (at least
   ``--min-steps``); the figure is that epoch's ``images_per_second`` from the loop's own
   metrics, which times the training steps only (the validation pass after it is excluded).

CPU runs use float32 and contiguous memory (as the loop does on CPU); CUDA runs, when a GPU
is present, use the loop's mixed precision (bfloat16 autocast where supported) and
channels-last memory. The table is printed and written to ``benchmarks/results/`` as
Markdown and CSV together with the machine description. ``--quick`` only proves the script
works (tiny batch, two steps) and writes ``*_quick.*`` files that are not the figures.

CPU figures are taken with one thread and with all cores: on a shared, busy machine extra threads
can make training several times slower (they wait for each other), so both are worth seeing.

Full run (about 3-4 minutes on an idle 2-core CPU):  python benchmarks/train_throughput.py
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from nas.arch import arch_cost, build_model, resolve_arch
from nas.data import DatasetSplits, ImageArrays
from nas.train import TrainConfig, train_model
from nas.train.device import choose_precision

from _common import RESULTS, machine_info, stem  # beside this script

ARCHS = ("mobilenetv2-cifar", "cse-mix-cifar")
COLUMNS = ("device", "precision", "arch", "params", "MMACs", "batch", "threads", "warmup_steps", "timed_steps",
           "seconds", "ms_per_step", "images_per_s")


def synthetic_splits(n_train: int, n_val: int, size: int, classes: int, seed: int = 0) -> DatasetSplits:
    rng = np.random.default_rng(seed)

    def arrays(n: int) -> ImageArrays:
        return ImageArrays(images=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
                           labels=rng.integers(0, classes, n).astype(np.int64))

    return DatasetSplits(train=arrays(n_train), val=arrays(n_val), test=None,
                         classes=tuple(str(i) for i in range(classes)), source="synthetic",
                         mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def measure(name: str, device: str, args: argparse.Namespace) -> dict[str, object]:
    arch = resolve_arch(name)
    cuda = device.startswith("cuda")
    splits = synthetic_splits(max(4 * args.batch, 512), 64, arch.input_size, arch.num_classes)
    torch.manual_seed(0)
    model = build_model(arch)

    def run(steps: int) -> float:
        config = TrainConfig(epochs=1, batch_size=args.batch, steps_per_epoch=steps, device=device, amp=cuda,
                             channels_last=cuda, eval_batch_size=64)
        result = train_model(model, splits, config, progress=False)
        assert result.status == "completed", result.message
        return result.history[-1].images_per_second

    warmup = args.warmup_steps if args.warmup_steps is not None else (10 if cuda else 1)
    warm_ips = run(warmup)
    step_s = args.batch / warm_ips
    steps = max(args.min_steps, min(args.max_steps, int(args.window / step_s)))
    ips = run(steps)
    cost = arch_cost(arch)
    precision = choose_precision(torch.device(device), amp=cuda, channels_last=cuda).describe()
    row = {"device": device, "precision": precision.split(" ", 1)[1], "arch": name, "params": cost.params,
           "MMACs": round(cost.macs / 1e6, 1), "batch": args.batch, "threads": torch.get_num_threads(),
           "warmup_steps": warmup, "timed_steps": steps, "seconds": round(steps * args.batch / ips, 2),
           "ms_per_step": round(1000 * args.batch / ips, 1), "images_per_s": round(ips, 1)}
    print(f"  {device} {name}: {row['images_per_s']} img/s ({steps} steps of {args.batch})", flush=True)
    return row


def markdown(rows: list[dict[str, object]], info: dict[str, str], note: str) -> str:
    lines = ["# Training throughput", "", note, "", "| " + " | ".join(COLUMNS) + " |",
             "|" + "|".join("---" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(str(r[c]) for c in COLUMNS) + " |" for r in rows]
    lines += ["", "Machine:", ""] + [f"- {k}: {v}" for k, v in info.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="prove the script works: batch 16, 1 warm-up + 2 timed steps per measurement")
    p.add_argument("--archs", nargs="+", default=list(ARCHS), help="networks (anything `nas train --arch` takes)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--warmup-steps", type=int, help="default: 1 on CPU, 10 on CUDA")
    p.add_argument("--window", type=float, default=None, help="timed window per measurement in seconds "
                   "(default 30 on CPU, 10 on CUDA)")
    p.add_argument("--min-steps", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=500)
    p.add_argument("--threads", type=int, nargs="+",
                   help="CPU: torch intra-op thread counts to measure (default: 1 and all cores)")
    p.add_argument("--devices", nargs="+", help="default: cpu, plus cuda when available")
    p.add_argument("--out", type=Path, help="output stem (default benchmarks/results/train_throughput[_quick])")
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.warmup_steps, args.min_steps, args.max_steps = 16, 1, 2, 2
    cores = torch.get_num_threads()
    thread_counts = sorted(set(args.threads or [1, cores]))
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    out = args.out or RESULTS / stem("train_throughput", "quick" if args.quick else "")
    info = machine_info()
    info["torch threads"] = f"{cores} by default; measured with {', '.join(map(str, thread_counts))} on the CPU"
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    print("machine: " + "; ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    start = time.perf_counter()
    rows = []
    for device in devices:
        cuda = device.startswith("cuda")
        window = args.window if args.window is not None else (10.0 if cuda else 30.0)
        for threads in [cores] if cuda else thread_counts:
            torch.set_num_threads(threads)
            for name in args.archs:
                rows.append(measure(name, device, argparse.Namespace(**{**vars(args), "window": window})))
        torch.set_num_threads(cores)
    if load_before is not None:
        info["load average (1 min) before / after"] = f"{load_before[0]:.2f} / {os.getloadavg()[0]:.2f}"
    info["date"] = dt.datetime.now().isoformat(timespec="seconds")
    info["command"] = "python benchmarks/train_throughput.py " + " ".join(sys.argv[1:] if argv is None else argv)
    note = ("Training images/second with nas.train.train_model (forward, loss, backward, SGD step, batching and "
            "augmentation on the device) on synthetic 32x32 images, after a warm-up run; CPU float32, CUDA mixed "
            "precision + channels-last. A busy shared machine lowers the CPU figures: see the load average below.")
    if args.quick:
        note = "QUICK MODE (batch 16, 2 timed steps): proves the script runs; NOT the benchmark figures.\n\n" + note
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(markdown(rows, info, note))
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print()
    print(markdown(rows, info, note))
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.csv')} ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
