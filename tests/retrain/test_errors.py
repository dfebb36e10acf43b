"""User errors of ``nas retrain``: one line on stderr, exit status 2, nothing written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from nas.cli import main


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_missing_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(["retrain", "--run", str(tmp_path / "nope"), "--no-references"], capsys)
    assert "--run" in err and "no such run directory" in err


def test_folder_that_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(["retrain", "--run", str(tmp_path), "--no-references"], capsys)
    assert "trials.csv" in err and "nas search" in err


def test_run_without_trained_trials(tiny_run: Path, copy_run: Callable[[Path], Path],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(tiny_run)
    trials = pd.read_csv(run / "trials.csv")
    trials["state"], trials["status"] = "PRUNED", "over_budget"
    trials.to_csv(run / "trials.csv", index=False)
    err = _error(["retrain", "--run", str(run), "--no-references"], capsys)
    assert "no trained trial within the budget" in err and "more trials" in err
    assert not (run / "retrain").exists()


@pytest.mark.parametrize(("option", "value", "expected"), [
    ("--top", "0", "--top: expected an integer >= 1"),
    ("--seeds", "0", "--seeds: expected an integer >= 1"),
    ("--epochs", "0", "--epochs: expected an integer >= 1"),
])
def test_bad_counts(tiny_run: Path, copy_run: Callable[[Path], Path], capsys: pytest.CaptureFixture[str],
                    option: str, value: str, expected: str) -> None:
    run = copy_run(tiny_run)
    err = _error(["retrain", "--run", str(run), option, value, "--no-references"], capsys)
    assert expected in err
    assert not (run / "retrain").exists()


def test_data_not_recorded_requires_data(tiny_run: Path, copy_run: Callable[[Path], Path],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(tiny_run)
    summary = run / "summary.md"
    summary.write_text("\n".join(x for x in summary.read_text().splitlines() if not x.startswith("- data:")))
    err = _error(["retrain", "--run", str(run), "--no-references"], capsys)
    assert "pass --data" in err


def test_missing_table_names_the_fix(tiny_run: Path, copy_run: Callable[[Path], Path],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(tiny_run)
    summary = run / "summary.md"
    summary.write_text(summary.read_text().replace("- table: ", "- table: /nonexistent/"))
    err = _error(["retrain", "--run", str(run), "--no-references"], capsys)
    assert "/nonexistent/" in err and "--table" in err


def test_unknown_reference_is_refused_before_training(tiny_run: Path, copy_run: Callable[[Path], Path],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(tiny_run)
    err = _error(["retrain", "--run", str(run), "--references", "mobilenetv2-cifar@0.5,resnet50"], capsys)
    assert "resnet50" in err and "known:" in err
    assert not (run / "retrain").exists()


def test_reference_cache_that_is_a_file(tiny_run: Path, copy_run: Callable[[Path], Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(tiny_run)
    taken = tmp_path / "cache.txt"
    taken.write_text("keep me")
    err = _error(["retrain", "--run", str(run), "--epochs", "1", "--subset", "100", "--reference-cache", str(taken)],
                 capsys)
    assert err.startswith(f"error: --reference-cache {taken}: is an existing file")
    assert taken.read_text() == "keep me" and not (run / "retrain").exists()


def test_a_table_for_another_input_size_is_refused_before_training(tiny_run: Path, copy_run: Callable[[Path], Path],
                                                                   tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import REPO

    run = copy_run(tiny_run)
    other = REPO / "latency_tables" / "ort-cpu-1t.json"  # 32x32 inputs; the tiny space's networks take 16x16
    err = _error(["retrain", "--run", str(run), "--no-references", "--epochs", "1", "--subset", "100", "--table",
                  str(other)], capsys)
    assert str(other) in err and "the winner" in err
    assert not (run / "retrain").exists()


def test_a_model_folder_that_cannot_be_made_is_one_line(tiny_run: Path, copy_run: Callable[[Path], Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    import nas.retrain.model as model

    real = Path.mkdir

    def full(self: Path, *args: object, **kwargs: object) -> None:
        if "seed" in self.name:  # the network's own folder: the disk is full by then
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(model.Path, "mkdir", full)
    run = copy_run(tiny_run)
    err = _error(["retrain", "--run", str(run), "--epochs", "1", "--subset", "100", "--no-references"], capsys)
    assert "seed0: cannot write it (No space left on device" in err
