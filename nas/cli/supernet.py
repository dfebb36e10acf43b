"""``nas supernet train`` (the weight-sharing supernet of a space) and ``nas supernet extract`` (one of its
sub-networks as an ordinary weights file)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from nas.cli._args import add_threads_option, non_negative_float, non_negative_int, positive_float, positive_int
from nas.cli._output import RESUME_HINT, DefaultsFormatter, RawDefaultsFormatter, print_json
from nas.cli.arch import ARCH_HELP
from nas.cli.train import DATA_HELP

__all__ = ["register", "DEFAULT_SPACE", "default_space"]

#: The space ``nas supernet train`` uses without ``--space`` (looked up in the working directory, then in
#: this checkout's search_spaces/).
DEFAULT_SPACE = "search_spaces/mobilenet_cse_cifar.yaml"


def default_space() -> str:
    from nas.latency.spaces import SHIPPED_SPACES

    local = Path(DEFAULT_SPACE)
    return str(local if local.is_file() else SHIPPED_SPACES / local.name)


def _train(args: argparse.Namespace) -> int:
    from nas.supernet.train import (
        SandwichSettings,
        SupernetTrainJob,
        run_supernet_train,
    )

    job = SupernetTrainJob(
        space=args.space or default_space(), data=args.data, out=args.out, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
        warmup_epochs=args.warmup_epochs, augment=not args.no_augment, flip=not args.no_flip, seed=args.seed,
        subset=args.subset or None, val_fraction=args.val_fraction, device=args.device, amp=not args.no_amp,
        cache_dir=args.cache_dir, threads=args.threads,
        sandwich=SandwichSettings(random_subnets=args.random_subnets, distill=not args.no_distill))
    quiet = args.quiet or args.json
    log = (lambda _msg: None) if quiet else print
    result = run_supernet_train(job, progress=not quiet, log=log)
    if args.json:
        print_json({**result.summary(), "out": args.out})
    else:
        log(f"{result.message}: the largest sub-network's val acc {result.final_val_acc:.4f} after "
            f"{result.epochs_run} epoch(s); supernet in {args.out}/ (score networks with it, or "
            f"'nas supernet extract --supernet {args.out} --arch A -o model.pt')")
    if result.status == "diverged":
        print(f"training diverged: {result.message}", file=sys.stderr)
        return 1
    return 0


def _extract(args: argparse.Namespace) -> int:
    from nas.supernet.evaluate import SupernetScoring
    from nas.supernet.extract import extract_subnet
    from nas.train.device import use_cpu_threads

    use_cpu_threads(args.threads)
    scoring = SupernetScoring(calibration_images=args.calibration_images, val_images=args.val_images,
                              batch_size=args.batch_size, seed=args.seed)
    result = extract_subnet(args.supernet, args.arch, args.output, scoring=scoring, data=args.data,
                            device=args.device, progress=not args.json)
    if args.json:
        print_json(result)
        return 0
    print(f"wrote {result['weights']} (weights) and {result['arch']} (architecture {result['arch_hash'][:12]}): "
          f"the sub-network of the supernet in {result['supernet']} after {result['epochs_trained']} epoch(s), "
          f"BatchNorm re-estimated on {result['calibration_images']} training images")
    print(f"validation accuracy {result['val_acc']:.4f} (loss {result['val_loss']:.4f}) on {result['val_images']} "
          f"images of {result['data']}")
    print(f"next: nas export --arch {result['arch']} --weights {result['weights']} -o model.onnx, or "
          f"nas train --arch {result['arch']} --init {result['weights']} ... to fine-tune it")
    return 0


_TRAIN_DESCRIPTION = """\
Train the weight-sharing supernet of a search space once; afterwards any network of the space can be
scored with the supernet's weights in seconds instead of being trained (at 32x32 on 2 CPU
cores 0.4-0.6 / 1.1-1.5 / about 6 s on 150 / 1,000 / 5,000 validation images, by CPU; on the
AMD EPYC VM 1.14 s on 1,000, and 0.71 s with --cpu-bf16 of 'nas search' or 'nas adapt', which needs
a CPU with native bfloat16).

