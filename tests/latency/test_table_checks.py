"""Hostile or broken tables: every field typed and bounded, an implausible correction refused (or, with force,
used with a warning), files that are not tables (UTF-16, devices, huge, deeply nested) refused with one message."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nas.cli import main
from nas.errors import LatencyTableError
from nas.latency import TableEstimator, load_table
from nas.latency import fields as fields_module
from nas.latency.table import CALIBRATION_SLACK_MS, CALIBRATION_TOLERANCE, correction_problem
from tests.conftest import REPO, TINY_SPACE
from tests.latency.test_table import ARCH, handmade, write

FIRST = next(iter(handmade()["entries"]))


def _refused(tmp_path: Path, data: dict[str, Any] | str) -> str:
    path = write(tmp_path, data)
    with pytest.raises(LatencyTableError) as info:
        load_table(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


# ----------------------------------------------------------------------------- the correction
@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"offset_ms": -100.0}, "predicts 3 of the 3 calibration networks it was fitted on outside +-25 % + 0.1 ms"),
        ({"per_part_overhead_ms": 10.0}, "worst: network seed 1000"),
        ({"scale": 3.0}, "it does not describe this table's networks"),
        ({"boundary_ms_per_kelement": 5.0}, "calibration networks it was fitted on outside"),
    ],
)
def test_a_correction_that_misses_its_calibration_networks_is_refused(tmp_path: Path, change: dict[str, float],
                                                                      fragment: str) -> None:
    data = handmade()
    for row in data["metadata"]["calibration"]["networks"]:
        row["boundary_kelements"] = 1.0
    data["correction"].update(change)
    message = _refused(tmp_path, data)
    assert "correction: " in message and fragment in message
    assert "--recalibrate" in message and "--force" in message


def test_force_loads_it_with_a_warning(tmp_path: Path) -> None:
    data = handmade()
    data["correction"]["offset_ms"] = -100.0
    table = load_table(write(tmp_path, data), force=True)
    assert len(table.warnings) == 1 and "used anyway (--force)" in table.warnings[0]
    assert TableEstimator(table, on_missing="error").predict(ARCH).total_ms == pytest.approx(0.4)  # the floor
    assert load_table(write(tmp_path, handmade())).warnings == []


def test_the_bound_leaves_room_for_noise_but_not_more() -> None:
    measured = 2.0
    allowed = CALIBRATION_TOLERANCE * measured + CALIBRATION_SLACK_MS
    assert allowed == pytest.approx(0.6)  # 25 % + 0.1 ms of a 2 ms network


@pytest.mark.parametrize("name", ["ort-cpu-1t.json", "ort-cpu-2t.json", "ort-cpu-1t-macro.json"])
def test_the_shipped_tables_pass_the_check(name: str) -> None:
    table = load_table(REPO / "latency_tables" / name)
    assert correction_problem(table) is None and table.warnings == []


def test_a_table_without_calibration_networks_has_the_identity(tmp_path: Path) -> None:
    data = handmade()
    del data["metadata"]["calibration"]
    message = _refused(tmp_path, data)  # offset 0.5 with nothing it was fitted on
    assert "records no whole networks it was fitted on" in message and '"scale": 1' in message
    data["correction"] = {"scale": 1, "offset_ms": 0, "per_part_overhead_ms": 5.0}
    assert "is more than a typical part takes" in _refused(tmp_path, data)
    data["correction"]["per_part_overhead_ms"] = 0.01  # a measured one-ReLU overhead is fine
    assert load_table(write(tmp_path, data)).correction.per_part_overhead_ms == 0.01


def test_cli_refuses_then_forces(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = handmade(input_size=16)
    data["correction"]["offset_ms"] = -100.0
    path = write(tmp_path, data)
    arch = "in16x3-stem_k3_s1_c8_re-ir_e3_k3_s1_c8_re-cse_e1_k5_s2_c16_hs_rd4_cap8-head_c32_hs-cls10"
    assert main(["lut", "predict", "--table", str(path), arch, "--on-missing", "error"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}: correction: predicts 3 of the 3")
    assert main(["lut", "predict", "--table", str(path), arch, "--on-missing", "error", "--force"]) == 0
    out, err = capsys.readouterr()
    assert err.startswith(f"warning: {path}: correction: ") and "used anyway (--force)" in err
    assert "predicted 0.400 ms" in out


# ------------------------------------------------------------------------------- fields
def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        for key in parents:
            data = data[key]
        data[last] = value

    return change


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (_set("correction/fitted_on", "abc"), "correction.fitted_on: expected an integer >= 0"),
        (_set("correction/fitted_on", [1]), "correction.fitted_on: expected an integer >= 0"),
        (_set("correction/fitted_on", float("inf")), "correction.fitted_on: expected an integer >= 0"),
        (_set("correction/fitted_on", 2.5), "correction.fitted_on: expected an integer >= 0"),
        (_set("correction/method", {"a": 1}), "correction.method: expected a string"),
        (_set("correction/scale", 1e300), "correction.scale: expected a number > 0 and <= 100"),
        (_set("correction/offset_ms", 1e6), "correction.offset_ms: expected a number of ms within +-60000, got 1000000.0"),
        (_set("correction/per_part_overhead_ms", -5.0), "correction.per_part_overhead_ms: expected a number of ms >= 0"),
        (_set(f"entries/{FIRST}/median", 1e300), "median: 1e+300 ms is more than a minute"),
        (_set(f"entries/{FIRST}/p90", 70_000), "p90: 70000 ms is more than a minute (60000 ms)"),
        (_set(f"entries/{FIRST}/repeats", 1.5), "repeats: expected a positive integer"),
        (_set("metadata/device", "phone\x1b[2J"), "metadata.device: holds control characters ('phone\\x1b[2J')"),
        (_set("metadata/device", ["a"]), "metadata.device: expected a non-empty string"),
        (_set("metadata/cpu", 7), "metadata.cpu: expected a string or null"),
        (_set("metadata/space/file", {"a": 1}), "metadata.space.file: expected a string or null"),
        (_set("metadata/space/name", "x\u202ey"), "metadata.space.name: holds control characters"),
        (_set("metadata/threads", 10**20), "metadata.threads: expected a positive integer (at most 4096)"),
        (_set("metadata/measurement", "fast"), "metadata.measurement: expected an object, got str"),
        (_set("metadata/measurement/passes", "5"), "metadata.measurement.passes: expected an integer >= 1"),
        (_set("metadata/measurement/clock", "sundial"), "metadata.measurement.clock: expected 'wall' or 'thread'"),
        (_set("metadata/complete", "yes"), "metadata.complete: expected true or false"),
        (_set("metadata/calibration/networks", {}), "metadata.calibration.networks: expected a list"),
        (_set("metadata/calibration/networks", [{"parts": 4}]),
         "metadata.calibration.networks[0].part_sum_ms: missing"),
        (_set("schema_version", True), "schema_version: this version of nas reads schema 1"),
    ],
)
def test_every_field_is_typed_and_bounded(tmp_path: Path, change: Callable[[dict[str, Any]], None],
                                          fragment: str) -> None:
    data = handmade()
    change(data)
    assert fragment in _refused(tmp_path, data)


def test_an_empty_cpu_name_is_fine(tmp_path: Path) -> None:
    data = handmade(cpu="")  # a device whose runner found no processor name
    assert load_table(write(tmp_path, data)).metadata["cpu"] == ""


def test_huge_numbers_and_deep_nesting_are_one_error(tmp_path: Path) -> None:
    text = json.dumps(handmade())
    digits = text.replace('"fitted_on": 3', '"fitted_on": ' + "9" * 5000)
    assert "holds an integer of 5000 digits" in _refused(tmp_path, digits)
    assert "correction.fitted_on: expected an integer >= 0" in _refused(
        tmp_path, text.replace('"fitted_on": 3', '"fitted_on": 1e400'))
    deep = text.replace('"metadata": {', '"metadata": {"deep": ' + "[" * 100_000 + "]" * 100_000 + ", ", 1)
    assert "JSON nested too deeply to read" in _refused(tmp_path, deep)


def test_files_that_are_not_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    utf16 = tmp_path / "utf16.json"
    utf16.write_text(json.dumps(handmade()), encoding="utf-16")
    with pytest.raises(LatencyTableError, match=r"utf16\.json: not a JSON latency table: it is UTF-16 text; save it"):
        load_table(utf16)
    with pytest.raises(LatencyTableError, match=r"^/dev/zero: is a character device, not a file; expected a latency"):
        load_table("/dev/zero")
    with pytest.raises(LatencyTableError, match=r": is a directory, not a file"):
        load_table(tmp_path)
    path = write(tmp_path, handmade())
    monkeypatch.setattr("nas.latency.table.MAX_JSON_BYTES", 1000)
    with pytest.raises(LatencyTableError, match=r"table\.json: \d+ KiB is larger than a latency table can be \(at most "
                                                r"1 KiB\); refused unread"):
        load_table(path)


def test_the_bounds_are_what_the_readme_says() -> None:
    readme = " ".join((REPO / "latency_tables" / "README.md").read_text().split())
    assert fields_module.MAX_MS == 60_000.0 and "60,000 ms" in readme
    assert "+-25 % of its measurement plus 0.1 ms" in readme


def test_build_warns_when_its_own_fit_misses(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    data = handmade()
    data["correction"]["offset_ms"] = -100.0
    from nas.latency.table import parse_table

    table = parse_table(data, source="t", force=True)
    table.metadata["calibration"]["fit_mape_percent"] = 9999.0
    monkeypatch.setattr("nas.cli.lut.build_table", lambda *a, **k: table)
    out = tmp_path / "t.json"
    assert main(["lut", "build", "--space", str(TINY_SPACE), "-o", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"warning: {out}: correction: predicts 3 of the 3") and "add --recalibrate" in err
