"""``nas search --adapt``: which trial NetAdapt starts from, and the whole phase on the tiny space."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution

from nas.arch import load_arch_file
from nas.cli import main
from nas.errors import SearchError
from nas.latency import TableEstimator, load_table
from nas.search.adapt_phase import ADAPT_SKIP_OVER, AdaptPhase, adapt_start_trial
from nas.search.job import SearchJob
from tests.search.conftest import search_args


def _trial(value: float | list[float] | None, status: str, acc: float | None, latency: float,
           state: optuna.trial.TrialState = optuna.trial.TrialState.COMPLETE) -> optuna.trial.FrozenTrial:
    attrs: dict[str, Any] = {"status": status, "latency_ms": latency, "hash": f"{value}-{status}-{acc}-{latency}"}
    if acc is not None:
        attrs["val_acc"] = acc
    values = None if value is None else ([value] if isinstance(value, float) else value)
    return optuna.trial.create_trial(state=state, values=values, user_attrs=attrs, params={"x": 0},
                                     distributions={"x": CategoricalDistribution([0])})


def test_reward_mode_starts_from_the_best_reward_whatever_its_latency() -> None:
    study = optuna.create_study(direction="maximize")
    study.add_trial(_trial(0.80, "trained", 0.80, 1.0))
    study.add_trial(_trial(0.85, "trained", 0.88, 1.2))  # over a 1.0 ms budget, yet the best reward
    study.add_trial(_trial(0.99, "diverged", 0.99, 0.9))  # diverged: never a start
    study.add_trial(_trial(None, "pruned", 0.95, 0.9, optuna.trial.TrialState.PRUNED))  # stopped early
    assert adapt_start_trial(study, "reward").number == 1


def test_pareto_mode_starts_from_the_most_accurate() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(_trial([0.80, 1.0], "trained", 0.80, 1.0))
    study.add_trial(_trial([0.90, 1.5], "duplicate", 0.90, 1.5))
    study.add_trial(_trial([0.90, 1.4], "trained", 0.90, 1.4))  # as accurate, faster: preferred
    assert adapt_start_trial(study, "pareto").number == 2
    assert adapt_start_trial(optuna.create_study(direction="maximize"), "reward") is None


def test_adapt_changes_the_default_skip_over_only() -> None:
    assert SearchJob(target="t").skip_over_factor == 1.0
    assert SearchJob(target="t", adapt=AdaptPhase()).skip_over_factor == ADAPT_SKIP_OVER
    assert SearchJob(target="t", adapt=AdaptPhase(), skip_over=1.1).skip_over_factor == 1.1
    with pytest.raises(SearchError, match="--adapt-steps"):
        AdaptPhase(steps=0)


def test_search_with_adapt_shrinks_the_winner_onto_the_budget(search_table: Path, tmp_path: Path) -> None:
    from nas.search import extreme_arch
    from nas.space import load_space
    from tests.conftest import TINY_SPACE

    estimator = TableEstimator(load_table(search_table), on_missing="interpolate", save=False)
    fastest = estimator.latency_ms(extreme_arch(load_space(TINY_SPACE), estimator))
    out = tmp_path / "run"
    # A budget just above the fastest network, and candidates trained up to 8x over it: the best
    # reward is (almost surely) over the budget, so NetAdapt has to cut.
    args = search_args(search_table, out, "--adapt", "--adapt-steps", "2", "--adapt-epochs", "1", "--adapt-delta",
                       "0.1", "--latency-ms", f"{fastest * 1.6:.6f}", "--skip-over", "8", "--json", trials=3)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["search", *args])
    assert code == 0
    result = json.loads(buffer.getvalue())
    adapt = result["adapt"]
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")
    start = study.trials[adapt["start_trial"]]
    assert start.number == adapt_start_trial(study, "reward").number
    assert adapt["start_latency_ms"] == pytest.approx(start.user_attrs["latency_ms"])
    if start.user_attrs["latency_ms"] > result["budget_ms"]:
        assert adapt["status"] in ("met", "unreachable") and adapt["iterations"] >= 1
        assert adapt["latency_ms"] < adapt["start_latency_ms"]
        history = (out / "adapt" / "history.csv").read_text().splitlines()
        assert len(history) > adapt["iterations"]  # a header and at least one proposal per iteration
    else:
        assert adapt["status"] == "already_met" and adapt["iterations"] == 0
    assert (out / "adapt-start" / "checkpoint.pt").is_file()
    arch = load_arch_file(out / "adapt" / "arch.json")
    assert estimator.latency_ms(arch) == pytest.approx(adapt["latency_ms"])
    if adapt["status"] != "unreachable":
        assert adapt["latency_ms"] <= result["budget_ms"] + 1e-9
    assert (out / "adapt" / "weights.pt").is_file() and (out / "adapt" / "adapt.png").is_file()
    summary = (out / "summary.md").read_text()
    assert "## NetAdapt (--adapt)" in summary and f"start: trial {adapt['start_trial']}" in summary


def test_a_new_start_network_keeps_the_earlier_starts_folders(tmp_path: Path) -> None:
    from nas.search.adapt_phase import _set_aside_other_start

    lines: list[str] = []
    _set_aside_other_start(tmp_path, 3, "aaa", lines.append)  # the first start: nothing to set aside
    (tmp_path / "adapt-start" / "checkpoint.pt").write_bytes(b"weights of trial 3")
    (tmp_path / "adapt").mkdir()
    (tmp_path / "adapt" / "arch.json").write_text("{}")
    _set_aside_other_start(tmp_path, 3, "aaa", lines.append)  # the same start again: resume it
    assert (tmp_path / "adapt-start" / "checkpoint.pt").is_file() and lines == []

    _set_aside_other_start(tmp_path, 7, "bbb", lines.append)  # more trials changed the winner
    assert (tmp_path / "adapt-start.trial3" / "checkpoint.pt").read_bytes() == b"weights of trial 3"
    assert (tmp_path / "adapt.trial3" / "arch.json").is_file() and not (tmp_path / "adapt").exists()
    assert sorted(p.name for p in (tmp_path / "adapt-start").iterdir()) == ["start.json"]
    assert json.loads((tmp_path / "adapt-start" / "start.json").read_text()) == {"trial": 7, "hash": "bbb"}
    assert "adapt-start.trial3/" in lines[0]

    (tmp_path / "adapt-start" / "start.json").unlink()  # a run of a version that kept no marker:
    (tmp_path / "adapt").mkdir()  # NetAdapt's state names the start, and it is this one
    (tmp_path / "adapt" / "state.json").write_text(json.dumps({"start_arch": "bbb", "iteration": 2}))
    _set_aside_other_start(tmp_path, 7, "bbb", lines.append)
    assert (tmp_path / "adapt" / "state.json").is_file() and len(lines) == 1
    assert json.loads((tmp_path / "adapt-start" / "start.json").read_text()) == {"trial": 7, "hash": "bbb"}

    (tmp_path / "adapt-start" / "start.json").unlink()  # no marker and another start: set aside
    _set_aside_other_start(tmp_path, 9, "ccc", lines.append)
    assert (tmp_path / "adapt.earlier" / "state.json").is_file() and (tmp_path / "adapt-start.trial3").is_dir()