Sandwich rule (BigNAS): every step trains, on the same batch, the largest network of the space on the
labels, and the smallest plus --random-subnets random networks on the largest one's predictions
(in-place distillation), with one SGD step on the sum of the losses.

OUT receives supernet.json (the space, the data and the settings) first, then checkpoint.pt after every
epoch (and checkpoint-mid-epoch.pt every 10 minutes inside one), metrics.csv (the largest network's
validation accuracy, BatchNorm re-estimated) and metrics.json at the end. Interrupt at any time (even kill
-9): the same command resumes from the last save and ends with the weights of an uninterrupted run; a larger --epochs extends it. Exit status: 0 completed,
1 diverged, 2 user error.
"""

_TRAIN_EPILOG = """\
CIFAR-10 (recommended, on a GPU; the defaults are a CPU-sized check on digits):
  nas supernet train --data ../shared/datasets/cifar10 --out supernets/cse-cifar10 \\
      --epochs 120 --batch-size 128 --lr 0.1 --warmup-epochs 5 --random-subnets 2 --subset 0
  (not run here; keep the warm-up: 0.1 without one diverged within 10 steps on CPU, batch 128. About
  4 passes per step, mostly the largest network's, so roughly twice the time of
  training the largest network alone for as many epochs; resumable, so it can run in pieces)
On 2 CPU cores (measured on an Intel Xeon VM, --threads 2): all of CIFAR-10 with --subset 0 --epochs 5
  --batch-size 128 --lr 0.04 --warmup-epochs 1 took 96 min an epoch (before glibc kept large blocks in its
  heap, which made steps 17 % faster; see the README); one step alone peaks at 7.8 GB, plus about 1 GB of
  data, and the process holds up to 15 GB until memory runs short.
  Halve --batch-size (and --lr) on a machine with less memory
