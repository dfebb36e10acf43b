"""ONNX export: the operators of the real blocks match onnxruntime, any batch works, failures are clear."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from nas.errors import ExportError
from nas.export import OPSET, ExportReport, export_onnx, onnx_max_abs_diff, to_onnx_bytes
from nas.export.parity import ort_session, run_onnx

SHAPE = (1, 3, 16, 16)


class KitchenSink(nn.Module):
    """Every operator the real blocks use: conv/BN, ReLU6, Hardswish, depthwise conv, squeeze-excite
    (global pool, 1x1 convs, Hardsigmoid gate, multiply), a channel-wise squeeze over spatial
    positions (channel mean, flatten, Linear, reshape back, sigmoid gate), a residual add, and a
    pooled Linear head."""

    def __init__(self, width: int = 8, resolution: int = 8, classes: int = 5) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False),
                                nn.BatchNorm2d(width), nn.Hardswish())
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(width, 4, 1), nn.ReLU(), nn.Conv2d(4, width, 1),
                                nn.Hardsigmoid())
        positions = resolution * resolution
        self.reduce, self.expand = nn.Linear(positions, 16), nn.Linear(16, positions)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = self.dw(x)
        y = y * self.se(y)
        b, _, h, w = y.shape
        squeezed = y.mean(dim=1, keepdim=True).flatten(1)
        gate = torch.sigmoid(self.expand(torch.relu(self.reduce(squeezed)))).reshape(b, 1, h, w)
        y = x + y * gate
        return self.head(y.mean(dim=(2, 3)))


def _model(seed: int = 0) -> KitchenSink:
    torch.manual_seed(seed)
    model = KitchenSink()
    for m in model.modules():  # non-trivial BN statistics, as after training
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    return model


def test_block_operators_match_onnxruntime_and_accept_any_batch(tmp_path: Path) -> None:
    model = _model()
    report = export_onnx(model, tmp_path / "net.onnx", input_shape=SHAPE)
    assert isinstance(report, ExportReport) and report.path == str(tmp_path / "net.onnx")
    assert report.max_abs_diff <= 1e-4 and report.opset == OPSET and report.input_shape == SHAPE
    assert report.onnx_bytes == (tmp_path / "net.onnx").stat().st_size > 0
    graph = onnx.load(str(tmp_path / "net.onnx"))
    assert graph.opset_import[0].version == OPSET
    assert [i.name for i in graph.graph.input] == ["input"] and [o.name for o in graph.graph.output] == ["logits"]
    x3 = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    assert onnx_max_abs_diff(model, tmp_path / "net.onnx", x3) <= 1e-4
    out = run_onnx(ort_session(tmp_path / "net.onnx"), x3.numpy())
    assert out.shape == (3, 5)
    assert [p.name for p in tmp_path.iterdir()] == ["net.onnx"]  # no temporary file left


def test_callers_module_is_left_as_it_was() -> None:
    model = _model().double().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = to_onnx_bytes(model, SHAPE)
    assert model.training and all(m.training for m in model.modules())
    assert next(model.parameters()).dtype == torch.float64 and next(model.parameters()).requires_grad
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN stats not updated
    graph = onnx.load_from_string(data)
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # exported in float32
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_a_different_model_is_detected() -> None:
    data = to_onnx_bytes(_model(seed=0), SHAPE)
    x = torch.randn(SHAPE)
    assert onnx_max_abs_diff(_model(seed=0), data, x) <= 1e-4
    assert onnx_max_abs_diff(_model(seed=1), data, x) > 1e-3


class CountingModel(nn.Module):
    """Python-side state in forward(): tracing freezes the count into the graph, so the ONNX file
    and a later PyTorch call disagree, a real export bug of the kind the check exists for."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.conv(x).mean(dim=(2, 3)) + float(self.calls)


def test_disagreement_raises_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "bad.onnx"
    with pytest.raises(ExportError) as info:
        export_onnx(CountingModel(), target, input_shape=(1, 3, 4, 4), atol=0.0)
    message = str(info.value)
    assert str(target) in message and "max abs difference" in message and "tolerance 0" in message
    assert not target.exists() and not list(tmp_path.iterdir())
    report = export_onnx(CountingModel(), target, input_shape=(1, 3, 4, 4), check=False)
    assert np.isnan(report.max_abs_diff) and target.exists()


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_and_nothing_written(value: float, tmp_path: Path) -> None:
    """NaN on both sides used to count as agreement: a network computing nothing exported with parity 0."""
    model = _model()
    with torch.no_grad():
        model.head.weight.fill_(value)
    target = tmp_path / "net.onnx"
    with pytest.raises(ExportError) as info:
        export_onnx(model, target, input_shape=SHAPE)
    message = str(info.value)
    assert "NaN or infinity" in message and "'head.weight'" in message and "disagrees" not in message
    assert not list(tmp_path.iterdir())


def test_write_failure_is_an_export_error_and_keeps_the_old_file(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "net.onnx"
    export_onnx(_model(), target, input_shape=SHAPE)
    before = target.read_bytes()

    def full_disk(path: Path, data: bytes) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("nas.export.onnx_file.atomic_write_bytes", full_disk)
    with pytest.raises(ExportError) as info:
        export_onnx(_model(seed=1), target, input_shape=SHAPE)
    assert str(target) in str(info.value) and "No space left on device" in str(info.value)
    assert target.read_bytes() == before


def test_output_name_too_long_is_an_export_error(tmp_path: Path) -> None:
    target = tmp_path / ("x" * 300 + ".onnx")
    with pytest.raises(ExportError) as info:
        export_onnx(_model(), target, input_shape=SHAPE)
    assert str(target) in str(info.value) and not list(tmp_path.iterdir())


@pytest.mark.parametrize("shape", [(), (1, 0, 16, 16), (1, 3, 16.0, 16)])
def test_invalid_input_shape(shape: tuple) -> None:  # type: ignore[type-arg]
    with pytest.raises(ExportError, match="input_shape must be"):
        to_onnx_bytes(_model(), shape)


def test_shape_the_model_cannot_take_is_an_export_error() -> None:
    with pytest.raises(ExportError, match=r"KitchenSink to ONNX .*input \(1, 3, 32, 32\)"):
        to_onnx_bytes(_model(), (1, 3, 32, 32))  # the spatial Linear needs 8 x 8 after the stem


def test_missing_or_corrupt_onnx_file(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no such ONNX file"):
        onnx_max_abs_diff(_model(), tmp_path / "missing.onnx", torch.randn(SHAPE))
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(ExportError, match="onnxruntime cannot load it"):
        onnx_max_abs_diff(_model(), tmp_path / "junk.onnx", torch.randn(SHAPE))


def test_export_is_quiet(recwarn: pytest.WarningsRecorder) -> None:
    to_onnx_bytes(_model(), SHAPE)
    assert not [w for w in recwarn if issubclass(w.category, (DeprecationWarning, FutureWarning))]
