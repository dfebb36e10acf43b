"""``nas adapt``: NetAdapt a trained network onto a latency budget."""

from __future__ import annotations

import argparse

from nas.adapt import RULES, AdaptJob, AdaptResult, AdaptSettings, run_adapt_job
from nas.cli._args import non_negative_int, positive_int
from nas.cli._output import RESUME_HINT, RawDefaultsFormatter, print_json
from nas.errors import ConfigError
from nas.latency import ON_MISSING

__all__ = ["register", "EXIT_UNREACHABLE"]

#: Exit status when the budget could not be reached (the closest network is still written).
EXIT_UNREACHABLE = 3


#: Options of the fine-tuning loop that mean nothing with --supernet (nothing is trained there).
_FINETUNE_ONLY = ("weights", "steps", "lr", "final_epochs", "final_lr", "bn_recalibration", "allow_cse", "allow_drop",
                  "cse_reduction", "cse_cap")
_SUPERNET_ONLY = ("calibration_images", "val_images", "cpu_bf16")


def _option(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _settings(args: argparse.Namespace) -> AdaptSettings:
    return AdaptSettings(
        budget_ms=args.latency_ms, delta=args.delta, delta_decay=args.delta_decay, steps=args.steps, lr=args.lr,
        batch_size=AdaptSettings.batch_size if args.batch_size is None else args.batch_size,
        final_epochs=args.final_epochs, final_lr=args.final_lr, rule=args.rule,
        allow_cse=args.allow_cse, allow_drop=args.allow_drop, cse_reduction=args.cse_reduction, cse_cap=args.cse_cap,
        max_iterations=args.max_iterations, seed=args.seed, device=args.device,
        bn_recalibration=args.bn_recalibration)


def _run_supernet(args: argparse.Namespace) -> AdaptResult:
    from nas.adapt.supernet_job import SupernetAdaptJob, run_supernet_adapt_job
    from nas.supernet import SupernetScoring

    given = [_option(d) for d in _FINETUNE_ONLY if getattr(args, d) != args.adapt_defaults[d]]
    if given:
        raise ConfigError(f"{', '.join(given)}: only for the fine-tuning loop; with --supernet no proposal is trained "
                          "(the supernet's weights score them, and the result is extracted from it): drop "
                          f"{'them' if len(given) > 1 else 'it'}, or drop --supernet")
    scoring = SupernetScoring(
        calibration_images=256 if args.calibration_images is None else args.calibration_images,
        val_images=args.val_images, seed=args.seed,
        cpu_bf16=False if args.cpu_bf16 is None else args.cpu_bf16,
        batch_size=SupernetScoring.batch_size if args.batch_size is None else args.batch_size)
    job = SupernetAdaptJob(supernet=args.supernet, target=args.target, out=args.out, settings=_settings(args),
                           arch=args.arch, data=args.data, subset=args.subset, space=args.space,
                           on_missing=args.on_missing, scoring=scoring)
    return run_supernet_adapt_job(job, progress=not args.json, log=(lambda _msg: None) if args.json else print)


def _run_finetune(args: argparse.Namespace) -> AdaptResult:
    given = [_option(d) for d in _SUPERNET_ONLY if getattr(args, d) is not None]
    if given:
        raise ConfigError(f"{', '.join(given)}: only with --supernet DIR (supernet scoring); drop it, or add "
                          "--supernet")
    missing = [_option(d) for d in ("arch", "weights") if getattr(args, d) is None]
    if missing:
        raise ConfigError(f"{' and '.join(missing)}: required (the trained network and its weights), unless "
                          "--supernet DIR scores the proposals")
    job = AdaptJob(arch=args.arch, weights=args.weights, target=args.target, out=args.out, settings=_settings(args),
                   data=args.data or "digits", space=args.space, subset=args.subset, on_missing=args.on_missing)
    return run_adapt_job(job, progress=not args.json, log=(lambda _msg: None) if args.json else print)


def _run(args: argparse.Namespace) -> int:
    result = _run_supernet(args) if args.supernet is not None else _run_finetune(args)
    files = "arch.json, history.csv" if args.supernet is not None else "arch.json, weights.pt, history.csv"
    scored = "supernet val acc" if args.supernet is not None else "val acc"
    if args.json:
        print_json(result.to_dict())
    else:
        print(f"{result.status}: {result.start_latency_ms:.3f} -> {result.latency_ms:.3f} ms predicted "
              f"(budget {args.latency_ms:g} ms), {scored} {result.start_accuracy:.4f} -> {result.accuracy:.4f}; "
              f"results in {result.out_dir}/: {files}, adapt.png, summary.md")
    return EXIT_UNREACHABLE if result.status == "unreachable" else 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "adapt", help="NetAdapt: shrink a trained network's widths until its predicted latency meets a budget",
        description=(
            "NetAdapt: every iteration proposes, per block and per stage, the smallest width cut that lowers the\n"
            "predicted latency by delta, fine-tunes each for T steps, keeps the best dAcc/|dLatency|; until the budget.\n"
            "With --supernet DIR the proposals are the cheaper blocks the supernet's space allows (a smaller\n"
            "expansion or kernel, SE off, another block type, skip, a stage one block shorter), scored by the\n"
            "supernet without any training."),
        epilog=(
            "The result is then fine-tuned for --final-epochs (with --supernet: not; arch.json is a network of the\n"
            "space, its weights are the supernet's). Re-running the same command resumes after the last\n"
            "finished iteration. Exit status: 0 budget met (or already met: the original network is written),\n"
            "2 bad input, 3 budget unreachable (the closest network found is written)."),
        formatter_class=RawDefaultsFormatter)
    p.add_argument("--arch",
                   help="the trained network: a reference name (mobilenetv2-cifar[@alpha]), an arch JSON file or a "
                        "compact string; required, except with --supernet (a network of its space; if not given, its "
                        "largest)")
    p.add_argument("--weights", metavar="CKPT",
                   help="its weights: a weights file (nas.train.save_weights) or a training checkpoint.pt; required, "
                        "except with --supernet (not used there)")
    p.add_argument("--supernet", metavar="DIR",
                   help="score the proposals with this trained supernet (nas supernet train) instead of fine-tuning "
                        "them; proposals stay inside its space")
    p.add_argument("--target", required=True, metavar="TABLE", help="latency table of the target device (JSON)")
    p.add_argument("--latency-ms", required=True, type=float, metavar="MS", help="latency budget (predicted, ms)")
    p.add_argument("--data",
                   help="'digits' (embedded), an image folder with train/<class>/, or a CIFAR-10 python-batches folder "
                        "(default: digits; with --supernet, the data and split it was trained on)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (re-use it to resume)")
    p.add_argument("--space", metavar="FILE", help="check that the table was built for this search space (with --supernet: that it is the "
                        "supernet's)")
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
    p.add_argument("--batch-size", type=positive_int, default=None, metavar="N",
                   help=f"fine-tuning batch size (default: {AdaptSettings.batch_size}; with --supernet: the "
                        "scoring's, 256 if not given)")
    p.add_argument("--bn-recalibration", type=int, default=512, metavar="N",
                   help="re-estimate BatchNorm statistics from N training images before each accuracy (0: off)")
    p.add_argument("--subset", type=int, help="use a stratified subset of this many training images; refused with "
                                              "--supernet, which scores on the supernet's own split (default: all)")
    p.add_argument("--calibration-images", type=positive_int, metavar="N",
                   help="with --supernet: training images each proposal's BatchNorm statistics are re-estimated "
                        "from (default: 256)")
    p.add_argument("--val-images", type=positive_int, metavar="N",
                   help="with --supernet: score on N validation images, a fixed class-stratified sample (default: all)")
    p.add_argument("--cpu-bf16", action="store_true", default=None,
                   help="with --supernet: score in bfloat16 on a CPU that computes in it natively (AVX512-BF16 or "
                        "AMX; refused elsewhere): faster, scores differ slightly from float32 ones")
    p.add_argument("--max-iterations", type=int, default=500, help="stop after this many iterations")
    p.add_argument("--on-missing", choices=ON_MISSING, default="auto",
                   help="channel counts missing from the table: auto = measure when the table is this machine's, "
                        "else interpolate")
    p.add_argument("--seed", type=non_negative_int, default=0,
                   help="seed for the validation split and the fine-tuning (with --supernet: for the BatchNorm "
                        "calibration images; the split is the supernet's)")
    p.add_argument("--device", default="auto",
                   help="torch device for fine-tuning (or supernet scoring): auto, cpu, cuda")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of progress lines")
    p.set_defaults(func=_run, resume_hint=RESUME_HINT,
                   adapt_defaults={d: p.get_default(d) for d in _FINETUNE_ONLY})
