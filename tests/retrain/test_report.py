"""``nas report``: rebuilt from stored results alone; a clear error when nothing was retrained."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from nas.cli import main
from nas.errors import NASError


def test_report_from_stored_results_only(retrained_run: Path, copy_run: Callable[[Path], Path],
                                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(retrained_run)
    for name in ("report.md", "report.png"):
        (run / name).unlink()

    def impossible(*args: object, **kwargs: object) -> None:
        raise AssertionError("nas report must not train")

    monkeypatch.setattr("nas.retrain.model.train_model", impossible)
    monkeypatch.setattr("nas.train.train_model", impossible)
    monkeypatch.setattr("nas.retrain.latency.LatencyProbe.measure", impossible)
    assert main(["report", "--run", str(run)]) == 0
    assert "report.md" in capsys.readouterr().out
    md = (run / "report.md").read_text()
    frame = pd.read_csv(run / "retrain" / "results.csv")
    assert len(frame) == 4  # 2 winners x 2 seeds
    for trial, rows in frame.groupby("trial"):
        mean = rows["test_acc"].mean() * 100
        line = next(x for x in md.splitlines() if x.startswith(f"| trial {trial} | winner |"))
        assert f"{mean:.2f} ± " in line and "| 2 |" in line  # seeds averaged, spread shown
    assert "training subset of 100 images" in md
    assert (run / "report.png").stat().st_size > 1000


def test_report_without_retraining_is_a_clear_error(tiny_run: Path, copy_run: Callable[[Path], Path],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(tiny_run)
    assert main(["report", "--run", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nothing has been retrained" in err and f"nas retrain --run {run}" in err
    assert not (run / "report.md").exists()


def test_a_full_disk_is_one_line_and_keeps_the_earlier_files(retrained_run: Path, copy_run: Callable[[Path], Path],
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import errno

    import matplotlib.figure

    from nas.retrain.results import write_results

    run = copy_run(retrained_run)
    before = {p: p.read_bytes() for p in (run / "report.png", run / "retrain" / "results.csv")}

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
    assert main(["report", "--run", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {run / 'report.png'}: cannot write it (No space left on device") and "\n" not in err
    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    with pytest.raises(NASError, match="results.csv: cannot write it"):
        write_results(run)
    assert {p: p.read_bytes() for p in before} == before
    assert not [p for p in run.rglob(".*") if p.is_file()]  # no temporary file left behind


@pytest.mark.parametrize("edit", ["drop onnx", "empty seed", "infinite seed"])
def test_a_hand_edited_results_csv_is_one_line(retrained_run: Path, copy_run: Callable[[Path], Path],
                                               capsys: pytest.CaptureFixture[str], edit: str) -> None:
    run = copy_run(retrained_run)
    path = run / "retrain" / "results.csv"
    frame = pd.read_csv(path)
    if edit == "drop onnx":  # a column deleted in a spreadsheet
        frame = frame.drop(columns=["onnx"])
        expected = "missing column(s) onnx"
    else:
        frame["seed"] = frame["seed"].astype(object)
        frame.loc[1, "seed"] = None if edit == "empty seed" else "inf"
        expected = "line 3: seed: expected an integer"
    frame.to_csv(path, index=False)
    assert main(["report", "--run", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and str(path) in err and expected in err, err


def test_a_results_csv_of_an_older_version_still_reports(retrained_run: Path, copy_run: Callable[[Path], Path]) -> None:
    """Columns recorded since (chance level, classes, augmentation ...) are not needed to build the report."""
    run = copy_run(retrained_run)
    path = run / "retrain" / "results.csv"
    later = ["classes", "chance_acc", "top_class", "top_class_share", "near_chance", "bn_recalibration", "augment"]
    pd.read_csv(path).drop(columns=later).to_csv(path, index=False)
    assert main(["report", "--run", str(run)]) == 0
