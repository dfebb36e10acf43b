from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from torch import nn

from nas.arch import ArchSpec, BlockSpec, arch_cost, block_cost, build_block, build_model, reference_arch
from nas.arch.blocks import ChannelFold, ChannelwiseSqueezeExcite
from tests.arch.strategies import arch_specs


def measured_macs(model: nn.Module, x: torch.Tensor) -> int:
    """MACs of every Conv2d/Linear, counted from the shapes seen in a real forward pass."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += out.shape[2] * out.shape[3] * kh * kw * (m.in_channels // m.groups) * m.out_channels

    def linear_hook(m: nn.Linear, _inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
        nonlocal total
        total += m.in_features * m.out_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    with torch.no_grad():
        model.eval()(x)
    for h in handles:
        h.remove()
    return total


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@settings(max_examples=25, deadline=None)
@given(arch_specs())
def test_spec_costs_match_the_built_module(arch: ArchSpec) -> None:
    model = build_model(arch)
    cost = arch_cost(arch)
    assert cost.params == n_params(model)
    x = torch.randn(1, arch.in_ch, arch.input_size, arch.input_size)
    assert cost.macs == measured_macs(model, x)
    assert model.eval()(x).shape == (1, arch.num_classes)


@pytest.mark.parametrize("name", ["mobilenetv2-cifar", "cse-mix-cifar", "cse-only-cifar", "mobilenetv2-cifar@0.35"])
def test_reference_costs_match_the_built_module(name: str) -> None:
    arch = reference_arch(name)
    model = build_model(arch)
    assert arch_cost(arch).params == n_params(model)
    assert arch_cost(arch).macs == measured_macs(model, torch.randn(1, 3, 32, 32))


def _cse(in_ch: int, out_ch: int, mid: int, stride: int = 1) -> BlockSpec:
    return BlockSpec(type="cse", in_ch=in_ch, out_ch=out_ch, mid_ch=mid, stride=stride, cse_reduction=16, cse_cap=16)


def test_cse_unit_parameters_grow_with_resolution_not_channels() -> None:
    units = {
        (res, ch): ChannelwiseSqueezeExcite(in_ch=ch, out_ch=ch, resolution=res, hidden=max(res * res // 16, 16))
        for res in (4, 8, 16, 32) for ch in (16, 64, 256)
    }
    for res in (4, 8, 16, 32):
        counts = {n_params(units[(res, ch)]) for ch in (16, 64, 256)}
        assert len(counts) == 1, f"CSE parameters changed with channels at resolution {res}: {counts}"
    by_res = [n_params(units[(res, 64)]) for res in (4, 8, 16, 32)]
    assert by_res == sorted(by_res) and len(set(by_res)) == 4
    # HW*m + m + m*HW + HW at 16x16 with m = 256 // 16 = 16.
    assert by_res[2] == 256 * 16 + 16 + 16 * 256 + 256


def test_cse_replaces_the_projection_which_grows_with_channels_instead() -> None:
    """Block level: swapping the 1x1 projection for CSE removes a channel-dependent cost."""
    for ch in (32, 64, 128):
        ir = block_cost(BlockSpec(type="ir", in_ch=ch, out_ch=ch, mid_ch=2 * ch), resolution=8)
        cse = block_cost(_cse(ch, ch, 2 * ch), resolution=8)
        cse_unit = 64 * 16 + 16 + 16 * 64 + 64
        projection = 2 * ch * ch + 2 * ch
        assert ir.params - cse.params == projection - cse_unit
    # The same CSE block at a higher resolution has more parameters.
    assert block_cost(_cse(32, 32, 64), resolution=16).params > block_cost(_cse(32, 32, 64), resolution=8).params


@pytest.mark.parametrize(("c_in", "c_out"), [(8, 8), (12, 4), (10, 4), (4, 10), (3, 7), (128, 96)])
def test_channel_fold_is_the_documented_mapping(c_in: int, c_out: int) -> None:
    fold = ChannelFold(in_ch=c_in, out_ch=c_out)
    x = torch.randn(2, c_in, 3, 3)
    y = fold(x)
    assert y.shape == (2, c_out, 3, 3) and n_params(fold) == 0
    for j in range(c_out):
        if c_in >= c_out:
            expected = x[:, j::c_out].mean(dim=1)
        else:
            expected = x[:, j % c_in]
        torch.testing.assert_close(y[:, j], expected)


def test_residual_only_when_shapes_allow() -> None:
    same = build_block(BlockSpec(type="ir", in_ch=16, out_ch=16, mid_ch=32), resolution=8)
    strided = build_block(BlockSpec(type="ir", in_ch=16, out_ch=16, mid_ch=32, stride=2), resolution=8)
    assert same.residual and not strided.residual
    x = torch.randn(2, 16, 8, 8)
    assert strided(x).shape == (2, 16, 4, 4)
    # A residual block with its body zeroed returns its input.
    for p in same.body[-1].parameters():
        nn.init.zeros_(p)
    torch.testing.assert_close(same.eval()(x), x)


def test_builder_is_stateless_and_seeded() -> None:
    arch = reference_arch("cse-mix-cifar")
    torch.manual_seed(0)
    a = build_model(arch)
    torch.manual_seed(0)
    b = build_model(arch)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
