"""Batch augmentation on tensors: the standard CIFAR recipe (pad-and-crop, horizontal flip).

torchvision is not a dependency, and per-sample Python loops are slow, so the whole batch is
augmented with one gather: pad by ``pad`` zeros on every side, draw a crop offset per sample,
build per sample the flat indices ``row * padded_width + col`` of its crop (columns reversed
for the samples being flipped) and gather them from the flattened padded planes, all channels
at once (about 0.4 ms for 128 CIFAR images on one CPU core; a 4-D advanced index was 10x
slower). Works for any dtype (we apply it to uint8, before normalisation, so padding is black
like torchvision's ``RandomCrop``) and on any device; the random draws come from
``generator`` so a seeded generator reproduces the exact augmentation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["random_crop_flip"]


def random_crop_flip(batch: torch.Tensor, *, pad: int, generator: torch.Generator | None,
                     flip: bool = True) -> torch.Tensor:
    """Random crop of each ``(B, C, H, W)`` sample from its ``pad``-zero-padded version, then flip with p=0.5.

    Offsets are uniform over the ``(2 * pad + 1) ** 2`` positions. ``pad=0`` only flips;
    ``flip=False`` only crops (digits and text, which a mirror changes; no flip is drawn).
    ``generator=None`` uses torch's global RNG. Random numbers are drawn on the generator's
    device and moved to the batch's (a few bytes per sample).
    """
    if batch.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) batch, got shape {tuple(batch.shape)}")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    b, _, h, w = batch.shape
    rng_device = generator.device if generator is not None else batch.device
    offsets = torch.randint(0, 2 * pad + 1, (2, b), generator=generator, device=rng_device).to(batch.device)
    mirrored = (torch.rand(b, generator=generator, device=rng_device) < 0.5).to(batch.device) if flip else None

    padded = F.pad(batch, (pad, pad, pad, pad)) if pad else batch
    c, width = batch.shape[1], w + 2 * pad
    rows = offsets[0, :, None] + torch.arange(h, device=batch.device)  # (B, H)
    cols = offsets[1, :, None] + torch.arange(w, device=batch.device)  # (B, W)
    if mirrored is not None:
        cols = torch.where(mirrored[:, None], cols.flip(1), cols)
    # One gather over the flattened padded planes: index (row * padded_width + col), shared by channels.
    flat_index = (rows[:, :, None] * width + cols[:, None, :]).reshape(b, 1, h * w).expand(b, c, h * w)
    return padded.reshape(b, c, -1).gather(2, flat_index).reshape(b, c, h, w)
