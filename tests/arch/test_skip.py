"""The ``skip`` block: identity where the shapes match, else 1x1 conv + BN; its pinned fields and tokens."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nas.arch import (
    ArchSpec,
    BlockSpec,
    HeadSpec,
    StemSpec,
    arch_cost,
    arch_hash,
    block_cost,
    build_block,
    build_model,
    from_json,
    parse_compact,
    skip_block,
    to_compact,
    to_json,
)
from nas.arch.blocks import SkipBlock
from nas.errors import SpecError
from tests.arch.test_builder import measured_macs, n_params

MACRO_LIKE = "in32x3-stem_k3_s1_c32_re-skip_s2_c64-skip_s1_c64-ir_e3_k3_s2_c128_re-skip_s1_c128-head_c1280_re-cls10"


def test_identity_skip_has_no_parameters_and_returns_its_input() -> None:
    block = skip_block(in_ch=16, out_ch=16)
    assert block.is_identity and block.residual and not block.has_expansion
    module = build_block(block, resolution=8)
    assert isinstance(module, SkipBlock) and n_params(module) == 0 and not list(module.buffers())
    x = torch.randn(2, 16, 8, 8)
    assert module(x) is x  # no operation at all, not even a copy
    assert block_cost(block, resolution=8).params == 0 and block_cost(block, resolution=8).macs == 0


@pytest.mark.parametrize(("in_ch", "out_ch", "stride", "res"), [(32, 64, 2, 32), (16, 24, 1, 8), (16, 16, 2, 9)])
def test_conv_skip_is_a_1x1_conv_and_bn_without_activation(in_ch: int, out_ch: int, stride: int, res: int) -> None:
    block = skip_block(in_ch=in_ch, out_ch=out_ch, stride=stride)
    assert not block.is_identity and not block.residual
    module = build_block(block, resolution=res).eval()
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 and convs[0].kernel_size == (1, 1) and convs[0].stride == (stride, stride)
    assert convs[0].bias is None and sum(isinstance(m, nn.BatchNorm2d) for m in module.modules()) == 1
    assert not any(isinstance(m, (nn.ReLU, nn.ReLU6, nn.Hardswish)) for m in module.modules())
    out_res = (res - 1) // stride + 1
    x = torch.randn(1, in_ch, res, res)
    y = module(x)
    assert y.shape == (1, out_ch, out_res, out_res)
    assert (y < 0).any()  # no activation clips the output
    cost = block_cost(block, resolution=res)
    assert cost.params == in_ch * out_ch + 2 * out_ch == n_params(module)
    assert cost.macs == in_ch * out_ch * out_res * out_res == measured_macs(module, x)


def test_a_network_with_both_kinds_of_skip_costs_what_its_module_has() -> None:
    arch = parse_compact(MACRO_LIKE)
    assert [b.type for b in arch.blocks] == ["skip", "skip", "ir", "skip"]
    assert [b.is_identity for b in arch.blocks] == [False, True, False, True]
    model = build_model(arch)
    x = torch.randn(1, 3, 32, 32)
    assert arch_cost(arch).params == n_params(model)
    assert arch_cost(arch).macs == measured_macs(model, x)
    assert model.eval()(x).shape == (1, 10)


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("mid_ch", 64, "block.mid_ch: a 'skip' block has no hidden width; mid_ch must equal in_ch (32), got 64"),
        ("kernel", 3, "block.kernel: a 'skip' block has no depthwise kernel (its convolution is 1x1); kernel must be "
                      "1, got 3"),
        ("kernel", True, "kernel must be 1, got True"),
        ("se", True, "block.se: a 'skip' block has no squeeze-excite; se must be false, got True"),
        ("se", 0, "block.se: a 'skip' block has no squeeze-excite; se must be false, got 0"),
        ("act", "hswish", "block.act: a 'skip' block has no activation; act must be \"relu\", got 'hswish'"),
        ("cse_reduction", 16, "block.cse_reduction: a 'skip' block has no CSE unit; cse_reduction must be null, "
                              "got 16"),
        ("cse_cap", 16, "block.cse_cap: a 'skip' block has no CSE unit; cse_cap must be null, got 16"),
    ],
)
def test_the_unused_fields_of_a_skip_block_are_pinned(field: str, value: object, fragment: str) -> None:
    data = {**skip_block(in_ch=32, out_ch=64, stride=2).to_dict(), field: value}
    with pytest.raises(SpecError) as info:
        BlockSpec(**data)
    assert fragment in str(info.value)
    # The same refusal, with the block's position, from a JSON file.
    arch = parse_compact(MACRO_LIKE).to_dict()
    arch["blocks"][0][field] = value
    with pytest.raises(SpecError, match=r"^arch JSON: blocks\[0\]") as info:
        from_json(__import__("json").dumps(arch))
    assert fragment.removeprefix("block.").split(";")[0] in str(info.value)


def test_one_network_has_one_canonical_json_and_hash() -> None:
    arch = parse_compact(MACRO_LIKE)
    text = to_json(arch)
    assert from_json(text) == arch and to_json(from_json(text)) == text
    skip = arch.blocks[0].to_dict()
    assert (skip["mid_ch"], skip["kernel"], skip["se"], skip["act"], skip["cse_reduction"], skip["cse_cap"]) == \
        (32, 1, False, "relu", None, None)
    # The identity is a block of its own: with it the network differs from the one without it.
    without = arch.replace_blocks(arch.blocks[:1] + arch.blocks[2:])
    assert arch_hash(without) != arch_hash(arch)


def test_compact_tokens_round_trip_and_group() -> None:
    arch = parse_compact(MACRO_LIKE)
    text = to_compact(arch)
    # A conv skip followed by an identity of its width is what 'r2' of it means.
    assert "-skip_r2_s2_c64-" in text and "-skip_s1_c128-" in text
    assert parse_compact(text) == arch and to_compact(parse_compact(text)) == text
    assert parse_compact("in32x3-stem_c32-skip_c32-head_none-cls10").blocks == (skip_block(in_ch=32, out_ch=32),)


@pytest.mark.parametrize("token", ["e3", "m64", "k1", "k3", "se", "re", "hs", "rd16", "cap16"])
def test_compact_refuses_tokens_a_skip_block_cannot_have(token: str) -> None:
    text = f"in32x3-stem_k3_s1_c32_re-skip_s2_{token}_c64-head_c1280_re-cls10"
    with pytest.raises(SpecError) as info:
        parse_compact(text)
    assert f"segment 2 ('skip_s2_{token}_c64'): token {token!r} is not allowed on a skip block" in str(info.value)
    assert "it takes only 'r<N>', 's<N>' and 'c<N>'" in str(info.value)


@pytest.mark.parametrize(("segment", "fragment"), [
    ("skip_s2", "missing output channels token 'c<N>'"),
    ("skip_s3_c64", "block.stride: expected one of [1, 2], got 3"),
    ("skip_x2_c64", "unknown token 'x2'"),
])
def test_compact_skip_segments_name_what_is_wrong(segment: str, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_compact(f"in32x3-stem_c32-{segment}-head_c64_re-cls10")
    assert f"segment 2 ({segment!r})" in str(info.value) and fragment in str(info.value)


def test_a_network_of_identities_only_is_valid() -> None:
    arch = ArchSpec(16, 3, StemSpec(out_ch=8), (skip_block(in_ch=8, out_ch=8),) * 3, HeadSpec(kind="none", width=0), 4)
    assert arch_cost(arch) == arch_cost(arch.replace_blocks(arch.blocks[:1]))
    assert build_model(arch).eval()(torch.randn(1, 3, 16, 16)).shape == (1, 4)
