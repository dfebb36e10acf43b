"""The embedded digits dataset."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from nas.data import DatasetSplits, load_dataset

TOTAL = 1797


@pytest.fixture(scope="module")
def digits() -> DatasetSplits:
    return load_dataset("digits", input_size=32, progress=False)


def test_shapes_channels_and_classes(digits: DatasetSplits) -> None:
    assert digits.classes == tuple("0123456789") and digits.num_classes == 10 and digits.input_size == 32
    assert digits.test is not None
    assert len(digits.train) + len(digits.val) + len(digits.test) == TOTAL
    for split in (digits.train, digits.val, digits.test):
        assert split.images.shape[1:] == (32, 32, 3) and split.images.dtype == np.uint8
        assert split.labels.dtype == np.int64 and set(split.labels.tolist()) == set(range(10))
        assert (split.images == split.images[..., :1]).all()  # gray replicated to all three channels
    assert digits.train.images.max() == 255 and digits.train.images.min() == 0  # 0..16 scaled to the full range
    assert len(set(digits.mean)) == 1 and 0 < digits.mean[0] < 1 and 0 < digits.std[0] < 1


def test_splits_are_stratified(digits: DatasetSplits) -> None:
    source_counts = np.bincount(load_digits().target, minlength=10)
    assert digits.test is not None
    test_counts = np.bincount(digits.test.labels, minlength=10)
    assert (np.abs(test_counts - 0.2 * source_counts) <= 0.5).all()  # rounded per class
    rest = source_counts - test_counts
    val_counts = np.bincount(digits.val.labels, minlength=10)
    assert (np.abs(val_counts - 0.1 * rest) <= 0.5).all()
    np.testing.assert_array_equal(np.bincount(digits.train.labels, minlength=10), rest - val_counts)


def test_test_split_is_fixed_whatever_the_seed(digits: DatasetSplits) -> None:
    other = load_dataset("digits", input_size=32, seed=123, progress=False)
    assert other.test is not None and digits.test is not None
    np.testing.assert_array_equal(other.test.images, digits.test.images)
    np.testing.assert_array_equal(other.test.labels, digits.test.labels)
    assert not np.array_equal(other.val.images, digits.val.images)  # while validation does follow the seed


def test_native_size_is_the_scaled_original() -> None:
    data = load_dataset("digits", input_size=8, val_fraction=0.5, progress=False)
    originals = {np.rint(img * 255 / 16).astype(np.uint8).tobytes() for img in load_digits().images}
    assert data.test is not None
    for image in np.concatenate([data.train.images, data.val.images, data.test.images])[:, :, :, 0]:
        assert image.tobytes() in originals


def test_subset_rule_keeps_tiny_runs_tiny() -> None:
    data = load_dataset("digits", input_size=16, subset=60, seed=1, progress=False)
    assert len(data.train) == 60 and np.bincount(data.train.labels).tolist() == [6] * 10
    assert len(data.val) == max(60 // 4, 2 * 10)  # the validation cap
    full = load_dataset("digits", input_size=16, progress=False)
    assert data.test is not None and full.test is not None
    np.testing.assert_array_equal(data.test.labels, full.test.labels)  # the test split is never subset
    again = load_dataset("digits", input_size=16, subset=60, seed=1, progress=False)
    np.testing.assert_array_equal(again.train.images, data.train.images)
    pixels = data.train.images[..., 0].astype(np.float64) / 255
    assert data.mean[0] == pytest.approx(pixels.mean(), rel=1e-9)  # stats of the subset, not of all train images
