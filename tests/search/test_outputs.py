"""Which trials may win or stand on the front (:mod:`nas.search.outputs`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from nas.arch import ArchSpec
from nas.latency import TableEstimator, load_table
from nas.search import Evaluation, SearchConfig, extreme_arch, run_search
from nas.search.budget import extreme_params
from nas.search.outputs import best_trial, front
from nas.space import load_space
from tests.conftest import TINY_SPACE
from tests.search.conftest import FakeEvaluator


def _trial(status: str, acc: float, latency: float) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(
        state=TrialState.COMPLETE, values=[acc, latency], params={"x": 0}, distributions={"x": CategoricalDistribution([0])},
        user_attrs={"status": status, "val_acc": acc, "latency_ms": latency, "hash": f"{status}-{acc}-{latency}"})


def test_a_diverged_trial_neither_wins_nor_stands_on_the_front() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(_trial("trained", 0.60, 1.0))
    study.add_trial(_trial("diverged", 0.90, 0.5))  # its accuracy is an earlier epoch's: it would dominate all
    study.add_trial(_trial("duplicate", 0.70, 1.2))
    assert best_trial(study, 2.0, "pareto", confirmed=False).number == 2
    assert [t.number for t in front(study, 2.0)] == [0, 2]


def test_a_duplicate_of_a_diverged_network_is_never_a_winner(tmp_path: Path, search_table: Path) -> None:
    space = load_space(TINY_SPACE)
    est = TableEstimator(load_table(search_table), on_missing="error", save=False)
    budget = est.latency_ms(extreme_arch(space, est, fastest=False))

    class _Diverges(FakeEvaluator):
        def evaluate(self, arch: ArchSpec, *, report: Callable[[int, float], None] | None = None) -> Evaluation:
            return Evaluation(0.9, (0.9,), "diverged", 0.0)  # 0.9: the epoch before the loss became NaN

    def search(n: int) -> optuna.Study:
        config = SearchConfig(n_trials=n, budget_ms=budget, run_dir=tmp_path, sampler="random", prune=False)
        return run_search(config, space, est, _Diverges(epochs=1), fingerprint={},
                          warm_start=extreme_params(space, est))

    first = search(1).trials[0]
    assert first.user_attrs["status"] == "diverged"
    optuna.load_study(study_name="search", storage=f"sqlite:///{tmp_path / 'study.db'}").enqueue_trial(first.params)
    twin = search(2).trials[1]  # the same network again: its result is reused, not trained
    assert twin.user_attrs["status"] == "duplicate_diverged" and twin.user_attrs["hash"] == first.user_attrs["hash"]
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert best_trial(study, budget, "reward", confirmed=False) is None and front(study, budget) == []


def _described(number_acc_lat: tuple[float, float], digest: str) -> optuna.trial.FrozenTrial:
    acc, latency = number_acc_lat
    return optuna.trial.create_trial(
        state=TrialState.COMPLETE, values=[acc], params={"x": 0}, distributions={"x": CategoricalDistribution([0])},
        user_attrs={"status": "trained", "val_acc": acc, "latency_ms": latency, "hash": digest, "budget_ms": 2.0,
                    "params": 1000, "macs": 10**6, "compact": f"net-{digest}", "acc_per_epoch": [acc]})


def test_pareto_png_has_a_title_and_marks_the_winner_at_its_mean(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The winner was chosen on its mean over three seeds: it is drawn there, with the seeds' spread; the other
    trials keep their own single results."""
    from matplotlib.axes import Axes

    from nas.search.outputs import write_outputs

    study = optuna.create_study(direction="maximize")
    study.add_trial(_described((0.90, 1.0), "lucky"))  # one lucky seed: 0.90, then 0.60 and 0.66
    study.add_trial(_described((0.80, 1.5), "steady"))  # 0.80, 0.79, 0.81: the winner on the mean
    for digest, accs in (("lucky", (0.60, 0.66)), ("steady", (0.79, 0.81))):
        for seed, acc in enumerate(accs, 1):
            study.set_user_attr(f"confirm:{digest}:{seed}", acc)
    calls: dict[str, list[Any]] = {"set_title": [], "errorbar": [], "scatter": []}
    for name in calls:
        original = getattr(Axes, name)

        def record(self: Axes, *args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            calls[_name].append((args, kwargs))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Axes, name, record)
    header = {"table": "latency_tables/ort-cpu-1t.json", "device": "cpu", "data": "digits (embedded scikit-learn 8x8)"}
    result = write_outputs(study, tmp_path, budget_ms=2.0, objective="reward", baselines=[], header=header)
    assert result["best"]["trial"] == 1
    title = calls["set_title"][0][0][0]
    assert "digits (embedded scikit-learn 8x8)" in title and "ort-cpu-1t.json" in title
    (xs, ys), kwargs = calls["errorbar"][0][0][:2], calls["errorbar"][0][1]
    assert list(xs) == [1.5] and list(ys) == [pytest.approx(0.80)]  # the mean of 0.80, 0.79, 0.81
    assert kwargs["yerr"] == [pytest.approx(0.01)] and "winner: trial 1" in kwargs["label"]
    assert "mean of 3 seeds" in kwargs["label"]
    trials = next(args for args, kw in calls["scatter"] if kw.get("label") == "trials")
    assert sorted(trials[1]) == [0.80, 0.90]  # the trials' own single results


def test_a_full_disk_while_writing_pareto_png_is_one_line_and_keeps_earlier_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import matplotlib.figure

    from nas.errors import NASError
    from nas.search.outputs import write_outputs

    study = optuna.create_study(direction="maximize")
    study.add_trial(_described((0.80, 1.5), "steady"))
    header = {"table": "t.json", "data": "digits"}
    write_outputs(study, tmp_path, budget_ms=2.0, objective="reward", baselines=[], header=header)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    study.add_trial(_described((0.85, 1.2), "new"))

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
    with pytest.raises(NASError) as err:
        write_outputs(study, tmp_path, budget_ms=2.0, objective="reward", baselines=[], header=header)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "pareto.png") in message and "No space left on device" in message
    assert (tmp_path / "pareto.png").read_bytes() == before["pareto.png"]  # the earlier plot is intact
    assert (tmp_path / "summary.md").read_bytes() == before["summary.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)  # no temporary file left behind


def test_trials_csv_ranks_winners_with_the_searchs_own_reward(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``winner_rank`` (which ``nas retrain`` follows) comes from the search's objective with its --w/--constraint,
    as ``best_arch.json`` does, not from a default one."""
    import nas.search.outputs as outputs
    from nas.search import HARD, RewardObjective

    seen: list[object] = []
    real = outputs.rank_trials

    def spy(trials: Any, objective: Any) -> Any:
        seen.append(objective)
        return real(trials, objective)

    monkeypatch.setattr(outputs, "rank_trials", spy)
    study = optuna.create_study(direction="maximize")
    study.add_trial(_described((0.80, 1.5), "steady"))
    strategy = RewardObjective(HARD)
    outputs.write_outputs(study, tmp_path, budget_ms=2.0, objective=strategy, baselines=[], header={})
    assert seen and all(objective is strategy for objective in seen)
    outputs.write_trials_csv(study, tmp_path)  # read without the search's settings: the study's kind, defaults
    assert seen[-1] is not strategy and type(seen[-1]) is RewardObjective
