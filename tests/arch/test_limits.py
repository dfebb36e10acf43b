"""Size limits: absurd sizes are refused on creation, naming the field and the limit (not hung on, not allocated)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from nas.arch import ArchSpec, BlockSpec, HeadSpec, StemSpec, load_arch_file, parse_compact, reference_arch
from nas.arch.spec import MAX_BLOCKS, MAX_CHANNELS, MAX_CLASSES, MAX_INPUT_SIZE
from nas.errors import SpecError

_TAIL = "head_c64_re-cls10"


def test_the_limits_are_far_above_real_networks() -> None:
    big = reference_arch("mobilenetv2-cifar")  # 17 blocks, 1280 head channels, 32 px, 10 classes
    assert MAX_BLOCKS >= 10 * len(big.blocks) and MAX_CHANNELS >= 10 * big.head.width // 2
    assert MAX_INPUT_SIZE >= 4 * 600 and MAX_CLASSES >= 4 * 21_841  # EfficientNet-B7's input, ImageNet-21k


@pytest.mark.parametrize(("text", "fragment"), [
    (f"in32x3-stem_c16-ir_r{MAX_BLOCKS + 1}_e1_c16-{_TAIL}", f"'r{MAX_BLOCKS + 1}'"),
    ("in32x3-stem_c16-ir_r99999999_e1_c16-" + _TAIL, "'r99999999'"),  # reached MemoryError after 80 s
    ("in32x3-stem_c16-" + "-".join(["ir_r600_e1_c16"] * 2) + "-" + _TAIL, f"more than {MAX_BLOCKS} blocks"),
    (f"in32x3-stem_c{MAX_CHANNELS + 1}-ir_e1_c16-{_TAIL}", "stem.out_ch"),
    ("in32x3-stem_c16-ir_e1_c100000000-" + _TAIL, "block.out_ch"),
    ("in32x3-stem_c16-ir_e99999_c16-" + _TAIL, "block.mid_ch"),
    ("in32x3-stem_c16-ir_e1_c16-head_c100000000_re-cls10", "head.width"),
    (f"in{MAX_INPUT_SIZE + 1}x3-stem_c16-ir_e1_c16-{_TAIL}", "input_size"),
    ("in32x100000-stem_c16-ir_e1_c16-" + _TAIL, "in_ch"),
    (f"in32x3-stem_c16-ir_e1_c16-head_c64_re-cls{MAX_CLASSES + 1}", "num_classes"),
    # a CSE unit at 4096x4096 with reduction 1: 2^48 weights per FC layer (it died in the allocator when built)
    ("in4096x3-stem_k3_s1_c8_re-cse_e1_k3_s1_c8_re_rd1_cap1-" + _TAIL, "blocks[0].cse_reduction"),
    ("in256x3-stem_k3_s1_c8_re-cse_e1_k3_s1_c8_re_rd4_cap1-" + _TAIL, "weights per FC layer"),  # 2^16 x 2^14
    ("in256x3-stem_k3_s1_c8_re-cse_e1_k3_s1_c8_re_rd16_cap16384-" + _TAIL, "blocks[0].cse_cap: "),  # the cap sets it
])
def test_compact_strings_over_a_limit_are_refused_at_once(text: str, fragment: str) -> None:
    start = time.perf_counter()
    with pytest.raises(SpecError) as err:
        parse_compact(text)
    assert time.perf_counter() - start < 1.0
    assert fragment in str(err.value) and "limit" in str(err.value), str(err.value)


def test_specs_over_a_limit_name_the_field_and_the_limit() -> None:
    with pytest.raises(SpecError, match=rf"stem.out_ch: .*limit of {MAX_CHANNELS}"):
        StemSpec(out_ch=MAX_CHANNELS + 1)
    with pytest.raises(SpecError, match=rf"block.mid_ch: .*limit of {MAX_CHANNELS}"):
        BlockSpec(type="ir", in_ch=8, out_ch=8, mid_ch=100_000_000)
    with pytest.raises(SpecError, match=rf"block.cse_cap: .*limit of {MAX_CHANNELS}"):
        BlockSpec(type="cse", in_ch=8, out_ch=8, mid_ch=8, cse_reduction=4, cse_cap=MAX_CHANNELS + 1)
    with pytest.raises(SpecError, match=rf"head.width: .*limit of {MAX_CHANNELS}"):
        HeadSpec(width=MAX_CHANNELS + 1)
    block = BlockSpec(type="ir", in_ch=8, out_ch=8, mid_ch=8)
    with pytest.raises(SpecError, match=rf"arch.blocks: {MAX_BLOCKS + 1} blocks.*limit of {MAX_BLOCKS}"):
        ArchSpec(32, 3, StemSpec(out_ch=8), (block,) * (MAX_BLOCKS + 1), HeadSpec(width=64), 10)
    at_limit = ArchSpec(MAX_INPUT_SIZE, 3, StemSpec(out_ch=8), (block,) * MAX_BLOCKS, HeadSpec(width=MAX_CHANNELS),
                        MAX_CLASSES)
    assert len(at_limit.blocks) == MAX_BLOCKS  # the limits themselves are allowed


def test_arch_json_over_a_limit_names_the_file_and_the_field(tmp_path: Path) -> None:
    data = reference_arch("mobilenetv2-cifar@0.5").to_dict()
    data["blocks"] = [data["blocks"][0]] * (MAX_BLOCKS + 1)
    path = tmp_path / "big.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SpecError) as err:
        load_arch_file(path)
    assert str(path) in str(err.value) and "arch.blocks" in str(err.value) and str(MAX_BLOCKS) in str(err.value)
    data = reference_arch("mobilenetv2-cifar@0.5").to_dict()
    data["num_classes"] = 10**9
    path.write_text(json.dumps(data))
    with pytest.raises(SpecError, match=rf"{path}: arch.num_classes: .*limit of {MAX_CLASSES}"):
        load_arch_file(path)
