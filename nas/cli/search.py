"""``nas search``: the main job."""

from __future__ import annotations

import argparse

from nas.cli._args import add_threads_option, non_negative_int
from nas.cli._output import RESUME_HINT, print_json
from nas.errors import SearchError
from nas.search.adapt_phase import ADAPT_SKIP_OVER, AdaptPhase
from nas.search.budget import DEFAULT_BUDGET_FRACTION
from nas.search.confirm import Confirmation
from nas.search.ground_truth import TABLE_VALUES
from nas.search.job import SearchJob, run_search_job
from nas.search.reward import HARD, RewardSpec
from nas.search.runner import OBJECTIVES, SAMPLERS
from nas.search.scoring import DEFAULT_TRIALS, SUPERNET_SAMPLER, SUPERNET_TRIALS, SUPERNET_VAL_IMAGES
from nas.search.specialize import run_specialization
from nas.supernet import SupernetScoring

__all__ = ["register"]

DEFAULTS = SearchJob(target="")
SCORING = SupernetScoring()


def _proxy_options(args: argparse.Namespace) -> dict[str, int | None]:
    """``--subset``, ``--epochs`` and ``--batch-size`` for the job (defaults when not given); refused when given
    with ``--accuracy-table`` or ``--supernet``, which train nothing, rather than silently ignored."""
    given = [flag for flag, value in (("--subset", args.subset), ("--epochs", args.epochs),
                                      ("--batch-size", args.batch_size)) if value is not None]
    instead = "--accuracy-table" if args.accuracy_table else "--supernet" if args.supernet else None
    if given and instead:
        what = "the table gives every accuracy" if instead == "--accuracy-table" else \
            "the supernet scores every trial on its own data and split"
        raise SearchError(f"{', '.join(given)}: proxy-training option{'s' if len(given) > 1 else ''}, but nothing is "
                          f"trained with {instead} ({what}); drop {'them' if len(given) > 1 else 'it'}")
    subset = DEFAULTS.subset if args.subset is None else args.subset or None  # 0: the whole training split
    return {"subset": subset, "epochs": DEFAULTS.epochs if args.epochs is None else args.epochs,
            "batch_size": DEFAULTS.batch_size if args.batch_size is None else args.batch_size}


def _run(args: argparse.Namespace) -> int:
    reward = HARD if args.constraint == "hard" else RewardSpec(args.w, args.w)
    job = SearchJob(
        target=args.target[0], space=args.space, latency_ms=args.latency_ms, data=args.data, trials=args.trials,
        objective=args.objective, reward=reward, sampler=args.sampler, **_proxy_options(args), storage=args.storage, study=args.study, out=args.out, seed=args.seed,
        baselines=not args.no_baselines, skip_over=args.skip_over, prune=not args.no_prune, device=args.device,
        heartbeat_s=args.heartbeat, grace_s=args.grace, threads=args.threads,
        adapt=AdaptPhase(delta=args.adapt_delta, steps=args.adapt_steps, epochs=args.adapt_epochs) if args.adapt else None,
        confirm=Confirmation(top=args.confirm_top, seeds=args.confirm_seeds),
        accuracy_table=args.accuracy_table, accuracy_table_value=args.accuracy_table_value,
        supernet=args.supernet, calibration_images=args.calibration_images, val_images=args.val_images,
        cpu_bf16=args.cpu_bf16,
    )
    log = (lambda _msg: None) if args.json else print
    if len(args.target) > 1:
        result = run_specialization(job, args.target, log=log)
    else:
        result = run_search_job(job, log=log)
    if args.json:
        print_json(result)
    return 0


_DESCRIPTION = """\
Search a space for the most accurate network that meets a latency budget on the device a
latency table was measured on.

Each trial: the sampler (Optuna) proposes an architecture; the table predicts its latency at
once; candidates over --skip-over x the budget are redrawn, or repaired to it, before any trial
is stored; the network is proxy-trained for a few epochs and validated after each, and poor
candidates are stopped early. Everything needed to rebuild a trial is stored on it. After the
trials, the best few networks are trained again with more seeds and the winner is the best on
the mean (one short proxy training is a noisy measurement).

With --supernet DIR (a supernet trained by 'nas supernet train') nothing is trained: each trial
is scored with the supernet's shared weights in seconds (32x32 on 2 cores: about 1.1-1.5 s on 1,000 validation images, 0.7 s with --cpu-bf16), on the supernet's own data and
validation split; thousands of trials (evolution) are affordable. Repeat --target to search for
several devices at once: one search per device in RUN_DIR/<table name>/, sharing the scores, and
RUN_DIR/specialization.md: each device's winner and its predicted latency on every device.

Interrupt at any time (even kill -9): re-running the same command resumes the study. Run the
same command on several machines with --storage postgresql://... to share one study.
"""

