"""Datasets: image folders, CIFAR-10 python batches and the embedded digits, as uint8 arrays.

* :func:`load_dataset` detects the source, loads it (decoding image folders once and
  caching the arrays on disk), carves a stratified, seeded validation split from the
  training set and computes the normalisation statistics of the train split
  (:class:`DatasetSplits`).
* :class:`TensorBatches` puts one split on a device and serves normalised, optionally
  shuffled and augmented (:func:`random_crop_flip`) float batches.

One module per concept: :mod:`~nas.data.arrays` (the dataclasses), :mod:`~nas.data.load`
(detection and splitting), :mod:`~nas.data.folder`, :mod:`~nas.data.cache`,
:mod:`~nas.data.cifar_python` with :mod:`~nas.data.safe_pickle`, :mod:`~nas.data.digits`,
:mod:`~nas.data.splits`, :mod:`~nas.data.stats`, :mod:`~nas.data.resize`,
:mod:`~nas.data.augment` and :mod:`~nas.data.batches`.
"""

from __future__ import annotations

from nas.data.arrays import DatasetSplits, ImageArrays
from nas.data.augment import random_crop_flip
from nas.data.batches import TensorBatches
from nas.data.cache import default_cache_dir
from nas.data.load import content_key, load_dataset

__all__ = [
    "ImageArrays",
    "DatasetSplits",
    "load_dataset",
    "content_key",
    "TensorBatches",
    "random_crop_flip",
    "default_cache_dir",
]
