"""TensorBatches: epoch coverage, normalisation, shuffling, augmentation and memory format."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from nas.data import ImageArrays, TensorBatches

MEAN = (0.2, 0.4, 0.6)
STD = (0.1, 0.2, 0.3)


def _indexed_arrays(n: int = 37, size: int = 8) -> ImageArrays:
    """Image ``i`` has every pixel of channel 0 equal to ``i``: the batches reveal which samples they hold."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    images[..., 0] = np.arange(n, dtype=np.uint8)[:, None, None]
    return ImageArrays(images=images, labels=np.arange(n, dtype=np.int64) % 5)


def _sample_ids(images: torch.Tensor) -> list[int]:
    raw = images[:, 0, 0, 0] * STD[0] + MEAN[0]
    return torch.round(raw * 255).to(torch.int64).tolist()


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_shuffled_epoch_covers_every_sample_exactly_once() -> None:
    arrays = _indexed_arrays()
    batches = TensorBatches(arrays, mean=MEAN, std=STD, batch_size=8, shuffle=True, generator=_seeded())
    assert len(batches) == 5
    ids: list[int] = []
    sizes = []
    for images, labels in batches:
        ids += _sample_ids(images)
        sizes.append(len(labels))
        assert labels.dtype == torch.int64 and labels.tolist() == [i % 5 for i in _sample_ids(images)]
    assert sorted(ids) == list(range(37)) and ids != list(range(37))
    assert sizes == [8, 8, 8, 8, 5]


def test_epochs_differ_but_replay_with_the_same_seed() -> None:
    arrays = _indexed_arrays()

    def two_epochs(seed: int) -> list[list[int]]:
        batches = TensorBatches(arrays, mean=MEAN, std=STD, batch_size=37, shuffle=True, generator=_seeded(seed))
        return [_sample_ids(next(iter(batches))[0]) for _ in range(2)]

    first, second = two_epochs(1)
    assert first != second and two_epochs(1) == [first, second]


def test_drop_last_and_no_shuffle_order() -> None:
    arrays = _indexed_arrays()
    batches = TensorBatches(arrays, mean=MEAN, std=STD, batch_size=8, drop_last=True)
    assert len(batches) == 4
    ids = [i for images, _ in batches for i in _sample_ids(images)]
    assert ids == list(range(32))


def test_normalisation_matches_mean_and_std() -> None:
    arrays = _indexed_arrays()
    images, _ = next(iter(TensorBatches(arrays, mean=MEAN, std=STD, batch_size=37)))
    assert images.dtype == torch.float32 and images.shape == (37, 3, 8, 8)
    raw = torch.from_numpy(arrays.images).permute(0, 3, 1, 2).double() / 255
    mean = torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float64).view(1, 3, 1, 1)
    expected = (raw - mean) / std
    torch.testing.assert_close(images.double(), expected, rtol=1e-5, atol=1e-5)


def test_normalised_with_dataset_statistics_is_standardised() -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (64, 8, 8, 3), dtype=np.uint8)
    pixels = images.reshape(-1, 3) / 255.0
    arrays = ImageArrays(images=images, labels=np.zeros(64, dtype=np.int64))
    batch, _ = next(iter(TensorBatches(arrays, mean=pixels.mean(0), std=pixels.std(0), batch_size=64)))
    torch.testing.assert_close(batch.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(batch.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4, rtol=0)


def test_augmentation_is_seeded_and_changes_images() -> None:
    arrays = _indexed_arrays(n=16, size=16)
    plain = next(iter(TensorBatches(arrays, mean=MEAN, std=STD, batch_size=16)))[0]

    def augmented(seed: int) -> torch.Tensor:
        batches = TensorBatches(arrays, mean=MEAN, std=STD, batch_size=16, augment=True, generator=_seeded(seed))
        return next(iter(batches))[0]

    a, b = augmented(3), augmented(3)
    assert torch.equal(a, b) and a.shape == plain.shape and not torch.equal(a, plain)
    assert not torch.equal(a, augmented(4))


def test_channels_last_layout() -> None:
    batches = TensorBatches(_indexed_arrays(), mean=MEAN, std=STD, batch_size=8, channels_last=True, augment=True)
    images, _ = next(iter(batches))
    assert images.is_contiguous(memory_format=torch.channels_last)
    assert batches.images.is_contiguous(memory_format=torch.channels_last)


def test_read_only_arrays_are_accepted_without_warnings() -> None:
    arrays = _indexed_arrays()
    arrays.images.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batches = TensorBatches(arrays, mean=MEAN, std=STD, batch_size=10)
    assert sum(len(labels) for _, labels in batches) == 37


def test_rejects_mismatched_statistics() -> None:
    with pytest.raises(ValueError, match="one per channel"):
        TensorBatches(_indexed_arrays(), mean=(0.5,), std=(0.5,), batch_size=4)
    with pytest.raises(ValueError, match="> 0"):
        TensorBatches(_indexed_arrays(), mean=MEAN, std=(0.1, 0.0, 0.1), batch_size=4)
    with pytest.raises(ValueError, match="batch_size"):
        TensorBatches(_indexed_arrays(), mean=MEAN, std=STD, batch_size=0)


def test_image_arrays_subset_and_validation() -> None:
    arrays = _indexed_arrays(n=6)
    picked = arrays.subset(np.array([4, 1]))
    assert len(picked) == 2 and picked.images[:, 0, 0, 0].tolist() == [4, 1] and picked.labels.tolist() == [4, 1]
    masked = arrays.subset(arrays.labels >= 3)
    assert masked.images[:, 0, 0, 0].tolist() == [3, 4]
    assert repr(arrays) == "ImageArrays(n=6, image_shape=(8, 8, 3))"
    with pytest.raises(ValueError, match="3 channels"):
        ImageArrays(images=np.zeros((2, 8, 8, 1), np.uint8), labels=np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="int64"):
        ImageArrays(images=np.zeros((2, 8, 8, 3), np.uint8), labels=np.zeros(2, np.int32))
    with pytest.raises(ValueError, match="2 images but 3 labels"):
        ImageArrays(images=np.zeros((2, 8, 8, 3), np.uint8), labels=np.zeros(3, np.int64))
