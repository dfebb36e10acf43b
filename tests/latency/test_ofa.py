"""Importing published Once-for-All / ProxylessNAS YAML latency tables: a handmade fixture for the tiny space, and
real excerpts of the published tables (tests/fixtures/ofa/*_excerpt.yaml) for the shipped 224x224 spaces."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest

from nas.arch import ArchSpec, BlockSpec, HeadSpec, StemSpec, parse_compact
from nas.cli import main
from nas.cli.lut_remote import register_remote
from nas.errors import LatencyTableError, MissingLatencyEntryError
from nas.latency import TableEstimator, arch_parts, load_table
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
                              "not produced by the space": 8}  # incl. the 960-wide head's AvgPool2D and Conv_2
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
    with pytest.raises(MissingLatencyEntryError, match="ir_i8_m8_o8_k5_s1_se0_relu_r16") as info:
        TableEstimator(table, on_missing="error").predict(other)
    # no command that cannot work on an imported table ('nas lut add', a build with backend imported:ofa-yaml)
    assert "imported from a published file that has no such layer" in str(info.value)
    assert "nas lut add" not in str(info.value) and "imported:ofa-yaml" not in str(info.value)


def test_expand_mode_can_be_forced(space) -> None:  # type: ignore[no-untyped-def]
    auto, _ = read_ofa_yaml(FIXTURE, space)
    ratio, summary = read_ofa_yaml(FIXTURE, space, expand="ratio")
    # as ratios, the MobileNetV3 keys' expand:24/48/8 give 192/768/64 middle channels: not in the space
    assert set(auto) - set(ratio) == {"ir_i8_m24_o8_k3_s1_se1_hswish_r16", "ir_i16_m48_o16_k5_s1_se0_hswish_r8",
                                      "ir_i8_m8_o16_k5_s2_se1_relu_r16"}
    assert summary["skipped"]["not produced by the space"] == 11
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
        ("Conv-input:16x16x3-output:16x16x8: 0.1\n", "expected a mapping {count, mean, var or std}"),
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


# ---------------------------------------------------------------- the published tables (real excerpts)
FIXTURES = REPO / "tests" / "fixtures" / "ofa"
PROXYLESS = FIXTURES / "proxylessnas_mobile_trim_excerpt.yaml"
NOTE10 = FIXTURES / "ofa_note10_224_excerpt.yaml"
#: The one whole network each excerpt holds (see the fixtures' headers), in the shipped spaces.
PROXYLESS_NET = ("in224x3-stem_k3_s2_c32_re-ir_e1_k3_s1_c16_re-ir_e3_k5_s2_c24_re-ir_e6_k3_s1_c24_re-ir_e3_k7_s2_c40_re-"
                 "ir_e6_k3_s2_c80_re-ir_e3_k5_s1_c80_re-ir_e6_k5_s1_c96_re-ir_e6_k7_s2_c192_re-ir_e6_k3_s1_c320_re-"
                 "head_c1280_re-cls1000")
NOTE10_NET = ("in224x3-stem_k3_s2_c24_hs-ir_e1_k3_s1_c24_re-ir_e4_k5_s2_c32_re-ir_e4_k3_s1_c32_re-"
              "ir_e6_k7_s2_c48_se_re-ir_e3_k5_s1_c48_se_re-ir_e6_k3_s2_c96_hs-ir_e4_k7_s1_c96_hs-"
              "ir_e6_k5_s1_c136_se_hs-ir_e3_k3_s1_c136_se_hs-ir_e6_k7_s2_c192_se_hs-ir_e4_k5_s1_c192_se_hs-"
              "head_c1152_hs-cls1000")


def _published(path: Path) -> dict[str, dict[str, float]]:
    import yaml

    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize(("fixture", "space_file", "net", "spread"),
                         [(PROXYLESS, "proxylessnas_mobile_224.yaml", PROXYLESS_NET, "var"),
                          (NOTE10, "ofa_mbv3_224.yaml", NOTE10_NET, "std")])
def test_a_published_table_predicts_a_whole_network_of_its_space(tmp_path: Path, fixture: Path, space_file: str,
                                                                 net: str, spread: str) -> None:
    space = load_space(REPO / "search_spaces" / space_file)
    arch = parse_compact(net)
    assert random_arch_in(space, arch)
    result = import_ofa_yaml(fixture, tmp_path / "t.json", space=space, device_name="published")
    published = _published(fixture)
    assert result.used == result.keys == len(published) and result.skipped == {}  # every key of the excerpt used
    table = load_table(tmp_path / "t.json")
    pred = TableEstimator(table, on_missing="error").predict(arch)
    # what Once-for-All's own predictor gives for this network: the sum of the keys' means
    assert pred.total_ms == pytest.approx(sum(v["mean"] for v in published.values()), abs=1e-5)  # 6 decimals kept
    assert all(p.source == "imported" for p in pred.parts) and len(pred.parts) == len(arch.blocks) + 2
    stem_key = next(k for k in published if k.startswith("Conv-"))
    stem = table.entries[pred.parts[0].signature]
    sd = math.sqrt(published[stem_key]["var"]) if spread == "var" else published[stem_key]["std"]
    assert (stem.median, stem.p90, stem.repeats) == pytest.approx(
        (published[stem_key]["mean"], published[stem_key]["mean"] + 1.2816 * sd, published[stem_key]["count"]),
        rel=1e-4)
    assert f"{len(published)} keys give {spread}" in table.metadata["measurement"]["spread"]


def random_arch_in(space, arch) -> bool:  # type: ignore[no-untyped-def]
    """Whether every part of ``arch`` is one the space produces."""
    from nas.latency.build import space_parts

    sigs = {p.signature for p in space_parts(space)}
    return all(p.signature in sigs for p in arch_parts(arch))


def test_the_note10_head_includes_its_feature_mix_layer(tmp_path: Path) -> None:
    space = load_space(REPO / "search_spaces" / "ofa_mbv3_224.yaml")
    import_ofa_yaml(NOTE10, tmp_path / "t.json", space=space, device_name="Note10 (OFA table)")
    table = load_table(tmp_path / "t.json")
    published = _published(NOTE10)
    pieces = [k for k in published if k.split("-")[0] in ("Conv_1", "AvgPool2D", "Conv_2", "Logits")]
    assert len(pieces) == 4
    head = table.entries["head_conv_i192_w1152_hswish_n1000_r7"]
    assert head.median == pytest.approx(sum(published[k]["mean"] for k in pieces))
    sd = math.sqrt(sum(published[k]["std"] ** 2 for k in pieces))
    assert head.p90 == pytest.approx(head.median + 1.2816 * sd, rel=1e-4)
    assert head.repeats == min(published[k]["count"] for k in pieces)  # 495: the AvgPool2D key's
    (how,) = table.metadata["import"]["heads"].values()
    assert how.startswith("Conv_1 + AvgPool2D + Conv_2 (feature mix 1152 -> 1536, no counterpart in nas's head)")


def test_keys_without_var_or_std_have_no_spread(tmp_path: Path, space) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "nospread.yaml"
    path.write_text("Conv-input:16x16x3-output:16x16x8: {count: 5, mean: 0.05}\n"
                    "expanded_conv-input:16x16x8-output:16x16x8-expand:1-kernel:3-stride:1-idskip:1: "
                    "{count: 5, mean: 0.02, std: 0.001}\n")
    import_ofa_yaml(path, tmp_path / "t.json", space=space, device_name="x")
    table = load_table(tmp_path / "t.json")
    stem = table.entries["stem_i3_o8_k3_s1_relu_r16"]
    assert stem.p10 == stem.median == stem.p90 == 0.05
    spread = table.metadata["measurement"]["spread"]
    assert "1 keys give std" in spread and "1 keys give neither: their p10 = p90 = mean" in spread


def test_published_tables_cover_no_32x32_space(tmp_path: Path) -> None:
    with pytest.raises(LatencyTableError) as info:
        import_ofa_yaml(PROXYLESS, tmp_path / "t.json", space=load_space(REPO / "search_spaces" /
                                                                          "mobilenet_cse_cifar.yaml"),
                        device_name="x")
    message = str(info.value)
    assert "none of its 12 keys matches a part of the space 'mobilenet_cse_cifar'" in message
    assert "search_spaces/proxylessnas_mobile_224.yaml fits ProxylessNAS's mobile_trim.yaml" in message


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("list.yaml", "[1, 2, 3]\n", "expected a mapping of layer keys to {count, mean, var or std}, got list; nas lut "
                                     "import reads (1) the results.json"),
        ("space.yaml", None, "none of its 7 keys is a layer of a published latency table (keys such as 'name', "),
        ("deep.yaml", "a: " + "[" * 50_000 + "]" * 50_000 + "\n", "YAML nested too deeply to read"),
        ("utf16.yaml", "Conv-input:16x16x3-output:16x16x8: {count: 5, mean: 0.05}\n", "it is UTF-16 text"),
        ("list.json", "[1, 2]", "not a results file (a JSON list); nas lut import reads (1) the results.json"),
        ("other.json", '{"name": "tiny"}', "not a results file (an object without \"format\"); nas lut import reads"),
    ],
)
def test_unsupported_layouts_name_the_supported_formats(tmp_path: Path, name: str, text: str | None,
                                                        fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / name
    if text is None:
        path.write_text(TINY_SPACE.read_text())  # a search space given instead of a latency table
    elif name.startswith("utf16"):
        path.write_text(text, encoding="utf-16")
    else:
        path.write_text(text)
    extra = ["--space", str(TINY_SPACE), "--device-name", "x"] if name.endswith(".yaml") else []
    assert main(["lut", "import", str(path), "-o", str(tmp_path / "t.json"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err and not (tmp_path / "t.json").exists()
