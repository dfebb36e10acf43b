"""``nas lut``: the sub-commands are listed, and user errors end with status 2 and one message."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nas.arch import to_compact
from nas.cli import main
from nas.space import load_space, random_arch
from tests.conftest import DEFAULT_SPACE, REPO, TINY_SPACE

ACTIONS = ("build", "predict", "add", "validate", "bundle", "import")


def test_help_lists_every_action(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["lut", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    listed = [m.group(1) for line in text.splitlines() if (m := re.match(r"    (\w+)", line))]
    assert tuple(listed) == ACTIONS
    for action in ACTIONS:
        with pytest.raises(SystemExit):
            main(["lut", action, "--help"])
        assert "usage: nas lut " + action in capsys.readouterr().out


def _arch() -> str:
    return to_compact(random_arch(load_space(TINY_SPACE), 1))


def _copy(tiny_table: Path, tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    data = json.loads(tiny_table.read_text())
    change(data)
    path = tmp_path / "changed.json"
    path.write_text(json.dumps(data))
    return path


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err  # one message, no traceback
    return lines[0]


def test_missing_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.json"
    for argv in (["lut", "predict", "--table", str(missing), _arch()],
                 ["lut", "validate", "--table", str(missing), "--samples", "1"],
                 ["lut", "add", "--table", str(missing), _arch()]):
        msg = _error(capsys, argv)
        assert f"{missing}: latency table not found" in msg and "nas lut build" in msg


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda d: d.update(schema_version=99), "schema_version: this version of nas reads schema 1"),
        (lambda d: d["metadata"].pop("threads"), "metadata.threads: missing"),
        (lambda d: d["entries"]["stem_i3_o8_k3_s1_relu_r16"].update(median=-1.0),
         "entries['stem_i3_o8_k3_s1_relu_r16'].median: expected a positive, finite number"),
        (lambda d: d["entries"].update({"conv_i3_o8_r16": d["entries"]["stem_i3_o8_k3_s1_relu_r16"]}),
         "unknown signature 'conv_i3_o8_r16'"),
    ],
)
def test_broken_table(tiny_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                      change: Callable[[dict[str, Any]], None], fragment: str) -> None:
    path = _copy(tiny_table, tmp_path, change)
    msg = _error(capsys, ["lut", "predict", "--table", str(path), _arch()])
    assert msg.startswith(f"error: {path}: ") and fragment in msg


def test_not_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.json"
    path.write_text('{"schema_version": 1, "entries": {')
    assert "t.json: not valid JSON" in _error(capsys, ["lut", "predict", "--table", str(path), _arch()])


def test_missing_entry_with_on_missing_error(tiny_table: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arch = "in16x3-stem_k3_s1_c8_re-ir_m40_k3_s1_c8_re-ir_e3_k5_s2_c16_hs-ir_e1_k3_s2_c24_re-head_c32_hs-cls10"
    before = tiny_table.read_bytes()
    msg = _error(capsys, ["lut", "predict", "--table", str(tiny_table), arch, "--on-missing", "error"])
    assert "no entry for ir_i8_m40_o8_k3_s1_se0_relu_r16 (block0)" in msg
    assert f"nas lut add --table {tiny_table} ARCH" in msg
    assert tiny_table.read_bytes() == before  # nothing written


def test_table_for_another_space(tiny_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    msg = _error(capsys, ["lut", "validate", "--table", str(tiny_table), "--space", str(DEFAULT_SPACE),
                          "--samples", "1"])
    assert "metadata.input_size: the table was measured for 16x16x3 inputs" in msg and "nas lut build" in msg

    other = tmp_path / "other_space.yaml"  # same input size, other choices: another space
    other.write_text(TINY_SPACE.read_text().replace("kernel: [3, 5]", "kernel: [3]"))
    msg = _error(capsys, ["lut", "validate", "--table", str(tiny_table), "--space", str(other), "--samples", "1"])
    assert "metadata.space: the table was built for space 'tiny_test'" in msg


def test_add_refuses_a_table_of_another_device(tiny_table: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = _copy(tiny_table, tmp_path, lambda d: d["metadata"].update(cpu="Some phone SoC", device="a phone"))
    msg = _error(capsys, ["lut", "add", "--table", str(path), _arch()])
    assert "cannot measure missing entries here" in msg and "'a phone'" in msg


def test_entry_point_prints_one_line(tmp_path: Path) -> None:
    shutil.copy(TINY_SPACE, tmp_path / "space.yaml")
    proc = subprocess.run([sys.executable, "-m", "nas", "lut", "predict", "--table", str(tmp_path / "none.json"),
                           _arch()], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "none.json: latency table not found" in proc.stderr
