"""Kept supernet scores: a second evaluator (another device's search, a resumed one) re-scores nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import nas.supernet.evaluate as evaluate_module
from nas.arch import arch_hash
from nas.space import random_arch
from nas.supernet import SupernetEvaluator, SupernetScoring, load_supernet
from nas.supernet.evaluate import SCORES_DIR
from nas.supernet.score_cache import ScoreCache
from nas.train.checkpoint import CHECKPOINT_NAME, sha256_file


def _splits(loaded: Any) -> Any:
    from nas.data import load_dataset

    data = loaded.info["data"]
    return load_dataset("digits", input_size=loaded.space.input_size, val_fraction=data["val_fraction"],
                        seed=data["seed"], subset=data["subset"], cache_dir=None, progress=False)


def test_scores_are_kept_in_the_supernet_directory_and_reused(tiny_supernet: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "supernet"
    shutil.copytree(tiny_supernet, directory)
    shutil.rmtree(directory / SCORES_DIR, ignore_errors=True)  # scores kept by other tests' searches
    loaded = load_supernet(directory)
    splits = _splits(loaded)
    archs = [random_arch(loaded.space, s) for s in range(4)]
    first = SupernetEvaluator(loaded, splits, keep=True)
    scores = [first.evaluate(a).accuracy for a in archs]
    files = list((directory / SCORES_DIR).iterdir())
    assert [f.name for f in files] == [f"{first.fingerprint}-cpu.jsonl"]
    hashes = {json.loads(line)["hash"] for line in files[0].read_text().splitlines()}
    assert hashes == {arch_hash(a) for a in archs}
    with files[0].open("a") as f:
        f.write('{"hash": "torn')  # a write cut short by a kill

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("scored again")

    monkeypatch.setattr(evaluate_module, "calibrated_subnet", never)
    again = SupernetEvaluator(load_supernet(directory), splits, keep=True)
    assert [again.evaluate(a).accuracy for a in archs] == scores
    # other scoring settings are other scores: they are not read from this file
    other = SupernetEvaluator(loaded, splits, SupernetScoring(calibration_images=32), keep=True)
    assert other.fingerprint != first.fingerprint
    with pytest.raises(AssertionError, match="scored again"):
        other.evaluate(archs[0])
    # without keep nothing is read or written
    assert SupernetEvaluator(loaded, splits).kept is None


def test_other_weights_have_another_fingerprint(tiny_supernet: Path, tmp_path: Path) -> None:
    directory = tmp_path / "supernet"
    shutil.copytree(tiny_supernet, directory)
    before = load_supernet(directory)
    assert before.weights == sha256_file(directory / CHECKPOINT_NAME)
    with (directory / CHECKPOINT_NAME).open("ab") as f:  # the same epochs, other bytes: e.g. trained again
        f.write(b"\0")
    after = load_supernet(directory)
    assert after.epochs == before.epochs and after.fingerprint != before.fingerprint


def test_a_place_that_cannot_be_written_keeps_scores_in_memory(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    cache = ScoreCache(tmp_path / "scores.jsonl")
    (tmp_path / "scores.jsonl").mkdir()  # made unwritable after it was read: a folder where the file would go
    cache.put("abc", 0.5, 1.0)
    assert cache.get("abc") == (0.5, 1.0) and not cache.writable
    assert "cannot keep scores there" in capsys.readouterr().err
    cache.put("def", 0.25, 1.0)  # said once
    assert capsys.readouterr().err == ""
    path = tmp_path / "ok.jsonl"
    path.write_text(json.dumps({"hash": "h1", "acc": 0.25}) + "\n" + "not json\n" + json.dumps({"acc": 1}) + "\n")
    assert ScoreCache(path).scores == {"h1": (0.25, 0.0)}


def test_a_score_written_after_a_torn_line_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "scores.jsonl"
    ScoreCache(path).put("h1", 0.5, 1.0)
    with path.open("a") as f:
        f.write('{"hash": "h2", "acc": 0.')  # a write cut short by a kill
    ScoreCache(path).put("h3", 0.75, 2.0)
    assert ScoreCache(path).scores == {"h1": (0.5, 1.0), "h3": (0.75, 2.0)}
    ScoreCache(path).put("h4", 0.25, 1.0)  # after a complete line: no empty line added
    assert path.read_text().count("\n\n") == 0


def test_a_damaged_line_costs_only_itself(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "scores.jsonl"
    path.write_bytes(json.dumps({"hash": "h1", "acc": 0.25}).encode() + b"\n\xff\xfe\n" + b"[" * 100_000 + b"\n"
                     + b'["a list"]\n' + json.dumps({"hash": "h2", "acc": 0.5}).encode() + b"\n")
    cache = ScoreCache(path)
    assert cache.scores == {"h1": (0.25, 0.0), "h2": (0.5, 0.0)} and cache.writable
    assert capsys.readouterr().err == ""


def test_a_short_write_stops_keeping_scores_with_one_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import nas.supernet.score_cache as score_cache_module

    path = tmp_path / "scores.jsonl"
    cache = ScoreCache(path)
    real_write = score_cache_module.os.write
    monkeypatch.setattr(score_cache_module.os, "write", lambda fd, data: real_write(fd, data[:5]))  # a full disk
    cache.put("h1", 0.5, 1.0)
    assert not cache.writable and "wrote 5 of" in capsys.readouterr().err
    assert cache.get("h1") == (0.5, 1.0)  # kept in memory for the run
    # a second cache of the same directory (a confirmation's other calibration sample) does not say it again
    other = ScoreCache(tmp_path / "other.jsonl")
    other.put("h2", 0.5, 1.0)
    assert not other.writable and capsys.readouterr().err == ""


def test_the_batch_size_is_in_the_fingerprint(tiny_supernet: Path) -> None:
    loaded = load_supernet(tiny_supernet)
    splits = _splits(loaded)
    default = SupernetEvaluator(loaded, splits)
    # the default keeps the name scores had before the batch size was in it
    assert "-b" not in default.fingerprint.removeprefix(f"supernet-{loaded.fingerprint}")
    small = SupernetEvaluator(loaded, splits, SupernetScoring(batch_size=7))
    assert small.fingerprint != default.fingerprint and "-b7-" in small.fingerprint
