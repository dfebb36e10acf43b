"""What ``report.md`` / ``report.png`` may claim: chance-level results flagged, differences only with their seed
spread and only from >= 2 seeds, a y axis that includes chance level. Built from synthetic results (no training)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from nas.retrain.report import build_report, y_limits
from nas.retrain.results import COLUMNS, collect_results, write_results

TAG = "short-5ep"
_CURVE = {"mobilenetv2-cifar@0.35": 0.30, "mobilenetv2-cifar@0.5": 0.40, "mobilenetv2-cifar@0.75": 0.55,
          "mobilenetv2-cifar": 0.70}


def _row(kind: str, name: str, seed: int, acc: float | None, ms: float, *, share: float = 0.2, flag: str = "",
         trial: int | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in COLUMNS}
    row.update(recipe=TAG, kind=kind, name=name, seed=seed, test_acc=acc, predicted_ms=ms, status="completed",
               trial=trial, params=1000, macs=10**6, test_images=10_000, train_images=60_000, classes=10,
               chance_acc=0.1, top_class="1", top_class_share=share, near_chance=flag, bn_recalibration=2048,
               augment="crop+flip")
    return row


def _run(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    run = tmp_path / "run"
    (run / "retrain" / TAG).mkdir(parents=True)
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(run / "retrain" / "results.csv", index=False)
    (run / "retrain" / TAG / "recipe.json").write_text(json.dumps({"description": "short: 5 epochs"}))
    return run


def _issue_rows() -> list[dict[str, Any]]:
    """The issue's short MNIST retraining: one seed; 5 of 6 networks predict one class for every image."""
    flag = "it predicts one class ('1') for 100 % of the test images"
    rows = [_row("winner", "abc", 0, 0.115, 1.0, share=1.0, flag=flag, trial=3)]
    rows += [_row("reference", name, 0, acc, ms, share=1.0, flag=flag) for (name, acc), ms in
             zip({"mobilenetv2-cifar@0.35": 0.107, "mobilenetv2-cifar@0.5": 0.113, "mobilenetv2-cifar@0.75": 0.112,
                  "mobilenetv2-cifar": 0.114}.items(), (0.5, 0.8, 1.5, 2.5))]
    rows.append(_row("reference", "cse-mix-cifar", 0, 0.2, 2.6))
    return rows


def test_chance_level_and_single_seed_results_make_no_claims(tmp_path: Path) -> None:
    md = (build_report(_run(tmp_path, _issue_rows()))[0]).read_text()
    assert "points vs the MobileNetV2 width curve" not in md and "at least as accurate as" not in md
    assert "5 of 6 networks are at chance level" in md
    assert "one seed decides nothing" in md
    line = next(x for x in md.splitlines() if x.startswith("| trial 3 | winner |"))
    assert "chance level" in line
    assert "chance level (10.0 %)" in md
    assert "it predicts one class ('1') for 100 % of the test images" in md


def test_differences_come_with_their_seed_spread(tmp_path: Path) -> None:
    rows = []
    for seed, noise in enumerate((-0.01, 0.0, 0.01)):
        rows.append(_row("winner", "abc", seed, 0.50 + noise, 1.0, trial=3))  # the curve gives 0.40 at 1.0 ms
        rows.append(_row("winner", "def", seed, 0.41 + 3 * noise, 1.0, trial=4))
        rows += [_row("reference", name, seed, acc + noise, ms) for (name, acc), ms in
                 zip(_CURVE.items(), (0.5, 1.0, 1.5, 2.5))]
        rows.append(_row("reference", "cse-mix-cifar", seed, 0.45 + noise, 2.6))
    md = build_report(_run(tmp_path, rows))[0].read_text()
    t3 = next(x for x in md.splitlines() if x.startswith("- trial 3:"))
    assert "+10.00 points vs the MobileNetV2 width curve" in t3 and "seed std 1.00 / 1.00" in t3
    assert "ahead by more than the seed spread" in t3 and "3 seeds" in t3
    t4 = next(x for x in md.splitlines() if x.startswith("- trial 4:"))
    assert "+1.00 points vs the MobileNetV2 width curve" in t4 and "within the seed spread" in t4
    assert "one seed decides nothing" not in md


def test_a_winner_with_one_seed_is_not_compared(tmp_path: Path) -> None:
    rows = [_row("winner", "abc", 0, 0.60, 1.0, trial=3)]
    for seed in (0, 1):
        rows += [_row("reference", name, seed, acc + seed / 100, ms) for (name, acc), ms in
                 zip(_CURVE.items(), (0.5, 1.0, 1.5, 2.5))]
    md = build_report(_run(tmp_path, rows))[0].read_text()
    t3 = next(x for x in md.splitlines() if x.startswith("- trial 3:"))
    assert "one seed decides nothing" in t3 and "points vs" not in t3


def test_the_y_axis_includes_chance_level_and_does_not_magnify_noise() -> None:
    low, high = y_limits([10.7, 11.5, 11.2], chance=10.0)
    assert low <= 10.0 - 1 and high - low >= 20  # 0.8 points of noise are not drawn as a dramatic V
    low, high = y_limits([55.0, 61.0], chance=10.0)
    assert low <= 10.0 and high >= 61.0 and 0 <= low and high <= 100
    low, high = y_limits([97.0, 99.5], chance=None)
    assert high <= 100 and high - low >= 20


