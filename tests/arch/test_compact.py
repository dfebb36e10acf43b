from __future__ import annotations

import pytest
from hypothesis import given, settings

from nas.arch import ArchSpec, parse_compact, reference_arch, to_compact, width_multiplier
from nas.errors import SpecError
from tests.arch.strategies import arch_specs


@settings(max_examples=200, deadline=None)
@given(arch_specs())
def test_compact_round_trip(arch: ArchSpec) -> None:
    text = to_compact(arch)
    assert parse_compact(text) == arch
    assert to_compact(parse_compact(text)) == text


def test_reference_string_is_readable_and_grouped() -> None:
    text = to_compact(reference_arch("mobilenetv2-cifar"))
    assert text.startswith("in32x3-stem_k3_s1_c32_re-ir_e1_k3_s1_c16_re-ir_r2_e6_k3_s1_c24_re-")
    assert text.endswith("-head_c1280_re-cls10")
    assert "ir_r4_e6_k3_s2_c64_re" in text


def test_hidden_widths_that_are_not_ratios_use_m_token() -> None:
    arch = reference_arch("mobilenetv2-cifar")
    b = arch.blocks[1]
    changed = arch.replace_blocks((arch.blocks[0], b.__class__(**{**b.to_dict(), "mid_ch": 88}), *arch.blocks[2:]))
    assert "ir_m88_k3_s1_c24_re" in to_compact(changed)
    assert parse_compact(to_compact(changed)) == changed


def test_shorthand_defaults() -> None:
    arch = parse_compact("in32x3-stem_c16-ir_e6_c24-cse_e2_s2_c32_hs_rd4_cap8_se-head_none-cls10")
    assert arch.stem.kernel == 3 and arch.stem.stride == 1 and arch.stem.act == "relu"
    b0, b1 = arch.blocks
    assert (b0.kernel, b0.stride, b0.act, b0.se, b0.mid_ch) == (3, 1, "relu", False, 96)
    assert (b1.type, b1.stride, b1.act, b1.se, b1.cse_reduction, b1.cse_cap) == ("cse", 2, "hswish", True, 4, 8)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("in32x3-stem_k3_c16-ir_e6_q5_c24-head_c64_re-cls10", "segment 2 ('ir_e6_q5_c24'): unknown token 'q5'"),
        ("in32x3-stem_k3_c16-ir_e6_k4_c24-head_c64_re-cls10", "block.kernel: expected one of [3, 5, 7], got 4"),
        ("in32x3-stem_k3_c16-xx_e6_c24-head_c64_re-cls10", "unknown block type 'xx'"),
        ("in32x3-stem_k3_c16-ir_e6-head_c64_re-cls10", "missing output channels token 'c<N>'"),
        ("in32x3-stem_k3_c16-ir_e6_m20_c24-head_c64_re-cls10", "exactly one of 'e<ratio>' or 'm<hidden channels>'"),
        ("in32x3-stem_k3_c16-ir_e6_c24_rd4-head_c64_re-cls10", "unknown token 'rd4'"),
        ("in32x3-stem_k3_c16-cse_e2_c24-head_c64_re-cls10", "needs 'rd<reduction>' and 'cap<N>'"),
        ("in32x3-stem_k3_c16-ir_e6_c24_re_hs-head_c64_re-cls10", "conflicts"),
        ("in32x3-stem_k3_c16-ir_e6_c24-head_c64_re-classes10", "expected 'cls<N>'"),
        ("in32x3-stem_k3_c16-ir_e6_c24-tail_c64-cls10", "expected the head"),
        ("in32-stem_k3_c16-ir_e6_c24-head_c64_re-cls10", "expected 'in<size>x<channels>'"),
        ("in32x3-ir_e6_c24", "at least 5"),
        ("in32x3-stem_k3_c16-ir_e6_c24_k3_k5-head_c64_re-cls10", "repeats 'k'"),
    ],
)
def test_bad_strings_name_the_token(text: str, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_compact(text)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        # Non-ASCII digits are not numbers here (int() would read "\u0663" as 3).
        (f"in32x3-stem_c16-ir_e6_k{chr(0x663)}_c24-head_c64_re-cls10", "unknown token"),
        (f"in3{chr(0x662)}x3-stem_c16-ir_e6_c24-head_c64_re-cls10", "segment 0"),
        # A newline inside a token ('$' matched before it).
        ("in32x3-stem_c16-ir_e6_c24\n_re-head_c64_re-cls10", "unknown token 'c24\\n'"),
        # More digits than int() reads: a SpecError, not Python's ValueError.
        ("in32x3-stem_c16-ir_e6_c" + "9" * 5000 + "-head_c64_re-cls10", "digits) is too large"),
        ("in" + "9" * 5000 + "x3-stem_c16-ir_e6_c24-head_c64_re-cls10", "segment 0"),
        ("in32x3-stem_c16-ir_e6_c24-head_c64_re-cls" + "9" * 5000, "segment 4"),
        # Leading zeros: one network, one spelling (to_compact never writes them).
        ("in32x3-stem_c16-ir_e6_k3_s2_c024_re-head_c64_re-cls10", "unknown token 'c024'"),
        ("in032x3-stem_c16-ir_e6_c24-head_c64_re-cls10", "segment 0"),
        ("in32x3-stem_c16-ir_e6_c24-head_c64_re-cls010", "segment 4"),
    ],
)
def test_malformed_numbers_are_spec_errors(text: str, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_compact(text)
    assert fragment in str(info.value)


def test_width_multiplier_rounds_to_8_and_keeps_ratios() -> None:
    base = reference_arch("mobilenetv2-cifar")
    half = width_multiplier(base, 0.5)
    assert half.stem.out_ch == 16
    assert [b.out_ch for b in half.blocks][:4] == [8, 16, 16, 16]
    assert all(b.out_ch % 8 == 0 for b in half.blocks)
    assert all(b.mid_ch == b.in_ch * round(ob.expand_ratio) for b, ob in zip(half.blocks, base.blocks))
    assert half.head.width == 1280  # MobileNetV2 keeps the 1280 head for alpha < 1
    assert reference_arch("mobilenetv2-cifar@0.5") == half
    assert width_multiplier(base, 1.0) is base
    with pytest.raises(SpecError, match="alpha"):
        width_multiplier(base, 0.0)
    with pytest.raises(SpecError, match="must be a number"):
        reference_arch("mobilenetv2-cifar@half")
