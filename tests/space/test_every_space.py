"""Every search space in ``search_spaces/`` (globbed, so a new file is covered automatically):
load, sample several seeds, build, forward a batch, export to ONNX and compare with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from nas.arch import build_model
from nas.export import export_onnx
from nas.space import load_space, random_arch
from tests.conftest import REPO, one_torch_thread

SPACES = sorted(p for p in (REPO / "search_spaces").iterdir() if p.suffix in (".yaml", ".yml"))
SEEDS = (0, 1, 2)
BATCH = 2


_one_thread = pytest.fixture(scope="module", autouse=True)(one_torch_thread)


def _trained_like(model: nn.Module, seed: int) -> None:
    """Weights as after training: non-trivial BN statistics and affine parameters (a fresh BN is an
    identity) and linear layers at PyTorch's default scale (the builder's classifier starts at std
    0.01, which would make the logits, and so any export error, tiny)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            m.reset_parameters()
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)


def test_the_folder_has_spaces() -> None:
    assert any(p.name == "mobilenet_cse_cifar.yaml" for p in SPACES), SPACES


@pytest.mark.parametrize("path", SPACES, ids=[p.name for p in SPACES])
def test_space_samples_build_run_and_export(path: Path, tmp_path: Path) -> None:
    space = load_space(path)
    archs = [random_arch(space, seed) for seed in SEEDS]
    assert len(set(archs)) == len(archs), "different seeds should give different networks"
    for seed, arch in zip(SEEDS, archs):
        assert arch.input_size == space.input_size and arch.num_classes == space.num_classes
        torch.manual_seed(seed)
        model = build_model(arch)
        _trained_like(model, seed)
        x = torch.randn(BATCH, arch.in_ch, arch.input_size, arch.input_size,
                        generator=torch.Generator().manual_seed(seed))
        with torch.inference_mode():
            logits = model.eval()(x)
        assert logits.shape == (BATCH, arch.num_classes) and torch.isfinite(logits).all()
        report = export_onnx(model, tmp_path / f"seed{seed}.onnx", input_shape=(BATCH, *x.shape[1:]))
        print(f"{path.name} seed {seed}: {len(arch.blocks)} blocks, max |torch - onnxruntime| "
              f"{report.max_abs_diff:.2e}")
        assert report.max_abs_diff <= 1e-4
        assert logits.abs().max() > 0.1  # logits of a useful scale, so the comparison means something
