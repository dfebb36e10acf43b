"""The data of a final training: every labelled training image, and the untouched test split.

Decision: the final recipe trains on the source's *whole* training set, i.e. the search's
train and validation splits together (as the MobileNet and CSE papers train on all 50,000
CIFAR-10 training images). The validation split was for choosing architectures, which is
over; what remains held out is the test split, which is used here and nowhere else.

``train_model`` still evaluates a ``val`` split after every epoch; it gets a monitoring split:
the search's validation images (at most ``MONITOR_MAX``; with ``subset``, a tenth of the
subset), which are *part of the training set* here, so that figure (``val_acc`` in
``metrics.csv``, ``monitor_acc`` in the results) tracks how well the training set is fitted
and is not a held-out accuracy. Only ``test_acc`` is.

``subset`` (CPU-scale checks) keeps a stratified subset of the training images, drawn with a
fixed seed so every training seed sees the same images; ``test_subset`` likewise keeps part
of the test split. Both are recorded in every result and flagged in the report.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.data import DatasetSplits, ImageArrays, content_key, load_dataset
from nas.data.arrays import SplitsShape
from nas.data.splits import stratified_subset
from nas.errors import DataError

__all__ = ["FinalSplits", "final_splits", "same_data", "only_contents_differ", "CONTENTS_CHANGED", "MONITOR_MAX",
           "SUBSET_SEED", "MONITOR_LABEL"]

MONITOR_MAX = 1000
#: How the monitoring split is named in per-epoch progress lines (``val`` would claim it is held out).
MONITOR_LABEL = "monitor"
SUBSET_SEED = 0


@dataclass(frozen=True, eq=False)
class FinalSplits(SplitsShape):
    """``SplitsLike`` for :func:`nas.train.train_model`, plus the test split and provenance."""

    train: ImageArrays
    val: ImageArrays  # monitoring only: these images are also in ``train``
    test: ImageArrays
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    source: str
    subset: int | None
    test_subset: int | None
    conversion: str | None = None  # how the source images were converted (nas.data.formats), for the log
    content: str | None = None  # an image folder's content key (nas.data.content_key); None for fixed sources

    def identity(self) -> dict[str, object]:
        """What makes two trainings on this data the same (for caches and resume checks). An image folder's
        includes its content key, so that images rewritten under the same path and counts are other data."""
        identity: dict[str, object] = {"source": self.source, "input_size": self.input_size, "train": len(self.train),
                                       "test": len(self.test), "subset": self.subset, "test_subset": self.test_subset}
        if self.content is not None:
            identity["content"] = self.content
        return identity


#: What to do when only an image folder's contents differ from a stored training's (the path and counts agree).
CONTENTS_CHANGED = ("the images under that path were added, removed, renamed, rewritten or touched (a new "
                    "modification time) since; restore them")


def _without_content(identity: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in identity.items() if k != "content"}


def same_data(stored: Any, current: Any) -> bool:
    """Whether a stored data identity (:meth:`FinalSplits.identity`) is ``current``'s; one recorded before image
    folders' contents were keyed is compared without the key."""
    if isinstance(stored, dict) and isinstance(current, dict) and "content" not in stored:
        return stored == _without_content(current)
    return bool(stored == current)


def only_contents_differ(stored: Any, current: Any) -> bool:
    """Whether two data identities differ by the image folder's contents alone (same path, counts and subsets)."""
    return (isinstance(stored, dict) and isinstance(current, dict) and stored != current
            and _without_content(stored) == _without_content(current))


def _concat(a: ImageArrays, b: ImageArrays) -> ImageArrays:
    return ImageArrays(images=np.concatenate([a.images, b.images]), labels=np.concatenate([a.labels, b.labels]))


def _subset(arrays: ImageArrays, size: int, what: str, source: str, rng: np.random.Generator) -> ImageArrays:
    present = len(np.unique(arrays.labels))
    if size < present:
        raise DataError(f"{source}: {what}={size} is smaller than the number of classes ({present}); every class "
                        f"needs an image; use {what} >= {present}")
    return arrays.subset(stratified_subset(arrays.labels, size, rng))


def final_splits(data: str | os.PathLike[str], *, input_size: int, subset: int | None = None,
                 test_subset: int | None = None, progress: bool = True,
                 loaded: DatasetSplits | None = None) -> FinalSplits:
    """Load ``data`` at ``input_size`` and merge train + validation (see the module docstring)."""
    for name, value in (("subset", subset), ("test_subset", test_subset)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise DataError(f"--{name.replace('_', '-')}: expected a positive number of images, got {value!r}")
    splits = loaded if loaded is not None else load_dataset(data, input_size=input_size, seed=0, progress=progress)
    if splits.test is None or len(splits.test) == 0:
        raise DataError(f"{splits.source}: has no test split, and the final accuracy is measured on one; add a "
                        f"test/<class>/ folder beside train/ (images never used in training or search)")
    rng = np.random.default_rng(SUBSET_SEED)
    train = _concat(splits.train, splits.val)
    monitor = splits.val
    if subset is not None:
        train = _subset(train, subset, "subset", splits.source, rng)
        monitor = _subset(train, min(len(train), max(subset // 10, 2 * len(splits.classes))), "subset",
                          splits.source, rng)
    if len(monitor) > MONITOR_MAX:
        monitor = _subset(monitor, MONITOR_MAX, "monitor", splits.source, rng)
    test = splits.test
    if test_subset is not None and test_subset < len(test):
        test = _subset(test, test_subset, "test_subset", splits.source, rng)
    return FinalSplits(train=train, val=monitor, test=test, mean=splits.mean, std=splits.std, classes=splits.classes,
                       source=splits.source, subset=subset, test_subset=test_subset, conversion=splits.conversion,
                       content=content_key(data, input_size=input_size))
