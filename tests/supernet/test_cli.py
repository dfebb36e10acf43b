"""``nas supernet train`` / ``nas supernet extract`` and ``nas train --init``: the commands, kill -9 then resume,
the extracted file through ``nas export``, and one-line refusals."""

from __future__ import annotations

import json
import shutil
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from nas.arch import ArchSpec, arch_hash, load_arch_file, to_compact
from nas.cli import main
from nas.cli.supernet import DEFAULT_SPACE, default_space
from nas.space import random_arch
from nas.supernet import (
    SupernetEvaluator,
    SupernetScoring,
    SupernetTrainJob,
    load_supernet,
)
from nas.supernet.extract import arch_file_for
from nas.supernet.store import supernet_splits
from nas.train import CHECKPOINT_NAME, MID_EPOCH_NAME
from nas.train.checkpoint import read_checkpoint
from tests.cli.test_help_cli import _option_blocks
from tests.conftest import REPO, TINY_SPACE, spy_on_start
from tests.search.conftest import _HEAR_SIGINT, kill, kill_when, signal_when, wait_until

#: Tiny settings: 12 steps an epoch of the tiny space, about a second an epoch on one thread.
TINY = ["--space", str(TINY_SPACE), "--data", "digits", "--subset", "200", "--batch-size", "16", "--no-augment",
        "--threads", "1"]


