"""Fixtures for nas.data: small real image folders and CIFAR python batches built in tmp paths.

Real pixels come from the shared CIFAR-10 JPEG folder (copied at test time, never into the
repository). Everything is kept tiny: a few dozen 32x32 images per fixture.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.data.helpers import (
    SAMPLE_CLASSES,
    TEST_PER_CLASS,
    TRAIN_PER_CLASS,
    cifar_batch_pixels,
    first_files,
    write_batch,
    write_meta,
)


@pytest.fixture(scope="session")
def sample_folder_template(tmp_path_factory: pytest.TempPathFactory, cifar10_root: Path) -> Path:
    """A 3-class image folder with real CIFAR JPEGs: 20 train and 8 test images per class."""
    root = tmp_path_factory.mktemp("template") / "cifar_sample"
    for split, count in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        for name in SAMPLE_CLASSES:
            target = root / split / name
            target.mkdir(parents=True)
            for path in first_files(cifar10_root / split / name, count):
                shutil.copy2(path, target / path.name)
    return root


@pytest.fixture
def sample_folder(tmp_path: Path, sample_folder_template: Path) -> Path:
    """A private copy of the template that a test may modify."""
    root = tmp_path / "cifar_sample"
    shutil.copytree(sample_folder_template, root)
    return root


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def cifar_python_arrays(cifar10_root: Path) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Real pixels for five 10-image training batches and one 10-image test batch."""
    arrays = {f"data_batch_{i}": cifar_batch_pixels(cifar10_root, "train", 1, i) for i in range(1, 6)}
    arrays["test_batch"] = cifar_batch_pixels(cifar10_root, "test", 1, 0)
    return arrays


@pytest.fixture
def cifar_python_dir(tmp_path: Path, cifar_python_arrays: dict[str, tuple[np.ndarray, list[int]]]) -> Path:
    """A tiny ``cifar-10-batches-py`` folder in the real file format."""
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    write_meta(root / "batches.meta")
    for name, (images, labels) in cifar_python_arrays.items():
        write_batch(root / name, images, labels)
    return root
