"""The loop's index of architectures, against a full scan of a real in-memory study as it grows."""

from __future__ import annotations

import random

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from nas.search._arch_index import ArchIndex
from nas.search.record import OVER_BUDGET

optuna.logging.set_verbosity(optuna.logging.ERROR)
DIST = {"x": CategoricalDistribution([0, 1])}


def scan(trials: list[FrozenTrial]) -> tuple[set[str], dict[str, list[tuple[int, TrialState]]]]:
    """The rule written out: taken = evaluated, being evaluated or queued, and not refused as over budget."""
    taken = {t.user_attrs["hash"] for t in trials if "hash" in t.user_attrs
             and t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
             and t.user_attrs.get("status") != OVER_BUDGET}
    by_hash: dict[str, list[tuple[int, TrialState]]] = {}
    for t in trials:
        if "hash" in t.user_attrs:
            by_hash.setdefault(t.user_attrs["hash"], []).append((t.number, t.state))
    return taken, by_hash


def check(index: ArchIndex, trials: list[FrozenTrial]) -> None:
    index.update(trials)
    taken, by_hash = scan(trials)
    assert index.taken() == taken
    for digest in set(by_hash) | {"unknown"}:  # numbers and states: a trial read while running is read again
        assert [(t.number, t.state) for t in index.with_hash(digest)] == by_hash.get(digest, [])


def test_the_index_agrees_with_a_full_scan_while_trials_run_finish_and_fail() -> None:
    rng = random.Random(0)
    study = optuna.create_study(direction="maximize")
    index = ArchIndex()
    running: list[optuna.Trial] = []
    for step in range(120):
        trial = study.ask()
        trial.suggest_categorical("x", [0, 1])
        trial.set_user_attr("hash", f"h{rng.randrange(12)}")
        if rng.random() < 0.15:
            trial.set_user_attr("status", OVER_BUDGET)
        running.append(trial)
        if rng.random() < 0.7:  # finish one of the running trials, not always the newest
            done = running.pop(rng.randrange(len(running)))
            state = rng.choice([TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL])
            study.tell(done, rng.random() if state == TrialState.COMPLETE else None, state=state)
        if step % 7 == 0:  # a queued trial without a hash yet
            study.enqueue_trial({"x": 1})
        check(index, study.get_trials(deepcopy=False))
    assert running  # some stayed running: the index read them again each time, and saw them finish


def test_a_list_not_in_number_order_is_scanned_whole() -> None:
    trials = [optuna.trial.create_trial(value=float(i), params={"x": 0}, distributions=DIST,
                                        user_attrs={"hash": f"h{i % 3}"}) for i in range(6)]
    for number, t in enumerate(trials):
        t.number = number
    index = ArchIndex()
    check(index, trials)
    shown = [trials[0], trials[2], trials[5]]  # numbers 0, 2, 5: another storage's view hides some
    check(index, shown)
    check(index, [trials[1], trials[0], trials[3], trials[2], trials[5], trials[4]])  # out of order
    check(index, trials)
