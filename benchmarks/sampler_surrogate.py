"""How the search's samplers behave on a synthetic accuracy surface (no training, minutes on a CPU).

The CIFAR-10 benchmark (``search_vs_baselines.py``) costs an hour per run and its proxy accuracy
is noisy, so it cannot tell a sampler's systematic behaviour from luck. Here the search loop is
the real one (:func:`nas.search.run_search`: proposals screened by the table, redraws, repair,
the successive-halving pruner, the reward objective with the hard constraint and ``skip_over``
1, exactly as the CIFAR-10 benchmark runs it), but every "training" is replaced by a known
accuracy surface:

    truth(arch) = 0.30 + 0.10 * LAT / T + 0.03 * z(arch)

where ``LAT`` is the network's predicted latency, ``T`` the budget and ``z`` a fixed
pseudo-random effect of each block's choices (the sum over the compact string's tokens, each
uniform in [-0.5, 0.5], divided by the square root of their number). Bigger networks within the
budget are better, and among networks of one latency some choices are better than others. The
proxy "observes" ``truth * (0.65, 0.82, 1.0)`` after epochs 1-3, plus Gaussian noise of
``--noise``. A search's winner is its best observed network within the budget; its *true*
accuracy is what the table reports, mean and standard error over ``--seeds`` searches.

Each search's winner is reported twice: chosen on its single observed result, and chosen as
``nas search`` now chooses it (:mod:`nas.search.confirm`: the 3 best networks observed again with 2
more noise seeds, the best mean wins). The confirmation costs 6 more "trainings", so rows with
``--more-trials`` trials (default 32) show what the same compute buys as more trials instead; the
"epochs" column counts the trained epochs of trials plus confirmation.

Rows: TPE and random sampling, each with ``--trials`` and ``--more-trials``; ``--variants old``
adds TPE shown the rejected candidates of earlier proposals (``SearchConfig.keep_rejected=100``,
the behaviour before the change that benchmark measured).
Results: ``benchmarks/results/sampler_surrogate.{md,json}`` (``--name N``: ``sampler_surrogate_N.*``).

    python benchmarks/sampler_surrogate.py            # 24 and 32 trials, 20 seeds, noise 0.02: ~40 min on 2 cores
    python benchmarks/sampler_surrogate.py --quick    # proves it runs
"""

from __future__ import annotations

import argparse
import hashlib
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from optuna.trial import TrialState

from nas.arch import ArchSpec, arch_hash, reference_arch, to_compact
from nas.latency import TableEstimator, load_table
from nas.latency.spaces import space_for_table
from nas.search import HARD
from nas.search.budget import extreme_params
from nas.search.evaluator import AccuracyEvaluator, Evaluation, Report
from nas.search.confirm import Confirmation, choose_winner, run_confirmation
from nas.search.record import read_records, stored_confirmations
from nas.search.runner import SearchConfig, run_search
from nas.space import SearchSpace

from _common import CPU_TABLE, log, machine, mean_std, publish, stem  # beside this script

REFERENCE = "mobilenetv2-cifar"
EPOCH_FRACTIONS = (0.65, 0.82, 1.0)
#: (row name, sampler, keep_rejected: None = what the search does)
VARIANTS = (("TPE (as the search runs it)", "tpe", None),
            ("random sampling", "random", None))
OLD_VARIANTS = (("TPE shown earlier rejected candidates", "tpe", 100),)
CONFIRM = Confirmation(top=3, seeds=2)  # nas search's default


