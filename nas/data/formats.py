"""What the source images look like, and the one line that says how they are converted for the network.

Networks take square RGB images of their input size; sources may hold other sizes and other
modes (MNIST: 28x28 grayscale). :func:`conversion_note` says so once, at load time, naming the
source size and channels and the target, instead of converting silently. Image folders are
described by the first image of each class folder (its header only; checking every image
would cost a read of each file on every load); the embedded digits and CIFAR python batches
have one known format.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from PIL import Image

__all__ = ["ImageFormat", "conversion_note", "folder_formats"]

#: (width, height, Pillow mode) of source images.
ImageFormat = tuple[int, int, str]

_MODES: dict[str, tuple[str, int]] = {
    "1": ("1-bit", 1), "L": ("grayscale", 1), "P": ("palette", 1), "LA": ("grayscale + alpha", 2),
    "PA": ("palette + alpha", 2), "I": ("32-bit grayscale", 1), "I;16": ("16-bit grayscale", 1),
    "F": ("float grayscale", 1), "RGB": ("RGB", 3), "RGBA": ("RGBA", 4), "CMYK": ("CMYK", 4),
    "YCbCr": ("YCbCr", 3), "LAB": ("Lab", 3), "HSV": ("HSV", 3),
}
_GRAY = {"1", "L", "LA", "I", "I;16", "F"}


def _describe(fmt: ImageFormat) -> str:
    width, height, mode = fmt
    words, channels = _MODES.get(mode, (mode, 0))
    return f"{width}x{height} {words}" + (f" ({channels} channel{'' if channels == 1 else 's'})" if channels else "")


def _changes(formats: Mapping[ImageFormat, int], size: int) -> list[str]:
    modes = {mode for _, _, mode in formats}
    changes = []
    if any((w, h) != (size, size) for w, h, _ in formats):
        changes.append("resized bilinearly")
    if modes & _GRAY:
        changes.append("the gray channel replicated to 3")
    if modes & {"P", "PA"}:
        changes.append("palette expanded")
    if modes & {"RGBA", "LA", "PA"}:
        changes.append("alpha dropped")
    return changes


def conversion_note(source: str, formats: Mapping[ImageFormat, int], size: int, *, sampled: str = "") -> str | None:
    """One line naming the source format(s) and the target, or None when the images already are ``size`` RGB."""
    if not formats or set(formats) == {(size, size, "RGB")}:
        return None
    common = [fmt for fmt, _ in Counter(formats).most_common(3)]
    seen = ", ".join(_describe(fmt) for fmt in common) + (" and others" if len(formats) > 3 else "")
    how = "; ".join(_changes(formats, size)) or "converted"
    return (f"{source}: images are {seen}{f' ({sampled})' if sampled else ''}, converted to {size}x{size} RGB "
            f"(3 channels) for the network: {how}")


def folder_formats(root: Path, relpaths_by_class: Mapping[str, str]) -> dict[ImageFormat, int]:
    """The formats of the given images (one per class folder), read from their headers only."""
    out: Counter[ImageFormat] = Counter()
    for relpath in relpaths_by_class.values():
        try:
            with Image.open(root / relpath) as image:
                out[(image.width, image.height, image.mode)] += 1
        except (OSError, ValueError, SyntaxError):
            continue  # decoding reports a bad image, naming it
    return dict(out)
