"""The cache key and the cache location."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nas.data import default_cache_dir
from nas.data.cache import cache_key, entry_dir, load_entry, store_entry

FILES = [("train/a/1.jpg", 100, 5), ("train/b/2.jpg", 200, 6), ("test/a/3.jpg", 300, 7)]


def _key(files: list[tuple[str, int, int]], input_size: int = 32) -> str:
    relpaths, sizes, mtimes = zip(*files)
    return cache_key(relpaths, sizes, mtimes, input_size)


def test_key_is_order_independent_and_stable() -> None:
    assert _key(FILES) == _key(list(reversed(FILES)))
    assert len(_key(FILES)) == 64


@pytest.mark.parametrize(
    "changed",
    [
        [("train/a/1.jpg", 101, 5), *FILES[1:]],  # size
        [("train/a/1.jpg", 100, 9), *FILES[1:]],  # mtime
        [("train/a/renamed.jpg", 100, 5), *FILES[1:]],  # name
        [("train/b/1.jpg", 100, 5), *FILES[1:]],  # class (moved folder)
        FILES[1:],  # removed
        [*FILES, ("train/a/4.jpg", 1, 1)],  # added
    ],
)
def test_key_changes_with_any_file_change(changed: list[tuple[str, int, int]]) -> None:
    assert _key(changed) != _key(FILES)


def test_key_depends_on_input_size() -> None:
    assert _key(FILES, 32) != _key(FILES, 64)


def test_default_cache_dir_honours_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("NAS_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "nas" / "datasets"


def test_entry_round_trip_and_shape_check(tmp_path: Path) -> None:
    entry = entry_dir(tmp_path, "ab" * 32, "my data/set 32px")
    assert entry.parent == tmp_path and entry.name == "my_data_set_32px-" + "ab" * 12
    arrays = {"x": np.arange(12, dtype=np.uint8).reshape(3, 4)}
    assert store_entry(entry, "ab" * 32, arrays, {"note": "n"})
    loaded = load_entry(entry, "ab" * 32, {"x": ((3, 4), "uint8")})
    assert loaded is not None and loaded["meta"]["note"] == "n"
    np.testing.assert_array_equal(loaded["x"], arrays["x"])
    assert load_entry(entry, "ab" * 32, {"x": ((4, 3), "uint8")}) is None  # shape the caller expects differs
    assert load_entry(entry, "cd" * 32, {"x": ((3, 4), "uint8")}) is None  # another key


def test_unwritable_cache_dir_only_warns(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should go")
    assert store_entry(blocker / "entry", "k", {"x": np.zeros(2, np.uint8)}, {}) is False
