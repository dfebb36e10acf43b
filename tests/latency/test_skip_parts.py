"""Skip blocks in latency tables: a conv skip is a part (signature, build, on-demand measurement, bundle); an
identity skip is no part (no entry, no latency, no per-part overhead, no boundary)."""

from __future__ import annotations

import itertools
import json
import re
import zipfile
from pathlib import Path

import pytest

from nas.arch import parse_compact, skip_block
from nas.errors import LatencyTableError
from nas.latency import (
    Entry,
    MeasureSettings,
    Part,
    TableEstimator,
    arch_parts,
    block_signature,
    build_table,
    get_backend,
    load_table,
    parse_signature,
    space_parts,
)
from nas.latency.bundle import make_bundle
from nas.space import load_space
from nas.space.keys import key_to_arch
from tests.conftest import FAST_TIMING, REPO
from tests.latency.synthetic import all_networks, synthetic_table

SKIP_SPACE = Path(__file__).with_name("skip_space.yaml")
MACRO = REPO / "search_spaces" / "nas_bench_macro.yaml"
# conv skip, identity, ir, identity, conv skip (stride 1, 16 -> 24)
ARCH = parse_compact("in8x3-stem_k3_s1_c8_re-skip_s2_c16-skip_s1_c16-ir_e3_k3_s1_c16_re-skip_s1_c16-skip_s1_c24-"
                     "head_c16_re-cls4")
WITHOUT_IDENTITIES = parse_compact("in8x3-stem_k3_s1_c8_re-skip_s2_c16-ir_e3_k3_s1_c16_re-skip_s1_c24-head_c16_re-cls4")


def test_conv_skip_signature_round_trips() -> None:
    block = skip_block(in_ch=32, out_ch=64, stride=2)
    sig = block_signature(block, resolution=32)
    assert sig == "skip_i32_o64_s2_r32"
    part = parse_signature(sig)
    assert (part.name, part.spec, part.in_ch, part.resolution, part.input_shape) == (
        "block", block, 32, 32, (1, 32, 32, 32))
    assert part.output_elements == 64 * 16 * 16
    assert parse_signature("skip_i16_o24_s1_r8").spec == skip_block(in_ch=16, out_ch=24)


@pytest.mark.parametrize(("signature", "fragment"), [
    ("skip_i16_o16_s1_r8", "invalid signature 'skip_i16_o16_s1_r8': an identity skip block (stride 1, in == out) "
                           "is no operation and never a part of a table"),
    ("skip_i16_o32_s3_r8", "invalid signature 'skip_i16_o32_s3_r8': block.stride"),
    ("skip_i16_o32_k1_s2_r8", "unknown signature 'skip_i16_o32_k1_s2_r8'; expected forms like"),
    ("skip_i16_m16_o32_k1_s2_se0_relu_r8", "unknown signature"),
])
def test_skip_signatures_a_table_cannot_hold_are_refused(signature: str, fragment: str) -> None:
    with pytest.raises(LatencyTableError, match=re.escape(fragment)):
        parse_signature(signature)


def test_identity_skips_are_no_parts() -> None:
    parts = arch_parts(ARCH)
    assert [p.name for p in parts] == ["stem", "block0", "block2", "block4", "head"]  # named by position
    assert [p.signature for p in parts[1:-1]] == ["skip_i8_o16_s2_r8", "ir_i16_m48_o16_k3_s1_se0_relu_r4",
                                                  "skip_i16_o24_s1_r4"]
    assert [p.signature for p in parts] == [p.signature for p in arch_parts(WITHOUT_IDENTITIES)]


def test_prediction_charges_identities_nothing(tmp_path: Path) -> None:
    table = synthetic_table(arch_parts(ARCH))
    estimator = TableEstimator(table, on_missing="error", save=False)
    with_ids, without = estimator.predict(ARCH), estimator.predict(WITHOUT_IDENTITIES)
    assert len(with_ids.parts) == len(without.parts) == 5  # the per-part overhead counts 4 boundaries, not 6
    assert with_ids.total_ms == without.total_ms and with_ids.part_sum_ms == without.part_sum_ms
    assert with_ids.boundary_kelements == without.boundary_kelements
    assert with_ids.total_ms == pytest.approx(table.correction.apply(with_ids.part_sum_ms, 5,
                                                                     with_ids.boundary_kelements))
    # Asked about an identity (a slot's option, e.g. by the budget's extremes), the table answers 0 ms without an entry.
    identity = ARCH.blocks[1]
    answer = estimator.part_latency(Part("block", block_signature(identity, resolution=4), identity, 16, 4))
    assert (answer.ms, answer.source) == (0.0, "identity")