_EPILOG = """\
examples:
  nas search --target latency_tables/ort-cpu-1t.json
  nas search --target T.json --data ../shared/datasets/cifar10 --subset 5000 --trials 40 --epochs 5
  nas search --target T.json --objective pareto --latency-ms 8
  nas search --target T.json --storage postgresql://nas:pw@db-host/nas --study cifar-8ms   # on every machine
  nas search --supernet runs/supernet-cifar --target phone.json --target cpu.json   # one network per device
"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("search", help="search the most accurate network within a latency budget on a measured device",
                       description=_DESCRIPTION, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("what to search")
    g.add_argument("--target", required=True, action="append", metavar="TABLE",
                   help="latency table of the target device (JSON); with --supernet (or --accuracy-table) give it "
                        "once per device to search for several devices (RUN_DIR/<table name>/ each, and "
                        "RUN_DIR/specialization.md, .csv and pareto_fronts.png across them)")
    g.add_argument("--space", metavar="FILE",
                   help="search space YAML (default: the table's own space, or the supernet's; another space is "
                        "refused)")
    g.add_argument("--latency-ms", type=float, metavar="MS",
                   help=f"latency budget (default: {DEFAULT_BUDGET_FRACTION:g} x mobilenetv2-cifar's predicted "
                        "latency on the table, or the midpoint of the space's fastest and slowest networks when that "
                        "reference does not fit the space); below the space's fastest network is refused")
    g.add_argument("--objective", choices=OBJECTIVES, default="reward",
                   help="reward (default): MnasNet's ACC x (LAT/T)^w; pareto: accuracy up and latency down "
                        "(NSGA-II), the budget as a constraint")
    g.add_argument("--w", type=float, default=-0.07,
                   help="reward exponent w, soft constraint (default -0.07, MnasNet; MobileNetV3 used -0.15)")
    g.add_argument("--constraint", choices=["soft", "hard"], default="soft",
                   help="hard: w = 0 within the budget and -1 over it, overriding --w (default: soft)")
    g.add_argument("--sampler", choices=SAMPLERS,
                   help="tpe, nsga2, evolution (regularized evolution, Real et al. 2019) or random "
                        f"(default: tpe for reward, nsga2 for pareto; {SUPERNET_SAMPLER} with --supernet)")
    g.add_argument("--trials", type=int, metavar="N",
                   help=f"trials in the study, all workers together (default: {DEFAULT_TRIALS}; {SUPERNET_TRIALS} "
                        "with --supernet, per device)")
    g.add_argument("--skip-over", type=float, metavar="X",
                   help="train candidates predicted up to X x the budget as drawn, slower ones are redrawn or "
                        "repaired to the budget (default: 1: only networks within the budget; "
                        f"{ADAPT_SKIP_OVER:g} with --adapt, so the soft reward can trade a little latency for accuracy, "
                        "as in MnasNet, and NetAdapt trims the winner onto the budget)")
    g.add_argument("--seed", type=non_negative_int, default=0, help="seed of the sampler, data split and training; with --supernet also of the BatchNorm "
                        "calibration sample (so its kept scores are another seed's); with --accuracy-table, which of a "
                        "network's recorded trainings a trial reads (default: 0)")

    g = p.add_argument_group("proxy training")
    g.add_argument("--data",
                   help="'digits' (default: embedded, offline), an image folder with train/<class>/ (and test/), or "
                        "a CIFAR-10 python-batches folder; with --supernet: the supernet's own data (default), split as "
                        "for its training; a path given must hold that same data")
    g.add_argument("--subset", type=int, metavar="K",
                   help=f"train on a stratified subset of K images, validate on K/4 (default: {DEFAULTS.subset}; "
                        "0: the whole training split). --subset, --epochs and --batch-size are refused with "
                        "--supernet (which scores on the supernet's own split) and --accuracy-table")
    g.add_argument("--epochs", type=int, metavar="E", help=f"epochs per trial (default: {DEFAULTS.epochs})")
    g.add_argument("--batch-size", type=int, metavar="B", help=f"batch size (default: {DEFAULTS.batch_size})")
    g.add_argument("--no-prune", action="store_true", help="train every candidate for all epochs (no early stopping)")
    g.add_argument("--no-baselines", action="store_true",
                   help="do not proxy-train the MobileNetV2 width-multiplier baselines (0.35, 0.5, 0.75, 1.0) "
                        "for the plot")
    g.add_argument("--device", default="auto", help="torch device: auto (default), cpu, cuda, cuda:N")
    add_threads_option(g)

    g = p.add_argument_group("ground truth instead of training (judging a search where the answer is known)")
    g.add_argument("--accuracy-table", metavar="FILE",
                   help="score every trial with its accuracy from FILE (JSON: benchmark key -> {test_acc: [percent per "
                        "training seed]}, e.g. NAS-Bench-Macro's file with --space search_spaces/nas_bench_macro.yaml) "
                        "instead of training it: no data, no pruning, no baselines")
    g.add_argument("--accuracy-table-value", choices=TABLE_VALUES, default=DEFAULTS.accuracy_table_value,
                   help="seed (default): one recorded training seed per evaluation, chosen from --seed and the "
                        "network, so the real seed noise stays; mean: the mean over the recorded seeds")

    g = p.add_argument_group("a trained supernet instead of training (nas supernet train)")
    g.add_argument("--supernet", metavar="DIR",
                   help="score every trial with the supernet in DIR: its sub-network's BatchNorm re-estimated, "
                        "then its validation accuracy; no training, no pruning, no baselines. The space is the "
                        "supernet's, the data its own with its validation split")
    g.add_argument("--calibration-images", type=int, metavar="K",
                   help=f"training images to re-estimate each sub-network's BatchNorm statistics on "
                        f"(default: {SCORING.calibration_images}); confirmations draw other samples")
    g.add_argument("--val-images", type=int, metavar="N",
                   help=f"score on N validation images, a fixed class-stratified sample (default: "
                        f"{SUPERNET_VAL_IMAGES} when the split is larger; 0: the whole split, slower: a score's time "
                        f"grows with the images); with a sample, the confirmation scores its candidates on the "
                        f"whole split, with the search's "
                        "calibration sample and --confirm-seeds others, and chooses on those scores alone "
                        "(--confirm-seeds 0 or --confirm-top 0: no confirmation, the best score on the sample)")
    g.add_argument("--cpu-bf16", action="store_true", default=None,
                   help="score in bfloat16 on a CPU that computes in it natively (AVX512-BF16 or AMX; refused "
                        "elsewhere): 0.71 s instead of 1.14 s on 1,000 validation images (2-core AMD EPYC), "
                        "scores within a fraction of a point of float32's at 1,000 images (README: 'Two more "
                        "steps'); refused "
                        "when the scores run on a GPU, which uses its own autocast precision (--device cpu there)")

    g = p.add_argument_group("choosing the winner")
    g.add_argument("--confirm-top", type=int, default=DEFAULTS.confirm.top, metavar="K",
                   help="after the trials, train the K best networks within the budget again with more seeds and "
                        f"choose the winner on the mean (default: {DEFAULTS.confirm.top}; 0: the best single result)")
    g.add_argument("--confirm-seeds", type=int, default=DEFAULTS.confirm.seeds, metavar="S",
                   help=f"more training seeds per confirmed network: --seed + 1 ... --seed + S "
                        f"(default: {DEFAULTS.confirm.seeds})")

    g = p.add_argument_group("NetAdapt after the search (MobileNetV3's recipe; 'nas adapt' has every option)")
    g.add_argument("--adapt", action="store_true",
                   help="train the winner (best reward, or most accurate in pareto mode, whatever its latency) and "
                        "shrink its widths with NetAdapt until it meets the budget; results in RUN_DIR/adapt/")
    g.add_argument("--adapt-delta", type=float, default=AdaptPhase.delta, metavar="F",
                   help=f"latency cut per NetAdapt iteration, as a fraction of the start (default: {AdaptPhase.delta})")
    g.add_argument("--adapt-steps", type=int, default=AdaptPhase.steps, metavar="T",
                   help=f"fine-tuning steps per proposal (default: {AdaptPhase.steps})")
    g.add_argument("--adapt-epochs", type=int, default=AdaptPhase.epochs, metavar="E",
                   help=f"epochs to train the winner before NetAdapt, and of the final fine-tuning "
                        f"(default: {AdaptPhase.epochs})")

    g = p.add_argument_group("study, workers and output")
    g.add_argument("--storage", metavar="URL",
                   help="Optuna storage shared by workers, e.g. postgresql://user:pw@host:5432/db "
                        "(default: SQLite file RUN_DIR/study.db)")
    g.add_argument("--study", default="search", help="study name in the storage (default: search)")
    g.add_argument("--out", metavar="RUN_DIR",
                   help="run directory (default: runs/<table>-<objective>-<budget>ms-<data>)")
    g.add_argument("--heartbeat", type=int, default=DEFAULTS.heartbeat_s, metavar="S",
                   help=f"seconds between a running trial's heartbeats (default: {DEFAULTS.heartbeat_s})")
    g.add_argument("--grace", type=int, default=DEFAULTS.grace_s, metavar="S",
                   help="a trial silent for S seconds belongs to a dead worker: it is failed and retried "
                        f"(default: {DEFAULTS.grace_s})")
    g.add_argument("--json", action="store_true", help="print the result as JSON instead of progress lines")
    p.set_defaults(func=_run, resume_hint=RESUME_HINT)