def test_the_plot_draws_chance_level(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.axes import Axes

    drawn: list[float] = []
    original = Axes.axhline

    def axhline(self: Axes, y: float = 0, *args: Any, **kwargs: Any) -> Any:
        drawn.append(y)
        return original(self, y, *args, **kwargs)

    monkeypatch.setattr(Axes, "axhline", axhline)
    build_report(_run(tmp_path, _issue_rows()))
    assert drawn == [pytest.approx(10.0)]


def test_results_csv_flags_chance_level_from_the_stored_results(tmp_path: Path) -> None:
    run = tmp_path / "run"
    stored = {"good": (0.9, 0.11), "one-class": (0.6, 0.9), "guessing": (0.12, 0.2)}
    for name, (acc, share) in stored.items():
        folder = run / "retrain" / TAG / "winners" / name / "seed0"
        folder.mkdir(parents=True)
        row = _row("winner", name, 0, acc, 1.0, share=share)
        row.pop("near_chance")
        (folder / "result.json").write_text(json.dumps(row))
    write_results(run)
    frame = pd.read_csv(run / "retrain" / "results.csv", keep_default_na=False).set_index("name")
    assert frame.loc["good", "near_chance"] == ""
    assert "one class ('1') for 90 %" in frame.loc["one-class", "near_chance"]
    assert "within 5.0 points of chance level" in frame.loc["guessing", "near_chance"]
    assert list(collect_results(run).columns) == list(COLUMNS)


def _one_finished_seed_rows() -> list[dict[str, Any]]:
    """A winner whose seed 1 diverged (no test accuracy), a reference with one of two seeds finished, and
    references with two finished seeds each."""
    diverged = _row("winner", "aaaa", 1, None, 1.0, trial=5)
    diverged.update(status="diverged", top_class_share=None)
    rows = [_row("winner", "aaaa", 0, 0.80, 1.0, trial=5), diverged]
    for seed, acc in ((0, 0.78), (1, 0.80)):
        rows.append(_row("reference", "mobilenetv2-cifar@0.35", seed, acc, 0.8))
    for seed, acc in ((0, 0.79), (1, 0.81)):
        rows.append(_row("reference", "mobilenetv2-cifar@0.5", seed, acc, 1.2))
    for seed, acc in ((0, 0.795), (1, 0.805)):
        rows.append(_row("reference", "cse-mix-cifar", seed, acc, 2.0))
    half = _row("reference", "mobilenetv2-cifar@0.75", 1, None, 1.5)
    half.update(status="diverged", top_class_share=None)
    rows += [_row("reference", "mobilenetv2-cifar@0.75", 0, 0.80, 1.5), half]
    return rows


def test_only_finished_seeds_count_as_seeds(tmp_path: Path) -> None:
    md = build_report(_run(tmp_path, _one_finished_seed_rows()))[0].read_text()
    line = next(x for x in md.splitlines() if x.startswith("| trial 5 (completed,diverged) | winner |"))
    assert "| 80.00 | 1 of 2 |" in line  # no "± nan", not "2" seeds
    t5 = next(x for x in md.splitlines() if x.startswith("- trial 5:"))
    assert "one seed decides nothing" in t5 and "1 of 2 seeds finished" in t5
    assert "points vs" not in t5 and "by more than the seed spread" not in t5
    warning = next(x for x in md.splitlines() if x.startswith("One seed per network"))
    assert "trial 5 (1 of 2 seeds finished)" in warning and "mobilenetv2-cifar@0.75 (1 of 2 seeds finished)" in warning
    left_out = next(x for x in md.splitlines() if x.startswith("References left out"))
    assert "mobilenetv2-cifar@0.75" in left_out and "mobilenetv2-cifar@0.5," not in left_out


def test_a_reference_with_one_finished_seed_is_not_compared(tmp_path: Path) -> None:
    rows = [r for r in _one_finished_seed_rows() if r["name"] != "aaaa"]
    rows += [_row("winner", "bbbb", seed, acc, 1.4, trial=6) for seed, acc in ((0, 0.80), (1, 0.80))]
    md = build_report(_run(tmp_path, rows))[0].read_text()
    t6 = next(x for x in md.splitlines() if x.startswith("- trial 6:"))
    assert "of the 1 comparable reference(s) that are not faster" in t6  # cse-mix-cifar, not @0.75 (1 seed)
    assert "width curve" not in t6  # without @0.75 the curve ends at 1.2 ms
    assert "nan" not in t6


def test_a_difference_is_never_judged_against_an_unknown_spread() -> None:
    from nas.retrain.report import _difference, _verdict

    for diff in (0.0, 0.5, -0.5):
        assert _verdict(diff, float("nan")) == "seed spread unknown: not judged"
    winner = pd.Series({"test_acc": 0.80, "test_acc_std": float("nan"), "seeds": 2})
    for std in (0.01, float("nan")):
        assert _difference(winner, "x", 0.80, std, "2").endswith("seed spread unknown: not judged")
