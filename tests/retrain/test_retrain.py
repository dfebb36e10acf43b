"""``nas retrain`` on a tiny real search run: results, ONNX files, report, no retraining, resume after kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch

from nas.arch import build_model, load_arch_file
from nas.export.parity import onnx_max_abs_diff
from nas.retrain import RetrainJob, load_search_run, run_retrain, select_winners
from nas.train import load_weights
from nas.train.checkpoint import read_checkpoint

REPO = Path(__file__).resolve().parents[2]
TAG = "short-1ep-sub100"  # the recipe of the retrained_run fixture


def test_retrain_writes_results_onnx_and_report(retrained_run: Path, retrain_log: list[str]) -> None:
    run = retrained_run
    winners = select_winners(load_search_run(run), 2)
    assert len(winners) == 2 and winners[0].hash != winners[1].hash
    frame = pd.read_csv(run / "retrain" / "results.csv")
    assert sorted(frame["hash"]) == sorted(w.hash for w in winners for _ in range(2))  # 2 seeds each
    assert set(frame["kind"]) == {"winner"} and set(frame["recipe"]) == {TAG} and set(frame["seed"]) == {0, 1}
    for _, row in frame.iterrows():
        assert row["status"] == "completed" and row["epochs_run"] == 1
        assert 0.0 <= row["test_acc"] <= 1.0 and row["test_images"] == 359  # the whole digits test split
        assert row["train_images"] == 100
        assert row["params"] > 0 and row["macs"] > 0
        assert row["predicted_ms"] > 0 and row["predicted_interpolated"] == 0
        assert row["measured_ms"] > 0  # the tiny table was measured on this machine
        assert bool(row["parity_ok"]) and row["parity_max_abs_diff"] <= 1e-4
        folder = run / row["model_dir"]
        assert (folder / "checkpoint.pt").is_file() and folder.name == f"seed{row['seed']}"
        # The ONNX file is the trained network: it agrees with the saved final weights.
        model = build_model(load_arch_file(folder / "arch.json"))
        load_weights(model, folder / "weights.pt")
        x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(5))
        assert onnx_max_abs_diff(model, run / row["onnx"], x) <= 1e-4
    md = (run / "report.md").read_text()
    for w in winners:
        assert f"| trial {w.trial} | winner |" in md
    assert (run / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The 32x32 references do not fit the 16x16 tiny space: skipped, and said so.
    skipped = json.loads((run / "retrain" / TAG / "skipped.json").read_text())
    assert "mobilenetv2-cifar@0.35" in skipped and "cse-mix-cifar" in skipped
    assert "32x32x3 inputs" in skipped["cse-mix-cifar"]
    assert "References not retrained" in md
    assert any("reference cse-mix-cifar skipped" in line for line in retrain_log)


def test_rerun_trains_nothing(retrained_run: Path, copy_run: Callable[[Path], Path],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    run = copy_run(retrained_run)
    before = (run / "retrain" / "results.csv").read_text()

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished network was trained again")

    monkeypatch.setattr("nas.retrain.model.train_model", refuse)
    logs: list[str] = []
    run_retrain(RetrainJob(run=str(run), top=2, seeds=2, epochs=1, subset=100, progress=False), log=logs.append)
    assert sum("already done" in line for line in logs) == 4
    assert (run / "retrain" / "results.csv").read_text() == before


def test_resume_after_kill(tiny_run: Path, copy_run: Callable[[Path], Path], tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(tiny_run)
    epochs = 5
    winners = select_winners(load_search_run(run), 2)
    first, second = (run / "retrain" / f"short-{epochs}ep-sub100" / "winners" / w.hash[:12] / "seed0" for w in winners)
    cmd = [sys.executable, "-m", "nas", "retrain", "--run", str(run), "--top", "2", "--epochs", str(epochs),
           "--subset", "100", "--no-references"]
    log = tmp_path / "killed.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=out,
                                stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 240
        try:
            while not (second / "checkpoint.pt").exists():  # the first network is finished by then
                assert proc.poll() is None, log.read_text()[-2000:]
                assert time.monotonic() < deadline, "no checkpoint of the second network appeared"
                time.sleep(0.02)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = read_checkpoint(second / "checkpoint.pt")["epoch"]
    assert done >= 1 and done < epochs and not (second / "result.json").exists()
    first_result = (first / "result.json").read_text()
    first_mtime = (first / "trained.json").stat().st_mtime_ns
    assert len(pd.read_csv(run / "retrain" / "results.csv")) == 1  # the finished network is recorded

    capsys.readouterr()
    logs: list[str] = []
    run_retrain(RetrainJob(run=str(run), top=2, epochs=epochs, subset=100, references=()), log=logs.append)
    out = capsys.readouterr()
    first_line = next(line for line in logs if line.startswith("[1/2] "))
    assert first_line.startswith("[1/2] trial") and first_line.endswith("already done")
    assert f"after epoch {done}/{epochs}" in out.out + out.err  # continued from the saved epoch, not from scratch
    assert (first / "result.json").read_text() == first_result
    assert (first / "trained.json").stat().st_mtime_ns == first_mtime
    assert list(pd.read_csv(second / "metrics.csv")["epoch"]) == list(range(1, epochs + 1))
    frame = pd.read_csv(run / "retrain" / "results.csv")
    assert len(frame) == 2 and (frame["epochs_run"] == epochs).all()


def test_per_epoch_figures_are_labelled_as_monitoring_not_validation(tmp_path: Path, retrain_log: list[str],
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The per-epoch split is part of the training images (no validation split here; test only at the end)."""
    from nas.arch import parse_compact
    from nas.retrain import make_recipe
    from nas.retrain.data import final_splits
    from nas.retrain.model import train_and_export

    assert any("per-epoch 'monitor' loss/acc" in line and "not held out" in line for line in retrain_log)
    splits = final_splits("digits", input_size=16, subset=60, test_subset=30, progress=False)
    arch = parse_compact("in16x3-stem_k3_s1_c8_re-ir_e2_k3_s2_c8_re-head_c16_re-cls10")
    capsys.readouterr()
    record = train_and_export(arch, splits, make_recipe("short", epochs=1), seed=0, folder=tmp_path / "m",
                              device="cpu", progress=True, log=print)
    out = capsys.readouterr().out
    assert record["status"] == "completed" and "| monitor loss " in out and "val loss" not in out
