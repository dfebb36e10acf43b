"""Choosing the winner on more seeds: candidates, stored results, resume, the choice, the outputs."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from nas.arch import ArchSpec, arch_hash, to_compact
from nas.cli import main
from nas.errors import SearchError
from nas.search import (AccuracyEvaluator, Confirmation, Evaluation, ProxyEvaluator, ProxySettings, best_trial,
                        feasible_trials, mnasnet_reward, run_confirmation, write_outputs)
from nas.search.confirm import CONFIRM_PREFIX, RESCORE_PREFIX, confirm_candidates, mean_score, rank_trials, stored_confirmations
from nas.space import load_space, random_arch
from tests.conftest import TINY_SPACE
from tests.search.conftest import FakeEvaluator, search_args

BUDGET = 1.0


class SeededEvaluator(AccuracyEvaluator):
    """Accuracy from a table (hash, seed) -> accuracy; records what it trained."""

    def __init__(self, table: dict[tuple[str, int], float], seed: int = 0,
                 calls: list[tuple[str, int]] | None = None, fail_after: int | None = None) -> None:
        self.table, self.seed, self.fail_after = table, seed, fail_after
        self.calls: list[tuple[str, int]] = [] if calls is None else calls

    def reseeded(self, seed: int) -> SeededEvaluator:
        return SeededEvaluator(self.table, seed, self.calls, self.fail_after)

    def evaluate(self, arch: ArchSpec, *, report: Callable[[int, float], None] | None = None) -> Evaluation:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt
        self.calls.append((arch_hash(arch), self.seed))
        acc = self.table[(arch_hash(arch), self.seed)]
        return Evaluation(acc, (acc,), "completed", 0.0)


def _archs(n: int) -> list[ArchSpec]:
    space, out, seed = load_space(TINY_SPACE), {}, 0
    while len(out) < n:
        arch = random_arch(space, seed)
        out.setdefault(arch_hash(arch), arch)
        seed += 1
    return list(out.values())


def _study(rows: list[tuple[ArchSpec, float, float]], objective: str = "reward") -> optuna.Study:
    """A study of trained trials: (architecture, latency ms, proxy accuracy with seed 0)."""
    study = optuna.create_study(direction="maximize")
    for arch, lat, acc in rows:
        value = mnasnet_reward(acc, lat, BUDGET) if objective == "reward" else acc
        study.add_trial(create_trial(
            state=TrialState.COMPLETE, value=value, params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)},
            user_attrs={"hash": arch_hash(arch), "arch": arch.to_dict(), "compact": to_compact(arch),
                        "latency_ms": lat, "val_acc": acc, "status": "trained", "budget_ms": BUDGET,
                        "params": 1, "macs": 1, "acc_per_epoch": [acc]}))
    return study


@pytest.fixture
def four() -> tuple[list[ArchSpec], dict[tuple[str, int], float]]:
    """Four networks: A is best on seed 0 by luck, B is better on average, D is over the budget."""
    a, b, c, d = _archs(4)
    table = {}
    for arch, accs in ((a, (0.60, 0.40, 0.42)), (b, (0.58, 0.57, 0.59)), (c, (0.50, 0.50, 0.50)),
                       (d, (0.90, 0.90, 0.90))):
        for seed, acc in enumerate(accs):
            table[(arch_hash(arch), seed)] = acc
    return [a, b, c, d], table


def _rows(archs: list[ArchSpec], table: dict[tuple[str, int], float]) -> list[tuple[ArchSpec, float, float]]:
    a, b, c, d = archs
    return [(a, 0.9, table[(arch_hash(a), 0)]), (b, 0.9, table[(arch_hash(b), 0)]),
            (c, 0.8, table[(arch_hash(c), 0)]), (d, 1.5, table[(arch_hash(d), 0)]), (a, 0.9, table[(arch_hash(a), 0)])]


def test_the_winner_is_the_best_mean_not_the_luckiest_seed(four) -> None:  # type: ignore[no-untyped-def]
    archs, table = four
    a, b, _, _ = archs
    study = _study(_rows(archs, table))
    assert best_trial(study, BUDGET, "reward").hash == arch_hash(a)  # before: the lucky one
    evaluator = SeededEvaluator(table)
    rows = run_confirmation(study, feasible_trials(study, BUDGET), evaluator, objective="reward",
                            confirmation=Confirmation(top=2, seeds=2), base_seed=0, log=lambda m: None)
    # The top two distinct architectures within the budget: A (twice in the study, trained once) and B; not the
    # over-budget D, not the third C.
    assert sorted(evaluator.calls) == sorted([(arch_hash(a), 1), (arch_hash(a), 2), (arch_hash(b), 1),
                                              (arch_hash(b), 2)])
    assert stored_confirmations(study) == {arch_hash(a): {1: 0.40, 2: 0.42}, arch_hash(b): {1: 0.57, 2: 0.59}}
    assert [r["trial"] for r in rows] == [1, 0] and rows[0]["accs"] == [0.58, 0.57, 0.59]
    assert rows[0]["mean_acc"] == pytest.approx(0.58)
    assert best_trial(study, BUDGET, "reward").hash == arch_hash(b)


def test_reward_mode_keeps_each_trials_latency_factor(four) -> None:  # type: ignore[no-untyped-def]
    archs, table = four
    _, b, c, _ = archs
    # C is much faster: with the soft reward its factor (0.05)^-0.07 = 1.23 outweighs B's higher mean accuracy.
    study = _study([(b, 0.9, 0.58), (c, 0.05, 0.50)])
    run_confirmation(study, feasible_trials(study, BUDGET), SeededEvaluator(table), objective="reward",
                     confirmation=Confirmation(top=2, seeds=2), base_seed=0, log=lambda m: None)
    assert mnasnet_reward(0.50, 0.05, BUDGET) > mnasnet_reward(0.58, 0.9, BUDGET)
    assert best_trial(study, BUDGET, "reward").hash == arch_hash(c)
    assert best_trial(study, BUDGET, "pareto").hash == arch_hash(b)  # accuracy alone


def test_an_interrupted_confirmation_keeps_its_results_and_resumes(four) -> None:  # type: ignore[no-untyped-def]
    archs, table = four
    study = _study(_rows(archs, table))
    calls: list[tuple[str, int]] = []
    with pytest.raises(KeyboardInterrupt):
        run_confirmation(study, feasible_trials(study, BUDGET), SeededEvaluator(table, calls=calls, fail_after=3),
                         objective="reward", confirmation=Confirmation(top=2, seeds=2), base_seed=0,
                         log=lambda m: None)
    assert sum(len(v) for v in stored_confirmations(study).values()) == 3
    again = SeededEvaluator(table)
    run_confirmation(study, feasible_trials(study, BUDGET), again, objective="reward",
                     confirmation=Confirmation(top=2, seeds=2), base_seed=0, log=lambda m: None)
    assert len(again.calls) == 1 and again.calls[0] not in calls
    assert sum(len(v) for v in stored_confirmations(study).values()) == 4


def test_off_and_validation(four) -> None:  # type: ignore[no-untyped-def]
    archs, table = four
    study = _study(_rows(archs, table))
    evaluator = SeededEvaluator(table)
    for off in (Confirmation(top=0), Confirmation(seeds=0)):
        assert not off.enabled
        assert run_confirmation(study, feasible_trials(study, BUDGET), evaluator, objective="reward",
                                confirmation=off, base_seed=0) == []
    assert evaluator.calls == [] and not any(k.startswith(CONFIRM_PREFIX) for k in study.user_attrs)
    for bad in ({"top": -1}, {"seeds": -1}, {"top": 1.5}, {"seeds": True}):
        with pytest.raises(SearchError, match="--confirm-"):
            Confirmation(**bad)  # type: ignore[arg-type]
    with pytest.raises(SearchError, match="cannot re-evaluate with another seed"):
        FakeEvaluator().reseeded(1)


def test_candidates_are_distinct_and_ranked_by_the_objective(four) -> None:  # type: ignore[no-untyped-def]
    archs, table = four
    study = _study(_rows(archs, table), objective="pareto")
    feasible = feasible_trials(study, BUDGET)
    assert [t.number for t in confirm_candidates(feasible, "pareto", 5)] == [0, 1, 2]


def test_the_proxy_evaluator_changes_only_the_training_seed() -> None:
    from nas.data import load_dataset

    splits = load_dataset("digits", input_size=16, seed=0, subset=50)
    base = ProxyEvaluator(splits, ProxySettings(epochs=1, batch_size=25, seed=0), device="cpu")
    other = base.reseeded(7)
    assert other.settings == ProxySettings(epochs=1, batch_size=25, seed=7) and other.splits is splits
    assert other.device == "cpu"
    arch = _archs(1)[0]
    runs = [base.evaluate(arch), other.evaluate(arch), base.reseeded(0).evaluate(arch)]
    assert runs[0].acc_per_epoch == runs[2].acc_per_epoch  # the seed is all that differs ...
    assert runs[1].acc_per_epoch != runs[0].acc_per_epoch  # ... and it matters


def test_nas_search_confirms_and_writes_it_everywhere(search_table: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["search", *search_args(search_table, out, "--confirm-top", "2", "--confirm-seeds", "1",
                                            trials=4)])
    log = buffer.getvalue()
    assert code == 0, log
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")
    budget = study.trials[0].user_attrs["budget_ms"]
    feasible = feasible_trials(study, budget)
    expected = {t.hash for t in confirm_candidates(feasible, "reward", 2)}
    stored = stored_confirmations(study)
    assert set(stored) == expected and all(set(v) == {1} for v in stored.values())
    assert "choosing the winner: the top 2" in log and log.count("confirm [") == len(expected)
    best = best_trial(study, budget, "reward")
    listed = [line for line in log.splitlines() if " acc per seed " in line]
    assert len(listed) == len(expected) and f"trial {best.number:3d} " in listed[0]  # winner first, ...
    assert all("reward of the mean 0." in line for line in listed)  # ... by the reward, which is shown
    saved = json.loads((out / "best_arch.json").read_text())
    assert saved["trial"] == best.number
    assert saved["confirmed"]["accs"] == [best.val_acc, stored[best.hash][1]]
    df = pd.read_csv(out / "trials.csv")
    confirmed = df[df["confirm_accs"].notna()]
    assert set(confirmed["hash"]) == expected
    summary = (out / "summary.md").read_text()
    assert "## Choosing the winner" in summary and f"| {best.number} |" in summary
    assert "mean over 2 training seeds" in summary
    # Re-running the finished command trains nothing again.
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["search", *search_args(search_table, out, "--confirm-top", "2", "--confirm-seeds", "1",
                                            trials=4)]) == 0
    assert "confirm [" not in buffer.getvalue()


def test_write_outputs_without_confirmation_is_unchanged(four, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    archs, table = four
    study = _study(_rows(archs, table))
    result = write_outputs(study, tmp_path, budget_ms=BUDGET, objective="reward", baselines=[], header={})
    assert result["best"]["trial"] == 0 and "confirmed" not in result["best"]
    assert "Choosing the winner" not in (tmp_path / "summary.md").read_text()


def _confirmed_study(four, objective: str = "reward") -> optuna.Study:  # type: ignore[no-untyped-def]
    archs, table = four
    study = _study(_rows(archs, table), objective)
    run_confirmation(study, feasible_trials(study, BUDGET), SeededEvaluator(table), objective=objective,
                     confirmation=Confirmation(top=2, seeds=2), base_seed=0, log=lambda m: None)
    return study


def test_an_unconfirmed_runner_up_does_not_overtake_the_confirmed_ones(four) -> None:  # type: ignore[no-untyped-def]
    archs, table = four
    a, b, c, _ = archs
    study = _confirmed_study(four)  # A: 0.60 then 0.40, 0.42 (mean 0.473); B: mean 0.58; C: 0.50, not confirmed
    ranked = rank_trials(feasible_trials(study, BUDGET), "reward")
    assert [t.hash for t in ranked] == [arch_hash(x) for x in (b, a, c)]
    # C's single 0.50 beats A's mean 0.473, but C was never confirmed: it ranks after the confirmed pool.
    assert mnasnet_reward(0.50, 0.8, BUDGET) > mnasnet_reward(0.473, 0.9, BUDGET)


def test_confirm_top_0_ignores_stored_confirmations(four, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    archs, _ = four
    study = _confirmed_study(four)
    result = write_outputs(study, tmp_path, budget_ms=BUDGET, objective="reward", baselines=[], header={},
                           confirmed=False)
    assert result["best"]["hash"] == arch_hash(archs[0]) and "confirmed" not in result["best"]
    df = pd.read_csv(tmp_path / "trials.csv")
    assert df["confirm_accs"].isna().all() and df.loc[df["winner_rank"] == 1, "number"].tolist() == [0]
    assert best_trial(study, BUDGET, "reward", confirmed=False).number == 0


def test_retrain_and_adapt_start_from_the_confirmed_winner(four, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from nas.retrain import load_search_run, select_winners
    from nas.search.adapt_phase import adapt_start_trial

    archs, _ = four
    a, b, c, _ = archs
    study = _confirmed_study(four)
    write_outputs(study, tmp_path, budget_ms=BUDGET, objective="reward", baselines=[],
                  header={"objective": "reward ACC*(LAT/T)^w, soft"})
    winners = select_winners(load_search_run(tmp_path), 3)
    assert [w.hash for w in winners] == [arch_hash(x) for x in (b, a, c)]
    assert json.loads((tmp_path / "best_arch.json").read_text())["hash"] == arch_hash(b)
    # NetAdapt's start: the best of every latency. D (over the budget, 0.90) was never confirmed but is the
    # best single result, so it competes; it also wins on its one result.
    assert adapt_start_trial(study, "reward").hash == arch_hash(archs[3])
    without_d = _study(_rows(archs, four[1])[:3])
    run_confirmation(without_d, feasible_trials(without_d, BUDGET), SeededEvaluator(four[1]), objective="reward",
                     confirmation=Confirmation(top=2, seeds=2), base_seed=0, log=lambda m: None)
    assert adapt_start_trial(without_d, "reward").hash == arch_hash(b)
    assert adapt_start_trial(without_d, "reward", confirmed=False).hash == arch_hash(a)


def test_the_mean_can_change_a_reward_choice_across_latencies(four) -> None:  # type: ignore[no-untyped-def]
    archs, table = four
    a, b, _, _ = archs
    study = _study([(a, 0.9, 0.60), (b, 0.5, 0.55)])  # A first on its own reward, B faster
    assert best_trial(study, BUDGET, "reward").hash == arch_hash(a)
    run_confirmation(study, feasible_trials(study, BUDGET), SeededEvaluator(table), objective="reward",
                     confirmation=Confirmation(top=2, seeds=2), base_seed=0, log=lambda m: None)
    winner = best_trial(study, BUDGET, "reward")
    assert winner.hash == arch_hash(b)
    assert mean_score(winner, "reward")[0] == pytest.approx(
        mnasnet_reward((0.55 + 0.57 + 0.59) / 3, 0.5, BUDGET))  # its own 0.55, then seeds 1 and 2


class RescoringEvaluator(SeededEvaluator):
    """Trials scored on a coarse table; confirmations (:meth:`confirmer`) on a fine one, which replaces them."""

    def __init__(self, coarse: dict[tuple[str, int], float], fine: dict[tuple[str, int], float],
                 calls: list[tuple[str, int]]) -> None:
        super().__init__(coarse, 0, calls)
        self.fine = fine

    @property
    def rescores(self) -> bool:
        return True

    def confirmer(self, seed: int) -> SeededEvaluator:
        return SeededEvaluator(self.fine, seed, self.calls)


def test_rescores_replace_the_trials_own_result(tmp_path: Path) -> None:
    # A is on top by the coarse score's luck. With its coarse score in the mean A would still win (0.567 against
    # 0.537); on the fine measure alone B is better, and B wins.
    a, b, c = _archs(3)
    coarse = {(arch_hash(a), 0): 0.70, (arch_hash(b), 0): 0.55, (arch_hash(c), 0): 0.40}
    fine = {(arch_hash(a), s): 0.50 for s in range(3)} | {(arch_hash(b), s): 0.53 for s in range(3)}
    study = _study([(a, 0.9, 0.70), (b, 0.9, 0.55), (c, 0.9, 0.40)], objective="pareto")
    calls: list[tuple[str, int]] = []
    rows = run_confirmation(study, feasible_trials(study, BUDGET), RescoringEvaluator(coarse, fine, calls),
                            objective="pareto", confirmation=Confirmation(top=2, seeds=2), base_seed=0,
                            log=lambda m: None)
    # the candidates' own seed is measured again on the fine measure, then the two more
    assert sorted(calls) == sorted((arch_hash(x), s) for x in (a, b) for s in (0, 1, 2))
    assert stored_confirmations(study) == {}  # kept apart from confirmations with more training seeds
    assert stored_confirmations(study, RESCORE_PREFIX) == {arch_hash(a): {0: 0.5, 1: 0.5, 2: 0.5},
                                                           arch_hash(b): {0: 0.53, 1: 0.53, 2: 0.53}}
    assert [r["trial"] for r in rows] == [1, 0] and rows[0]["accs"] == [0.53, 0.53, 0.53]
    assert rows[0]["seeds"] == [0, 1, 2] and rows[0]["mean_acc"] == pytest.approx(0.53)
    best = best_trial(study, BUDGET, "pareto")
    assert best.hash == arch_hash(b) and best.rescored and best.mean_acc == pytest.approx(0.53)
    write_outputs(study, tmp_path, budget_ms=BUDGET, objective="pareto", baselines=[], header={})
    df = pd.read_csv(tmp_path / "trials.csv").set_index("number")
    assert df.loc[1, "winner_rank"] == 1 and df.loc[1, "mean_acc"] == pytest.approx(0.53)
    assert df.loc[0, "mean_acc"] == pytest.approx(0.50)  # not (0.70 + 3 x 0.50) / 4
    assert json.loads((tmp_path / "best_arch.json").read_text())["confirmed"]["mean_acc"] == pytest.approx(0.53)


def test_a_study_resumed_with_rescores_ignores_its_confirmations_on_the_sample() -> None:
    # Before 2026-12-05 the confirmations of A and C were on the sample, mixed with their lucky own scores; a
    # resumed run then added B, and the top two {B, C} were rescored. A's old mean (0.563) must not beat B.
    a, b, c = _archs(3)
    study = _study([(a, 0.9, 0.58), (c, 0.9, 0.70), (b, 0.9, 0.60)], objective="pareto")
    for arch, accs in ((a, (0.55, 0.56)), (c, (0.40, 0.41))):
        for seed, acc in enumerate(accs, 1):
            study.set_user_attr(f"{CONFIRM_PREFIX}{arch_hash(arch)}:{seed}", acc)
    assert best_trial(study, BUDGET, "pareto").hash == arch_hash(a)  # the rule before
    fine = {(arch_hash(b), s): 0.53 for s in range(3)} | {(arch_hash(c), s): 0.45 for s in range(3)}
    run_confirmation(study, feasible_trials(study, BUDGET, confirmed=False), RescoringEvaluator({}, fine, []),
                     objective="pareto", confirmation=Confirmation(top=2, seeds=2), base_seed=0, log=lambda m: None)
    best = best_trial(study, BUDGET, "pareto")
    assert best.hash == arch_hash(b) and best.accuracies == [0.53, 0.53, 0.53]
    assert all(not t.confirmations for t in feasible_trials(study, BUDGET) if t.hash == arch_hash(a))


def test_a_rescored_candidate_whose_own_score_is_0_is_ranked_by_its_rescores() -> None:
    # a small --val-images sample can give a good network 0: its reward comes from the rescores, not stays 0
    a, b = _archs(2)
    study = _study([(a, 0.5, 0.0), (b, 0.9, 0.30)])
    fine = {(arch_hash(a), s): 0.60 for s in range(3)} | {(arch_hash(b), s): 0.50 for s in range(3)}
    run_confirmation(study, feasible_trials(study, BUDGET, confirmed=False), RescoringEvaluator({}, fine, []),
                     objective="reward", confirmation=Confirmation(top=2, seeds=2), base_seed=0, log=lambda m: None)
    best = best_trial(study, BUDGET, "reward")
    assert best.hash == arch_hash(a)
    assert mean_score(best, "reward")[0] == pytest.approx(mnasnet_reward(0.60, 0.5, BUDGET))
