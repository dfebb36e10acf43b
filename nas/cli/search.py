"""``nas search``: the main job."""

from __future__ import annotations

import argparse

from nas.cli._output import print_json
from nas.search.job import SearchJob, run_search_job
from nas.search.reward import HARD, RewardSpec
from nas.search.runner import OBJECTIVES, SAMPLERS

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    reward = HARD if args.constraint == "hard" else RewardSpec(args.w, args.w)
    job = SearchJob(
        target=args.target, space=args.space, latency_ms=args.latency_ms, data=args.data, trials=args.trials,
        objective=args.objective, reward=reward, sampler=args.sampler, epochs=args.epochs, subset=args.subset,
        batch_size=args.batch_size, storage=args.storage, study=args.study, out=args.out, seed=args.seed,
        baselines=not args.no_baselines, skip_over=args.skip_over, prune=not args.no_prune, device=args.device,
        heartbeat_s=args.heartbeat, grace_s=args.grace, threads=args.threads,
    )
    result = run_search_job(job, log=(lambda _msg: None) if args.json else print)
    if args.json:
        print_json(result)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "search", help="search the most accurate network within a latency budget on a measured device",
        description=(
            "Search a space for the most accurate network that meets a latency budget on the device a table was "
            "measured on. Each trial samples an architecture (Optuna), predicts its latency from the table and "
            "proxy-trains it for a few epochs. Interrupt at any time: re-running the same command resumes the study. "
            "Run the same command on several machines with --storage postgresql://... to share one study."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--target", required=True, metavar="TABLE", help="latency table of the target device (JSON)")
    p.add_argument("--space", metavar="FILE", help="search space (default: the table's own space)")
    p.add_argument("--latency-ms", type=float, metavar="MS",
                   help="latency budget (default: half of mobilenetv2-cifar's predicted latency on the table, or the "
                        "midpoint of the space's fastest and slowest network when that reference does not fit)")
    p.add_argument("--data", default="digits",
                   help="'digits' (embedded, offline), an image folder with train/<class>/ (and test/), or a "
                        "CIFAR-10 python-batches folder")
    p.add_argument("--trials", type=int, default=16, help="number of trials in the study (all workers together)")
    p.add_argument("--objective", choices=OBJECTIVES, default="reward",
                   help="reward: MnasNet ACC*(LAT/T)^w; pareto: accuracy and latency (NSGA-II), budget as constraint")
    p.add_argument("--w", type=float, default=-0.07, help="reward exponent w (soft constraint; MobileNetV3 used -0.15)")
    p.add_argument("--constraint", choices=["soft", "hard"], default="soft",
                   help="hard: w = 0 within budget and -1 over it (overrides --w)")
    p.add_argument("--sampler", choices=SAMPLERS, help="Optuna sampler (default: tpe for reward, nsga2 for pareto)")
    p.add_argument("--epochs", type=int, default=3, help="proxy-training epochs per trial")
    p.add_argument("--subset", type=int, help="train on a stratified subset of this many images (default: all)")
    p.add_argument("--batch-size", type=int, default=64, help="proxy-training batch size")
    p.add_argument("--storage", metavar="URL",
                   help="Optuna storage URL, e.g. postgresql://user:pw@host/db (default: SQLite in the run dir)")
    p.add_argument("--study", default="search", help="study name inside the storage")
    p.add_argument("--out", metavar="RUN_DIR",
                   help="run directory (default: runs/<table>-<objective>-<budget>ms-<data>)")
    p.add_argument("--seed", type=int, default=0, help="seed for the sampler, data split and training")
    p.add_argument("--skip-over", type=float, default=1.25, metavar="X",
                   help="train networks predicted up to X times the budget (the reward's soft constraint ranks "
                        "them); slower candidates are redrawn or repaired to the budget before a trial starts. "
                        "1: only networks within the budget")
    p.add_argument("--no-prune", action="store_true", help="train every candidate for all epochs")
    p.add_argument("--no-baselines", action="store_true",
                   help="skip proxy-training the MobileNetV2 width-multiplier baselines for the plot")
    p.add_argument("--device", default="auto", help="torch device for training: auto, cpu, cuda")
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="CPU threads for training; 0: as many as cores left idle by other work (1-minute load "
                        "average), since busy cores make multi-threaded training several times slower")
    p.add_argument("--heartbeat", type=int, default=5, metavar="S",
                   help="seconds between a running trial's heartbeats in the storage")
    p.add_argument("--grace", type=int, default=20, metavar="S",
                   help="a trial without a heartbeat for this long is failed and retried by another worker")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of progress lines")
    p.set_defaults(func=_run)
