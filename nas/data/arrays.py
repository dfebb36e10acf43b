"""Datasets as plain arrays: one split (:class:`ImageArrays`) and a whole dataset (:class:`DatasetSplits`).

Decisions:

* Images are ``uint8`` NHWC with exactly three channels, whatever the source. uint8 keeps a
  CIFAR-sized training set at 150 MB (float32 would be 600 MB) and lets the training loop put
  the whole split on the GPU once; normalisation happens per batch (:mod:`nas.data.batches`).
* The dataclasses are frozen but compare by identity (``eq=False``): element-wise ``==`` on
  arrays has no single truth value, and nobody needs to compare datasets. Their ``repr``
  shows sizes, not pixels.
* Shape and dtype are checked on construction. A violation is a bug in the code that built
  the arrays (user input is validated by the loaders, with :class:`~nas.errors.DataError`),
  so it raises ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ImageArrays", "DatasetSplits", "SplitsShape", "RawSource"]


@dataclass(frozen=True, eq=False, repr=False)
class ImageArrays:
    """One split: ``images`` uint8 ``(N, H, W, 3)`` and ``labels`` int64 ``(N,)``."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(f"images must be a uint8 array of shape (N, H, W, 3), got {_describe(images)}")
        if images.shape[3] != 3:
            raise ValueError(f"images must have 3 channels (N, H, W, 3), got shape {images.shape}")
        if not isinstance(labels, np.ndarray) or labels.dtype != np.int64 or labels.ndim != 1:
            raise ValueError(f"labels must be an int64 array of shape (N,), got {_describe(labels)}")
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:  # the default would print the pixels
        return f"ImageArrays(n={len(self)}, image_shape={tuple(self.images.shape[1:])})"

    def subset(self, indices: np.ndarray) -> ImageArrays:
        """The samples at ``indices`` (integer positions, in that order, or a boolean mask), as a copy."""
        indices = np.asarray(indices)
        indices = np.flatnonzero(indices) if indices.dtype == np.bool_ else indices.astype(np.int64, copy=False)
        return ImageArrays(images=self.images[indices], labels=self.labels[indices])


class SplitsShape:
    """``num_classes`` and ``input_size`` of any splits with ``classes`` and ``train`` images (N, H, W, C)."""

    classes: tuple[str, ...]
    train: ImageArrays

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_size(self) -> int:
        return int(self.train.images.shape[1])


@dataclass(frozen=True, eq=False, repr=False)
class DatasetSplits(SplitsShape):
    """A loaded dataset: train/val (carved from the source's training set) and the source's test split.

    ``mean``/``std`` are per-channel statistics of ``train`` only, in ``[0, 1]`` units, so
    normalisation never leaks information from validation or test images.
    """

    train: ImageArrays
    val: ImageArrays
    test: ImageArrays | None
    classes: tuple[str, ...]
    source: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    #: How the source images were converted for the network, in one line (None: they were not; see nas.data.formats).
    conversion: str | None = None

    def __post_init__(self) -> None:
        size = self.train.images.shape[1:3]
        for name, split in (("val", self.val), ("test", self.test)):
            if split is not None and split.images.shape[1:3] != size:
                raise ValueError(f"{name} images are {split.images.shape[1:3]}, train images are {size}")
        if size[0] != size[1]:
            raise ValueError(f"images must be square, got {size}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"mean/std need one value per channel (3), got {self.mean} / {self.std}")

    def __repr__(self) -> str:
        test = "None" if self.test is None else repr(self.test)
        return (
            f"DatasetSplits(source={self.source!r}, classes={len(self.classes)}, train={self.train!r}, "
            f"val={self.val!r}, test={test})"
        )



@dataclass(frozen=True, eq=False)
class RawSource:
    """What a source loader hands to :func:`nas.data.load_dataset`, before train/val splitting.

    ``train_moments`` holds, per training image, the per-channel pixel sum and sum of squares
    (int64 ``(N, 2, 3)``, see :mod:`nas.data.stats`), so the statistics of any subset of the
    training set are a cheap sum over rows.
    """

    train: ImageArrays
    test: ImageArrays | None
    classes: tuple[str, ...]
    source: str
    train_moments: np.ndarray
    conversion: str | None = None  # see DatasetSplits.conversion


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return type(value).__name__
