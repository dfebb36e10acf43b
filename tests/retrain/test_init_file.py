"""``nas retrain --init FILE``: the winner of the file's architecture starts from the file's weights (a
``nas supernet extract`` output or a ``nas train`` run directory), results are kept apart, and a file that does
not fit the run is refused in one line before anything is trained."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import nas.retrain.model

from nas.arch import build_model, save_arch
from nas.cli import main
from nas.retrain import load_search_run, select_winners
from nas.supernet import SupernetTrainJob, run_supernet_train
from nas.supernet.extract import arch_file_for
from nas.train.checkpoint import sha256_file
from nas.train.weights import save_weights
from tests.conftest import TINY_SPACE, one_torch_thread, spy_on_start

_one_thread = pytest.fixture(scope="module", autouse=True)(one_torch_thread)

RETRAIN = ["--epochs", "1", "--subset", "100", "--no-references", "--threads", "1"]


@pytest.fixture(scope="module")
def supernet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("retrain_file_supernet") / "sn"
    result = run_supernet_train(SupernetTrainJob(space=str(TINY_SPACE), data="digits", out=str(out), epochs=1,
                                                 subset=100, batch_size=25, augment=False, threads=1),
                                progress=False, log=lambda _msg: None)
    assert result.status == "completed"
    return out


def _cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_an_extracted_network_is_retrained_from_its_weights(
        tiny_run: Path, supernet: Path, copy_run: Callable[[Path], Path], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(tiny_run)
    winners = select_winners(load_search_run(run), 2)
    assert len(winners) == 2
    second = winners[1]
    save_arch(second.arch, tmp_path / "second.json")
    weights = tmp_path / "model.pt"
    code, _, err = _cli(capsys, "supernet", "extract", "--supernet", supernet, "--arch", tmp_path / "second.json",
                        "-o", weights)
    assert code == 0, err
    stored = torch.load(weights, weights_only=True)

    started = spy_on_start(monkeypatch, nas.retrain.model)
    code, stdout, err = _cli(capsys, "retrain", "--run", run, "--top", "2", *RETRAIN, "--init", weights)
    assert code == 0, err
    assert f"retraining the winner(s) of its architecture only ({second.label})" in stdout
    assert f"starting from the weights in {weights}" in stdout and "before training" in stdout
    assert len(started) == 1  # the first winner is not retrained by this command
    assert started[0].keys() == stored.keys()
    for key, value in started[0].items():
        assert torch.equal(value, stored[key]), key  # every tensor is the file's, BatchNorm statistics included

    tag = f"short-1ep-sub100-init{sha256_file(weights)[:8]}-{second.hash[:4]}"
    folder = run / "retrain" / tag / "winners" / second.hash[:12] / "seed0"
    trained = json.loads((folder / "trained.json").read_text())
    assert trained["init"] == {"kind": "weights", "sha256": sha256_file(weights), "arch_hash": second.hash}
    assert 0.0 <= trained["init_monitor_acc"] <= 1.0 and trained["test_acc"] is not None
    assert not (run / "retrain" / tag / "winners" / winners[0].hash[:12]).exists()
    assert tag in (run / "retrain" / "results.csv").read_text()
    assert f"The winners start from the weights file with SHA-256 {sha256_file(weights)[:12]}" in \
        (run / "report.md").read_text()

    # The same file moved is the same start: its results are reused, nothing is trained again.
    moved = tmp_path / "elsewhere" / "renamed.pt"
    moved.parent.mkdir()
    weights.rename(moved)
    arch_file_for(weights).rename(arch_file_for(moved))
    code, stdout, err = _cli(capsys, "retrain", "--run", run, "--top", "2", *RETRAIN, "--init", moved)
    assert code == 0 and "already done" in stdout and len(started) == 1, err

    # Other weights are another start, kept apart: the stored result is not reused for them.
    save_weights(build_model(second.arch), moved)
    code, _, err = _cli(capsys, "retrain", "--run", run, "--top", "2", *RETRAIN, "--init", moved)
    assert code == 0, err
    assert (run / "retrain" / f"short-1ep-sub100-init{sha256_file(moved)[:8]}-{second.hash[:4]}").is_dir()
    assert len(started) == 2


def test_a_nas_train_run_directory_is_a_start(tiny_run: Path, copy_run: Callable[[Path], Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(tiny_run)
    winner = select_winners(load_search_run(run), 1)[0]
    save_arch(winner.arch, tmp_path / "winner.json")
    out = tmp_path / "trained"
    code, _, err = _cli(capsys, "train", "--arch", tmp_path / "winner.json", "--data", "digits", "--subset", "100",
                        "--epochs", "1", "--out", out, "--threads", "1")
    assert code == 0, err
    stored = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    started = spy_on_start(monkeypatch, nas.retrain.model)
    code, _, err = _cli(capsys, "retrain", "--run", run, "--top", "1", *RETRAIN, "--init", out)
    assert code == 0, err
    assert all(torch.equal(started[0][k], stored[k]) for k in stored)


def _one_line_error(code: int, err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize("case", ["missing", "no-arch", "other-arch", "bad-arch", "misfit", "with-supernet",
                                  "supernet-dir"])
def test_refusals(case: str, tiny_run: Path, copy_run: Callable[[Path], Path], tmp_path: Path,
                  capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(tiny_run)
    winners = select_winners(load_search_run(run), 2)
    weights = tmp_path / "model.pt"
    extra: list[str | Path] = []
    if case != "missing":
        save_weights(build_model(winners[1].arch), weights)
    if case in ("other-arch", "misfit", "with-supernet"):
        save_arch(winners[1].arch, arch_file_for(weights))
    if case == "bad-arch":
        arch_file_for(weights).write_text('{"blocks": "nope"}')
    if case == "misfit":  # weights of the second winner, the first winner's architecture beside them
        save_arch(winners[0].arch, arch_file_for(weights))
    if case == "with-supernet":
        extra = ["--supernet", tmp_path]
    if case == "supernet-dir":  # a supernet directory holds a checkpoint.pt of no network
        weights = tmp_path / "sn"
        weights.mkdir()
        (weights / "supernet.json").write_text("{}")
        (weights / "checkpoint.pt").write_bytes(b"")
    top = "1" if case == "other-arch" else "2"
    code, _, err = _cli(capsys, "retrain", "--run", run, "--top", top, *RETRAIN, "--init", weights, *extra)
    expected = {
        "missing": (f"--init {weights}: expected scratch, supernet or a weights file", "does not exist"),
        "no-arch": (f"its architecture file {arch_file_for(weights)} does not exist",),
        "other-arch": ("none of the run's 1 winner(s) to retrain", winners[0].hash[:12], "raise --top"),
        "bad-arch": (f"--init {weights}: {arch_file_for(weights)}",),
        "misfit": (f"--init {weights}: {weights}",),
        "with-supernet": (f"--supernet {tmp_path}: only used with --init supernet",),
        "supernet-dir": (f"--init {weights}: is a supernet directory", f"--init supernet --supernet {weights}"),
    }[case]
    _one_line_error(code, err, *expected)
    assert not (run / "retrain").exists()
