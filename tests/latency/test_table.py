"""The table format: round trip and every validation error, on small handmade tables."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from nas.arch import arch_hash, parse_compact, to_compact
from nas.errors import LatencyTableError, MissingLatencyEntryError
from nas.latency import (
    Correction,
    Entry,
    TableEstimator,
    arch_parts,
    check_table_for_space,
    load_table,
    parse_signature,
    save_table,
)
from nas.space import load_space
from tests.conftest import TINY_SPACE

ARCH = parse_compact("in16x3-stem_k3_s1_c8_re-ir_e3_k3_s1_c8_re-cse_e1_k5_s2_c16_hs_rd4_cap8-head_c32_hs-cls10")


def handmade(space_digest: str = "abc", **meta: Any) -> dict[str, Any]:
    entries = {p.signature: {"median": 0.1 * (i + 1), "p10": 0.09 * (i + 1), "p90": 0.12 * (i + 1), "repeats": 50}
               for i, p in enumerate(arch_parts(ARCH))}
    metadata = {
        "device": "test box", "cpu": "none", "gpu": None, "backend": "ort-cpu", "backend_version": "onnxruntime 0",
        "execution_provider": "CPUExecutionProvider", "threads": 1, "batch_size": 1, "input_size": 16, "in_ch": 3,
        "num_classes": 10, "space": {"name": "tiny_test", "file": str(TINY_SPACE), "digest": space_digest},
        "created": "2026-11-22T00:00:00+00:00", "units": "ms",
        "measurement": {"warmup": 1, "min_repeats": 1, "max_repeats": 1, "min_seconds": 0, "statistic": "median"},
    }
    # three calibration networks of 4 parts that the correction below predicts exactly: (sum - 3 x 0.01) + 0.5
    metadata["calibration"] = {"networks": [{"seed": 10_000 + i, "parts": 4, "part_sum_ms": float(i + 1),
                                             "measured_ms": i + 1 - 0.03 + 0.5} for i in range(3)]}
    metadata.update(meta)
    return {"schema_version": 1, "metadata": metadata, "entries": entries,
            "correction": {"scale": 1.0, "offset_ms": 0.5, "per_part_overhead_ms": 0.01, "method": "test",
                           "fitted_on": 3}}


def write(tmp_path: Path, data: dict[str, Any] | str) -> Path:
    path = tmp_path / "table.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_round_trip_and_prediction(tmp_path: Path) -> None:
    table = load_table(write(tmp_path, handmade()))
    assert len(table.entries) == 4 and table.correction.offset_ms == 0.5
    again = load_table(save_table(table, tmp_path / "copy.json"))
    assert again.to_dict() == table.to_dict()
    pred = TableEstimator(table, on_missing="error").predict(ARCH)
    assert pred.part_sum_ms == pytest.approx(0.1 + 0.2 + 0.3 + 0.4)
    assert pred.total_ms == pytest.approx(1.0 * (1.0 - 3 * 0.01) + 0.5)
    assert [p.name for p in pred.parts] == ["stem", "block0", "block1", "head"]


def test_a_remembering_estimator_predicts_what_a_fresh_one_predicts(tmp_path: Path) -> None:
    table = load_table(write(tmp_path, handmade()))
    remembering = TableEstimator(table, on_missing="error", remember=True)
    first = remembering.predict(ARCH)
    assert first == TableEstimator(table, on_missing="error").predict(ARCH)
    again = parse_compact(to_compact(ARCH))
    assert again is not ARCH and remembering.predict(again) is first  # an equal network: remembered
    for on_missing in ("interpolate", "auto"):  # tables that may change under it: refused
        with pytest.raises(ValueError, match="remember"):
            TableEstimator(table, on_missing=on_missing, remember=True)


def test_prediction_is_never_below_the_slowest_part(tmp_path: Path) -> None:
    data = handmade()
    data["correction"]["offset_ms"] = -5.0  # a fit that extrapolates below zero for this small network
    table = load_table(write(tmp_path, data), force=True)  # refused without force: see test_table_checks.py
    pred = TableEstimator(table, on_missing="error").predict(ARCH)
    assert pred.total_ms == pytest.approx(0.4)  # the head, the slowest of the four parts


def test_signatures_parse_back_to_their_parts() -> None:
    for part in arch_parts(ARCH):
        back = parse_signature(part.signature)
        assert back.spec == part.spec and back.resolution == part.resolution and back.in_ch == part.in_ch


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d.update(schema_version=9), "schema_version: this version of nas reads schema 1, the file says 9"),
        (lambda d: d["metadata"].pop("threads"), "metadata.threads: missing"),
        (lambda d: d["metadata"].update(units="s"), "metadata.units: expected 'ms'"),
        (lambda d: d["metadata"].update(batch_size=0), "metadata.batch_size: expected a positive integer"),
        (lambda d: d["metadata"].update(space="tiny"), "metadata.space"),
        (lambda d: next(iter(d["entries"].values())).update(median=float("nan")), "expected a positive, finite"),
        (lambda d: next(iter(d["entries"].values())).update(median=-1.0), "got -1.0"),
        (lambda d: next(iter(d["entries"].values())).update(p10=0), "p10: expected a positive, finite number"),
        (lambda d: next(iter(d["entries"].values())).update(p90=0.01), "expected p10 <= median <= p90"),
        (lambda d: next(iter(d["entries"].values())).update(repeats=0), "repeats: expected a positive integer"),
        (lambda d: next(iter(d["entries"].values())).update(source="guess"), "source: expected one of"),
        (lambda d: d["entries"].update({"conv_i3_o8": {"median": 1, "p10": 1, "p90": 1, "repeats": 1}}),
         "unknown signature 'conv_i3_o8'"),
        (lambda d: d["entries"].update({"ir_i8_m8_o8_k4_s1_se0_relu_r16": {"median": 1, "p10": 1, "p90": 1,
                                                                            "repeats": 1}}), "invalid signature"),
        (lambda d: d["entries"].update({"stem_i3_o8_k3_s1_relu_r32": {"median": 1, "p10": 1, "p90": 1,
                                                                       "repeats": 1}}),
         "stem input is 32x32 but metadata.input_size is 16"),
        (lambda d: d["correction"].update(scale=-1), "correction.scale"),
        (lambda d: d.pop("correction"),
         ("correction: missing; every table written by 'nas lut build' or 'nas lut import' has one")),
        (lambda d: d.update(correction=None), "correction: expected an object"),
        (lambda d: d["correction"].pop("scale"), "correction.scale: missing"),
        (lambda d: d["correction"].pop("per_part_overhead_ms"), "correction.per_part_overhead_ms: missing"),
        (lambda d: d.update(extra=1), "unknown top-level key"),
    ],
)
def test_validation_errors_name_file_and_entry(tmp_path: Path, mutate, fragment: str) -> None:  # type: ignore[no-untyped-def]
    data = handmade()
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(LatencyTableError) as info:
        load_table(path)
    assert str(path) in str(info.value) and fragment in str(info.value)


def test_identity_correction_written_out_is_accepted(tmp_path: Path) -> None:
    data = handmade()
    del data["metadata"]["calibration"]  # a table without calibration networks ...
    data["correction"] = {"scale": 1, "offset_ms": 0, "per_part_overhead_ms": 0}  # ... takes the refusal's fix
    pred = TableEstimator(load_table(write(tmp_path, data)), on_missing="error").predict(ARCH)
    assert pred.total_ms == pytest.approx(pred.part_sum_ms) == pytest.approx(1.0)


def test_a_zip_or_binary_file_is_not_a_table(tmp_path: Path) -> None:
    archive = tmp_path / "some.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(handmade()))
    with pytest.raises(LatencyTableError, match=r"some\.zip: not a JSON latency table: it is a zip archive"):
        load_table(archive)
    binary = tmp_path / "table.json"
    binary.write_bytes(b'{"schema_version": 1, "metadata": "\xff\xfe"}')
    with pytest.raises(LatencyTableError, match=r"table\.json: not a JSON latency table: byte 35 \(0xff\) is not UTF"):
        load_table(binary)


def test_duplicate_keys_and_broken_json(tmp_path: Path) -> None:
    text = json.dumps(handmade())
    first_sig = next(iter(handmade()["entries"]))
    dup = text.replace('"entries": {', '"entries": {"%s": {"median": 1, "p10": 1, "p90": 1, "repeats": 1}, ' % first_sig)
    with pytest.raises(LatencyTableError, match=f"duplicate key '{first_sig}'"):
        load_table(write(tmp_path, dup))
    with pytest.raises(LatencyTableError, match="not valid JSON"):
        load_table(write(tmp_path, text[:-10]))
    with pytest.raises(LatencyTableError, match="latency table not found"):
        load_table(tmp_path / "nope.json")


def test_missing_entry_names_signature_and_command(tmp_path: Path) -> None:
    data = handmade()
    sig = arch_parts(ARCH)[2].signature
    del data["entries"][sig]
    path = write(tmp_path, data)
    with pytest.raises(MissingLatencyEntryError) as info:
        TableEstimator(load_table(path), on_missing="error").predict(ARCH)
    msg = str(info.value)
    assert sig in msg and "nas lut add --table" in msg and str(path) in msg


def test_interpolation_from_entries_of_the_same_kind(tmp_path: Path) -> None:
    data = handmade()
    table = load_table(write(tmp_path, data))
    block = ARCH.blocks[0]  # ir 8 -> 24 -> 8, measured at 0.2 ms
    wider = ARCH.replace_blocks((block.__class__(**{**block.to_dict(), "mid_ch": 40}), ARCH.blocks[1]))
    # Add a second measured point of the same kind so interpolation has a slope.
    wide_sig = arch_parts(wider)[1].signature
    table.entries[wide_sig] = Entry(0.4, 0.35, 0.45, 10)
    mid = ARCH.replace_blocks((block.__class__(**{**block.to_dict(), "mid_ch": 32}), ARCH.blocks[1]))
    pred = TableEstimator(table, on_missing="interpolate").predict(mid)
    part = pred.parts[1]
    assert part.source == "interpolated" and 0.2 < part.ms < 0.4
    assert pred.interpolated == (part.signature,)
    assert part.signature not in table.entries  # interpolated values are not written into the table


def test_table_for_another_space_is_refused(tmp_path: Path) -> None:
    space = load_space(TINY_SPACE)
    table = load_table(write(tmp_path, handmade(space_digest="not-this-one")))
    with pytest.raises(LatencyTableError, match="built for space 'tiny_test'.*digest not-this-on"):
        check_table_for_space(table, space)
    # The loader already refuses a stem entry that contradicts metadata.input_size ...
    with pytest.raises(LatencyTableError, match="metadata.input_size is 32"):
        load_table(write(tmp_path, handmade(space_digest=space.digest, input_size=32)))
    # ... and a consistent table for another input size is refused for this space.
    table = load_table(write(tmp_path, handmade(space_digest=space.digest)))
    table.metadata["input_size"] = 32
    with pytest.raises(LatencyTableError, match="measured for 32x32x3 inputs but the space"):
        check_table_for_space(table, space)
    check_table_for_space(load_table(write(tmp_path, handmade(space_digest=space.digest))), space)


def test_correction_formula() -> None:
    c = Correction(scale=2.0, offset_ms=1.0, per_part_overhead_ms=0.1)
    assert c.apply(10.0, 5) == pytest.approx(2.0 * (10.0 - 0.4) + 1.0)
    assert arch_hash(ARCH)  # the test arch is valid