def test_space_parts_hold_every_conv_skip_and_no_identity() -> None:
    macro = load_space(MACRO)
    parts = {p.signature: p for p in space_parts(macro, references=False)}
    assert {s for s in parts if s.startswith("skip")} == {"skip_i32_o64_s2_r32", "skip_i64_o128_s2_r16",
                                                          "skip_i128_o256_s2_r8"}
    assert len(parts) == 1 + 3 * 3 + 3 * 2 + 1  # stem, 3 first slots of 3 options, 3 repeat slots of 2, head
    for key in ("".join(d) for d in itertools.product("012", repeat=8)):
        assert all(p.signature in parts for p in arch_parts(key_to_arch(macro, key)))
    assert all(p.signature in parts for p in space_parts(macro)[:len(parts)])  # references come after


def test_a_conv_skip_part_is_measured_on_demand(tmp_path: Path) -> None:
    parts = arch_parts(ARCH)
    table = synthetic_table([p for p in parts if not p.signature.startswith("skip")])
    table.path = tmp_path / "table.json"
    backend = get_backend("ort-cpu", threads=1, settings=MeasureSettings(**FAST_TIMING), pin=False)
    estimator = TableEstimator(table, on_missing="measure", save=False, backend=backend)
    before = set(table.entries)
    pred = estimator.predict(ARCH)
    assert set(estimator.measured) == {"skip_i8_o16_s2_r8", "skip_i16_o24_s1_r4"} == set(table.entries) - before
    assert all(table.entries[sig].source == "measured" and table.entries[sig].median > 0 for sig in estimator.measured)
    assert {p.signature for p in pred.parts} == {p.signature for p in parts}


def test_a_table_of_a_skip_space_builds_predicts_and_bundles(tmp_path: Path) -> None:
    space = load_space(SKIP_SPACE)
    backend = get_backend("ort-cpu", threads=1, settings=MeasureSettings(**FAST_TIMING), pin=False)
    table = build_table(space, backend, tmp_path / "skip.json", calibration=3, progress=False)
    sigs = set(load_table(tmp_path / "skip.json").entries)
    assert sigs == {p.signature for p in space_parts(space)}
    assert len(sigs) == 12 and {"skip_i8_o16_s2_r8", "skip_i16_o24_s2_r4"} <= sigs
    assert not any(parse_signature(s).spec.is_identity for s in sigs if not s.startswith(("stem", "head")))
    rows = table.metadata["calibration"]["networks"]
    assert all(r["parts"] == len(arch_parts(parse_compact(r["arch"]))) for r in rows)
    estimator = TableEstimator(table, on_missing="error", save=False)
    for arch in all_networks(space):  # every network of the space is predicted from the table alone
        assert estimator.latency_ms(arch) > 0

    bundle = tmp_path / "skip.zip"
    make_bundle(space, bundle, calibration=2, progress=False)
    with zipfile.ZipFile(bundle) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert {e["signature"] for e in manifest["entries"]} == sigs
    assert all(set(c["parts"]) <= sigs for c in manifest["calibration"])


def test_all_networks_walks_the_whole_space() -> None:
    assert len(all_networks(load_space(SKIP_SPACE))) == 3 * 3 * (3 + 3 * 3)


def test_a_missing_conv_skip_is_interpolated_from_conv_skips_of_its_kind() -> None:
    narrow, wide = (skip_block(in_ch=8, out_ch=c, stride=2) for c in (16, 32))
    table = synthetic_table([Part("block", block_signature(b, resolution=8), b, 8, 8) for b in (narrow, wide)])
    table.entries = {sig: Entry(ms, ms, ms, 10) for sig, ms in zip(table.entries, (0.010, 0.030))}
    middle = skip_block(in_ch=8, out_ch=24, stride=2)
    part = Part("block3", block_signature(middle, resolution=8), middle, 8, 8)
    answer = TableEstimator(table, on_missing="interpolate", save=False).part_latency(part)
    assert (answer.source, answer.ms) == ("interpolated", pytest.approx(0.020))  # linear in multiply-adds
