"""Loading says, in one line, when the images are converted (size, channels) for the network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from nas.data import load_dataset


def mnist_like(root: Path, *, classes: int = 2, per_class: int = 4, size: int = 28) -> Path:
    """An MNIST-like image folder: 28x28 grayscale PNGs, train/ and test/."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in range(classes):
            folder = root / split / str(label)
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, size=(size, size), dtype=np.uint8)
                Image.fromarray(pixels, mode="L").save(folder / f"{i}.png")
    return root


def test_an_mnist_like_folder_says_it_is_converted(tmp_path: Path) -> None:
    root = mnist_like(tmp_path / "mnist")
    for _ in range(2):  # decoded, then from the cache: the same note
        splits = load_dataset(root, input_size=32, cache_dir=tmp_path / "cache", progress=False)
        note = splits.conversion
        assert note is not None and "\n" not in note
        assert str(root) in note and "28x28 grayscale (1 channel)" in note and "32x32 RGB (3 channels)" in note
        assert "resized" in note and "replicated" in note


def test_images_already_in_the_network_format_say_nothing(tmp_path: Path) -> None:
    root = tmp_path / "rgb"
    for split in ("train", "test"):
        for label in range(2):
            folder = root / split / str(label)
            folder.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (16, 16), (i * 40, label * 90, 7)).save(folder / f"{i}.png")
    assert load_dataset(root, input_size=16, cache_dir=tmp_path / "cache", progress=False).conversion is None
    resized = load_dataset(root, input_size=32, cache_dir=tmp_path / "cache", progress=False).conversion
    assert resized is not None and "16x16 RGB (3 channels)" in resized and "replicated" not in resized


def test_the_embedded_digits_say_they_are_upsampled() -> None:
    note = load_dataset("digits", input_size=32, progress=False).conversion
    assert note is not None and "8x8 grayscale (1 channel)" in note and "32x32 RGB" in note
