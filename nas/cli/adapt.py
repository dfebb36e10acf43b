"""``nas adapt``: NetAdapt a trained network onto a latency budget."""

from __future__ import annotations

import argparse

from nas.adapt import RULES, AdaptJob, AdaptSettings, run_adapt_job
from nas.cli._args import non_negative_int
from nas.cli._output import RESUME_HINT, RawDefaultsFormatter, print_json
from nas.latency import ON_MISSING

__all__ = ["register", "EXIT_UNREACHABLE"]

#: Exit status when the budget could not be reached (the closest network is still written).
EXIT_UNREACHABLE = 3


def _run(args: argparse.Namespace) -> int:
    settings = AdaptSettings(
        budget_ms=args.latency_ms, delta=args.delta, delta_decay=args.delta_decay, steps=args.steps, lr=args.lr,
        batch_size=args.batch_size, final_epochs=args.final_epochs, final_lr=args.final_lr, rule=args.rule,
        allow_cse=args.allow_cse, allow_drop=args.allow_drop, cse_reduction=args.cse_reduction, cse_cap=args.cse_cap,
        max_iterations=args.max_iterations, seed=args.seed, device=args.device,
        bn_recalibration=args.bn_recalibration)
    job = AdaptJob(arch=args.arch, weights=args.weights, target=args.target, out=args.out, settings=settings,
                   data=args.data, space=args.space, subset=args.subset, on_missing=args.on_missing)
    result = run_adapt_job(job, progress=not args.json, log=(lambda _msg: None) if args.json else print)
    if args.json:
        print_json(result.to_dict())
    else:
        print(f"{result.status}: {result.start_latency_ms:.3f} -> {result.latency_ms:.3f} ms predicted "
              f"(budget {args.latency_ms:g} ms), val acc {result.start_accuracy:.4f} -> {result.accuracy:.4f}; "
              f"results in {result.out_dir}/: arch.json, weights.pt, history.csv, adapt.png, summary.md")
    return EXIT_UNREACHABLE if result.status == "unreachable" else 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "adapt", help="NetAdapt: shrink a trained network's widths until its predicted latency meets a budget",
        description=(
            "NetAdapt: every iteration proposes, per block and per stage, the smallest width cut that lowers the\n"
            "predicted latency by delta, fine-tunes each for T steps, keeps the best dAcc/|dLatency|; until the budget."),
        epilog=(
            "The result is then fine-tuned for --final-epochs. Re-running the same command resumes after the last\n"
            "finished iteration. Exit status: 0 budget met (or already met: the original network is written),\n"
            "2 bad input, 3 budget unreachable (the closest network found is written)."),
        formatter_class=RawDefaultsFormatter)
    p.add_argument("--arch", required=True,
                   help="the trained network: a reference name (mobilenetv2-cifar[@alpha]), an arch JSON file or a "
                        "compact string")
    p.add_argument("--weights", required=True, metavar="CKPT",
                   help="its weights: a weights file (nas.train.save_weights) or a training checkpoint.pt")
    p.add_argument("--target", required=True, metavar="TABLE", help="latency table of the target device (JSON)")
    p.add_argument("--latency-ms", required=True, type=float, metavar="MS", help="latency budget (predicted, ms)")
    p.add_argument("--data", default="digits",
                   help="'digits' (embedded), an image folder with train/<class>/, or a CIFAR-10 python-batches folder")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (re-use it to resume)")
    p.add_argument("--space", metavar="FILE", help="check that the table was built for this search space")
    p.add_argument("--delta", type=float, default=0.01,
                   help="latency cut per iteration, as a fraction of the starting latency (MobileNetV3: 0.01)")
    p.add_argument("--delta-decay", type=float, default=1.0, help="delta_i = delta * decay**i")
    p.add_argument("--steps", type=int, default=50, metavar="T",
                   help="fine-tuning steps per proposal before its accuracy is measured (the paper: 10000)")
    p.add_argument("--lr", type=float, default=0.01, help="learning rate of the short per-proposal fine-tuning")
    p.add_argument("--rule", choices=RULES, default="ratio",
                   help="ratio: keep the highest dAcc/|dLatency| (MobileNetV3); accuracy: the highest accuracy "
                        "(original NetAdapt)")
    p.add_argument("--allow-cse", action="store_true",
                   help="also propose replacing an inverted-residual block's projection with a CSE block")
    p.add_argument("--allow-drop", action="store_true", help="also propose dropping a repeated (residual) block")
    p.add_argument("--cse-reduction", type=int, default=16, help="CSE reduction ratio r of --allow-cse proposals")
    p.add_argument("--cse-cap", type=int, default=16, help="CSE minimum hidden units of --allow-cse proposals")
    p.add_argument("--final-epochs", type=int, default=5, help="fine-tuning epochs of the result (0: none)")
    p.add_argument("--final-lr", type=float, default=0.02, help="peak learning rate of the final fine-tuning")
    p.add_argument("--batch-size", type=int, default=64, help="fine-tuning batch size")
    p.add_argument("--bn-recalibration", type=int, default=512, metavar="N",
                   help="re-estimate BatchNorm statistics from N training images before each accuracy (0: off)")
    p.add_argument("--subset", type=int, help="use a stratified subset of this many training images (default: all)")
    p.add_argument("--max-iterations", type=int, default=500, help="stop after this many iterations")
    p.add_argument("--on-missing", choices=ON_MISSING, default="auto",
                   help="channel counts missing from the table: auto = measure when the table is this machine's, "
                        "else interpolate")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed for the validation split and the fine-tuning")
    p.add_argument("--device", default="auto", help="torch device for fine-tuning: auto, cpu, cuda")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of progress lines")
    p.set_defaults(func=_run, resume_hint=RESUME_HINT)
