"""Resizing whole uint8 image arrays (sources that arrive as arrays: digits, CIFAR python batches).

Bilinear interpolation with ``torch.nn.functional.interpolate`` (``align_corners=False``).
When shrinking we pass ``antialias=True`` so the result matches Pillow's ``BILINEAR`` resize,
which the image-folder loader uses, instead of aliasing by sampling every n-th pixel.
Results are rounded and clipped back to uint8. Work is chunked to bound the float32 working set.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["resize_images"]

_CHUNK_BYTES = 64 * 2**20


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 ``(N, H, W, C)`` (or float ``(N, H, W, C)`` in 0..255) to uint8 ``(N, size, size, C)``."""
    n, h, w, c = images.shape
    if (h, w) == (size, size) and images.dtype == np.uint8:
        return images
    out = np.empty((n, size, size, c), dtype=np.uint8)
    antialias = size < max(h, w)
    step = max(1, _CHUNK_BYTES // (max(h * w, size * size) * c * 4))
    for start in range(0, n, step):
        block = torch.from_numpy(np.ascontiguousarray(images[start : start + step], dtype=np.float32))
        block = block.permute(0, 3, 1, 2)
        if (h, w) != (size, size):
            block = F.interpolate(block, size=(size, size), mode="bilinear", align_corners=False, antialias=antialias)
        block = block.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        out[start : start + step] = block.numpy()
    return out
