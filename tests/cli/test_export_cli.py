"""``nas export``: ONNX file with reported parity, trained weights really used, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest
import torch

from nas.arch import build_model, resolve_arch
from nas.export import OPSET
from nas.export.parity import ort_session, run_onnx
from nas.train import CHECKPOINT_NAME, load_weights, save_weights
from tests.cli.conftest import TINY_ARCH, TINY_TRAIN, Runner, assert_user_error


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-epoch `nas train` run of the tiny network."""
    from nas.cli import main

    run = tmp_path_factory.mktemp("export") / "run"
    assert main(["train", "--arch", TINY_ARCH, *TINY_TRAIN, "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    return run


def test_export_reports_opset_and_parity(tmp_path: Path, nas: Runner) -> None:
    out = tmp_path / "net.onnx"
    result = nas("export", "--arch", TINY_ARCH, "-o", out, "--batch", "3")
    assert result.code == 0, result.err
    assert f"wrote {out}" in result.out and f"ONNX opset {OPSET}" in result.out and "[3, 3, 16, 16]" in result.out
    assert "max abs difference" in result.out and "random initial weights" in result.out
    model = onnx.load(str(out))
    assert model.opset_import[0].version == OPSET
    info = json.loads(nas("export", "--arch", TINY_ARCH, "-o", out, "--json").out)
    assert info["opset"] == OPSET and 0 <= info["max_abs_diff"] <= 1e-4 and info["input_shape"] == [1, 3, 16, 16]
    assert info["weights"] is None and info["bytes"] == out.stat().st_size


@pytest.mark.parametrize("weights", ["checkpoint", "run_dir", "state_dict"])
def test_exported_file_computes_the_trained_network(weights: str, run_dir: Path, tmp_path: Path,
                                                    nas: Runner) -> None:
    arch = resolve_arch(str(run_dir / "arch.json"))
    trained = build_model(arch)
    load_weights(trained, run_dir / CHECKPOINT_NAME)
    path = {"checkpoint": run_dir / CHECKPOINT_NAME, "run_dir": run_dir,
            "state_dict": save_weights(trained, tmp_path / "weights.pt")}[weights]
    out = tmp_path / "trained.onnx"
    result = nas("export", "--arch", run_dir / "arch.json", "--weights", path, "-o", out, "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["max_abs_diff"] <= 1e-4
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        expected = trained.eval()(x).numpy()
    got = run_onnx(ort_session(out), x.numpy())
    assert abs(got - expected).max() <= 1e-4
    random_init = build_model(arch).eval()
    with torch.inference_mode():
        assert abs(random_init(x).numpy() - expected).max() > 1e-3  # so the check above is not vacuous


def test_export_user_errors(run_dir: Path, tmp_path: Path, nas: Runner) -> None:
    out = tmp_path / "x.onnx"
    other = TINY_ARCH.replace("c24", "c32")
    ckpt = run_dir / CHECKPOINT_NAME
    assert_user_error(nas("export", "--arch", other, "--weights", ckpt, "-o", out),
                      str(ckpt), "shape mismatch for key 'blocks.0.body.2.0.weight'")
    missing = tmp_path / "none.pt"
    assert_user_error(nas("export", "--arch", TINY_ARCH, "--weights", missing, "-o", out), str(missing))
    assert_user_error(nas("export", "--arch", "cse-mix-cifar@zero", "-o", out), "zero")
    assert not out.exists()


def test_output_that_is_a_directory_is_refused(tmp_path: Path, nas: Runner) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    assert_user_error(nas("export", "--arch", TINY_ARCH, "-o", folder),
                      f"-o/--output {folder}: is a directory", str(folder / "model.onnx"))
    assert list(folder.iterdir()) == []  # no temporary file left behind
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_user_error(nas("export", "--arch", TINY_ARCH, "-o", blocker / "net.onnx"), f"{blocker} is a file")


def test_weights_that_are_not_a_checkpoint_get_one_line(tmp_path: Path, nas: Runner) -> None:
    table = tmp_path / "ort-cpu-1t.json"
    table.write_text('{"metadata": {}, "entries": {}}\n')
    out = tmp_path / "x.onnx"
    result = nas("export", "--arch", TINY_ARCH, "--weights", table, "-o", out)
    assert_user_error(result, f"{table}: not a PyTorch checkpoint/weights file written by nas train/retrain/adapt")
    assert "weights_only" not in result.err and not out.exists()


@pytest.mark.parametrize("which", ["arch", "weights"])
def test_output_that_is_an_input_file_is_refused(which: str, run_dir: Path, tmp_path: Path, nas: Runner) -> None:
    """-o naming --arch's JSON or --weights' checkpoint would overwrite it with ONNX bytes."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    target = {"arch": run / "arch.json", "weights": run / CHECKPOINT_NAME}[which]
    before = target.read_bytes()
    assert_user_error(nas("export", "--arch", run / "arch.json", "--weights", run, "-o", target),
                      f"-o/--output {target}: is the input file", str(run / "model.onnx"))
    assert target.read_bytes() == before
