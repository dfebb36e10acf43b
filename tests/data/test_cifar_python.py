"""CIFAR-10 python batches: real-format files built from real CIFAR pixels, and hostile pickles."""

from __future__ import annotations

import os
import pickle
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from nas.data import load_dataset
from nas.errors import DataError
from tests.data.helpers import CIFAR_ALL_CLASSES, py2_batch_pickle, write_batch, write_meta


def _load(root: Path, **options: object):
    options.setdefault("input_size", 32)
    return load_dataset(root, progress=False, **options)


def test_loads_real_format_batches(cifar_python_dir: Path, cifar_python_arrays: dict) -> None:
    data = _load(cifar_python_dir, val_fraction=0.2)
    assert data.classes == CIFAR_ALL_CLASSES and data.num_classes == 10
    assert data.source == f"CIFAR python batches {cifar_python_dir}"
    assert len(data.train) == 40 and len(data.val) == 10  # 5 per class, 1 held out per class
    assert data.test is not None and len(data.test) == 10
    test_images, test_labels = cifar_python_arrays["test_batch"]
    # the CHW rows were turned back into exactly the original HWC pixels
    np.testing.assert_array_equal(data.test.images, test_images)
    np.testing.assert_array_equal(data.test.labels, test_labels)
    for images, labels in (cifar_python_arrays[f"data_batch_{i}"] for i in range(1, 6)):
        for image, label in zip(images, labels):
            in_train = (data.train.images == image).all(axis=(1, 2, 3))
            in_val = (data.val.images == image).all(axis=(1, 2, 3))
            assert in_train.sum() + in_val.sum() == 1
            assert label in set(data.train.labels[in_train]) | set(data.val.labels[in_val])


def test_str_keys_are_accepted(tmp_path: Path, cifar_python_arrays: dict) -> None:
    root = tmp_path / "py3"
    root.mkdir()
    write_meta(root / "batches.meta")
    for name, (images, labels) in cifar_python_arrays.items():
        write_batch(root / name, images, labels, str_keys=True)
    data = _load(root)
    assert len(data.train) + len(data.val) == 50


def test_python2_era_pickles_as_in_the_original_download(cifar_python_dir: Path, cifar_python_arrays: dict) -> None:
    """Python 2 str as BINSTRING and numpy.core.multiarray._reconstruct, as the real files have them."""
    for name, (images, labels) in cifar_python_arrays.items():
        (cifar_python_dir / name).write_bytes(py2_batch_pickle(images, labels))
    data = _load(cifar_python_dir)
    assert data.test is not None
    np.testing.assert_array_equal(data.test.images, cifar_python_arrays["test_batch"][0])
    assert len(data.train) + len(data.val) == 50


def test_resize_and_optional_test_batch(cifar_python_dir: Path) -> None:
    (cifar_python_dir / "test_batch").unlink()
    data = _load(cifar_python_dir, input_size=16)
    assert data.test is None
    assert data.train.images.shape[1:] == (16, 16, 3) and data.val.images.dtype == np.uint8


class _SystemCall:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (self.command,))


class _Popen:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (subprocess.Popen, (["touch", str(self.marker)],))


@pytest.mark.parametrize("victim", ["data_batch_1", "batches.meta", "test_batch"])
@pytest.mark.parametrize("payload", ["system", "popen"])
def test_malicious_pickle_is_refused_and_not_executed(
    cifar_python_dir: Path, tmp_path: Path, victim: str, payload: str
) -> None:
    marker = tmp_path / "pwned"
    evil = _SystemCall(f"touch {marker}") if payload == "system" else _Popen(marker)
    (cifar_python_dir / victim).write_bytes(pickle.dumps({b"data": evil, b"labels": [0]}, protocol=2))
    with pytest.raises(DataError) as info:
        _load(cifar_python_dir)
    message = str(info.value)
    assert str(cifar_python_dir / victim) in message
    # protocol 2 writes Python 2 names: subprocess.Popen is stored as commands.Popen
    assert ("posix.system" in message) if payload == "system" else ("commands.Popen" in message)
    assert "refusing to unpickle" in message
    assert not marker.exists()


def test_missing_batch_in_the_sequence(cifar_python_dir: Path) -> None:
    (cifar_python_dir / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3") as info:
        _load(cifar_python_dir)
    assert str(cifar_python_dir) in str(info.value)


@pytest.mark.parametrize("stray", ["data_batch_01", "data_batch_\u0661", "data_batch_1\n"])
def test_a_stray_copy_of_a_batch_is_refused_not_read_twice(cifar_python_dir: Path, stray: str) -> None:
    """data_batch_01 read as batch 1 would load its images twice: the same image in train and validation."""
    shutil.copyfile(cifar_python_dir / "data_batch_1", cifar_python_dir / stray)
    with pytest.raises(DataError, match=f"{re.escape(repr(stray))}: not a CIFAR batch name") as info:
        _load(cifar_python_dir)
    assert str(cifar_python_dir) in str(info.value) and "\n" not in str(info.value)
    (cifar_python_dir / stray).unlink()
    shutil.copyfile(cifar_python_dir / "data_batch_1", cifar_python_dir / "data_batch_1.bak")  # not a batch name
    data = _load(cifar_python_dir, val_fraction=0.2)
    assert len(data.train) + len(data.val) == 50  # the five batches once each: the .bak copy is not read


def test_no_training_batch(cifar_python_dir: Path) -> None:
    for i in range(1, 6):
        (cifar_python_dir / f"data_batch_{i}").unlink()
    with pytest.raises(DataError, match="no data_batch_1"):
        _load(cifar_python_dir)


def test_truncated_batch(cifar_python_dir: Path) -> None:
    path = cifar_python_dir / "data_batch_2"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="truncated or damaged") as info:
        _load(cifar_python_dir)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, "shape \\(n, 3072\\)"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8 array"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "list of 2 integers"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "labels must lie in 0..9"),
        ({b"pixels": np.zeros((2, 3072), np.uint8)}, "found nothing"),
        ([1, 2, 3], "'data' to be a uint8"),
    ],
)
def test_malformed_batch(cifar_python_dir: Path, batch: object, expected: str) -> None:
    path = cifar_python_dir / "data_batch_4"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match=expected) as info:
        _load(cifar_python_dir)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_malformed_meta(cifar_python_dir: Path) -> None:
    (cifar_python_dir / "batches.meta").write_bytes(pickle.dumps({b"label_names": []}, protocol=2))
    with pytest.raises(DataError, match="label_names"):
        _load(cifar_python_dir)
