"""Tiny stand-ins for the data package and a tiny model, so training tests run in milliseconds.

The data is synthetic but learnable: each class has its own colour, painted as a square blob
at a random position on a noisy grey background, so the class is visible in the channel
means (a conv + global pooling network learns it within a few dozen steps).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["Arrays", "Splits", "FakeBatches", "make_splits", "TinyNet", "make_model", "PALETTE", "same_weights"]

PALETTE = np.array([[230, 40, 40], [40, 230, 40], [40, 40, 230], [230, 230, 40]], dtype=np.float64)


@dataclass(frozen=True)
class Arrays:
    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Splits:
    train: Arrays
    val: Arrays
    test: Arrays | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int


def _blobs(n: int, size: int, rng: np.random.Generator) -> Arrays:
    labels = rng.integers(0, len(PALETTE), size=n).astype(np.int64)
    images = rng.normal(128.0, 30.0, size=(n, size, size, 3))
    blob = size // 2
    for i, label in enumerate(labels):
        y, x = rng.integers(0, size - blob + 1, size=2)
        images[i, y:y + blob, x:x + blob] = PALETTE[label] + rng.normal(0.0, 20.0, size=(blob, blob, 3))
    return Arrays(np.clip(images, 0, 255).astype(np.uint8), labels)


def make_splits(*, train: int = 256, val: int = 128, size: int = 8, seed: int = 0) -> Splits:
    rng = np.random.default_rng(seed)
    tr, va = _blobs(train, size, rng), _blobs(val, size, rng)
    pixels = tr.images.reshape(-1, 3) / 255.0
    return Splits(tr, va, None, tuple(pixels.mean(0).tolist()), tuple(pixels.std(0).tolist()), len(PALETTE))


class FakeBatches:
    """The ``nas.data.TensorBatches`` protocol on in-memory arrays (flip augmentation only, so none without flip)."""

    def __init__(self, arrays: Arrays, *, mean: tuple[float, ...], std: tuple[float, ...], batch_size: int,
                 device: torch.device, augment: bool, shuffle: bool, drop_last: bool, channels_last: bool,
                 generator: torch.Generator, pad: int = 4, flip: bool = True) -> None:
        images = torch.from_numpy(arrays.images).permute(0, 3, 1, 2).float().div(255.0)
        self.images = (images - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        self.labels = torch.from_numpy(arrays.labels)
        self.batch_size, self.device, self.augment = batch_size, device, augment and flip
        self.shuffle, self.drop_last, self.generator = shuffle, drop_last, generator

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        stop = n - n % self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            idx = order[start:start + self.batch_size]
            x, y = self.images[idx], self.labels[idx]
            if self.augment:
                flip = torch.rand(len(idx), generator=self.generator) < 0.5
                x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
            yield x.to(self.device), y.to(self.device)


class TinyNet(nn.Module):
    """conv3x3 + BN + ReLU6 -> global average pool -> Linear; optional dropout uses the global RNG."""

    def __init__(self, *, width: int = 8, classes: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                      nn.ReLU6())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.pool(self.features(x)).flatten(1)))


def make_model(*, width: int = 8, dropout: float = 0.0, seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet(width=width, dropout=dropout)


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    """Whether two models hold bitwise the same state."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