class SurfaceEvaluator(AccuracyEvaluator):
    """Observes :func:`truth` per epoch with Gaussian noise (seeded per architecture and search)."""

    def __init__(self, estimator: TableEstimator, budget_ms: float, noise: float, seed: int,
                 observation: int = 0) -> None:
        self.estimator, self.budget_ms, self.noise, self.seed = estimator, budget_ms, noise, seed
        self.observation = observation  # 0: the search's own; k > 0: the confirmation's seed k

    def reseeded(self, seed: int) -> SurfaceEvaluator:
        return SurfaceEvaluator(self.estimator, self.budget_ms, self.noise, self.seed, observation=seed)

    @property
    def epochs(self) -> int:
        return len(EPOCH_FRACTIONS)

    def truth(self, arch: ArchSpec) -> float:
        tokens = to_compact(arch).split("-")
        z = sum(_unit(t) - 0.5 for t in tokens) / math.sqrt(len(tokens))
        return 0.30 + 0.10 * self.estimator.latency_ms(arch) / self.budget_ms + 0.03 * z

    def evaluate(self, arch: ArchSpec, *, report: Report | None = None) -> Evaluation:
        key = [self.seed, int(arch_hash(arch)[:8], 16)] + ([self.observation] if self.observation else [])
        rng = np.random.default_rng(key)
        q, accs = self.truth(arch), []
        for epoch, fraction in enumerate(EPOCH_FRACTIONS, 1):
            accs.append(float(q * fraction + rng.normal(0.0, self.noise)))
            if report is not None:
                report(epoch, accs[-1])
        return Evaluation(accs[-1], tuple(accs), "completed", 0.0)


def _unit(token: str) -> float:
    return int.from_bytes(hashlib.sha256(token.encode()).digest()[:4], "little") / 2 ** 32


@dataclass(frozen=True)
class Setup:
    space: SearchSpace
    estimator: TableEstimator
    budget_ms: float
    fastest: dict[str, Any]


def one_search(setup: Setup, sampler: str, keep_rejected: int | None, seed: int, trials: int,
               noise: float) -> dict[str, float]:
    evaluator = SurfaceEvaluator(setup.estimator, setup.budget_ms, noise, seed)
    with tempfile.TemporaryDirectory() as tmp:
        config = SearchConfig(n_trials=trials, budget_ms=setup.budget_ms, run_dir=Path(tmp), reward=HARD,
                              sampler=sampler, seed=seed, skip_over=1.0, keep_rejected=keep_rejected)
        study = run_search(config, setup.space, setup.estimator, evaluator, fingerprint={"benchmark": 1},
                           warm_start=setup.fastest, poll_s=0.01)
        finished = [t for t in read_records(study) if t.arch_dict is not None]
        trained = [t for t in finished if t.state == TrialState.COMPLETE]
        run_confirmation(study, trained, evaluator, objective="reward", confirmation=CONFIRM, base_seed=0,
                         log=lambda m: None)
        stored = stored_confirmations(study)
        confirmed = choose_winner([t for t in read_records(study) if t.arch_dict is not None
                                   and t.state == TrialState.COMPLETE], "reward")
    winner = max(trained, key=lambda t: (t.value, -t.number))
    truths = [evaluator.truth(t.arch) for t in finished]
    assert confirmed is not None
    return {"winner_truth": evaluator.truth(winner.arch),
            "confirmed_winner_truth": evaluator.truth(confirmed.arch),
            "epochs": sum(len(t.acc_per_epoch) for t in finished if not t.status.startswith("duplicate")),
            "confirm_epochs": len(EPOCH_FRACTIONS) * sum(len(v) for v in stored.values()),
            "mean_truth": statistics.mean(truths),
            "mean_latency_ms": statistics.mean(t.latency_ms for t in finished),
            "pruned": sum(t.state == TrialState.PRUNED for t in finished)}


