"""Choosing the winner: the best candidates proxy-trained again with more seeds.

One proxy training of a few epochs is a noisy measurement. On CIFAR-10 (3 epochs on 2,000
images) one network's accuracy has a standard deviation of 2.1 points over training seeds, twice
the spread between the search's best networks (``benchmarks/proxy_noise.py``), so the best
single result is often a lucky seed. After the trials, the ``top`` distinct architectures
within the budget are proxy-trained again with ``seeds`` more training seeds (same data, same
recipe, seeds ``--seed + 1, ...``), and the winner is the one with the best mean: the reward of
the mean accuracy (reward mode; the latency factor is the trial's own) or the mean accuracy
(pareto mode). The Pareto front stays the trials' own single results.

Every result is stored as soon as it is known, as the study user attribute
``confirm:<hash>:<seed>``: an interrupted run resumes where it stopped, and workers sharing a
study reuse each other's results (workers that finish together may repeat an evaluation in
progress elsewhere; none is lost).
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from nas.arch import ArchSpec
from nas.errors import SearchError
from nas.search.evaluator import AccuracyEvaluator

__all__ = ["Confirmation", "CONFIRM_PREFIX", "stored_confirmations", "confirm_candidates", "accuracies", "mean_score",
           "rank_trials", "choose_winner", "run_confirmation"]

CONFIRM_PREFIX = "confirm:"


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


def stored_confirmations(study: optuna.Study) -> dict[str, dict[int, float]]:
    """Architecture hash -> {training seed: proxy accuracy} of the confirmations stored in the study."""
    out: dict[str, dict[int, float]] = {}
    for key, value in study.user_attrs.items():
        if key.startswith(CONFIRM_PREFIX):
            digest, seed = key[len(CONFIRM_PREFIX):].rsplit(":", 1)
            out.setdefault(digest, {})[int(seed)] = float(value)
    return out


def _single_score(t: FrozenTrial, objective: str) -> tuple[float, float]:
    if objective == "reward":
        return float(t.value), -t.number  # type: ignore[arg-type]
    return t.user_attrs["val_acc"], -t.user_attrs["latency_ms"]


def confirm_candidates(feasible: list[FrozenTrial], objective: str, top: int) -> list[FrozenTrial]:
    """The ``top`` best trained trials within the budget on their own result, one per architecture."""
    seen: set[str] = set()
    out: list[FrozenTrial] = []
    for t in sorted(feasible, key=lambda t: _single_score(t, objective), reverse=True):
        if t.user_attrs["hash"] not in seen:
            seen.add(t.user_attrs["hash"])
            out.append(t)
    return out[:top]


def accuracies(t: FrozenTrial, stored: dict[str, dict[int, float]]) -> list[float]:
    """The trial's own proxy accuracy, then its confirmations by seed."""
    extra = stored.get(t.user_attrs["hash"], {})
    return [float(t.user_attrs["val_acc"])] + [extra[s] for s in sorted(extra)]


def mean_score(t: FrozenTrial, objective: str, stored: dict[str, dict[int, float]]) -> tuple[float, float]:
    """What the winner is chosen by: the objective of the mean accuracy over every seed known."""
    accs = accuracies(t, stored)
    mean = statistics.fmean(accs)
    if objective == "reward":
        single = accs[0]
        # reward = ACC * (LAT/T)^w is linear in ACC: the latency factor is the trial's own. A trial whose
        # own accuracy is 0 (diverged) gives no factor to scale and keeps its reward.
        value = float(t.value) * mean / single if single > 0 else float(t.value)  # type: ignore[arg-type]
        return value, -t.number
    return mean, -t.user_attrs["latency_ms"]


def rank_trials(trials: list[FrozenTrial], objective: str, stored: dict[str, dict[int, float]]) -> list[FrozenTrial]:
    """Trained ``trials`` in the order the search prefers them, one per architecture.

    First the best on its own result and every confirmed trial, on the mean over the seeds known
    (with nothing confirmed: the best single result alone); then the others on their own result.
    Until a confirmation has finished (interrupted, or trials added by a resumed run), a trial not
    yet confirmed competes with its one result.
    """
    ordered = confirm_candidates(trials, objective, len(trials))
    pool = [t for i, t in enumerate(ordered) if i == 0 or t.user_attrs["hash"] in stored]
    chosen = {t.number for t in pool}
    rest = [t for t in ordered if t.number not in chosen]
    return sorted(pool, key=lambda t: mean_score(t, objective, stored), reverse=True) + rest


def choose_winner(trials: list[FrozenTrial], objective: str,
                  stored: dict[str, dict[int, float]]) -> FrozenTrial | None:
    """The first of :func:`rank_trials`: the search's winner among ``trials`` (None when empty)."""
    ranked = rank_trials(trials, objective, stored)
    return ranked[0] if ranked else None


def run_confirmation(study: optuna.Study, feasible: list[FrozenTrial], evaluator: AccuracyEvaluator, *,
                     objective: str, confirmation: Confirmation, base_seed: int, worker: str = "",
                     log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Proxy-train the candidates with the missing seeds; one row per candidate, winner first."""
    if not confirmation.enabled:
        return []
    candidates = confirm_candidates(feasible, objective, confirmation.top)
    seeds = [base_seed + i for i in range(1, confirmation.seeds + 1)]
    work = [(t, seed) for t in candidates for seed in seeds]
    if worker:  # workers finishing together start at different places in the list
        random.Random(worker).shuffle(work)
    done = 0
    for t, seed in work:
        key = f"{CONFIRM_PREFIX}{t.user_attrs['hash']}:{seed}"
        if key in study.user_attrs:  # re-read: another worker, or an earlier run, may have stored it
            continue
        ev = evaluator.reseeded(seed).evaluate(ArchSpec.from_dict(t.user_attrs["arch"]))
        study.set_user_attr(key, ev.accuracy)  # a diverged run counts with its accuracy, as a diverged trial does
        done += 1
        status = "" if ev.status == "completed" else f" ({ev.status}{': ' + ev.message if ev.message else ''})"
        log(f"confirm [{done}]: trial {t.number} ({t.user_attrs['latency_ms']:.3f} ms) with training seed {seed}: "
            f"acc {ev.accuracy:.4f}{status} (its search result {t.user_attrs['val_acc']:.4f}), {ev.seconds:.0f}s")
    stored = stored_confirmations(study)
    rows = [{"trial": t.number, "latency_ms": t.user_attrs["latency_ms"], "accs": accuracies(t, stored),
             "seeds": [base_seed] + sorted(stored.get(t.user_attrs["hash"], {})),
             "mean_acc": statistics.fmean(accuracies(t, stored)), "score": mean_score(t, objective, stored)[0]}
            for t in candidates]
    return sorted(rows, key=lambda r: (r["score"], -r["trial"]), reverse=True)