def _cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line_error(code: int, err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def _arch(seed: int = 3) -> ArchSpec:
    from nas.space import load_space

    return random_arch(load_space(TINY_SPACE), seed)


# -- nas supernet train --------------------------------------------------------------------------------------

def test_train_writes_the_supernet_directory_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sn"
    code, stdout, err = _cli(capsys, "supernet", "train", *TINY, "--epochs", "1", "--random-subnets", "1",
                             "--no-distill", "--out", out, "--json")
    assert code == 0, err
    result = json.loads(stdout)
    assert result["status"] == "completed" and result["epochs_run"] == 1 and result["out"] == str(out)
    assert {p.name for p in out.iterdir()} >= {"supernet.json", CHECKPOINT_NAME, "metrics.csv", "metrics.json"}
    info = json.loads((out / "supernet.json").read_text())
    assert info["settings"]["random_subnets"] == 1 and info["settings"]["distill"] is False
    assert info["data"]["subset"] == 200 and info["space"]["yaml"] == TINY_SPACE.read_text()
    # The same command again: nothing left to train.
    code, stdout, err = _cli(capsys, "supernet", "train", *TINY, "--epochs", "1", "--random-subnets", "1",
                             "--no-distill", "--out", out)
    assert code == 0 and "resuming in" in stdout and "already completed 1 epoch" in stdout, err
    # Other sandwich settings into the same directory: refused in one line.
    code, _, err = _cli(capsys, "supernet", "train", *TINY, "--epochs", "1", "--out", out)
    _one_line_error(code, err, "--random-subnets/--no-distill", str(out))
    # Another seed splits the data otherwise: the refusal names --seed.
    code, _, err = _cli(capsys, "supernet", "train", *TINY, "--epochs", "1", "--random-subnets", "1",
                        "--no-distill", "--seed", "1", "--out", out)
    _one_line_error(code, err, "another data", "--seed")
    # A checkpoint without supernet.json (a copy, a 'nas train' run): its data is unknown, so it is not resumed,
    # and nothing is written beside it.
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    shutil.copy(out / CHECKPOINT_NAME, foreign / CHECKPOINT_NAME)
    code, _, err = _cli(capsys, "supernet", "train", *TINY, "--epochs", "2", "--random-subnets", "1",
                        "--no-distill", "--out", foreign)
    _one_line_error(code, err, "no supernet.json", "choose another --out")
    assert [p.name for p in foreign.iterdir()] == [CHECKPOINT_NAME]


def test_default_space_is_the_cse_space_from_the_working_directory_or_the_checkout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Path(default_space()) == REPO / DEFAULT_SPACE
    monkeypatch.chdir(REPO)
    assert default_space() == DEFAULT_SPACE


def test_help_explains_the_sandwich_rule_and_the_directory(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["supernet", "train", "--help"])
    text = capsys.readouterr().out
    assert "Sandwich rule" in text and "largest" in text and "smallest" in text and "supernet.json" in text
    assert "resumes" in text and "CIFAR-10" in text
    for block in _option_blocks(text).values():
        assert block.count("default") <= 1 and "(default: None)" not in block, block
    assert _option_blocks(text)["--epochs"].endswith(f"(default: {SupernetTrainJob.epochs})")


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    with open(log, "wb") as fh:
        return subprocess.Popen([sys.executable, "-c", _HEAR_SIGINT, "supernet", "train", *args], cwd=log.parent,
                                stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _epochs_done(out: Path) -> int:
    try:
        return max(len((out / "metrics.csv").read_text().splitlines()) - 1, 0)
    except FileNotFoundError:
        return 0


def test_kill_9_or_ctrl_c_mid_epoch_then_the_same_command_ends_with_the_uninterrupted_weights(
        tmp_path: Path) -> None:
    args = [*TINY, "--epochs", "3", "--quiet"]
    whole, cut, stopped = tmp_path / "whole", tmp_path / "cut", tmp_path / "stopped"
    procs = [_start([*args, "--out", str(whole)], tmp_path / "whole.log"),
             _start([*args, "--out", str(cut)], tmp_path / "cut.log"),
             _start([*args, "--out", str(stopped)], tmp_path / "stopped.log")]
    try:
        # Frozen, checked, then killed (or sent Ctrl-C) while epoch 2 is under way (epoch 1 done and checkpointed).
        kill_when(procs[1], lambda: _epochs_done(cut) == 1, 120, "the end of epoch 1", poll_s=0.05)
        signal_when(procs[2], lambda: _epochs_done(stopped) == 1, 120, "the end of epoch 1", poll_s=0.05)
        wait_until(lambda: procs[2].poll() is not None, 180, "the interrupted run to exit")
        said = (tmp_path / "stopped.log").read_text()
        assert procs[2].returncode == 130 and "interrupted: everything finished so far is saved" in said, said
        assert "Traceback" not in said, said
        for out in (cut, stopped):
            assert read_checkpoint(out / CHECKPOINT_NAME)["epoch"] == 1
        resumed = [_start([*args, "--out", str(out)], tmp_path / f"{out.name}-resumed.log") for out in (cut, stopped)]
        procs += resumed
        for proc, log in zip((procs[0], *resumed), ("whole.log", "cut-resumed.log", "stopped-resumed.log")):
            start = time.monotonic()
            wait_until(lambda p=proc: p.poll() is not None, 180, "the run to finish")
            assert proc.returncode == 0, (time.monotonic() - start, (tmp_path / log).read_text())
    finally:
        for proc in procs:
            kill(proc)
    a = read_checkpoint(whole / CHECKPOINT_NAME)
    for out in (cut, stopped):
        b = read_checkpoint(out / CHECKPOINT_NAME)
        assert a["epoch"] == b["epoch"] == 3
        assert a["model"].keys() == b["model"].keys()
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), f"{out.name}: the weights differ"
        assert len((out / "metrics.csv").read_text().splitlines()) == 4  # header + one row per epoch, none twice


# -- nas supernet extract --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def extracted(tiny_supernet: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``nas supernet extract --json`` of one network of the tiny space, written to ``model.pt``."""
    folder = tmp_path_factory.mktemp("extract")
    args = ["supernet", "extract", "--supernet", str(tiny_supernet), "--arch", to_compact(_arch()),
            "-o", str(folder / "model.pt"), "--calibration-images", "64", "--json"]
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(args) == 0
    return {**json.loads(buffer.getvalue()), "folder": folder}


def test_extract_writes_weights_and_arch_file_with_bn_re_estimated(extracted: dict[str, Any],
                                                                   tiny_supernet: Path) -> None:
    weights = Path(extracted["weights"])
    assert weights == extracted["folder"] / "model.pt" and Path(extracted["arch"]) == arch_file_for(weights)
    assert arch_file_for(weights).name == "model.arch.json"
    arch = load_arch_file(extracted["arch"])
    assert arch == _arch() and extracted["arch_hash"] == arch_hash(arch)
    loaded = load_supernet(tiny_supernet)
    shared = loaded.supernet.sub_state(arch)
    state = torch.load(weights, weights_only=True)
    assert state.keys() == shared.keys()
    for key, value in state.items():
        if "running_" in key or "num_batches_tracked" in key:  # BatchNorm statistics: re-estimated for this one
            continue
        assert torch.equal(value, shared[key]), key
    assert any(not torch.equal(state[k], shared[k]) for k in state if k.endswith("running_mean"))
    # The accuracy printed is the supernet evaluator's for the same calibration images.
    splits = supernet_splits(loaded)
    expected = SupernetEvaluator(loaded, splits, SupernetScoring(calibration_images=64), device="cpu").evaluate(arch)
    assert extracted["val_acc"] == pytest.approx(expected.accuracy)
    assert extracted["calibration_images"] == 64 and extracted["val_images"] == len(splits.val)


def test_nas_export_accepts_the_extracted_file(extracted: dict[str, Any],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    onnx = extracted["folder"] / "model.onnx"
    code, stdout, err = _cli(capsys, "export", "--arch", extracted["arch"], "--weights", extracted["weights"],
                             "-o", onnx)
    assert code == 0, err
    assert onnx.is_file() and "parity with PyTorch" in stdout and f"weights from {extracted['weights']}" in stdout


def test_extract_prints_the_validation_accuracy(tiny_supernet: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, err = _cli(capsys, "supernet", "extract", "--supernet", tiny_supernet, "--arch",
                             to_compact(_arch(5)), "-o", tmp_path / "sub" / "net.pt", "--calibration-images", "32")
    assert code == 0, err
    assert "validation accuracy 0." in stdout and f"wrote {tmp_path / 'sub' / 'net.pt'}" in stdout
    assert (tmp_path / "sub" / "net.arch.json").is_file()


def _outside(arch: ArchSpec) -> ArchSpec:
    """``arch`` with a first block whose kernel the space does not list."""
    return arch.replace_blocks((replace(arch.blocks[0], kernel=7), *arch.blocks[1:]))


@pytest.mark.parametrize(("case", "expected"), [
    ("outside", "not a network of space 'tiny_test'"),
    ("reference", "its input size is 32"),
    ("own-checkpoint", "would overwrite the supernet's own"),
    ("own-mid-epoch", "would overwrite the supernet's own"),  # not there yet: training may write it later
    ("directory", "is a directory"),
    ("no-supernet", "no such supernet directory"),
])
def test_extract_refusals_are_one_line(case: str, expected: str, tiny_supernet: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    arch = {"outside": to_compact(_outside(_arch())), "reference": "mobilenetv2-cifar"}.get(case, to_compact(_arch()))
    output = {"own-checkpoint": tiny_supernet / CHECKPOINT_NAME, "own-mid-epoch": tiny_supernet / MID_EPOCH_NAME,
              "directory": tmp_path}.get(case, tmp_path / "m.pt")
    supernet = tmp_path / "nowhere" if case == "no-supernet" else tiny_supernet
    before = (tiny_supernet / CHECKPOINT_NAME).read_bytes()
    code, _, err = _cli(capsys, "supernet", "extract", "--supernet", supernet, "--arch", arch, "-o", output)
    _one_line_error(code, err, expected)
    if case in ("outside", "reference"):
        assert "--arch " in err
    assert not (tmp_path / "m.pt").exists() and (tiny_supernet / CHECKPOINT_NAME).read_bytes() == before
    assert not (tiny_supernet / MID_EPOCH_NAME).exists()


# -- nas train --init --------------------------------------------------------------------------------------

TRAIN = ["--data", "digits", "--subset", "100", "--batch-size", "25", "--no-augment", "--threads", "1", "--quiet"]


def test_train_init_starts_from_the_extracted_weights(extracted: dict[str, Any], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import nas.train.job

    started = spy_on_start(monkeypatch, nas.train.job)
    run = tmp_path / "run"
    code, _, err = _cli(capsys, "train", "--arch", extracted["arch"], "--init", extracted["weights"], "--epochs", "1",
                        *TRAIN, "--out", run)
    assert code == 0, err
    initial = torch.load(extracted["weights"], weights_only=True)
    assert all(torch.equal(started[0][k], initial[k]) for k in initial)
    recorded = json.loads((run / "run.json").read_text())["init"]
    assert recorded["path"] == str(Path(extracted["weights"]).resolve()) and len(recorded["sha256"]) == 16
    # Without --init the network starts from random weights.
    code, _, err = _cli(capsys, "train", "--arch", extracted["arch"], "--epochs", "1", *TRAIN, "--out",
                        tmp_path / "scratch")
    assert code == 0, err
    assert not all(torch.equal(started[1][k], initial[k]) for k in initial)
    assert json.loads((tmp_path / "scratch" / "run.json").read_text())["init"] is None

    # Resuming with other initial weights (none, or another file) is refused in one line.
    other = tmp_path / "other.pt"
    torch.save({k: v + 1 if v.is_floating_point() else v for k, v in initial.items()}, other)
    for extra in ([], ["--init", str(other)]):
        code, _, err = _cli(capsys, "train", "--arch", extracted["arch"], *extra, "--epochs", "2", *TRAIN,
                            "--out", run)
        _one_line_error(code, err, "--init (initial weights)", str(run / "run.json"))
    assert read_checkpoint(run / CHECKPOINT_NAME)["epoch"] == 1


def test_train_init_applies_when_a_mid_epoch_save_of_another_length_is_not_resumed(
        extracted: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import nas.train.job

    started = spy_on_start(monkeypatch, nas.train.job)
    run = tmp_path / "run"
    args = ["train", "--arch", extracted["arch"], "--init", extracted["weights"], *TRAIN, "--out", run]
    code, _, err = _cli(capsys, *args, "--epochs", "1")
    assert code == 0, err
    (run / CHECKPOINT_NAME).rename(run / MID_EPOCH_NAME)  # as if killed inside the only epoch of a 1-epoch run
    code, _, err = _cli(capsys, *args, "--epochs", "2")  # another schedule: that save is not resumed
    assert code == 0, err
    initial = torch.load(extracted["weights"], weights_only=True)
    assert all(torch.equal(started[1][k], initial[k]) for k in initial)  # it starts over from --init, not at random


def test_train_init_refuses_missing_or_unfitting_weights(extracted: dict[str, Any], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, "train", "--arch", extracted["arch"], "--init", tmp_path / "none.pt", "--epochs",
                        "1", *TRAIN, "--out", tmp_path / "a")
    _one_line_error(code, err, "--init", "no such weights file")
    code, _, err = _cli(capsys, "train", "--arch", to_compact(_arch(11)), "--init", extracted["weights"],
                        "--epochs", "1", *TRAIN, "--out", tmp_path / "b")
    _one_line_error(code, err, extracted["weights"], "do not fit")
    assert not (tmp_path / "b" / CHECKPOINT_NAME).exists()
