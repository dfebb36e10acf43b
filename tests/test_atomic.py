from __future__ import annotations

import json
from pathlib import Path

import pytest

from nas.atomic import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text


def test_writes_replace_the_target_and_leave_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.json"  # the folder is created
    atomic_write_json(target, {"b": 1, "a": [1, 2]})
    assert target.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    atomic_write_text(target, "line 1\r\nline 2\n")
    assert target.read_bytes() == b"line 1\r\nline 2\n"  # newlines as given
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)


def test_the_temporary_path_keeps_the_suffix(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "plot.png") as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png" and tmp.name != "plot.png"
        tmp.write_bytes(b"png")
    assert (tmp_path / "plot.png").read_bytes() == b"png"


@pytest.mark.parametrize("name", ["a" * 250 + ".onnx", "é" * 125 + ".json", "x." + "s" * 240])
def test_a_target_name_near_the_limit_still_gets_a_temporary_name(tmp_path: Path, name: str) -> None:
    target = tmp_path / name  # 252-255 bytes: a valid name, too long to repeat inside the temporary one
    atomic_write_bytes(target, b"ok")
    with atomic_path(target) as tmp:
        assert len(tmp.name.encode()) <= 255
        assert tmp.suffix == target.suffix or len(target.suffix) > 16
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == [name]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_error_while_writing_keeps_the_old_file(tmp_path: Path, error: type[BaseException]) -> None:
    target = tmp_path / "table.json"
    target.write_text(json.dumps({"old": True}))
    with pytest.raises(error), atomic_path(target) as tmp:
        tmp.write_text('{"new": tr')  # half written
        raise error()
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["table.json"]
