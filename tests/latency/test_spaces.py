"""A table's recorded space file is a hint: a file name looked up in search-space folders, never a path opened as
written, and nothing of a file that is not a space is printed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nas.cli import main
from nas.errors import LatencyTableError
from nas.latency import load_table
from nas.latency.spaces import space_for_table, space_hint
from nas.space import load_space
from tests.conftest import REPO, TINY_SPACE
from tests.latency.test_table import handmade

SECRET = "password: hunter2\n"


def _table(folder: Path, recorded: str) -> Path:
    data = handmade(space_digest=load_space(TINY_SPACE).digest)
    data["metadata"]["space"]["file"] = recorded
    path = folder / "table.json"
    path.write_text(json.dumps(data))
    return path


def test_the_shipped_tables_find_their_space() -> None:
    table = load_table(REPO / "latency_tables" / "ort-cpu-1t.json")
    assert table.space_file == "search_spaces/mobilenet_cse_cifar.yaml"
    assert space_for_table(table).name == "mobilenet_cse_cifar"


@pytest.mark.parametrize(("recorded", "name"), [("search_spaces/a.yaml", "a.yaml"), ("C:\\spaces\\b.yml", "b.yml"),
                                                ("/etc/shadow", None), ("", None), (None, None),
                                                ("../x/.. .yaml", None)])
def test_only_a_yaml_file_name_is_a_hint(recorded: str | None, name: str | None) -> None:
    assert space_hint(recorded) == name


def test_the_file_name_is_looked_up_beside_the_table(tmp_path: Path) -> None:
    shutil.copy(TINY_SPACE, tmp_path / "tiny_space.yaml")
    table = load_table(_table(tmp_path, "/somewhere/else/entirely/tiny_space.yaml"))
    assert space_for_table(table).name == "tiny_test"
    (tmp_path / "search_spaces").mkdir()
    shutil.move(tmp_path / "tiny_space.yaml", tmp_path / "search_spaces" / "tiny_space.yaml")
    assert space_for_table(table).name == "tiny_test"


def test_an_arbitrary_path_is_never_read(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "secret.yaml").write_text(SECRET)
    (elsewhere / "tiny_space.yaml").write_text(TINY_SPACE.read_text())  # a real space, but not where spaces are
    folder = tmp_path / "tables"
    folder.mkdir()
    for recorded in ("/etc/shadow", str(elsewhere / "secret.yaml"), str(elsewhere / "tiny_space.yaml")):
        table = load_table(_table(folder, recorded))
        with pytest.raises(LatencyTableError) as info:
            space_for_table(table)
        message = str(info.value)
        assert "pass it with --space FILE" in message or "pass the table's space with --space FILE" in message
        assert "hunter2" not in message and "root:" not in message


def test_a_file_of_that_name_that_is_no_space_is_not_shown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "secret.yaml").write_text(SECRET)
    path = _table(tmp_path, "secret.yaml")
    assert main(["lut", "validate", "--table", str(path), "--samples", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'secret.yaml'} (not a loadable space)" in err
    assert "hunter2" not in err

    path = _table(tmp_path, "/etc/shadow")
    assert main(["lut", "validate", "--table", str(path), "--samples", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "metadata.space.file '/etc/shadow' names no .yaml search-space file" in err


def test_a_space_of_that_name_with_another_digest_is_not_taken(tmp_path: Path) -> None:
    (tmp_path / "tiny_space.yaml").write_text(TINY_SPACE.read_text().replace("kernel: [3, 5]", "kernel: [3]"))
    table = load_table(_table(tmp_path, "tiny_space.yaml"))
    with pytest.raises(LatencyTableError, match=r"tiny_space.yaml \(another space: digest "):
        space_for_table(table)
    assert space_for_table(table, str(TINY_SPACE)).name == "tiny_test"  # --space still works
