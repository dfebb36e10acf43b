"""Stratified hold-out and subset selection, and the pixel statistics they feed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.data.splits import allocate, stratified_holdout, stratified_subset
from nas.data.stats import mean_std, pixel_moments

label_vectors = st.lists(st.integers(2, 40), min_size=1, max_size=6).map(
    lambda counts: np.repeat(np.arange(len(counts)), counts)
)


@settings(max_examples=40, deadline=None)
@given(labels=label_vectors, fraction=st.floats(0.01, 0.5), seed=st.integers(0, 2**32 - 1))
def test_holdout_partitions_every_class(labels: np.ndarray, fraction: float, seed: int) -> None:
    kept, held = stratified_holdout(labels, fraction, np.random.default_rng(seed))
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(len(labels)))
    for label in np.unique(labels):
        n = int((labels == label).sum())
        k = int((labels[held] == label).sum())
        assert k >= 1 and k <= n - 1 and abs(k - fraction * n) <= max(0.5, 1 - fraction * n) + 1e-9


def test_holdout_is_deterministic_and_seed_dependent() -> None:
    labels = np.repeat(np.arange(4), 50)
    a = stratified_holdout(labels, 0.2, np.random.default_rng(7))
    b = stratified_holdout(labels, 0.2, np.random.default_rng(7))
    c = stratified_holdout(labels, 0.2, np.random.default_rng(8))
    assert np.array_equal(a[1], b[1]) and not np.array_equal(a[1], c[1])


def test_holdout_rejects_single_sample_classes() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        stratified_holdout(np.array([0, 0, 1]), 0.5, np.random.default_rng(0))


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(1, 50), min_size=1, max_size=8), data=st.data())
def test_allocate_is_exact_bounded_and_proportional(counts: list[int], data: st.DataObject) -> None:
    total = data.draw(st.integers(len(counts), sum(counts)))
    alloc = allocate(np.array(counts), total)
    assert alloc.sum() == total and (alloc >= 1).all() and (alloc <= np.array(counts)).all()
    exact = np.array(counts) * total / sum(counts)
    if (exact >= 1).all():  # the at-least-one rule never binds: largest remainder is within 1 of exact
        assert (np.abs(alloc - exact) < 1).all()
    else:  # classes raised to 1 are paid for by the others, never below 1
        assert (alloc[exact < 1] == 1).all()


def test_allocate_examples() -> None:
    assert allocate(np.array([50, 50]), 10).tolist() == [5, 5]
    assert allocate(np.array([90, 9, 1]), 10).tolist() == [8, 1, 1]  # every class keeps one
    with pytest.raises(ValueError):
        allocate(np.array([5, 5, 5]), 2)


def test_subset_size_and_balance() -> None:
    labels = np.repeat(np.arange(3), [100, 50, 10])
    chosen = stratified_subset(labels, 16, np.random.default_rng(0))
    assert len(chosen) == 16 and len(set(chosen.tolist())) == 16
    assert np.bincount(labels[chosen]).tolist() == [10, 5, 1]
    assert np.array_equal(stratified_subset(labels, 999, np.random.default_rng(0)), np.arange(160))


def test_moments_give_exact_mean_and_std() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    moments = pixel_moments(images)
    assert moments.shape == (50, 2, 3) and moments.dtype == np.int64
    np.testing.assert_array_equal(moments[:, 0], images.reshape(50, -1, 3).sum(axis=1))
    mean, std = mean_std(moments[10:30], 64)
    pixels = images[10:30].reshape(-1, 3) / 255.0
    np.testing.assert_allclose(mean, pixels.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, pixels.std(axis=0), rtol=1e-9)


def test_flat_channel_gets_unit_std() -> None:
    images = np.full((4, 8, 8, 3), 9, dtype=np.uint8)
    mean, std = mean_std(pixel_moments(images), 64)
    assert std == (1.0, 1.0, 1.0) and mean[0] == pytest.approx(9 / 255)