"""


def _register_train(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from nas.supernet.train import SandwichSettings, SupernetTrainJob

    d = {f.name: f.default for f in fields(SupernetTrainJob)}
    p = sub.add_parser("train", help="train the weight-sharing supernet of a space (sandwich rule, resumable)",
                       description=_TRAIN_DESCRIPTION, epilog=_TRAIN_EPILOG, formatter_class=RawDefaultsFormatter)
    p.add_argument("--space", metavar="FILE",
                   help=f"search space YAML (default: {DEFAULT_SPACE}, from the working directory or this checkout)")
    p.add_argument("--data", default="digits", metavar="SOURCE", help=DATA_HELP.replace("architecture's", "space's"))
    p.add_argument("--out", required=True, metavar="DIR",
                   help="supernet directory (created; resumed when it holds this supernet; refused when it holds "
                        "one of another space, data or sandwich settings)")
    s = p.add_argument_group("sandwich rule")
    s.add_argument("--random-subnets", type=non_negative_int, default=SandwichSettings.random_subnets, metavar="N",
                   help="random sub-networks per step besides the largest and the smallest (0 to 16)")
    s.add_argument("--no-distill", action="store_true",
                   help="the smaller networks learn from the labels instead of the largest one's predictions")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=positive_int, default=d["epochs"], metavar="N", help="total epochs of the run")
    g.add_argument("--batch-size", type=positive_int, default=d["batch_size"], metavar="N", help="training batch size")
    g.add_argument("--lr", type=positive_float, default=d["lr"], help="peak learning rate (cosine schedule)")
    g.add_argument("--weight-decay", type=non_negative_float, default=d["weight_decay"],
                   help="L2 weight decay on conv/linear weights (not on BN or biases)")
    g.add_argument("--label-smoothing", type=non_negative_float, default=d["label_smoothing"],
                   help="label smoothing of the largest network's loss, in [0, 1)")
    g.add_argument("--warmup-epochs", type=non_negative_float, default=d["warmup_epochs"], metavar="E",
                   help="linear learning-rate warm-up length in epochs (fractions allowed)")
    g.add_argument("--no-augment", action="store_true", help="no random crop (pad 4) and horizontal flip")
    g.add_argument("--no-flip", action="store_true",
                   help="random crops without horizontal flips (digits, text and anything a mirror changes)")
    g.add_argument("--seed", type=non_negative_int, default=d["seed"],
                   help="seed of the initial weights, validation split, subset, shuffling, augmentation and the "
                        "random sub-networks")
    g.add_argument("--device", default=d["device"], help="auto (CUDA when available), cpu, cuda or cuda:N")
    g.add_argument("--no-amp", action="store_true", help="CUDA: train in float32 instead of mixed precision")
    add_threads_option(g)
    a = p.add_argument_group("data")
    a.add_argument("--subset", type=non_negative_int, default=d["subset"] or 0, metavar="N",
                   help="train on a stratified subset of N images, validation capped at max(N/4, 2 per class) "
                        "(0: the whole training split)")
    a.add_argument("--val-fraction", type=positive_float, default=d["val_fraction"], metavar="F",
                   help="share of each class of the training set held out for validation, in (0, 0.5]")
    a.add_argument("--cache-dir", metavar="DIR",
                   help="where decoded image folders are cached (default $NAS_CACHE_DIR or ~/.cache/nas/datasets)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or progress lines")
    p.add_argument("--json", action="store_true", help="print metrics.json's summary (plus 'out') as JSON only")
    p.set_defaults(func=_train, resume_hint=RESUME_HINT)


def _register_extract(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from nas.supernet.evaluate import SupernetScoring

    p = sub.add_parser(
        "extract", help="write one sub-network of a trained supernet as an ordinary weights file",
        description=(
            "Extract the network ARCH from a trained supernet, re-estimate its BatchNorm statistics on training "
            "images of the data the supernet was trained on (read from DIR/supernet.json), print its validation "
            "accuracy, and write its weights (a state dict, which 'nas export --weights' and 'nas train --init' "
            "take) and the architecture beside them (model.pt -> model.arch.json). An architecture outside the "
            "supernet's space is refused (exit status 2)."),
        formatter_class=DefaultsFormatter)
    p.add_argument("--supernet", required=True, metavar="DIR", help="a directory of 'nas supernet train'")
    p.add_argument("--arch", required=True, metavar="ARCH", help=ARCH_HELP + "; a network of the supernet's space")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="weights file to write, e.g. model.pt")
    p.add_argument("--calibration-images", type=positive_int, default=SupernetScoring.calibration_images,
                   metavar="N", help="training images the BatchNorm statistics are re-estimated on")
    p.add_argument("--val-images", type=positive_int, metavar="N",
                   help="score on N validation images, a fixed class-stratified sample (default: the whole validation split)")
    p.add_argument("--batch-size", type=positive_int, default=SupernetScoring.batch_size, metavar="N",
                   help="evaluation batch size")
    p.add_argument("--seed", type=non_negative_int, default=SupernetScoring.seed,
                   help="seed of the calibration images drawn")
    p.add_argument("--data", metavar="SOURCE",
                   help="the supernet's dataset when it has moved (default: the --data recorded in supernet.json); "
                        "other data is refused")
    p.add_argument("--device", default="cpu", help="cpu, auto, cuda or cuda:N")
    add_threads_option(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON only")
    p.set_defaults(func=_extract)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("supernet", help="train a weight-sharing supernet of a space; extract its sub-networks",
                       description="Weight-sharing supernets: 'nas supernet train' trains one for a space, "
                                   "'nas supernet extract' writes one of its networks as an ordinary weights file.")
    commands = p.add_subparsers(dest="supernet_command", metavar="COMMAND", required=True)
    _register_train(commands)
    _register_extract(commands)
