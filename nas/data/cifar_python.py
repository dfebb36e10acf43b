"""CIFAR-10 in the "python batches" layout (``cifar-10-batches-py``).

Layout: ``batches.meta`` (dict with ``label_names``), ``data_batch_1`` ... ``data_batch_N``
(training) and ``test_batch``. Each batch is a pickled dict with ``data`` (uint8
``(n, 3072)``, each row one image in CHW order: 1024 red, 1024 green, then 1024 blue values,
row-major) and ``labels`` (list of ints). The original files were written by Python 2, so the
keys load as ``bytes``; files re-pickled by Python 3 may have ``str`` keys; both are accepted.

Decisions:

* Files are unpickled only through the restricted :mod:`nas.data.safe_pickle`.
* Training batches must be numbered 1..N without gaps: a missing ``data_batch_3`` between
  existing ones is a broken extraction, not a smaller dataset. ``test_batch`` is optional; without
  it the dataset has no test split (``DatasetSplits.test is None``).
* Loading the batches is fast (a few hundred ms), so there is no on-disk cache here. Images are
  resized (bilinear, see :mod:`nas.data.resize`) when ``input_size != 32``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from nas.data.arrays import ImageArrays, RawSource
from nas.data.formats import conversion_note
from nas.data.resize import resize_images
from nas.data.safe_pickle import load_batch_file
from nas.data.stats import pixel_moments
from nas.errors import DataError

__all__ = ["is_cifar_python_dir", "load_cifar_python"]

_META = "batches.meta"
_TEST = "test_batch"
_TRAIN_PATTERN = re.compile(r"data_batch_([1-9][0-9]*)", re.ASCII)  # fullmatch; data_batch_01 is not batch 1
_SIDE = 32
_FIX = "Re-download or re-extract cifar-10-python.tar.gz."


def is_cifar_python_dir(path: Path) -> bool:
    """True when ``path`` holds ``batches.meta`` (the layout's marker file)."""
    return (path / _META).is_file()


def load_cifar_python(root: Path, *, input_size: int) -> RawSource:
    """Read every batch under ``root`` into arrays (labels follow ``label_names`` order)."""
    classes = _read_meta(root / _META)
    train_files = _train_batch_files(root)
    parts = [_read_batch(path, len(classes)) for path in train_files]
    train = _concat(parts, input_size)
    test_path = root / _TEST
    test = _concat([_read_batch(test_path, len(classes))], input_size) if test_path.exists() else None
    source = f"CIFAR python batches {root}"
    return RawSource(
        train=train,
        test=test,
        classes=classes,
        source=source,
        train_moments=pixel_moments(train.images),
        conversion=conversion_note(source, {(32, 32, "RGB"): len(train)}, input_size),
    )


def _train_batch_files(root: Path) -> list[Path]:
    numbers = sorted(int(m.group(1)) for p in root.iterdir() if (m := _TRAIN_PATTERN.fullmatch(p.name)))
    strays = sorted(p.name for p in root.iterdir()
                    if re.fullmatch(r"data_batch_\d+\s*", p.name) and not _TRAIN_PATTERN.fullmatch(p.name))
    if strays:  # e.g. a copy named data_batch_01: read as batch 1 it would put its images in train and val twice
        raise DataError(f"{root}: {', '.join(map(repr, strays))}: not a CIFAR batch name (data_batch_1 ... data_batch_N, "
                        f"without leading zeros); move it out of the folder. {_FIX}")
    if not numbers:
        raise DataError(
            f"{root}: found {_META} but no data_batch_1; a CIFAR python batches folder needs "
            f"data_batch_1 ... data_batch_5 beside {_META}. {_FIX}"
        )
    missing = sorted(set(range(1, numbers[-1] + 1)) - set(numbers))
    if missing:
        names = ", ".join(f"data_batch_{n}" for n in missing)
        raise DataError(
            f"{root}: CIFAR batch file(s) missing: {names} (found data_batch_{{{','.join(map(str, numbers))}}}; "
            f"batches must be numbered 1..N without gaps). {_FIX}"
        )
    return [root / f"data_batch_{n}" for n in numbers]


def _read_meta(path: Path) -> tuple[str, ...]:
    meta = load_batch_file(path)
    names = _get(meta, "label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(
            f"{path}: malformed CIFAR meta file: expected a dict whose 'label_names' is a non-empty list of "
            f"strings, found {_summary(meta)}. {_FIX}"
        )
    return tuple(n.decode("utf-8", errors="replace") if isinstance(n, bytes) else n for n in names)


def _read_batch(path: Path, num_classes: int) -> ImageArrays:
    if not path.is_file():
        raise DataError(f"{path}: CIFAR batch file missing or not a file. {_FIX}")
    batch = load_batch_file(path)
    data = _get(batch, "data") if isinstance(batch, dict) else None
    labels = _get(batch, "labels") if isinstance(batch, dict) else None
    values = _SIDE * _SIDE * 3
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == values):
        raise DataError(
            f"{path}: malformed CIFAR batch: expected 'data' to be a uint8 array of shape (n, {values}), "
            f"found {_summary(data)}. {_FIX}"
        )
    try:
        label_array = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        label_array = np.empty((0, 0))
    if label_array.ndim != 1 or len(label_array) != len(data):
        raise DataError(
            f"{path}: malformed CIFAR batch: expected 'labels' to be a list of {len(data)} integers "
            f"(one per image), found {_summary(labels)}. {_FIX}"
        )
    if len(label_array) and (label_array.min() < 0 or label_array.max() >= num_classes):
        raise DataError(
            f"{path}: malformed CIFAR batch: labels must lie in 0..{num_classes - 1} (one per name in "
            f"{_META}), found {int(label_array.min())}..{int(label_array.max())}. {_FIX}"
        )
    images = data.reshape(-1, 3, _SIDE, _SIDE).transpose(0, 2, 3, 1)  # CHW rows -> NHWC
    return ImageArrays(images=np.ascontiguousarray(images), labels=label_array)


def _concat(parts: list[ImageArrays], input_size: int) -> ImageArrays:
    images = np.concatenate([p.images for p in parts]) if len(parts) > 1 else parts[0].images
    labels = np.concatenate([p.labels for p in parts])
    return ImageArrays(images=resize_images(images, input_size), labels=labels)


def _get(mapping: dict[Any, Any], key: str) -> Any:
    """``mapping[key]`` for a bytes (Python 2 era) or str key; None when absent."""
    if key.encode() in mapping:
        return mapping[key.encode()]
    return mapping.get(key)


def _summary(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    if isinstance(value, dict):
        keys = ", ".join(repr(k) for k in list(value)[:6])
        return f"a dict with keys {keys}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)} items"
    return "nothing" if value is None else f"a {type(value).__name__}"
