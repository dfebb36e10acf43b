"""``nas train``: train one architecture on a dataset into a resumable run directory."""

from __future__ import annotations

import argparse
import sys

from nas.cli._args import add_threads_option, non_negative_float, non_negative_int, positive_float, positive_int
from nas.cli._output import RESUME_HINT, DefaultsFormatter, print_json
from nas.cli.arch import ARCH_HELP
from nas.train.job import TrainJob, run_train_job

__all__ = ["register", "DATA_HELP"]

DATA_HELP = ("'digits' (scikit-learn's embedded 8x8 digits, offline), an image-folder root holding "
             "train/<class>/*.jpg|png (and optionally test/<class>/), or a CIFAR-10 python-batches folder "
             "(cifar-10-batches-py); images are resized to the architecture's input size")


def _run(args: argparse.Namespace) -> int:
    job = TrainJob(arch=args.arch, data=args.data, out=args.out, epochs=args.epochs, batch_size=args.batch_size,
                   lr=args.lr, weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
                   warmup_epochs=args.warmup_epochs, augment=not args.no_augment, seed=args.seed,
                   subset=args.subset, val_fraction=args.val_fraction, device=args.device, amp=not args.no_amp,
                   cache_dir=args.cache_dir, flip=not args.no_flip, threads=args.threads, init=args.init)
    quiet = args.quiet or args.json
    result = run_train_job(job, progress=not quiet, log=(lambda _msg: None) if quiet else print)
    if args.json:
        print_json(result)
    if result["status"] == "diverged":
        print(f"training diverged: {result['message']}", file=sys.stderr)
        return 1
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "train", help="train one architecture on a dataset (resumable), report validation and test accuracy",
        description=(
            "Train an architecture with the project's training loop (SGD with Nesterov momentum, cosine schedule "
            "with optional warm-up, label smoothing, random crop + flip; CUDA with mixed precision when present). "
            "OUT receives checkpoint.pt after every epoch (and checkpoint-mid-epoch.pt every 10 minutes inside "
            "one), metrics.csv, arch.json and, at the end, metrics.json with the final validation and test "
            "accuracy. Re-running the same command resumes from the last save; a larger --epochs extends the run (the cosine schedule is stretched to the new "
            "length). Exit status: 0 completed, 1 diverged (non-finite loss), 2 user error."),
        formatter_class=DefaultsFormatter)
    p.add_argument("--arch", required=True, metavar="ARCH", help=ARCH_HELP)
    p.add_argument("--data", default="digits", metavar="SOURCE", help=DATA_HELP)
    p.add_argument("--epochs", type=positive_int, required=True, metavar="N", help="total epochs of the run")
    p.add_argument("--out", required=True, metavar="DIR", help="run directory (created; resumed when it exists)")
    p.add_argument("--init", metavar="CKPT",
                   help="start from these weights instead of random ones: a file of 'nas supernet extract', a "
                        "state_dict, or a checkpoint.pt of 'nas train' (or its run directory); recorded in run.json, "
                        "a resume with other initial weights is refused")
    g = p.add_argument_group("training")
    g.add_argument("--batch-size", type=positive_int, default=128, metavar="N", help="training batch size")
    g.add_argument("--lr", type=positive_float, default=0.05, help="peak learning rate (scale with batch size)")
    g.add_argument("--weight-decay", type=non_negative_float, default=4e-5,
                   help="L2 weight decay on conv/linear weights (not on BN or biases)")
    g.add_argument("--label-smoothing", type=non_negative_float, default=0.1, help="label smoothing in [0, 1)")
    g.add_argument("--warmup-epochs", type=non_negative_float, default=0.0, metavar="E",
                   help="linear learning-rate warm-up length in epochs (fractions allowed)")
    g.add_argument("--no-augment", action="store_true", help="no random crop (pad 4) and horizontal flip")
    g.add_argument("--no-flip", action="store_true",
                   help="random crops without horizontal flips (digits, text and anything a mirror changes)")
    g.add_argument("--seed", type=non_negative_int, default=0,
                   help="seed of the initial weights, validation split, subset, shuffling and augmentation")
    g.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    g.add_argument("--no-amp", action="store_true", help="CUDA: train in float32 instead of mixed precision")
    add_threads_option(g)
    d = p.add_argument_group("data")
    d.add_argument("--subset", type=positive_int, metavar="N",
                   help="train on a stratified subset of N images (validation capped at max(N/4, 2 per class); "
                        "the test split stays whole)")
    d.add_argument("--val-fraction", type=positive_float, default=0.1, metavar="F",
                   help="share of each class of the training set held out for validation, in (0, 0.5]")
    d.add_argument("--cache-dir", metavar="DIR",
                   help="where decoded image folders are cached (default $NAS_CACHE_DIR or ~/.cache/nas/datasets)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or progress lines")
    p.add_argument("--json", action="store_true", help="print metrics.json (plus 'out') as JSON, nothing else")
    p.set_defaults(func=_run, resume_hint=RESUME_HINT)
