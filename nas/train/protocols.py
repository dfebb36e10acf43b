"""The data interface training consumes, as structural types.

Training depends on these protocols, not on :mod:`nas.data`: anything with the same attributes
works (the tests use tiny in-memory fakes), and importing :mod:`nas.train` never imports the
data package. The default batch iterator, ``nas.data.TensorBatches``, is imported lazily the
first time a run needs it (:func:`default_batches_factory`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np
import torch

__all__ = ["ImageArraysLike", "SplitsLike", "BatchesFactory", "default_batches_factory"]


class ImageArraysLike(Protocol):
    """One split held in memory: ``images`` uint8 ``(N, H, W, 3)``, ``labels`` int64 ``(N,)``."""

    @property
    def images(self) -> np.ndarray: ...

    @property
    def labels(self) -> np.ndarray: ...

    def __len__(self) -> int: ...


class SplitsLike(Protocol):
    """Train/validation(/test) splits with the normalisation statistics of the training split."""

    @property
    def train(self) -> ImageArraysLike: ...

    @property
    def val(self) -> ImageArraysLike: ...

    @property
    def test(self) -> ImageArraysLike | None: ...

    @property
    def mean(self) -> tuple[float, ...]: ...

    @property
    def std(self) -> tuple[float, ...]: ...

    @property
    def num_classes(self) -> int: ...


class BatchesFactory(Protocol):
    """Makes one pass of ``(images, labels)`` batches over ``arrays``.

    The images are float32, normalised, ``(B, 3, H, W)`` (channels-last memory when asked), the
    labels int64, both on ``device``. All randomness (shuffling, augmentation) must come from
    ``generator``, a CPU :class:`torch.Generator`, so that a run is reproducible and resumable
    from the generator's saved state. ``augment`` asks for random crops and, unless ``flip`` is
    False, horizontal flips. ``nas.data.TensorBatches`` has this signature.
    """

    def __call__(self, arrays: ImageArraysLike, *, mean: tuple[float, ...], std: tuple[float, ...],
                 batch_size: int, device: torch.device, augment: bool, shuffle: bool, drop_last: bool,
                 channels_last: bool, generator: torch.Generator,
                 flip: bool) -> Iterable[tuple[torch.Tensor, torch.Tensor]]: ...


def default_batches_factory() -> BatchesFactory:
    """``nas.data.TensorBatches``, imported on first use (the data package is optional here)."""
    from nas.data import TensorBatches

    return TensorBatches
