"""Parts measured on demand go into the table on disk as it is now, never over another process's work."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from nas.latency import TableEstimator, arch_parts, load_table
from nas.arch import parse_compact
from tests.adapt.conftest import MICRO, TINY, make_table

OTHER = parse_compact("in16x3-stem_k3_s1_c16_re-ir_e6_k5_s1_c16_re-head_c16_re-cls10")


class _Timer:
    """A backend that times every part at 0.5 ms, instantly."""

    def part_model(self, part: Any) -> Any:
        return part

    def time_model(self, model: Any, shape: Any) -> Any:
        return SimpleNamespace(median=0.5, p10=0.45, p90=0.55, repeats=10)


def _missing(table: Path) -> set[str]:
    have = set(json.loads(table.read_text())["entries"])
    return {p.signature for p in arch_parts(MICRO)} - have


def test_a_correction_refitted_and_entries_added_meanwhile_are_kept(tmp_path: Path) -> None:
    path = make_table(tmp_path / "t.json", [TINY])
    missing = _missing(path)
    assert missing  # MICRO has parts TINY's table lacks
    estimator = TableEstimator(load_table(path), on_missing="measure", save=True, backend=_Timer())
    # meanwhile another process re-fits the correction and measures a part of its own into the file
    data = json.loads(path.read_text())
    data["correction"]["scale"] = 1.5
    others = json.loads(make_table(tmp_path / "other.json", [OTHER]).read_text())["entries"]
    added = sorted(set(others) - set(data["entries"]) - missing)
    assert added
    data["entries"][added[0]] = others[added[0]]
    path.write_text(json.dumps(data))
    estimator.predict(MICRO)
    after = json.loads(path.read_text())
    assert after["correction"]["scale"] == 1.5  # not the stale copy's 1.0
    assert added[0] in after["entries"] and missing <= set(after["entries"])
    assert not estimator.unsaved


def test_a_table_rebuilt_with_other_settings_meanwhile_gets_none_of_them(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = make_table(tmp_path / "t.json", [TINY])
    estimator = TableEstimator(load_table(path), on_missing="measure", save=True, backend=_Timer())
    data = json.loads(path.read_text())
    data["metadata"]["threads"] = 2  # rebuilt at the same path with two threads
    path.write_text(json.dumps(data))
    before = path.read_bytes()
    estimator.predict(MICRO)  # measured and used for this run
    assert path.read_bytes() == before and estimator.unsaved and not estimator.save
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "kept for this run only" in err and "metadata.threads" in err


@pytest.mark.parametrize(("field", "value"), [("gpu", "NVIDIA A100"), ("remote", {"device": "a phone"})])
def test_entries_of_another_gpu_or_of_an_imported_device_are_not_mixed(tmp_path: Path, field: str,
                                                                      value: Any) -> None:
    from nas.errors import LatencyTableError
    from nas.latency.build import check_same_measurements

    path = make_table(tmp_path / "t.json", [TINY])
    meta = load_table(path).metadata
    with pytest.raises(LatencyTableError, match=rf"metadata\.{field}: the existing table was measured with"):
        check_same_measurements(path, meta, {**meta, field: value})
    check_same_measurements(path, meta, dict(meta))  # the same settings: no error


def test_the_note_says_not_saved_when_a_part_could_not_be_saved(tmp_path: Path) -> None:
    from nas.cli.lut import _measured_note

    estimator = TableEstimator(load_table(make_table(tmp_path / "t.json", [TINY])), on_missing="measure", save=True,
                               backend=_Timer())
    estimator.measured.append("x")
    assert "stored in" in str(_measured_note(estimator))
    estimator.unsaved = True
    assert "not saved" in str(_measured_note(estimator))


def test_a_save_refused_by_the_lock_is_made_by_the_next_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nas.latency.output import table_lock

    path = make_table(tmp_path / "t.json", [TINY])
    estimator = TableEstimator(load_table(path), on_missing="measure", save=True, backend=_Timer())
    with table_lock(path):  # a build holds the table
        estimator.predict(MICRO)
    assert estimator.unsaved and "kept for this run only" in capsys.readouterr().err
    assert _missing(path)  # nothing written meanwhile
    estimator.predict(OTHER)  # the next measurement saves every part measured here
    assert not estimator.unsaved and not _missing(path)


def test_a_table_whose_models_were_made_with_another_opset_is_not_measured_into(tmp_path: Path) -> None:
    from nas.latency.predict import is_local_table

    path = make_table(tmp_path / "t.json", [TINY], local=True)
    assert is_local_table(load_table(path))
    data = json.loads(path.read_text())
    data["metadata"]["measurement"]["opset"] = 7
    path.write_text(json.dumps(data))
    assert not is_local_table(load_table(path))


class _PassTimer(_Timer):
    """As :class:`_Timer`, for ``nas lut add``'s interleaved passes."""

    settings = SimpleNamespace(passes=1)

    def part_model(self, part: Any) -> bytes:
        return part.signature.encode()

    def time_pass(self, model: bytes, shape: Any) -> Any:
        from nas.latency.measure import Timing

        return Timing(0.5, 0.45, 0.55, 10)


def test_lut_add_keeps_what_another_process_saved_after_the_table_was_read(tmp_path: Path) -> None:
    from nas.latency.build import add_entries

    path = make_table(tmp_path / "t.json", [TINY])
    table = load_table(path)  # read, then another process re-fits the correction and adds a part
    data = json.loads(path.read_text())
    data["correction"]["scale"] = 1.5
    others = json.loads(make_table(tmp_path / "other.json", [OTHER]).read_text())["entries"]
    theirs = sorted(set(others) - set(data["entries"]) - _missing(path))[0]
    data["entries"][theirs] = others[theirs]
    path.write_text(json.dumps(data))
    add_entries(table, [MICRO], progress=False, backend=_PassTimer())
    after = json.loads(path.read_text())
    assert after["correction"]["scale"] == 1.5 and theirs in after["entries"] and not _missing(path)
