"""``nas train``: run directory contents, accuracy above chance, resume, and user errors (exit 2)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nas.arch import arch_hash, resolve_arch
from nas.train import CHECKPOINT_NAME, METRICS_CSV, METRICS_JSON
from nas.train.checkpoint import read_checkpoint
from tests.cli.conftest import TINY_ARCH, TINY_TRAIN, Runner, assert_user_error
from tests.data.helpers import first_files

CHANCE = 0.1  # ten digit classes


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / METRICS_CSV, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-epoch run of the tiny network on 400 digits (shared read-only; ~3 s)."""
    from nas.cli import main

    run = tmp_path_factory.mktemp("train") / "run"
    assert main(["train", "--arch", TINY_ARCH, *TINY_TRAIN, "--epochs", "2", "--out", str(run), "--quiet"]) == 0
    return run


def test_train_writes_run_directory_with_accuracy_above_chance(trained_run: Path) -> None:
    assert {p.name for p in trained_run.iterdir()} >= {CHECKPOINT_NAME, METRICS_CSV, METRICS_JSON, "arch.json"}
    metrics = json.loads((trained_run / METRICS_JSON).read_text())
    assert metrics["status"] == "completed" and metrics["epochs_run"] == 2
    assert metrics["images"] == {"train": 400, "val": 100, "test": 359}
    # Two epochs of ~25 steps: well above the 10 % of guessing on both held-out splits.
    assert metrics["final_val_acc"] > 2 * CHANCE and metrics["test_acc"] > 2 * CHANCE
    assert metrics["test_loss"] > 0 and metrics["arch_hash"] == arch_hash(resolve_arch(TINY_ARCH))
    rows = _rows(trained_run)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[-1]["val_acc"]) == pytest.approx(metrics["final_val_acc"])
    assert resolve_arch(str(trained_run / "arch.json")) == resolve_arch(TINY_ARCH)
    assert read_checkpoint(trained_run / CHECKPOINT_NAME)["epoch"] == 2


def test_more_epochs_resume_from_the_saved_epoch(trained_run: Path, tmp_path: Path, nas: Runner) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = _rows(run)
    result = nas("train", "--arch", TINY_ARCH, *TINY_TRAIN, "--epochs", "3", "--out", run)
    assert result.code == 0, result.err
    assert f"resuming {run / CHECKPOINT_NAME} after epoch 2/3" in result.out
    assert "epoch 1/3" not in result.out and "epoch 3/3: train loss" in result.out
    rows = _rows(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3] and rows[:2] == before  # the saved epochs are kept
    metrics = json.loads((run / METRICS_JSON).read_text())
    assert metrics["epochs_run"] == 3 and metrics["test_acc"] is not None
    assert f"results in {run}/" in result.out
    # The same command once more: nothing left to train, the record stays complete.
    again = nas("train", "--arch", TINY_ARCH, *TINY_TRAIN, "--epochs", "3", "--out", run, "--json")
    assert again.code == 0 and json.loads(again.out)["epochs_run"] == 3 and _rows(run) == rows


def test_image_folder_with_test_split(tmp_path: Path, cifar10_root: Path, nas: Runner) -> None:
    """Real CIFAR JPEGs (3 classes x 40 train / 10 test), resized to the network's 16x16 input."""
    root = tmp_path / "cifar3"
    for split, count in (("train", 40), ("test", 10)):
        for name in ("airplane", "frog", "truck"):
            (root / split / name).mkdir(parents=True)
            for path in first_files(cifar10_root / split / name, count):
                shutil.copy2(path, root / split / name / path.name)
    arch3 = TINY_ARCH.replace("cls10", "cls3")
    result = nas("train", "--arch", arch3, "--data", root, "--epochs", "1", "--batch-size", "16",
                 "--out", tmp_path / "run", "--cache-dir", tmp_path / "cache", "--json")
    assert result.code == 0, result.err
    metrics = json.loads(result.out)
    assert metrics["images"] == {"train": 108, "val": 12, "test": 30} and 0 <= metrics["test_acc"] <= 1
    assert metrics["data"] == f"image folder {root}"
    # Same folder, a 10-class network: the class counts do not fit.
    assert_user_error(nas("train", "--arch", TINY_ARCH, "--data", root, "--epochs", "1", "--out", tmp_path / "r2",
                          "--cache-dir", tmp_path / "cache", "--quiet"),
                      "has 3 classes", "classifies 10", "cls3")


def test_divergence_exits_1_with_status(tmp_path: Path, nas: Runner) -> None:
    result = nas("train", "--arch", TINY_ARCH, *TINY_TRAIN, "--lr", "1e12", "--epochs", "1", "--out", tmp_path,
                 "--quiet")
    assert result.code == 1 and "training diverged" in result.err and "Traceback" not in result.err
    metrics = json.loads((tmp_path / METRICS_JSON).read_text())
    assert metrics["status"] == "diverged" and metrics["test_acc"] is None
    assert not (tmp_path / CHECKPOINT_NAME).exists()  # no checkpoint of non-finite weights


