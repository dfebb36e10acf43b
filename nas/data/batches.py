"""``TensorBatches``: one split held on a device as uint8, served as normalised float32 batches.

Why not ``torch.utils.data.DataLoader``: our datasets fit in (GPU) memory as uint8
(CIFAR-10 train is 150 MB), so the fastest pipeline is to copy them to the device once and
index, augment and normalise whole batches there. A DataLoader would collate per sample on
the CPU and copy every batch. Here, per batch: ``index_select`` on uint8, optional
:func:`~nas.data.augment.random_crop_flip`, then one fused convert-and-normalise
``x * (1 / (255 * std)) - mean / std``.

Randomness (the epoch's shuffle and the augmentation) all comes from ``generator``, so a
seeded generator replays the same epochs; ``None`` falls back to torch's global RNG. The
permutation is drawn on the generator's device and moved to the data's (a few KB per epoch).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from nas.data.arrays import ImageArrays
from nas.data.augment import random_crop_flip

__all__ = ["TensorBatches"]


class TensorBatches:
    """Holds one split as a uint8 tensor (N, C, H, W) on a device and yields normalised float batches.

    Yields ``(images, labels)``: float32 ``(B, C, H, W)`` normalised with ``mean``/``std``
    (``[0, 1]`` units, per channel) and int64 ``(B,)``. ``channels_last=True`` stores the
    images and returns batches in ``torch.channels_last`` memory format (faster convolutions
    on GPUs with tensor cores). ``drop_last`` drops a final partial batch (useful with
    batch norm, whose statistics a batch of 1 breaks). ``augment`` crops (``pad``) and, unless
    ``flip`` is False, mirrors half the images.
    """

    def __init__(
        self,
        arrays: ImageArrays,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        batch_size: int,
        device: torch.device | str = "cpu",
        augment: bool = False,
        shuffle: bool = False,
        drop_last: bool = False,
        pad: int = 4,
        channels_last: bool = False,
        generator: torch.Generator | None = None,
        flip: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        channels = arrays.images.shape[3]
        if len(mean) != channels or len(std) != channels:
            raise ValueError(f"mean/std need {channels} values (one per channel), got {list(mean)} / {list(std)}")
        if min(std) <= 0:
            raise ValueError(f"std values must be > 0, got {list(std)}")
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.augment = augment
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.pad = pad
        self.flip = flip
        self.channels_last = channels_last
        self.generator = generator

        images = arrays.images if arrays.images.flags.writeable else arrays.images.copy()
        # NHWC numpy memory *is* channels_last NCHW: permute is free, .contiguous() makes NCHW.
        nchw = torch.from_numpy(images).permute(0, 3, 1, 2)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.images = nchw.to(self.device).contiguous(memory_format=fmt)
        self.labels = torch.from_numpy(np.ascontiguousarray(arrays.labels, dtype=np.int64)).to(self.device)
        mean_t = torch.tensor(list(mean), dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        std_t = torch.tensor(list(std), dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self._scale = 1.0 / (255.0 * std_t)
        self._shift = -mean_t / std_t

    def __len__(self) -> int:
        n = int(self.labels.shape[0])
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = int(self.labels.shape[0])
        order: torch.Tensor | None = None
        if self.shuffle:
            rng_device = self.generator.device if self.generator is not None else torch.device("cpu")
            order = torch.randperm(n, generator=self.generator, device=rng_device).to(self.device)
        for i in range(len(self)):
            start = i * self.batch_size
            stop = min(start + self.batch_size, n)
            if order is None:
                images, labels = self.images[start:stop], self.labels[start:stop]
            else:
                index = order[start:stop]
                images, labels = self.images.index_select(0, index), self.labels.index_select(0, index)
            if self.augment:
                images = random_crop_flip(images, pad=self.pad, generator=self.generator, flip=self.flip)
            batch = torch.addcmul(self._shift, images.to(torch.float32), self._scale)
            if self.channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            yield batch, labels
