"""``nas search --supernet``: trials scored by a trained supernet, one search per device, the cross table."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import nas.supernet.evaluate as supernet_evaluate
from nas.arch import arch_hash, parse_compact
from nas.cli import main
from nas.data import load_dataset
from nas.latency import TableEstimator, load_table
from nas.space import random_arch
from nas.errors import SupernetError
from nas.supernet import SupernetEvaluator, SupernetScoring, load_supernet
from nas.supernet.evaluate import SCORES_DIR
from tests.conftest import TINY_SPACE
from tests.search.conftest import search_table  # noqa: F401  (a fixture: the tiny table, all predictions positive)

TRIALS = 24


def _run(args: list[str]) -> tuple[int, str]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["search", *args])
    return code, buffer.getvalue()


def refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``nas search ARGS``; assert exit 2 with one line on stderr and no traceback; return the line."""
    code = main(["search", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def slow_cse_table(search_table: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """A second "device" for the tiny space: the search table with every CSE part three times slower.

    The correction is checked against its calibration networks' recorded part sums, which stay as measured,
    so the copy loads; its predictions differ from the first table's by block type, not by one factor.
    """
    data = json.loads(search_table.read_text())
    for key, entry in data["entries"].items():
        if key.startswith("cse"):
            for field in ("median", "p10", "p90"):
                entry[field] *= 3
    data["metadata"]["device"] = "slow-cse test device"
    path = tmp_path_factory.mktemp("slow_cse") / "slow_cse.json"
    path.write_text(json.dumps(data))
    return path


def _splits(supernet: Path) -> Any:
    info = load_supernet(supernet).info["data"]
    return load_dataset("digits", input_size=16, val_fraction=info["val_fraction"], seed=info["seed"],
                        subset=info["subset"], progress=False)


@pytest.fixture(scope="module")
def one_device(tiny_supernet: Path, search_table: Path,  # noqa: F811
               tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("supernet_search") / "run"
    code, log = _run(["--supernet", str(tiny_supernet), "--target", str(search_table), "--trials", str(TRIALS),
                      "--out", str(out), "--threads", "1"])
    assert code == 0, log
    return out, log


def _counted_search(args: list[str]) -> tuple[int, str, list[tuple[str, int]]]:
    """``nas search ARGS``, and every supernet score it computed, as (arch hash, calibration seed)."""
    scored: list[tuple[str, int]] = []
    real = supernet_evaluate.calibrated_subnet

    def counting(loaded: Any, arch: Any, splits: Any, scoring: SupernetScoring, **kwargs: Any) -> Any:
        scored.append((arch_hash(arch), scoring.seed))
        return real(loaded, arch, splits, scoring, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(supernet_evaluate, "calibrated_subnet", counting)
        code, log = _run(args)
    return code, log, scored


@pytest.fixture(scope="module")
def own_supernet(tiny_supernet: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny supernet without kept scores (other tests' searches keep theirs in the original)."""
    copy = tmp_path_factory.mktemp("own") / "supernet"
    shutil.copytree(tiny_supernet, copy, ignore=shutil.ignore_patterns(SCORES_DIR))
    return copy


@pytest.fixture(scope="module")
def two_devices(own_supernet: Path, search_table: Path, slow_cse_table: Path,  # noqa: F811
                tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, list[tuple[str, int]]]:
    """A search for both tables in one command; also every supernet score computed, as (arch hash, seed)."""
    out = tmp_path_factory.mktemp("specialize") / "run"
    code, log, scored = _counted_search(["--supernet", str(own_supernet), "--target", str(search_table), "--target",
                                         str(slow_cse_table), "--trials", str(TRIALS), "--out", str(out),
                                         "--threads", "1"])
    assert code == 0, log
    return out, log, scored


def test_a_later_search_for_another_device_rescores_nothing_scored_before(  # noqa: F811
        two_devices: tuple[Path, str, list[tuple[str, int]]], own_supernet: Path, slow_cse_table: Path,
        tmp_path: Path) -> None:
    first, _, scored = two_devices
    code, log, again = _counted_search(["--supernet", str(own_supernet), "--target", str(slow_cse_table),
                                        "--trials", str(TRIALS), "--out", str(tmp_path / "later"), "--threads", "1"])
    assert code == 0, log
    # the same seed draws the same networks as the slow_cse search of the first command: all scores kept
    assert again == [] and scored
    later = pd.read_csv(tmp_path / "later" / "trials.csv")
    before = pd.read_csv(first / "slow_cse" / "trials.csv")
    assert list(later["hash"]) == list(before["hash"]) and list(later["val_acc"]) == list(before["val_acc"])


def test_a_supernet_search_scores_every_trial_without_training(one_device: tuple[Path, str],
                                                               tiny_supernet: Path) -> None:
    out, log = one_device
    assert "no training" in log and "baselines skipped" in log and "Results in" in log
    df = pd.read_csv(out / "trials.csv")
    assert len(df) == TRIALS and set(df["state"]) == {"COMPLETE"}  # nothing stopped early: a score is final
    assert set(df["status"]) <= {"trained", "duplicate"} and (df["epochs"] == 1).all()
    summary = (out / "summary.md").read_text()
    assert f"- supernet: {tiny_supernet} (2 epochs trained, space 'tiny_test')" in summary
    assert "- sampler: evolution" in summary and "calibration samples" in summary
    assert "split as the supernet's training: val fraction 0.1, seed 0, subset 300" in summary
    for name in ("best_arch.json", "pareto.json", "pareto.png"):
        assert (out / name).is_file()
    best = json.loads((out / "best_arch.json").read_text())
    assert len(best["confirmed"]["accs"]) == 3  # its own calibration sample and two others
    # The search's score is what a fresh evaluator gives the winner, on the supernet's own validation split.
    fresh = SupernetEvaluator(load_supernet(tiny_supernet), _splits(tiny_supernet), SupernetScoring(), device="cpu")
    assert fresh.evaluate(parse_compact(best["compact"])).accuracy == pytest.approx(best["val_acc"], abs=1e-12)
    assert fresh.reseeded(1).evaluate(parse_compact(best["compact"])).accuracy == \
        pytest.approx(best["confirmed"]["accs"][1], abs=1e-12)


def test_a_search_on_a_validation_sample_chooses_on_the_whole_split(tiny_supernet: Path, search_table: Path,  # noqa: F811
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, log = _run(["--supernet", str(tiny_supernet), "--target", str(search_table), "--trials", "12",
                      "--val-images", "10", "--confirm-top", "2", "--out", str(out), "--threads", "1"])
    assert code == 0, log
    assert "rescored with seed 0" in log and "accuracy on 10 validation images" in (out / "summary.md").read_text()
    best = json.loads((out / "best_arch.json").read_text())
    splits = _splits(tiny_supernet)
    assert len(splits.val) == 75  # so 10 images are a sample of it
    loaded, arch = load_supernet(tiny_supernet), parse_compact(best["compact"])
    sample = SupernetEvaluator(loaded, splits, SupernetScoring(val_images=10), device="cpu")
    whole = SupernetEvaluator(loaded, splits, SupernetScoring(), device="cpu")
    assert sample.evaluate(arch).accuracy == pytest.approx(best["val_acc"], abs=1e-12)
    # the confirmation: the whole split with the search's calibration sample and two others, and nothing else
    rescores = [whole.reseeded(seed).evaluate(arch).accuracy for seed in (0, 1, 2)]
    assert best["confirmed"]["rescored"] and best["confirmed"]["seeds"] == [0, 1, 2]
    assert best["confirmed"]["accs"] == pytest.approx(rescores, abs=1e-12)
    df = pd.read_csv(out / "trials.csv")
    chosen = df[df["confirm_accs"].notna() & (df["confirm_accs"] != "")].drop_duplicates("hash")
    first = df[df["winner_rank"] == 1]
    assert len(chosen) == 2 and len(first) == 1 and first["hash"].iloc[0] == best["hash"]
    assert first["mean_acc"].iloc[0] == pytest.approx(sum(rescores) / 3, abs=1e-12)
    summary = (out / "summary.md").read_text()
    assert "scored again on the finer measure" in summary and "scores on the whole validation split" in summary
    # a sample as large as the split is the split: confirmations as before, on other calibration samples
    assert not SupernetEvaluator(loaded, splits, SupernetScoring(val_images=75), device="cpu").rescores
    assert SupernetEvaluator(loaded, splits, SupernetScoring(val_images=74), device="cpu").rescores


@pytest.mark.parametrize(("extra", "images"), [([], 10), (["--val-images", "0"], 75), (["--val-images", "20"], 20)])
def test_the_default_validation_sample_applies_when_the_split_is_larger(
        extra: list[str], images: int, tiny_supernet: Path, search_table: Path,  # noqa: F811
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nas.search.on_supernet

    monkeypatch.setattr(nas.search.on_supernet, "SUPERNET_VAL_IMAGES", 10)  # the split has 75
    out = tmp_path / "run"
    code, log = _run(["--supernet", str(tiny_supernet), "--target", str(search_table), "--trials", "3",
                      "--confirm-top", "0", "--out", str(out), "--threads", "1", *extra])
    assert code == 0, log
    assert f"accuracy on {images} validation images" in (out / "summary.md").read_text()


def test_a_search_begun_on_the_whole_split_is_told_how_to_resume(
        tiny_supernet: Path, search_table: Path, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import nas.search.on_supernet
    import nas.search.runner

    for module in (nas.search.on_supernet, nas.search.runner):
        monkeypatch.setattr(module, "SUPERNET_VAL_IMAGES", 10)  # the split has 75
    args = ["--supernet", str(tiny_supernet), "--target", str(search_table), "--trials", "2", "--confirm-top", "0",
            "--out", str(tmp_path / "run"), "--threads", "1"]
    code, log = _run([*args, "--val-images", "0"])  # the whole split: what the default was before
    assert code == 0, log
    assert "add --val-images 0 to resume it" in refused(args, capsys)
    assert "re-run with the original settings" in refused([*args, "--val-images", "20"], capsys)


def test_the_same_command_resumes_and_other_scoring_is_refused(one_device: tuple[Path, str], tiny_supernet: Path,
                                                              search_table: Path,  # noqa: F811
                                                              capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    out, _ = one_device
    args = ["--supernet", str(tiny_supernet), "--target", str(search_table), "--trials", str(TRIALS),
            "--out", str(out), "--threads", "1"]
    code, log = _run(args)
    assert code == 0 and not any(line.startswith("[") for line in log.splitlines()), log  # nothing left to run
    assert len(pd.read_csv(out / "trials.csv")) == TRIALS
    msg = refused([*args, "--calibration-images", "64"], capsys)
    assert "supernet_scoring" in msg and "--calibration-images" in msg
    monkeypatch.setattr("nas.supernet.evaluate.cpu_has_native_bf16", lambda: True)
    msg = refused([*args, "--cpu-bf16", "--device", "cpu"], capsys)  # float32 scores not mixed with bfloat16
    assert "supernet_scoring" in msg and "-cpubf16" in msg and "--cpu-bf16" in msg
    monkeypatch.setattr(supernet_evaluate, "_device_key", lambda device, scoring: "cuda-bf16")
    msg = refused(args, capsys)  # as if on a GPU: its autocast scores are not mixed into a study scored on the CPU
    assert "supernet_device='cpu'" in msg and "supernet_device='cuda-bf16'" in msg and "--device" in msg


def test_two_devices_give_two_searches_and_a_cross_table(two_devices: tuple[Path, str, list[tuple[str, int]]],
                                                         search_table: Path, slow_cse_table: Path,  # noqa: F811
                                                         own_supernet: Path) -> None:
    out, log, scored = two_devices
    tables = {"tiny": search_table, "slow_cse": slow_cse_table}
    for name in tables:
        assert f"- supernet: {own_supernet} (2 epochs" in (out / name / "summary.md").read_text()
        assert len(pd.read_csv(out / name / "trials.csv")) == TRIALS
    for name in ("specialization.md", "pareto_fronts.png"):
        assert (out / name).is_file()
    with open(out / "specialization.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["device"] for r in rows] == list(tables)
    for row in rows:
        best = json.loads((out / row["device"] / "best_arch.json").read_text())
        arch = parse_compact(row["compact"])
        assert row["hash"] == best["hash"] and float(row["accuracy"]) == pytest.approx(best["confirmed"]["mean_acc"])
        for device, table in tables.items():  # each column: that table's own prediction of the row's network
            predicted = TableEstimator(load_table(table), on_missing="interpolate", save=False).latency_ms(arch)
            assert float(row[f"{device}_ms"]) == pytest.approx(predicted, rel=1e-9)
        assert float(row[f"{row['device']}_ms"]) == pytest.approx(best["latency_ms"], rel=1e-9)
        assert float(row[f"{row['device']}_vs_own"]) == pytest.approx(0.0, abs=1e-12)
    markdown = (out / "specialization.md").read_text()
    assert "| winner of |" in markdown and "(its own)" in markdown and "on slow_cse (budget" in markdown
    # One evaluator for both devices: with the search's seed, every network was scored once, whichever device
    # proposed it (confirmations score other calibration samples: other seeds).
    searched = [h for h, seed in scored if seed == 0]
    trials = pd.concat([pd.read_csv(out / name / "trials.csv") for name in tables])
    hashes = set(trials[trials["status"].isin(["trained", "duplicate"])]["hash"])
    assert len(searched) == len(set(searched)) == len(hashes)


def test_refusals(tiny_supernet: Path, search_table: Path, slow_cse_table: Path, tmp_path: Path,  # noqa: F811
                  capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    base = ["--supernet", str(tiny_supernet), "--target", str(search_table), "--trials", "3",
            "--out", str(tmp_path / "run")]
    other = json.loads(search_table.read_text())
    other["metadata"]["space"].update(name="other_space", digest="0" * 64)
    (tmp_path / "other.json").write_text(json.dumps(other))
    msg = refused(["--supernet", str(tiny_supernet), "--target", str(tmp_path / "other.json"),
                   "--out", str(tmp_path / "run")], capsys)
    assert "--target" in msg and "'other_space'" in msg and "'tiny_test'" in msg
    space = tmp_path / "other.yaml"
    space.write_text(TINY_SPACE.read_text().replace("name: tiny_test", "name: other_space")
                     .replace("channels: 24", "channels: 32"))
    msg = refused([*base, "--space", str(space)], capsys)
    assert f"--space {space}" in msg and "'other_space'" in msg and "'tiny_test'" in msg
    msg = refused(["--target", str(search_table), "--target", str(slow_cse_table), "--out", str(tmp_path / "run")],
                  capsys)
    assert "--target given 2 times" in msg and "--supernet" in msg
    copy = tmp_path / "copy" / search_table.name
    copy.parent.mkdir()
    copy.write_text(search_table.read_text())
    assert "has the name 'tiny'" in refused([*base, "--target", str(copy)], capsys)
    assert "given twice" in refused([*base, "--target", str(search_table)], capsys)
    assert "--calibration-images" in refused([*base, "--calibration-images", "-1"], capsys)
    assert "--accuracy-table" in refused([*base, "--accuracy-table", str(tmp_path / "acc.json")], capsys)
    assert "--adapt" in refused([*base, "--adapt"], capsys)
    assert "no such supernet directory" in refused([*base, "--supernet", str(tmp_path / "none")], capsys)
    assert refused(["--target", str(search_table), "--space", str(TINY_SPACE), "--cpu-bf16", "--out",
                    str(tmp_path / "run")], capsys).startswith("error: --cpu-bf16: only with --supernet")
    monkeypatch.setattr("nas.supernet.evaluate.cpu_has_native_bf16", lambda: False)
    assert "this CPU has no native bfloat16" in refused([*base, "--cpu-bf16", "--device", "cpu"], capsys)
    assert not (tmp_path / "run").exists()


def test_the_supernet_evaluator_is_deterministic(tiny_supernet: Path) -> None:
    loaded, splits = load_supernet(tiny_supernet), _splits(tiny_supernet)
    archs = [random_arch(loaded.space, seed) for seed in range(3)]
    first = SupernetEvaluator(loaded, splits, SupernetScoring(calibration_images=64), device="cpu")
    scores = [first.evaluate(a).accuracy for a in archs]
    assert [first.evaluate(a).accuracy for a in archs] == scores  # the same network again
    fresh = SupernetEvaluator(load_supernet(tiny_supernet), _splits(tiny_supernet),
                              SupernetScoring(calibration_images=64), device="cpu")
    assert [fresh.evaluate(a).accuracy for a in archs] == scores  # a new evaluator, the supernet loaded again
    other = [first.reseeded(7).evaluate(a).accuracy for a in archs]
    assert [fresh.reseeded(7).evaluate(a).accuracy for a in archs] == other


def test_data_of_another_input_size_is_refused(tiny_supernet: Path) -> None:
    info = load_supernet(tiny_supernet).info["data"]
    small = load_dataset("digits", input_size=8, val_fraction=info["val_fraction"], seed=info["seed"],
                         subset=info["subset"], progress=False)
    with pytest.raises(SupernetError, match=r"^the data is 8x8, the supernet in .* takes 16x16$"):
        SupernetEvaluator(load_supernet(tiny_supernet), small, SupernetScoring(), device="cpu")