def test_user_errors_exit_2_with_one_line(tmp_path: Path, nas: Runner, trained_run: Path) -> None:
    missing = tmp_path / "no-such-data"
    assert_user_error(nas("train", "--arch", TINY_ARCH, "--data", missing, "--epochs", "1", "--out", tmp_path / "a"),
                      str(missing), "does not exist")
    bad_token = TINY_ARCH.replace("ir_e3", "xx_e3")
    assert_user_error(nas("train", "--arch", bad_token, "--epochs", "1", "--out", tmp_path / "b"), "xx_e3")
    assert_user_error(nas("train", "--arch", "resnet50", "--epochs", "1", "--out", tmp_path / "c"), "resnet50")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # nothing created on error
    # A run directory of another architecture is never resumed (and left untouched).
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    other = TINY_ARCH.replace("c24", "c32")
    assert_user_error(nas("train", "--arch", other, *TINY_TRAIN, "--epochs", "3", "--out", run),
                      str(run / "run.json"), "architecture")
    assert_user_error(nas("train", "--arch", TINY_ARCH, *TINY_TRAIN, "--seed", "1", "--epochs", "3", "--out", run),
                      "seed")
    assert_user_error(nas("train", "--arch", TINY_ARCH, *TINY_TRAIN, "--epochs", "1", "--out", run), "epochs")
    assert _rows(run) == _rows(trained_run)
    # Options argparse rejects also exit 2 (with the usage line).
    with pytest.raises(SystemExit) as exc:
        nas("train", "--arch", TINY_ARCH, "--epochs", "0", "--out", tmp_path / "d")
    assert exc.value.code == 2


def test_out_that_is_a_file_is_a_user_error(tmp_path: Path, nas: Runner) -> None:
    taken = tmp_path / "results.txt"
    taken.write_text("keep me")
    args = ["train", "--arch", TINY_ARCH, *TINY_TRAIN, "--epochs", "1", "--quiet"]
    assert_user_error(nas(*args, "--out", taken), f"--out {taken}: is an existing file", "directory")
    assert taken.read_text() == "keep me"
    assert_user_error(nas(*args, "--out", taken / "run"), f"--out {taken / 'run'}: cannot create the directory")


def test_console_script_prints_no_traceback(tmp_path: Path) -> None:
    """The real process: status 2 and a single line on stderr."""
    proc = subprocess.run([sys.executable, "-m", "nas", "train", "--arch", "in16x3-bogus", "--epochs", "1",
                           "--out", str(tmp_path / "x")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_threads_and_no_flip(tmp_path: Path, nas: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import nas.train.job as job_module

    seen: list[tuple[int, bool]] = []
    original = job_module.train_model

    def recording(model: object, splits: object, config: object, **kw: object) -> object:
        seen.append((torch.get_num_threads(), config.flip))  # type: ignore[attr-defined]
        return original(model, splits, config, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(job_module, "train_model", recording)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        train = [a for a in TINY_TRAIN if a != "--no-augment"]
        result = nas("train", "--arch", TINY_ARCH, *train, "--epochs", "1", "--out", tmp_path / "run", "--threads",
                     "1", "--no-flip")
    finally:
        torch.set_num_threads(before)
    assert result.code == 0, result.err
    assert seen == [(1, False)] and "1 CPU thread(s)" in result.out
    metrics = json.loads((tmp_path / "run" / METRICS_JSON).read_text())
    assert metrics["config"]["flip"] is False and metrics["config"]["augment"] is True
    assert_user_error(nas("train", "--arch", TINY_ARCH, *TINY_TRAIN, "--epochs", "1", "--out", tmp_path / "r2",
                          "--threads", "-2"), "--threads")


def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(trained_run: Path, tmp_path: Path, nas: Runner,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.save reports a full disk as a RuntimeError ('unexpected pos'); the checkpoint of epoch 2 survives."""
    import torch

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = {name: (run / name).read_bytes() for name in (CHECKPOINT_NAME, METRICS_CSV, METRICS_JSON)}

    def full(*args: object, **kwargs: object) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    monkeypatch.setattr(torch, "save", full)
    result = nas("train", "--arch", TINY_ARCH, *TINY_TRAIN, "--epochs", "3", "--out", run, "--quiet")
    assert_user_error(result, str(run / CHECKPOINT_NAME), "cannot write it", "unexpected pos", "re-run")
    assert {name: (run / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []  # no temporary file left
    assert read_checkpoint(run / CHECKPOINT_NAME)["epoch"] == 2


def test_a_full_disk_for_metrics_json_is_one_line(trained_run: Path, tmp_path: Path, nas: Runner,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from nas.train import records

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = (run / METRICS_JSON).read_bytes()
    original = records.atomic_write_text

    def full(path: Path, text: str) -> Path:
        if Path(path).name == METRICS_JSON:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(path, text)

    monkeypatch.setattr(records, "atomic_write_text", full)
    result = nas("train", "--arch", TINY_ARCH, *TINY_TRAIN, "--epochs", "3", "--out", run, "--quiet")
    assert_user_error(result, str(run / METRICS_JSON), "No space left on device")
    assert (run / METRICS_JSON).read_bytes() == before
    assert read_checkpoint(run / CHECKPOINT_NAME)["epoch"] == 3  # the finished epoch is kept