def mean_se(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    """``mean +- standard error`` of ``values`` times ``scale`` (the error is nan for a single value)."""
    mean, std = mean_std(values)
    se = std / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return f"{scale * mean:.{digits}f} +- {scale * se:.{digits}f}"


def report(res: dict[str, Any]) -> str:
    c = res["config"]
    lines = ["# Samplers on a synthetic accuracy surface", "",
             f"The real search loop (proposals, redraws, repair, pruner; reward objective, hard constraint) with "
             f"training replaced by a known surface (see the script's docstring). Budget {res['budget_ms']:.3f} ms "
             f"(half of {REFERENCE}'s predicted latency on {Path(c['table']).name}); {c['trials']} trials per search; "
             f"{len(c['seeds'])} searches per row (seeds {c['seeds'][0]}-{c['seeds'][-1]}); observation noise "
             f"{c['noise']:g}. Mean +- standard error over the searches. Truth in accuracy points (x100).", "",
             "| sampler | trials | true accuracy of the winner: single result | with confirmation | "
             "mean true accuracy of all trials | mean predicted latency of the trials (ms) | trials pruned | "
             "epochs trained: trials + confirmation |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in res["rows"]:
        runs = row["runs"]
        lines.append(f"| {row['name']} | {row['trials']} | {mean_se([r['winner_truth'] for r in runs], 100)} | "
                     f"{mean_se([r['confirmed_winner_truth'] for r in runs], 100)} | "
                     f"{mean_se([r['mean_truth'] for r in runs], 100)} | "
                     f"{mean_se([r['mean_latency_ms'] for r in runs], digits=3)} | "
                     f"{mean_se([r['pruned'] for r in runs], digits=1)} | "
                     f"{statistics.mean(r['epochs'] for r in runs):.1f} + "
                     f"{statistics.mean(r['confirm_epochs'] for r in runs):.1f} |")
    lines += ["", f"Machine: {res['machine']}; {res['seconds'] / 60:.1f} min.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table", default=str(CPU_TABLE))
    p.add_argument("--fraction", type=float, default=0.5, help="budget as a fraction of the reference's latency")
    p.add_argument("--trials", type=int, default=24)
    p.add_argument("--more-trials", type=int, default=32, help="the rows that spend the confirmation's compute on "
                                                               "trials instead (0: none)")
    p.add_argument("--variants", choices=["now", "old"], default="now",
                   help="old: also TPE shown earlier rejected candidates (the behaviour before that change)")
    p.add_argument("--seeds", type=int, default=20, help="searches per sampler (seeds 0..N-1)")
    p.add_argument("--noise", type=float, default=0.02, help="standard deviation of an observed accuracy")
    p.add_argument("--quick", action="store_true", help="4 trials, 2 seeds; results go to *_quick.*")
    p.add_argument("--name", default="", help="write benchmarks/results/sampler_surrogate_NAME.{md,json}")
    args = p.parse_args(argv)
    if args.quick:
        args.trials, args.more_trials, args.seeds = 4, 5, 2
    table = load_table(args.table)
    space = space_for_table(table, None)
    estimator = TableEstimator(table, on_missing="interpolate", save=False)
    budget_ms = args.fraction * estimator.latency_ms(reference_arch(REFERENCE))
    setup = Setup(space, estimator, budget_ms, extreme_params(space, estimator))
    seeds = list(range(args.seeds))
    start = time.perf_counter()
    rows = []
    variants = VARIANTS + (OLD_VARIANTS if args.variants == "old" else ())
    sizes = [args.trials] + ([args.more_trials] if args.more_trials else [])
    for trials in sizes:
        for name, sampler, keep in variants:
            runs = []
            for seed in seeds:
                runs.append(one_search(setup, sampler, keep, seed, trials, args.noise))
                log(f"{name}, {trials} trials, seed {seed}: winner {100 * runs[-1]['winner_truth']:.2f}, "
                    f"with confirmation {100 * runs[-1]['confirmed_winner_truth']:.2f}")
            rows.append({"name": name, "sampler": sampler, "keep_rejected": keep, "trials": trials, "runs": runs})
    res = {"config": {"table": args.table, "fraction": args.fraction, "trials": args.trials,
                      "more_trials": args.more_trials, "seeds": seeds, "noise": args.noise,
                      "confirm": {"top": CONFIRM.top, "seeds": CONFIRM.seeds}},
           "budget_ms": budget_ms, "rows": rows, "seconds": time.perf_counter() - start,
           "machine": machine()}
    publish(stem("sampler_surrogate", args.name, "quick" if args.quick else ""), report(res), res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
