"""Image folders: real CIFAR JPEGs copied into a tmp folder, decoding, splitting and the disk cache."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nas.data.folder as folder_module
from nas.data import load_dataset
from tests.data.helpers import SAMPLE_CLASSES, TEST_PER_CLASS, TRAIN_PER_CLASS, read_rgb


def _load(root: Path, cache_dir: Path, **options: object):
    options.setdefault("input_size", 32)
    return load_dataset(root, cache_dir=cache_dir, progress=False, **options)


def _rows(images: np.ndarray) -> set[bytes]:
    return {image.tobytes() for image in images}


def test_real_folder_shapes_labels_and_split_sizes(sample_folder: Path, cache_dir: Path) -> None:
    data = _load(sample_folder, cache_dir)
    classes = len(SAMPLE_CLASSES)
    assert data.classes == SAMPLE_CLASSES and data.num_classes == classes and data.input_size == 32
    assert data.source == f"image folder {sample_folder}"
    # val_fraction 0.1 of 20 per class = 2 per class.
    assert len(data.train) == classes * (TRAIN_PER_CLASS - 2) and len(data.val) == classes * 2
    assert data.test is not None and len(data.test) == classes * TEST_PER_CLASS
    for split in (data.train, data.val, data.test):
        assert split.images.dtype == np.uint8 and split.images.shape[1:] == (32, 32, 3)
        assert split.labels.dtype == np.int64
    assert np.bincount(data.train.labels).tolist() == [TRAIN_PER_CLASS - 2] * classes
    assert np.bincount(data.val.labels).tolist() == [2] * classes
    assert np.bincount(data.test.labels).tolist() == [TEST_PER_CLASS] * classes
    # train and val are disjoint and together are exactly the train/ folder
    assert not _rows(data.train.images) & _rows(data.val.images)
    assert len(_rows(data.train.images) | _rows(data.val.images)) == classes * TRAIN_PER_CLASS


def test_pixels_and_labels_come_from_the_right_files(sample_folder: Path, cache_dir: Path) -> None:
    data = _load(sample_folder, cache_dir, val_fraction=0.5)
    pool = np.concatenate([data.train.images, data.val.images])
    labels = np.concatenate([data.train.labels, data.val.labels])
    for label, name in enumerate(SAMPLE_CLASSES):
        for path in sorted((sample_folder / "train" / name).glob("*.jpg"))[:3]:
            matches = np.flatnonzero((pool == read_rgb(path)).all(axis=(1, 2, 3)))
            assert len(matches) == 1 and labels[matches[0]] == label, path
    assert data.test is not None
    first_test = read_rgb(sorted((sample_folder / "test" / SAMPLE_CLASSES[2]).glob("*.jpg"))[0])
    assert any((img == first_test).all() for img, lab in zip(data.test.images, data.test.labels) if lab == 2)


def test_mean_std_are_those_of_the_train_split(sample_folder: Path, cache_dir: Path) -> None:
    data = _load(sample_folder, cache_dir)
    pixels = data.train.images.reshape(-1, 3).astype(np.float64) / 255.0
    np.testing.assert_allclose(data.mean, pixels.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(data.std, pixels.std(axis=0), rtol=1e-9)
    everything = np.concatenate([data.train.images, data.val.images]).reshape(-1, 3) / 255.0
    assert not np.allclose(data.mean, everything.mean(axis=0), rtol=1e-6)  # val is excluded


def test_split_is_deterministic_per_seed(sample_folder: Path, cache_dir: Path) -> None:
    a = _load(sample_folder, cache_dir, seed=3)
    b = _load(sample_folder, cache_dir, seed=3)
    c = _load(sample_folder, cache_dir, seed=4)
    np.testing.assert_array_equal(a.val.images, b.val.images)
    np.testing.assert_array_equal(a.train.labels, b.train.labels)
    assert a.mean == b.mean
    assert _rows(a.val.images) != _rows(c.val.images)
    assert a.test is not None and c.test is not None
    np.testing.assert_array_equal(a.test.images, c.test.images)  # test is never re-split


def test_second_load_uses_the_cache_and_does_not_decode(
    sample_folder: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _load(sample_folder, cache_dir)
    entries = list(cache_dir.iterdir())
    assert len(entries) == 1 and (entries[0] / "meta.json").is_file()
    assert (entries[0] / "train_images.npy").is_file() and (entries[0] / "test_images.npy").is_file()

    def refuse(path: Path, input_size: int) -> np.ndarray:
        raise AssertionError(f"decoded {path} although the cache is valid")

    monkeypatch.setattr(folder_module, "decode_image", refuse)
    second = _load(sample_folder, cache_dir)
    np.testing.assert_array_equal(first.train.images, second.train.images)
    np.testing.assert_array_equal(first.val.labels, second.val.labels)
    assert first.test is not None and second.test is not None
    np.testing.assert_array_equal(first.test.images, second.test.images)
    assert first.mean == second.mean and first.std == second.std
    assert second.test.images.flags.writeable  # a private array, not the read-only cache mapping


def _count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    decoded: list[Path] = []
    original = folder_module.decode_image

    def counting(path: Path, input_size: int) -> np.ndarray:
        decoded.append(path)
        return original(path, input_size)

    monkeypatch.setattr(folder_module, "decode_image", counting)
    return decoded


def test_adding_an_image_invalidates_the_cache(
    sample_folder: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _load(sample_folder, cache_dir)
    decoded = _count_decodes(monkeypatch)
    source = sorted((sample_folder / "train" / "cat").glob("*.jpg"))[0]
    (sample_folder / "train" / "cat" / "extra.jpg").write_bytes(source.read_bytes())
    data = _load(sample_folder, cache_dir)
    assert len(decoded) == len(SAMPLE_CLASSES) * (TRAIN_PER_CLASS + TEST_PER_CLASS) + 1
    assert len(data.train) + len(data.val) == len(SAMPLE_CLASSES) * TRAIN_PER_CLASS + 1
    decoded.clear()
    _load(sample_folder, cache_dir)  # and the new state is cached in turn
    assert decoded == []


def test_modifying_an_image_invalidates_the_cache(sample_folder: Path, cache_dir: Path) -> None:
    before = _load(sample_folder, cache_dir, val_fraction=0.5)
    target = sorted((sample_folder / "train" / "ship").glob("*.jpg"))[0]
    stat = target.stat()
    Image.new("RGB", (32, 32), (255, 0, 255)).save(target, format="PNG")  # a .jpg holding a PNG decodes fine
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    after = _load(sample_folder, cache_dir, val_fraction=0.5)
    magenta = np.zeros((32, 32, 3), np.uint8)
    magenta[..., 0] = magenta[..., 2] = 255
    pool_after = np.concatenate([after.train.images, after.val.images])
    pool_before = np.concatenate([before.train.images, before.val.images])
    assert (pool_after == magenta).all(axis=(1, 2, 3)).sum() == 1
    assert not (pool_before == magenta).all(axis=(1, 2, 3)).any()
    assert len(list(cache_dir.iterdir())) == 2  # a new entry; the old one is still valid for the old files


def test_a_corrupt_cache_file_is_ignored_and_rebuilt(
    sample_folder: Path, cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = _load(sample_folder, cache_dir)
    (entry,) = cache_dir.iterdir()
    images = entry / "train_images.npy"
    images.write_bytes(images.read_bytes()[: images.stat().st_size // 2])  # truncated
    with caplog.at_level(logging.WARNING, logger="nas.data.cache"):
        second = _load(sample_folder, cache_dir)
    assert "ignoring unreadable dataset cache" in caplog.text
    np.testing.assert_array_equal(first.train.images, second.train.images)
    assert images.stat().st_size > 60 * 32 * 32 * 3  # rewritten in full


def test_garbage_sidecar_is_ignored(sample_folder: Path, cache_dir: Path) -> None:
    first = _load(sample_folder, cache_dir)
    (entry,) = cache_dir.iterdir()
    (entry / "meta.json").write_text("{not json")
    second = _load(sample_folder, cache_dir)
    np.testing.assert_array_equal(first.val.images, second.val.images)


def test_interrupted_cache_write_leaves_no_entry_and_no_temp_files(
    sample_folder: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save = np.save
    calls = []

    def interrupted_save(file, array, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:  # the second array: half-written, then Ctrl-C
            file.write(b"\x93NUMPY partial")
            raise KeyboardInterrupt
        return real_save(file, array, *args, **kwargs)

    monkeypatch.setattr(np, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        _load(sample_folder, cache_dir)
    monkeypatch.setattr(np, "save", real_save)
    (entry,) = cache_dir.iterdir()
    assert not (entry / "meta.json").exists()
    assert [p.name for p in entry.iterdir() if p.name.endswith(".tmp")] == []
    decoded = _count_decodes(monkeypatch)
    data = _load(sample_folder, cache_dir)  # a miss, rebuilt and committed
    assert len(decoded) > 0 and (entry / "meta.json").is_file() and len(data.val) == 6


def test_resize_when_input_size_differs(sample_folder: Path, cache_dir: Path) -> None:
    data = _load(sample_folder, cache_dir, input_size=16)
    assert data.train.images.shape[1:] == (16, 16, 3) and data.input_size == 16
    assert data.test is not None and data.test.images.shape[1:] == (16, 16, 3)
    path = sorted((sample_folder / "train" / "airplane").glob("*.jpg"))[0]
    with Image.open(path) as image:
        expected = np.asarray(image.convert("RGB").resize((16, 16), Image.Resampling.BILINEAR))
    pool = np.concatenate([data.train.images, data.val.images])
    assert (pool == expected).all(axis=(1, 2, 3)).any()
    assert len(list(cache_dir.iterdir())) == 1
    _load(sample_folder, cache_dir, input_size=24)
    assert len(list(cache_dir.iterdir())) == 2  # input_size is part of the key


def test_no_test_folder_means_no_test_split(sample_folder: Path, cache_dir: Path) -> None:
    for path in sorted((sample_folder / "test").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (sample_folder / "test").rmdir()
    data = _load(sample_folder, cache_dir)
    assert data.test is None and len(data.train) + len(data.val) == len(SAMPLE_CLASSES) * TRAIN_PER_CLASS


def test_other_files_ignored_and_extensions_case_insensitive(sample_folder: Path, cache_dir: Path) -> None:
    cat = sample_folder / "train" / "cat"
    (cat / "README.txt").write_text("not an image")
    (cat / "notes").mkdir()
    first = sorted(cat.glob("*.jpg"))[0]
    first.rename(cat / "UPPER.JPG")
    (cat / "._0000.jpg").write_bytes(b"macOS resource fork, not an image")
    with Image.open(cat / "UPPER.JPG") as image:
        image.save(cat / "extra.PnG")
    data = _load(sample_folder, cache_dir)
    counts = np.bincount(np.concatenate([data.train.labels, data.val.labels]))
    assert counts.tolist() == [TRAIN_PER_CLASS, TRAIN_PER_CLASS + 1, TRAIN_PER_CLASS]


def test_grayscale_palette_and_rgba_images_are_converted(sample_folder: Path, cache_dir: Path) -> None:
    cat = sample_folder / "train" / "cat"
    Image.new("L", (32, 32), 77).save(cat / "gray.png")
    Image.new("RGBA", (32, 32), (10, 20, 30, 0)).save(cat / "alpha.png")
    palette = Image.new("P", (32, 32), 1)
    palette.putpalette([0, 0, 0, 200, 100, 50])
    palette.save(cat / "palette.png")
    Image.new("L", (40, 24), 150).save(cat / "gray_big.bmp")  # different size: resized
    data = _load(sample_folder, cache_dir, val_fraction=0.5)
    pool = np.concatenate([data.train.images, data.val.images])

    def count(rgb: tuple[int, int, int]) -> int:
        return int((pool == np.array(rgb, np.uint8)).all(axis=(1, 2, 3)).sum())

    assert count((77, 77, 77)) == 1  # gray replicated to 3 channels
    assert count((10, 20, 30)) == 1  # alpha dropped, colour kept
    assert count((200, 100, 50)) == 1  # palette expanded
    assert count((150, 150, 150)) == 1  # resized from 40x24
    assert pool.shape[0] == len(SAMPLE_CLASSES) * TRAIN_PER_CLASS + 4
