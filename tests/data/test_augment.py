"""Random crop (zero padding) and horizontal flip on tensor batches."""

from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F

from nas.data import random_crop_flip


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _distinct_batch(b: int, c: int, h: int, w: int) -> torch.Tensor:
    """Every pixel value unique and non-zero, so a crop's position can be read off its values."""
    return torch.arange(1, b * c * h * w + 1, dtype=torch.int64).reshape(b, c, h, w)


def test_shape_dtype_and_determinism() -> None:
    batch = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=_seeded(1))
    a = random_crop_flip(batch, pad=4, generator=_seeded(5))
    b = random_crop_flip(batch, pad=4, generator=_seeded(5))
    c = random_crop_flip(batch, pad=4, generator=_seeded(6))
    assert a.shape == batch.shape and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_pad_zero_is_identity_or_flip_and_flips_happen() -> None:
    batch = _distinct_batch(64, 3, 6, 5)
    out = random_crop_flip(batch, pad=0, generator=_seeded(2))
    same = (out == batch).flatten(1).all(1)
    flipped = (out == batch.flip(3)).flatten(1).all(1)
    assert (same | flipped).all()  # nothing but flips
    assert 10 < int(flipped.sum()) < 54  # p = 0.5 per sample: some of each (fixed seed, so no flakiness)


def test_every_output_is_a_window_of_the_padded_input() -> None:
    pad = 2
    batch = _distinct_batch(200, 1, 6, 6)
    out = random_crop_flip(batch, pad=pad, generator=_seeded(3))
    padded = F.pad(batch, (pad, pad, pad, pad))
    seen_offsets = set()
    for i in range(len(batch)):
        matches = [
            (dy, dx, flip)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            for flip in (False, True)
            if torch.equal(out[i], (lambda w: w.flip(2) if flip else w)(padded[i, :, dy : dy + 6, dx : dx + 6]))
        ]
        assert len(matches) == 1, i
        seen_offsets.add(matches[0][:2])
    assert seen_offsets == {(dy, dx) for dy in range(5) for dx in range(5)}  # all 25 positions, corners included


def test_values_stay_in_the_padded_value_set() -> None:
    batch = torch.randint(1, 256, (32, 3, 8, 8), dtype=torch.uint8, generator=_seeded(4))
    out = random_crop_flip(batch, pad=3, generator=_seeded(9))
    for i in range(len(batch)):
        allowed = set(batch[i].unique().tolist()) | {0}
        assert set(out[i].unique().tolist()) <= allowed
    assert (out == 0).any()  # some padding was cropped in


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="B, C, H, W"):
        random_crop_flip(torch.zeros(3, 8, 8), pad=2, generator=None)
    with pytest.raises(ValueError, match="pad"):
        random_crop_flip(torch.zeros(1, 3, 8, 8), pad=-1, generator=None)


def test_without_flip_every_output_is_an_unmirrored_window() -> None:
    batch = _distinct_batch(64, 3, 6, 5)
    assert torch.equal(random_crop_flip(batch, pad=0, generator=_seeded(2), flip=False), batch)
    out = random_crop_flip(batch, pad=2, generator=_seeded(3), flip=False)
    padded = F.pad(batch, (2, 2, 2, 2))
    for i in range(len(batch)):
        windows = [padded[i, :, r:r + 6, c:c + 5] for r in range(5) for c in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)  # a crop, never a mirrored one
