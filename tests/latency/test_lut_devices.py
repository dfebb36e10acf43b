"""benchmarks/lut_devices.py's logic, on the tiny session table and edited copies of it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from nas.errors import LatencyTableError
from nas.latency import load_table, parse_signature
from tests.conftest import TINY_SPACE, load_benchmark


@pytest.fixture(scope="module")
def lut_devices() -> ModuleType:
    return load_benchmark("lut_devices")


@pytest.fixture
def tiny(tiny_table: Path, tmp_path: Path) -> Path:
    """The session's tiny table with its space file beside it, where the benchmark finds it (a table's recorded space
    path is only a file name to look for there: nas.latency.spaces)."""
    folder = tmp_path / "tables"
    folder.mkdir()
    shutil.copy(TINY_SPACE, folder / TINY_SPACE.name)
    return Path(shutil.copy(tiny_table, folder / "tiny.json"))


def edited(tiny_table: Path, folder: Path, factor_k5: float) -> Path:
    """A copy of the table in which every block with a 5x5 kernel takes ``factor_k5`` times as long."""
    data = json.loads(tiny_table.read_text())
    for sig, entry in data["entries"].items():
        part = parse_signature(sig)
        if part.name == "block" and part.spec.kernel == 5:
            for key in ("median", "p10", "p90"):
                entry[key] *= factor_k5
    path = folder / f"k5x{factor_k5}.json"
    path.write_text(json.dumps(data))
    return path


def test_identical_tables_agree(lut_devices: ModuleType, tiny: Path, tmp_path: Path) -> None:
    table = load_table(tiny)
    space = lut_devices.space_for_table(table)
    reports = lut_devices.compare_slots(table, load_table(tiny), space, 0.05)
    assert len(reports) == 5  # tiny space: 3 stages, the first two with repeats
    assert all(r.tau == pytest.approx(1.0) and not r.flips and r.fastest_a == r.fastest_b for r in reports)
    nets = lut_devices.network_agreement(table, load_table(tiny), space, 50, 0.25)
    assert nets["tau"] == pytest.approx(1.0) and nets["jaccard"] == 1.0 and nets["fastest_same"]


def test_flips_are_exactly_the_changed_choice(lut_devices: ModuleType, tiny: Path, tmp_path: Path) -> None:
    a, b = load_table(tiny), load_table(edited(tiny, tmp_path, 0.4))
    space = lut_devices.space_for_table(a)
    reports = lut_devices.compare_slots(a, b, space, 0.05)
    flips = [f for r in reports for f in r.flips]
    assert flips and {f["choice"] for f in flips} == {"kernel"}  # nothing else changed

    # the expected flips, counted independently: k3 -> k5 pairs that differ in nothing else
    expected = 0
    for r in reports:
        by_choice = {o.choice: o for o in r.options}
        for choice, o3 in by_choice.items():
            if choice[2] != 3:
                continue
            o5 = by_choice.get((*choice[:2], 5, *choice[3:]))
            if o5 is None:
                continue
            ra, rb = o5.a_ms / o3.a_ms - 1, (o5.a_ms * 0.4) / o3.a_ms - 1
            assert o5.b_ms == pytest.approx(o5.a_ms * 0.4) and o3.b_ms == pytest.approx(o3.a_ms)
            expected += (ra > 0.05 and rb < -0.05) or (ra < -0.05 and rb > 0.05)
    assert len(flips) == expected
    assert all(f["a_change"] > 0.05 > -0.05 > f["b_change"] for f in flips if (f["from"], f["to"]) == (3, 5))

    ratios = lut_devices.choice_ratios(reports)
    assert ratios["kernel"][5] == pytest.approx(0.4) and ratios["kernel"][3] == pytest.approx(1.0)
    assert set(ratios) == {"type", "expansion", "kernel", "se", "act"} and set(ratios["se"]) == {False, True}
    assert any(r.fastest_b.choice[2] == 5 for r in reports)  # cheap 5x5 kernels win somewhere on B


def test_run_writes_the_report(lut_devices: ModuleType, tiny: Path, tmp_path: Path) -> None:
    b = edited(tiny, tmp_path, 0.4)
    text = lut_devices.run(tiny, b, tmp_path / "out", "devices", networks=100)
    md, rows = (tmp_path / "out" / "devices.md").read_text(), (tmp_path / "out" / "devices.csv").read_text()
    assert md == text and "## Choices whose ranking flips" in md and "| kernel | 3 -> 5 |" in md
    assert "Kendall tau of their latency ranking" in md
    assert rows.splitlines()[0] == "position,type,expansion,kernel,se,act,a_ms,b_ms,b_over_a,rank_a,rank_b"
    assert len(rows.splitlines()) == 1 + sum(len(r.options) for r in lut_devices.compare_slots(
        load_table(tiny), load_table(b), lut_devices.space_for_table(load_table(tiny)), 0.05))


def test_tables_of_different_spaces_are_refused(lut_devices: ModuleType, tiny: Path, tmp_path: Path) -> None:
    data = json.loads(tiny.read_text())
    data["metadata"]["space"]["digest"] = "0" * 64
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))
    with pytest.raises(LatencyTableError, match="compare two tables of the same space"):
        lut_devices.run(tiny, other, tmp_path, "x")
    assert not (tmp_path / "x.md").exists()
