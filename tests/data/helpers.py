"""Helpers for the nas.data tests: real CIFAR pixels and CIFAR python batch files in the real format."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "SAMPLE_CLASSES",
    "TRAIN_PER_CLASS",
    "TEST_PER_CLASS",
    "CIFAR_ALL_CLASSES",
    "first_files",
    "read_rgb",
    "cifar_batch_pixels",
    "write_batch",
    "write_meta",
    "py2_batch_pickle",
]

SAMPLE_CLASSES = ("airplane", "cat", "ship")
TRAIN_PER_CLASS = 20
TEST_PER_CLASS = 8
CIFAR_ALL_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


def first_files(folder: Path, count: int, offset: int = 0) -> list[Path]:
    """The shared CIFAR folder names its images 0000.jpg, 0001.jpg, ...; no listing of 5,000 files needed."""
    paths = [folder / f"{i:04d}.jpg" for i in range(offset, offset + count)]
    missing = [p for p in paths if not p.is_file()]
    assert not missing, f"the shared CIFAR-10 folder lacks {missing[0]}"
    return paths


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def cifar_batch_pixels(cifar10_root: Path, split: str, per_class: int, offset: int) -> tuple[np.ndarray, list[int]]:
    """Real CIFAR pixels as NHWC uint8 plus labels: ``per_class`` images of each of the 10 classes."""
    images, labels = [], []
    for label, name in enumerate(CIFAR_ALL_CLASSES):
        for path in first_files(cifar10_root / split / name, per_class, offset):
            images.append(read_rgb(path))
            labels.append(label)
    return np.stack(images), labels


def write_batch(path: Path, images_nhwc: np.ndarray, labels: list[int], *, str_keys: bool = False) -> None:
    """Pickle one batch exactly as the CIFAR-10 python files are laid out (protocol 2, CHW rows)."""
    data = np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2).reshape(len(images_nhwc), -1))
    batch = {
        b"batch_label": b"training batch",
        b"labels": list(labels),
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
    }
    if str_keys:
        batch = {key.decode(): value for key, value in batch.items()}
    path.write_bytes(pickle.dumps(batch, protocol=2))


def write_meta(path: Path, names: tuple[str, ...] = CIFAR_ALL_CLASSES) -> None:
    meta = {b"num_cases_per_batch": 10, b"label_names": [n.encode() for n in names], b"num_vis": 3072}
    path.write_bytes(pickle.dumps(meta, protocol=2))


def _short(data: bytes) -> bytes:
    return b"U" + bytes([len(data)]) + data  # SHORT_BINSTRING: a Python 2 str


def _int(value: int) -> bytes:
    return b"K" + bytes([value]) if value < 256 else b"M" + value.to_bytes(2, "little")  # BININT1 / BININT2


def py2_batch_pickle(images_nhwc: np.ndarray, labels: list[int]) -> bytes:
    """A batch pickle byte-for-byte in the style of the original files (cPickle protocol 2, Python 2, numpy 1).

    Python 3 cannot write this (its bytes become ``_codecs.encode`` calls and numpy 2 names
    ``numpy._core``), so the opcodes are assembled by hand: Python 2 ``str`` as
    (SHORT_)BINSTRING, arrays rebuilt by ``numpy.core.multiarray._reconstruct``.
    """
    n = len(images_nhwc)
    raw = np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2).reshape(n, -1)).tobytes()
    dtype = (
        b"cnumpy\ndtype\n" + _short(b"u1") + b"K\x00K\x01\x87R"
        + b"(K\x03" + _short(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    )  # fmt: skip
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + b"K\x00\x85" + _short(b"b") + b"\x87R"
        + b"(K\x01" + _int(n) + _int(3072) + b"\x86" + dtype + b"\x89"
        + b"T" + len(raw).to_bytes(4, "little") + raw + b"tb"
    )  # fmt: skip
    label_list = b"](" + b"".join(_int(label) for label in labels) + b"e"
    return b"\x80\x02}(" + _short(b"data") + array + _short(b"labels") + label_list + b"u."
