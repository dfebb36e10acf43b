"""``nas retrain`` (retrain a search run's winners, export, report) and ``nas report``."""

from __future__ import annotations

import argparse

from nas.cli._args import add_threads_option
from nas.cli._output import RESUME_HINT, DefaultsFormatter, print_json
from nas.retrain import DEFAULT_REFERENCES, RECIPES, RetrainJob, build_report, run_retrain
from nas.retrain.recipe import AUGMENTATIONS

__all__ = ["register"]


def _references(args: argparse.Namespace) -> tuple[str, ...]:
    if args.no_references:
        return ()
    if args.references:
        return tuple(n.strip() for n in args.references.split(",") if n.strip())
    return DEFAULT_REFERENCES


def _retrain(args: argparse.Namespace) -> int:
    job = RetrainJob(run=args.run, top=args.top, recipe=args.recipe, epochs=args.epochs, batch_size=args.batch_size,
                     lr=args.lr, seeds=args.seeds, data=args.data, table=args.table, subset=args.subset,
                     test_subset=args.test_subset, references=_references(args),
                     reference_cache=args.reference_cache, device=args.device, progress=not args.json,
                     threads=args.threads, augment=args.augment, init=args.init, supernet=args.supernet)
    result = run_retrain(job, log=(lambda _msg: None) if args.json else print)
    if args.json:
        print_json(result)
    return 0


def _report(args: argparse.Namespace) -> int:
    md, png = build_report(args.run)
    print(f"wrote {md} and {png}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "retrain", help="retrain a search run's best architectures from scratch, export ONNX and write the report",
        description=(
            "Retrain the best architectures of a 'nas search' run from scratch, or from a supernet's weights with "
            "--init supernet, or one of them from a weights file with --init FILE (the Pareto front of a pareto run, the "
            "best trials by reward within budget of a reward run) on all training images (the search's train + "
            "validation), test them on the test split (used here only), export ONNX with a parity check, predict "
            "their latency with the run's table and measure it when this machine is the table's device (its CPU model, "
            "runtime version and converter: measured otherwise, the figures would compare two devices; an "
            "onnxruntime table only, as the export is ONNX). The "
            "reference networks are retrained with the same recipe (once; they are cached). Writes "
            "RUN_DIR/retrain/results.csv, RUN_DIR/report.md and RUN_DIR/report.png. Interrupt at any time: re-running "
            "the same command skips finished networks and resumes the current one from its last epoch."),
        formatter_class=DefaultsFormatter)
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="the search run directory (nas search --out)")
    p.add_argument("--top", type=int, default=3, metavar="K", help="how many architectures to retrain")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="short",
                   help="full: 200 epochs cosine SGD, batch 128, lr 0.1, wd 5e-4, label smoothing 0.1, crop+flip; "
                        "short: the same for 5 epochs at batch 64, lr 0.05 (a CPU-scale check)")
    p.add_argument("--epochs", type=int, help="override the recipe's epochs")
    p.add_argument("--batch-size", type=int, help="override the recipe's batch size")
    p.add_argument("--lr", type=float, help="override the recipe's peak learning rate")
    p.add_argument("--augment", choices=AUGMENTATIONS,
                   help="training augmentation: crop+flip (the recipes' default), crop (random crops, no horizontal "
                        "flips: for digits, text and anything a mirror changes) or none; results with different "
                        "settings are kept apart (recipe tag -crop / -noaug, reference cache key)")
    p.add_argument("--init", default="scratch", metavar="scratch|supernet|FILE",
                   help="the winners' initial weights: scratch (random); supernet (each winner's weights in the "
                        "supernet of --supernet, BatchNorm re-estimated; results under the tag ...-supernet); or a "
                        "weights FILE of 'nas supernet extract' (its FILE.arch.json beside it) or a 'nas train' run "
                        "directory: the winner of that architecture starts from it, the others are not retrained "
                        "(results under ...-init<digests>). The references always start from scratch")
    p.add_argument("--supernet", metavar="DIR",
                   help="with --init supernet: a directory of 'nas supernet train' on the search's space")
    p.add_argument("--seeds", type=int, default=1, metavar="S", help="train seeds 0..S-1 of every network")
    p.add_argument("--data", help="dataset (default: the one the search used, read from the run)")
    p.add_argument("--table", metavar="TABLE", help="latency table (default: the one the search used)")
    p.add_argument("--subset", type=int, metavar="N",
                   help="train on a stratified subset of N images (CPU-scale checks; flagged in the report)")
    p.add_argument("--test-subset", type=int, metavar="N",
                   help="test on a stratified subset of N test images (CPU-scale checks; flagged in the report)")
    p.add_argument("--references", metavar="NAMES",
                   help=f"comma-separated reference networks (default: {','.join(DEFAULT_REFERENCES)})")
    p.add_argument("--no-references", action="store_true", help="retrain the winners only")
    p.add_argument("--reference-cache", metavar="DIR",
                   help="where references are trained once and reused (default: $NAS_CACHE_DIR/references or "
                        "~/.cache/nas/references)")
    p.add_argument("--device", default="auto", help="torch device for training: auto, cpu, cuda, cuda:N")
    add_threads_option(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of progress lines")
    p.set_defaults(func=_retrain, resume_hint=RESUME_HINT)

    r = sub.add_parser(
        "report", help="rebuild a run's report.md / report.png from its stored retraining results",
        description="Rebuild RUN_DIR/report.md and RUN_DIR/report.png from RUN_DIR/retrain/results.csv and the run's "
                    "files, without training or measuring anything.")
    r.add_argument("--run", required=True, metavar="RUN_DIR", help="the search run directory")
    r.set_defaults(func=_report)
