"""The embedded offline dataset: scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes).

It ships inside scikit-learn, so examples, CI and smoke tests run with no download and no
data folder. Conversion: pixel values 0..16 are scaled to 0..255, the 8x8 images are
upsampled to ``input_size`` with bilinear interpolation (:mod:`nas.data.resize`) and the
gray channel is replicated to three channels so every model sees RGB-shaped input.

The dataset has no test split of its own. We hold out a stratified 20 % as test with a
*fixed* seed (:data:`TEST_SEED`), not the caller's seed: the test set must be the same in
every run, or "final test accuracy" would mean a different thing per seed. Validation is
then carved from the remaining 80 % by :func:`nas.data.load_dataset` with the caller's seed.
"""

from __future__ import annotations

import numpy as np

from nas.data.arrays import ImageArrays, RawSource
from nas.data.formats import conversion_note
from nas.data.resize import resize_images
from nas.data.splits import stratified_holdout
from nas.data.stats import pixel_moments

__all__ = ["DIGITS", "TEST_FRACTION", "TEST_SEED", "load_digits_source"]

DIGITS = "digits"
TEST_FRACTION = 0.2
TEST_SEED = 20_240_601


def load_digits_source(*, input_size: int) -> RawSource:
    """The digits as a :class:`RawSource`: 80 % train (to be split further) and the fixed 20 % test."""
    from sklearn.datasets import load_digits  # imported lazily: sklearn takes a while to import

    bunch = load_digits()
    gray = np.asarray(bunch.images, dtype=np.float32) * (255.0 / 16.0)  # (N, 8, 8) in 0..255
    images = resize_images(np.repeat(gray[..., None], 3, axis=3), input_size)
    labels = np.asarray(bunch.target, dtype=np.int64)
    train_idx, test_idx = stratified_holdout(labels, TEST_FRACTION, np.random.default_rng(TEST_SEED))
    train = ImageArrays(images=images[train_idx], labels=labels[train_idx])
    test = ImageArrays(images=images[test_idx], labels=labels[test_idx])
    return RawSource(
        train=train,
        test=test,
        classes=tuple(str(d) for d in range(10)),
        source="digits (embedded scikit-learn 8x8)",
        train_moments=pixel_moments(train.images),
        conversion=conversion_note("digits (embedded scikit-learn 8x8)", {(8, 8, "L"): len(labels)}, input_size),
    )
