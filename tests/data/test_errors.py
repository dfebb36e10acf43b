"""Bad user input: one DataError, on one line, naming the offending path; never a bare traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nas.data import load_dataset
from nas.errors import DataError, NASError


def _error(source: object, tmp_path: Path, **options: object) -> str:
    options.setdefault("input_size", 32)
    with pytest.raises(DataError) as info:
        load_dataset(source, cache_dir=tmp_path / "cache", progress=False, **options)  # type: ignore[arg-type]
    message = str(info.value)
    assert isinstance(info.value, NASError) and "\n" not in message and message
    return message


def test_missing_root(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    message = _error(missing, tmp_path)
    assert str(missing) in message and "does not exist" in message and "digits" in message


def test_file_instead_of_folder(tmp_path: Path) -> None:
    path = tmp_path / "data.zip"
    path.write_bytes(b"PK")
    assert str(path) in _error(path, tmp_path)


def test_folder_of_unknown_layout_lists_the_accepted_forms(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    message = _error(tmp_path / "images", tmp_path)
    assert str(tmp_path / "images") in message
    assert "'digits'" in message and "train/<class>" in message and "batches.meta" in message


def test_train_without_class_folders(tmp_path: Path) -> None:
    (tmp_path / "ds" / "train").mkdir(parents=True)
    (tmp_path / "ds" / "train" / "loose.jpg").write_bytes(b"")
    message = _error(tmp_path / "ds", tmp_path)
    assert str(tmp_path / "ds" / "train") in message and "one sub-folder per class" in message


def test_empty_class_folder_is_named(sample_folder: Path, tmp_path: Path) -> None:
    (sample_folder / "train" / "dog").mkdir()
    (sample_folder / "train" / "dog" / "notes.txt").write_text("no images here")
    message = _error(sample_folder, tmp_path)
    assert str(sample_folder / "train" / "dog") in message and "'dog' contains no images" in message
    assert "1 other file" in message


def test_corrupt_image_is_named(sample_folder: Path, tmp_path: Path) -> None:
    bad = sample_folder / "train" / "cat" / "broken.jpg"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    message = _error(sample_folder, tmp_path)
    assert str(bad) in message and "cannot decode" in message


def test_unidentifiable_image_names_the_file_not_a_memory_buffer(sample_folder: Path, tmp_path: Path) -> None:
    bad = sample_folder / "train" / "cat" / "notes.png"
    bad.write_text("this is not an image")
    message = _error(sample_folder, tmp_path)
    assert message.startswith(f"{bad}: cannot decode this image (not a recognised image format")
    assert "BytesIO" not in message and "0x" not in message and "Remove the file or replace it" in message


def test_truncated_jpeg_is_named(sample_folder: Path, tmp_path: Path) -> None:
    victim = sorted((sample_folder / "test" / "ship").glob("*.jpg"))[3]
    victim.write_bytes(victim.read_bytes()[:300])
    assert str(victim) in _error(sample_folder, tmp_path)


def test_grayscale_png_among_rgb_is_converted_not_rejected(sample_folder: Path, tmp_path: Path) -> None:
    Image.new("L", (32, 32), 200).save(sample_folder / "train" / "cat" / "gray.png")
    data = load_dataset(sample_folder, input_size=32, cache_dir=tmp_path / "cache", progress=False, val_fraction=0.5)
    pool = np.concatenate([data.train.images, data.val.images])
    assert pool.shape[-1] == 3 and int((pool == 200).all(axis=(1, 2, 3)).sum()) == 1


def test_mismatched_train_and_test_classes(sample_folder: Path, tmp_path: Path) -> None:
    shutil.rmtree(sample_folder / "test" / "cat")
    (sample_folder / "test" / "frog").mkdir()
    message = _error(sample_folder, tmp_path)
    assert str(sample_folder / "train") in message and str(sample_folder / "test") in message
    assert "only in train/: ['cat']" in message and "only in test/: ['frog']" in message


def test_empty_test_class_folder(sample_folder: Path, tmp_path: Path) -> None:
    for path in (sample_folder / "test" / "ship").iterdir():
        path.unlink()
    assert str(sample_folder / "test" / "ship") in _error(sample_folder, tmp_path)


def test_single_image_class_cannot_be_split(tmp_path: Path, sample_folder_template: Path) -> None:
    root = tmp_path / "ds"
    shutil.copytree(sample_folder_template / "train", root / "train")
    for path in sorted((root / "train" / "ship").iterdir())[1:]:
        path.unlink()
    message = _error(root, tmp_path)
    assert str(root) in message and "'ship'" in message and "at least 2" in message


def test_one_class_folder_is_refused(tmp_path: Path, sample_folder_template: Path) -> None:
    """All images in one folder (train/images/*.jpg): a one-class "classifier" would score 100 %."""
    root = tmp_path / "ds"
    shutil.copytree(sample_folder_template / "train" / "cat", root / "train" / "images")
    message = _error(root, tmp_path)
    assert str(root) in message and "'images'" in message and "at least 2 classes" in message
    assert "train/<class>/" in message


def test_source_path_too_long_for_the_file_system(tmp_path: Path) -> None:
    path = tmp_path / ("x" * 300)
    message = _error(path, tmp_path)
    assert str(path) in message and "cannot be read" in message


@pytest.mark.parametrize("fraction", [0, -0.1, 0.51, 1.0, float("nan"), "0.1"])
def test_val_fraction_out_of_range(fraction: object, tmp_path: Path) -> None:
    assert "val_fraction" in _error("digits", tmp_path, val_fraction=fraction)


@pytest.mark.parametrize("size", [7, 0, -32, 32.0, True])
def test_input_size_too_small_or_not_an_integer(size: object, tmp_path: Path) -> None:
    assert "input_size" in _error("digits", tmp_path, input_size=size)


@pytest.mark.parametrize("subset", [0, -5, 2.5])
def test_bad_subset(subset: object, tmp_path: Path) -> None:
    assert "subset" in _error("digits", tmp_path, subset=subset)


@pytest.mark.parametrize("seed", [-1, 1.5, "0"])
def test_bad_seed(seed: object, tmp_path: Path) -> None:
    assert "seed" in _error("digits", tmp_path, seed=seed)


def test_subset_smaller_than_the_class_count(tmp_path: Path) -> None:
    message = _error("digits", tmp_path, subset=5)
    assert "subset=5" in message and "(10)" in message


def test_bad_source_type(tmp_path: Path) -> None:
    assert "string or a path" in _error(42, tmp_path)
