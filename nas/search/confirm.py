"""Choosing the winner: the best candidates proxy-trained again with more seeds.

One proxy training of a few epochs is a noisy measurement. On CIFAR-10 (3 epochs on 2,000
images) one network's accuracy has a standard deviation of 2.1 points over training seeds, twice
the spread between the search's best networks (``benchmarks/proxy_noise.py``), so the best
single result is often a lucky seed. After the trials, the ``top`` distinct architectures
within the budget are proxy-trained again with ``seeds`` more training seeds (same data, same
recipe, seeds ``--seed + 1, ...``), and the winner is the one with the best mean: the reward of
the mean accuracy (reward mode; the latency factor is the trial's own) or the mean accuracy
(pareto mode). The Pareto front stays the trials' own single results.

An evaluator whose confirmations measure more finely than its trials (``rescores``: a supernet search
that scores trials on a sample of the validation split) confirms each candidate on the finer measure
(the whole split) with its own seed and the ``seeds`` more; those rescores replace the trial's result,
so the winner is the best mean of the finer scores, free of the sample's luck that put it on top.

Every result is stored as soon as it is known, as the study user attribute
``confirm:<hash>:<seed>`` (rescores: ``rescore:<hash>:<seed>``; once a study holds rescores its
``confirm:`` results are ignored; read into :attr:`~nas.search.record.TrialRecord.confirmations`): an
interrupted run resumes where it stopped, and workers sharing a study reuse each other's results
(workers that finish together may repeat an evaluation in progress elsewhere; none is lost).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from nas.errors import SearchError
from nas.search.evaluator import AccuracyEvaluator
from nas.search.objective import Objective, get_objective
from nas.search.record import CONFIRM_PREFIX, RESCORE_PREFIX, TrialRecord, stored_confirmations

__all__ = ["Confirmation", "CONFIRM_PREFIX", "RESCORE_PREFIX", "stored_confirmations", "confirm_candidates", "mean_score",
           "rank_trials", "choose_winner", "run_confirmation"]


@dataclass(frozen=True)
class Confirmation:
    """``--confirm-top K --confirm-seeds S``: K candidates, S more seeds each (0 for either: off)."""

    top: int = 3
    seeds: int = 2

    def __post_init__(self) -> None:
        for name, value in (("--confirm-top", self.top), ("--confirm-seeds", self.seeds)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SearchError(f"{name}: expected an integer >= 0 (0: choose the winner on one proxy training), "
                                  f"got {value!r}")

    @property
    def enabled(self) -> bool:
        return self.top > 0 and self.seeds > 0


def confirm_candidates(feasible: Sequence[TrialRecord], objective: str | Objective, top: int) -> list[TrialRecord]:
    """The ``top`` best trained trials within the budget on their own result, one per architecture."""
    strategy = get_objective(objective)
    seen: set[str | None] = set()
    out: list[TrialRecord] = []
    for t in sorted(feasible, key=strategy.score, reverse=True):
        if t.hash not in seen:
            seen.add(t.hash)
            out.append(t)
    return out[:top]


def mean_score(t: TrialRecord, objective: str | Objective) -> tuple[float, float]:
    """What the winner is chosen by: the objective of the mean accuracy over every seed known."""
    return get_objective(objective).score(t, t.mean_acc)


def rank_trials(trials: Sequence[TrialRecord], objective: str | Objective) -> list[TrialRecord]:
    """Trained ``trials`` in the order the search prefers them, one per architecture.

    First the best on its own result and every confirmed trial, on the mean over the seeds known
    (with nothing confirmed: the best single result alone); then the others on their own result.
    Until a confirmation has finished (interrupted, or trials added by a resumed run), a trial not
    yet confirmed competes with its one result. The records carry their confirmations
    (:func:`~nas.search.record.read_records` with ``confirmed=False`` leaves them out).
    """
    strategy = get_objective(objective)
    ordered = confirm_candidates(trials, strategy, len(trials))
    pool = [t for i, t in enumerate(ordered) if i == 0 or t.confirmations]
    chosen = {t.number for t in pool}
    rest = [t for t in ordered if t.number not in chosen]
    return sorted(pool, key=lambda t: mean_score(t, strategy), reverse=True) + rest


def choose_winner(trials: Sequence[TrialRecord], objective: str | Objective) -> TrialRecord | None:
    """The first of :func:`rank_trials`: the search's winner among ``trials`` (None when empty)."""
    ranked = rank_trials(trials, objective)
    return ranked[0] if ranked else None


def run_confirmation(study: optuna.Study, feasible: Sequence[TrialRecord], evaluator: AccuracyEvaluator, *,
                     objective: str | Objective, confirmation: Confirmation, base_seed: int, worker: str = "",
                     log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Evaluate the candidates with the missing seeds; one row per candidate, winner first."""
    if not confirmation.enabled:
        return []
    strategy = get_objective(objective)
    candidates = confirm_candidates(feasible, strategy, confirmation.top)
    rescore = evaluator.rescores
    seeds = [base_seed] * rescore + [base_seed + i for i in range(1, confirmation.seeds + 1)]
    prefix = RESCORE_PREFIX if rescore else CONFIRM_PREFIX
    work = [(t, seed) for t in candidates for seed in seeds]
    if worker:  # workers finishing together start at different places in the list
        random.Random(worker).shuffle(work)
    done = 0
    for t, seed in work:
        key = f"{prefix}{t.hash}:{seed}"
        if key in study.user_attrs:  # re-read: another worker, or an earlier run, may have stored it
            continue
        ev = evaluator.confirmer(seed).evaluate(t.arch)
        study.set_user_attr(key, ev.accuracy)  # a diverged run counts with its accuracy, as a diverged trial does
        done += 1
        status = "" if ev.status == "completed" else f" ({ev.status}{': ' + ev.message if ev.message else ''})"
        how = "rescored with seed" if rescore else "with training seed"
        log(f"confirm [{done}]: trial {t.number} ({t.latency_ms:.3f} ms) {how} {seed}: "
            f"acc {ev.accuracy:.4f}{status} (its search result {t.val_acc:.4f}), {ev.seconds:.0f}s")
    stored = stored_confirmations(study, prefix)
    confirmed = [t.with_confirmations(stored.get(t.hash or "", {}), rescored=rescore) for t in candidates]
    rows = [{"trial": t.number, "latency_ms": t.latency_ms, "accs": t.accuracies,
             "seeds": ([] if t.rescored else [base_seed]) + t.confirmation_seeds, "mean_acc": t.mean_acc,
             "score": mean_score(t, strategy)[0]} for t in confirmed]
    return sorted(rows, key=lambda r: (r["score"], -r["trial"]), reverse=True)
