"""User errors of ``nas search``: exit status 2, one clear line on stderr, no traceback, nothing trained."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from nas.cli import main
from nas.errors import SearchError
from nas.latency import TableEstimator, load_table
from nas.search import SearchConfig, extreme_arch
from nas.space import load_space
from tests.conftest import DEFAULT_SPACE, TINY_SPACE
from tests.search.conftest import search_args


def refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``nas search ARGS``; assert the refusal's form and return its message."""
    code = main(["search", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_table_of_another_space(search_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = tmp_path / "other.yaml"
    space.write_text(TINY_SPACE.read_text().replace("name: tiny_test", "name: other_space")
                     .replace("channels: 24", "channels: 32"))
    args = search_args(search_table, tmp_path / "run")
    args[args.index("--space") + 1] = str(space)
    msg = refused(args, capsys)
    assert "'tiny_test'" in msg and "'other_space'" in msg and "--space" in msg
    assert not (tmp_path / "run").exists()


def test_default_space_with_the_tiny_table(search_table: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    args = search_args(search_table, tmp_path / "run")
    args[args.index("--space") + 1] = str(DEFAULT_SPACE)
    assert "measured for 16x16x3 inputs" in refused(args, capsys)


def test_table_for_another_input_size(search_table: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    space = tmp_path / "tiny32.yaml"
    space.write_text(TINY_SPACE.read_text().replace("input: {size: 16", "input: {size: 32"))
    args = search_args(search_table, tmp_path / "run")
    args[args.index("--space") + 1] = str(space)
    msg = refused(args, capsys)
    assert "16x16x3" in msg and "32x32x3" in msg and "nas lut build" in msg


def test_budget_below_the_fastest_network(search_table: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    estimator = TableEstimator(load_table(search_table), on_missing="error", save=False)
    fastest_ms = estimator.latency_ms(extreme_arch(load_space(TINY_SPACE), estimator))
    msg = refused(search_args(search_table, tmp_path / "run", "--latency-ms", f"{fastest_ms * 0.5:.6f}"), capsys)
    assert f"fastest achievable is {fastest_ms:.3f} ms" in msg and "--latency-ms" in msg


def test_missing_data_directory(search_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = search_args(search_table, tmp_path / "run")
    args[args.index("--data") + 1] = str(tmp_path / "no-such-folder")
    assert "no-such-folder" in refused(args, capsys)


def test_unknown_sampler(search_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:  # argparse refuses it with the list of choices
        main(["search", *search_args(search_table, tmp_path / "run", "--sampler", "cmaes")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "invalid choice: 'cmaes'" in err and "tpe" in err and "Traceback" not in err
    with pytest.raises(SearchError,
                       match=r"--sampler: expected one of \['tpe', 'nsga2', 'evolution', 'random'\], got 'cmaes'"):
        SearchConfig(n_trials=1, budget_ms=1.0, run_dir=tmp_path, sampler="cmaes")


@pytest.mark.parametrize("option", [["--trials", "0"], ["--epochs", "0"], ["--skip-over", "0.5"],
                                    ["--heartbeat", "5", "--grace", "5"], ["--threads", "-1"],
                                    ["--storage", "redis://localhost"], ["--confirm-top", "-1"],
                                    ["--confirm-seeds", "-2"], ["--w", "nan"], ["--w", "0.5"], ["--latency-ms", "inf"]])
def test_bad_numbers_and_urls(option: list[str], search_table: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    msg = refused(search_args(search_table, tmp_path / "run", *option), capsys)
    assert option[0] in msg


def test_resuming_with_other_settings(search_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["search", *search_args(search_table, out, trials=1)]) == 0
    msg = refused(search_args(search_table, out, "--objective", "pareto", trials=1), capsys)
    assert "--objective" in msg and "--study / --out" in msg
    args = search_args(search_table, out, trials=2)
    args[args.index("--epochs") + 1] = "3"
    msg = refused(args, capsys)
    assert "was created with proxy_recipe=" in msg and "'epochs': 2" in msg and "'epochs': 3" in msg
    assert "--epochs" in msg and "original settings" in msg


def test_out_is_a_file(search_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results.txt"
    out.write_text("not a directory")
    msg = refused(search_args(search_table, out), capsys)
    assert str(out) in msg and "is an existing file" in msg and "--out" in msg
    assert out.read_text() == "not a directory"


def test_resuming_with_another_acceptance_rule(search_table: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["search", *search_args(search_table, out, trials=1)]) == 0
    msg = refused(search_args(search_table, out, "--skip-over", "1.25", trials=2), capsys)
    assert "skip_over=1.0" in msg and "skip_over=1.25" in msg and "--skip-over" in msg
