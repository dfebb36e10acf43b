"""LiteRT export: PyTorch parity (<= 1e-4) with ai-edge-litert's interpreter, the CLI's output and its refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nas.arch import build_model, parse_compact, resolve_arch
from nas.arch.blocks import ChannelFold
from nas.cli import main
from nas.errors import ExportError
from nas.export.convert import example_input
from nas.export.tflite import (
    conversion_copy,
    export_tflite,
    is_tflite,
    run_tflite,
    tflite_interpreter,
    tflite_max_abs_diff,
    to_tflite_bytes,
)
from nas.train import CHECKPOINT_NAME, load_weights
from tests.cli.conftest import TINY_ARCH, TINY_TRAIN
from tests.export.test_onnx import _model as kitchen_sink
from tests.litert import require_litert

require_litert()

# CSE blocks that tile channels (8 -> 16: the Tensor.repeat litert-torch mishandles) and fold them (24 -> 16)
CSE_NET = ("in16x3-stem_k3_s1_c8_re-cse_e1_k3_s1_c16_re_rd4_cap8-cse_e3_k5_s2_c24_hs_se_rd4_cap8-"
           "cse_e3_k3_s1_c16_re_rd4_cap8-head_c32_hs-cls5")


def _trained_like(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
    return model.eval()


def _run(nas_args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(nas_args)
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_error(err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_every_block_operator_matches_pytorch(layout: str) -> None:
    model = kitchen_sink()
    data = to_tflite_bytes(model, (2, 3, 16, 16), layout=layout)
    assert is_tflite(data)
    x = example_input((2, 3, 16, 16), seed=5)
    assert tflite_max_abs_diff(model, data, x, layout=layout) <= 1e-4
    shape = tuple(int(v) for v in tflite_interpreter(data).get_input_details()[0]["shape"])
    assert shape == ((2, 16, 16, 3) if layout == "nhwc" else (2, 3, 16, 16))  # the batch is fixed


def test_cse_channel_tiling_and_folding_convert_exactly() -> None:
    arch = parse_compact(CSE_NET)
    torch.manual_seed(0)
    net = _trained_like(build_model(arch))
    assert any(isinstance(m, ChannelFold) and m.in_ch < m.out_ch for m in net.modules())
    assert any(isinstance(m, ChannelFold) and m.in_ch > m.out_ch for m in net.modules())
    data = to_tflite_bytes(net, (1, 3, 16, 16))
    x = example_input((1, 3, 16, 16), seed=2)
    with torch.inference_mode():
        want = net(x).numpy()
    got = run_tflite(tflite_interpreter(data), x.permute(0, 2, 3, 1).numpy())
    assert np.abs(got - want).max() <= 1e-4 and np.abs(want).max() > 1e-3  # not vacuous
    # the substitute computes exactly what ChannelFold does, and the caller's network keeps its modules
    fold = ChannelFold(in_ch=8, out_ch=20)
    y = torch.randn(2, 8, 4, 4)
    assert torch.equal(conversion_copy(fold)(y), fold(y))
    assert not any(type(m).__name__ == "_ConcatTile" for m in net.modules())


def test_a_converter_that_disagrees_is_caught(tmp_path: Path) -> None:
    model = kitchen_sink()
    other = kitchen_sink(seed=1)
    data = to_tflite_bytes(other, (1, 3, 16, 16))
    assert tflite_max_abs_diff(model, data, example_input((1, 3, 16, 16), seed=1)) > 1e-3
    # export_tflite refuses a disagreeing model and writes nothing
    target = tmp_path / "m.tflite"
    target.write_bytes(b"earlier")
    with pytest.raises(ExportError, match=r"m.tflite: the LiteRT model disagrees with PyTorch: max abs difference .* "
                                          r"> tolerance 1e-30 .* the file was not written"):
        export_tflite(model, target, input_shape=(1, 3, 16, 16), atol=1e-30)
    assert target.read_bytes() == b"earlier"
    with pytest.raises(ExportError, match="not a LiteRT"):
        tflite_interpreter(b"\x08\x07onnx model bytes")
    with pytest.raises(ExportError, match=r"takes an input of shape \(1, 16, 16, 3\), not \(1, 3, 16, 16\)"):
        run_tflite(tflite_interpreter(data), np.zeros((1, 3, 16, 16), np.float32))


def test_non_finite_weights_are_refused(tmp_path: Path) -> None:
    model = kitchen_sink()
    with torch.no_grad():
        model.head.weight[0, 0] = float("nan")
    with pytest.raises(ExportError, match="outputs NaN or infinity"):
        export_tflite(model, tmp_path / "x.tflite", input_shape=(1, 3, 16, 16))
    assert not (tmp_path / "x.tflite").exists()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("tflite-export") / "run"
    assert main(["train", "--arch", TINY_ARCH, *TINY_TRAIN, "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    return run


def test_cli_exports_the_trained_network(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "net.tflite"
    code, text, err = _run(["export", "--arch", str(run_dir / "arch.json"), "--weights", str(run_dir), "-o", str(out),
                            "--format", "tflite", "--batch", "2"], capsys)
    assert code == 0, err
    assert f"wrote {out}" in text and "input [2, 16, 16, 3] (batch, height, width, channels; the batch is fixed)" in text
    assert "ai-edge-litert interpreter with XNNPACK" in text and "litert-torch" in text
    arch = resolve_arch(str(run_dir / "arch.json"))
    trained = build_model(arch)
    load_weights(trained, run_dir / CHECKPOINT_NAME)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        want = trained.eval()(x).numpy()
    got = run_tflite(tflite_interpreter(out.read_bytes()), x.permute(0, 2, 3, 1).numpy())
    assert np.abs(got - want).max() <= 1e-4
    code, text, _ = _run(["export", "--arch", str(run_dir / "arch.json"), "--weights", str(run_dir), "-o",
                          str(tmp_path / "nchw.tflite"), "--format", "tflite", "--layout", "nchw", "--json"], capsys)
    info = json.loads(text)
    assert code == 0 and info["format"] == "tflite" and info["layout"] == "nchw" and info["input_shape"] == [1, 3, 16, 16]
    assert 0 <= info["max_abs_diff"] <= 1e-4 and info["bytes"] == (tmp_path / "nchw.tflite").stat().st_size


def test_cli_refusals_are_the_onnx_exports(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.tflite"
    ckpt = run_dir / CHECKPOINT_NAME
    other = TINY_ARCH.replace("c24", "c32")
    code, _, err = _run(["export", "--arch", other, "--weights", str(ckpt), "-o", str(out), "--format", "tflite"],
                        capsys)
    assert code == 2
    _one_line_error(err, str(ckpt), "shape mismatch")
    folder = tmp_path / "models"
    folder.mkdir()
    code, _, err = _run(["export", "--arch", TINY_ARCH, "-o", str(folder), "--format", "tflite"], capsys)
    assert code == 2
    _one_line_error(err, f"-o/--output {folder}: is a directory")
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    before = (run / "arch.json").read_bytes()
    code, _, err = _run(["export", "--arch", str(run / "arch.json"), "-o", str(run / "arch.json"), "--format",
                         "tflite"], capsys)
    assert code == 2
    _one_line_error(err, "is the input file", "writing the LiteRT model there would destroy it", "model.tflite")
    assert (run / "arch.json").read_bytes() == before
    code, _, err = _run(["export", "--arch", TINY_ARCH, "-o", str(tmp_path / "y.onnx"), "--layout", "nhwc"], capsys)
    assert code == 2
    _one_line_error(err, "--layout nhwc: applies to --format tflite only")
    code, _, err = _run(["export", "--arch", TINY_ARCH, "-o", str(out), "--format", "tflite", "--atol", "1e-30"],
                        capsys)
    assert code == 2
    _one_line_error(err, "the LiteRT model disagrees with PyTorch", "the file was not written")
    assert not out.exists() and list(folder.iterdir()) == []
