"""Importing published Once-for-All / ProxylessNAS YAML latency tables (handmade fixture)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest

from nas.arch import ArchSpec, BlockSpec, HeadSpec, StemSpec
from nas.cli.lut_remote import register_remote
from nas.errors import LatencyTableError, MissingLatencyEntryError
from nas.latency import TableEstimator, load_table
from nas.latency.ofa import IDENTITY_METHOD, import_ofa_yaml, read_ofa_yaml
from nas.space import load_space
from tests.conftest import REPO, TINY_SPACE

FIXTURE = REPO / "tests" / "fixtures" / "ofa" / "tiny_lut.yaml"

# signature -> (mean, var, count) of the fixture keys that the tiny space can produce
EXPECTED = {
    # MobileNetV2 / ProxylessNAS keys (expand = ratio)
    "stem_i3_o8_k3_s1_relu_r16": (0.050, 0.0001, 50),
    "ir_i8_m8_o8_k3_s1_se0_relu_r16": (0.020, 0.000004, 40),
    "ir_i8_m24_o8_k5_s1_se0_relu_r16": (0.045, 0.00001, 40),
    "ir_i8_m24_o16_k3_s2_se0_relu_r16": (0.030, 0.000009, 40),
    "ir_i16_m16_o24_k5_s2_se0_relu_r8": (0.012, 0.0, 40),
    "head_conv_i24_w32_hswish_n10_r4": (0.008 + 0.004, 0.000002, 30),  # Conv_1 + Logits
    # MobileNetV3 keys (expand = middle channels, se/hs)
    "ir_i8_m24_o8_k3_s1_se1_hswish_r16": (0.055, 0.000016, 60),
    "ir_i16_m48_o16_k5_s1_se0_hswish_r8": (0.035, 0.000004, 60),
    "ir_i8_m8_o16_k5_s2_se1_relu_r16": (0.025, 0.000004, 60),
}


@pytest.fixture(scope="module")
def space():  # type: ignore[no-untyped-def]
    return load_space(TINY_SPACE)


def test_imports_the_matching_keys_with_their_statistics(tmp_path: Path, space) -> None:  # type: ignore[no-untyped-def]
    result = import_ofa_yaml(FIXTURE, tmp_path / "t.json", space=space, device_name="Handmade phone")
    table = load_table(tmp_path / "t.json")  # a valid table on disk
    assert set(table.entries) == set(EXPECTED)
    for sig, (mean, var, count) in EXPECTED.items():
        e = table.entries[sig]
        assert e.source == "imported" and e.repeats == count
        assert e.median == pytest.approx(mean, abs=1e-6)
        sd = math.sqrt(var)
        assert e.p90 == pytest.approx(mean + 1.2816 * sd, abs=1e-5)
        assert e.p10 == pytest.approx(max(mean - 1.2816 * sd, 0), abs=1e-5) and e.p10 > 0
    # every key is accounted for: used, or skipped for one reason
    assert result.keys == 20 and result.used == 10  # 9 entries, the head from two keys
    assert result.used + sum(result.skipped.values()) == result.keys
    assert result.skipped == {"idskip disagrees with stride/channels": 2,
                              "layer or options with no counterpart here": 1,  # Conv_2
                              "not produced by the space": 7}
    assert result.space_parts == 130 and result.covered == 9 and len(result.missing) == 121
    assert "cse_i8_m8_o8_k3_s1_se0_relu_rd4_cap8_r16" in result.missing
    meta, c = table.metadata, table.correction
    assert meta["device"] == "Handmade phone" and meta["backend"] == "imported:ofa-yaml"
    assert meta["execution_provider"] == "unknown" and meta["threads"] == 1 and meta["complete"] is False
    assert meta["space"]["digest"] == space.digest and meta["input_size"] == 16
    assert (c.scale, c.offset_ms, c.per_part_overhead_ms, c.method) == (1.0, 0.0, 0.0, IDENTITY_METHOD)


def test_prediction_of_a_fully_covered_network(tmp_path: Path, space) -> None:  # type: ignore[no-untyped-def]
    import_ofa_yaml(FIXTURE, tmp_path / "t.json", space=space, device_name="Handmade phone")
    table = load_table(tmp_path / "t.json")
    blocks = (
        BlockSpec(type="ir", in_ch=8, out_ch=8, mid_ch=24, kernel=3, stride=1, se=True, act="hswish"),
        BlockSpec(type="ir", in_ch=8, out_ch=16, mid_ch=24, kernel=3, stride=2, se=False, act="relu"),
        BlockSpec(type="ir", in_ch=16, out_ch=16, mid_ch=48, kernel=5, stride=1, se=False, act="hswish"),
        BlockSpec(type="ir", in_ch=16, out_ch=24, mid_ch=16, kernel=5, stride=2, se=False, act="relu"),
    )
    arch = ArchSpec(input_size=16, in_ch=3, stem=StemSpec(out_ch=8, kernel=3, stride=1, act="relu"), blocks=blocks,
                    head=HeadSpec(kind="conv", width=32, act="hswish"), num_classes=10)
    pred = TableEstimator(table, on_missing="error").predict(arch)
    expected = 0.050 + 0.055 + 0.030 + 0.035 + 0.012 + 0.012
    assert pred.total_ms == pytest.approx(expected, abs=1e-6)  # identity correction: the plain sum
    assert all(p.source == "imported" for p in pred.parts)
    # a network with a part the file does not have fails loudly under on_missing="error"
    other = arch.replace_blocks((BlockSpec(type="ir", in_ch=8, out_ch=8, mid_ch=8, kernel=5, stride=1),) + blocks[1:])
    with pytest.raises(MissingLatencyEntryError, match="ir_i8_m8_o8_k5_s1_se0_relu_r16"):
        TableEstimator(table, on_missing="error").predict(other)


def test_expand_mode_can_be_forced(space) -> None:  # type: ignore[no-untyped-def]
    auto, _ = read_ofa_yaml(FIXTURE, space)
    ratio, summary = read_ofa_yaml(FIXTURE, space, expand="ratio")
    # as ratios, the MobileNetV3 keys' expand:24/48/8 give 192/768/64 middle channels: not in the space
    assert set(auto) - set(ratio) == {"ir_i8_m24_o8_k3_s1_se1_hswish_r16", "ir_i16_m48_o16_k5_s1_se0_hswish_r8",
                                      "ir_i8_m8_o16_k5_s2_se1_relu_r16"}
    assert summary["skipped"]["not produced by the space"] == 10
    channels, _ = read_ofa_yaml(FIXTURE, space, expand="channels")
    # as channel counts, the ratio keys' expand:1/3 give 1 or 3 middle channels: not in the space
    assert "ir_i8_m24_o8_k5_s1_se0_relu_r16" not in channels and "ir_i8_m24_o8_k3_s1_se1_hswish_r16" in channels


def test_mobilenetv3_head_pieces_are_summed(tmp_path: Path, space) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "v3.yml"
    path.write_text("Conv_1-input:4x4x24-output:4x4x32: {count: 9, mean: 0.01, var: 0.0}\n"
                    "AvgPool2D-input:4x4x32-output:1x1x32: {count: 8, mean: 0.002, var: 0.0}\n"
                    "Logits-input:1x1x32-output:10: {count: 7, mean: 0.003, var: 0.0}\n"
                    "Conv_1-input:4x4x24-output:4x4x64: {count: 7, mean: 0.02, var: 0.0}\n")
    entries, summary = read_ofa_yaml(path, space)
    head = entries["head_conv_i24_w32_hswish_n10_r4"]
    assert head.median == pytest.approx(0.015) and head.repeats == 7
    assert summary["used"] == 3 and summary["skipped"] == {"not produced by the space": 1}
    # without the pooling piece the head is incomplete and not imported
    path.write_text("Conv_1-input:4x4x24-output:4x4x32: {count: 9, mean: 0.01, var: 0.0}\n"
                    "Logits-input:1x1x32-output:10: {count: 7, mean: 0.003, var: 0.0}\n")
    assert read_ofa_yaml(path, space)[0] == {}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("Conv-input:16x16x3-output:16x16x8: {count: 5, mean: [1\n", "not valid YAML at line"),
        ("- a\n- b\n", "expected a mapping of layer keys"),
        ("!!python/object/apply:os.getcwd []\n", "not valid YAML"),  # safe_load only
        ("Conv-input:16x16x3-output:16x16x8: {count: 5, var: 0.1}\n",
         "Conv-input:16x16x3-output:16x16x8: missing 'mean'"),
        ("Conv-input:16x16x3-output:16x16x8: {count: 5, mean: -0.1, var: 0.1}\n",
         "Conv-input:16x16x3-output:16x16x8.mean: expected a positive finite number, got -0.1"),
        ("Conv-input:16x16x3-output:16x16x8: {count: 5, mean: .nan}\n", ".mean: expected a positive finite number"),
        ("Conv-input:16x16x3-output:16x16x8: {count: 0, mean: 0.1}\n", ".count: expected a positive integer"),
        ("Conv-input:16x16x3-output:16x16x8: 0.1\n", "expected a mapping {count, mean, var}"),
        ("expanded_conv-input:16x16x8-output:16x16x8-expand:1-stride:1-idskip:1: {count: 5, mean: 0.1}\n",
         "expanded_conv-input:16x16x8-output:16x16x8-expand:1-stride:1-idskip:1: missing the 'kernel:' field"),
        ("expanded_conv-input:16x16-output:16x16x8-expand:1-kernel:3-stride:1-idskip:1: {count: 5, mean: 0.1}\n",
         "input: expected HxWxC, got '16x16'"),
        ("expanded_conv-input:16x16x8-output:16x16x8-expand:one-kernel:3-stride:1-idskip:1: {mean: 0.1}\n",
         "expand: expected integers"),
        ("expanded_conv-input:16x16x8-output:16x16x8-expand:1-kernel:3-stride:1-idskip:2: {mean: 0.1}\n",
         "idskip: expected 0 or 1"),
        ("1: {mean: 0.1}\n", "1: expected a string key"),
    ],
)
def test_broken_files_name_the_file_and_key(tmp_path: Path, space, text: str, fragment: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(LatencyTableError) as info:
        import_ofa_yaml(path, tmp_path / "t.json", space=space, device_name="x")
    assert str(path) in str(info.value) and fragment in str(info.value)
    assert not (tmp_path / "t.json").exists()


def test_refusals(tmp_path: Path, space) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "t.json"
    with pytest.raises(LatencyTableError, match="--device-name is required"):
        import_ofa_yaml(FIXTURE, out, space=space, device_name=None)
    unmatched = tmp_path / "imagenet.yaml"
    unmatched.write_text("Conv-input:224x224x3-output:112x112x32: {count: 5, mean: 5.0, var: 0.1}\n")
    with pytest.raises(LatencyTableError, match="none of its 1 keys matches a part of the space 'tiny_test'"):
        import_ofa_yaml(unmatched, out, space=space, device_name="x")
    out.write_text("keep me")
    with pytest.raises(LatencyTableError, match="already exists; importing never overwrites"):
        import_ofa_yaml(FIXTURE, out, space=space, device_name="x")
    assert out.read_text() == "keep me"


def test_cli_import_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    register_remote(parser.add_subparsers())
    out = tmp_path / "t.json"
    args = parser.parse_args(["import", str(FIXTURE), "--space", str(TINY_SPACE), "-o", str(out),
                              "--device-name", "Handmade phone", "--ofa-expand", "auto"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}: 9 imported entries from 10 of 20 keys" in text
    assert "covers 9 of the 130 parts of space 'tiny_test'" in text and "not covered, e.g.: " in text
    assert len(load_table(out).entries) == 9
    # a .yaml import without --space is refused with a message
    args = parser.parse_args(["import", str(FIXTURE), "-o", str(tmp_path / "u.json"), "--device-name", "x"])
    with pytest.raises(LatencyTableError, match="needs --space FILE"):
        args.func(args)
