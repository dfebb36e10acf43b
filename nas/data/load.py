"""``load_dataset``: detect the source, load it, carve validation (and an optional subset), compute stats.

Source detection, in order:

1. the string ``"digits"``: the embedded scikit-learn digits (a folder of that name in the
   working directory must be written ``"./digits"``);
2. a directory with a ``train/`` sub-folder: an image folder (:mod:`nas.data.folder`);
3. a directory with ``batches.meta``: CIFAR python batches (:mod:`nas.data.cifar_python`).

The training images must span at least two classes (a one-class "classifier" scores 100 %).

Splits. Validation is ``round(val_fraction * n)`` images of every class of ``n`` training
images (at least one per class on each side), drawn with a numpy Generator seeded from
``seed``, so the same seed gives the same split. ``subset=K`` then keeps a stratified ``K``
of the remaining training images (all of them if ``K`` is larger; every class keeps at least
one, so ``K`` must be at least the number of classes) and caps validation at
``max(K // 4, 2 * C)`` images (``C`` = classes with images), also stratified: a proxy run
on 1,000 CIFAR images evaluates on 250, not on 5,000, and a tiny run still sees two
validation images per class. The subset draws come from a second, independent stream
(``numpy.random.SeedSequence(seed).spawn(2)``), so they do not shift the validation split.
The test split is returned exactly as the source has it, never subset: search code must
not look at it, and the final evaluation must see all of it. ``mean``/``std`` come from the
final train split only.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nas.data.arrays import DatasetSplits, RawSource
from nas.data.cifar_python import is_cifar_python_dir, load_cifar_python
from nas.data.digits import DIGITS, load_digits_source
from nas.data.folder import image_folder_key, load_image_folder
from nas.data.splits import stratified_holdout, stratified_subset
from nas.data.stats import mean_std
from nas.errors import DataError

__all__ = ["load_dataset", "content_key", "MIN_INPUT_SIZE"]

MIN_INPUT_SIZE = 8

_FORMS = (
    "accepted sources: 'digits' (the embedded dataset); an image-folder root holding "
    "train/<class>/*.jpg (and optionally test/<class>/...); or a CIFAR-10 python batches folder "
    "(cifar-10-batches-py, with batches.meta and data_batch_1..5)"
)


def load_dataset(
    source: str | os.PathLike[str],
    *,
    input_size: int,
    val_fraction: float = 0.1,
    seed: int = 0,
    subset: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> DatasetSplits:
    """Load ``source`` as square ``input_size`` RGB uint8 arrays split into train/val(/test).

    ``source``: ``"digits"``, an image-folder root or a CIFAR python batches folder (see the
    module docstring). ``val_fraction`` in ``(0, 0.5]``; ``seed`` fixes validation and subset
    draws; ``subset`` caps the training (and validation) set for fast proxy runs;
    ``cache_dir`` is where decoded image folders are cached (default ``$NAS_CACHE_DIR`` or
    ``~/.cache/nas/datasets``); ``progress`` shows a progress bar while decoding.
    Raises :class:`~nas.errors.DataError` for any problem with the options or the data.
    """
    _check_options(input_size, val_fraction, subset, seed)
    raw = _load_source(source, input_size, None if cache_dir is None else Path(cache_dir).expanduser(), progress)

    labels = raw.train.labels
    counts = np.bincount(labels, minlength=len(raw.classes))
    present = int(np.count_nonzero(counts))
    if present < 2:
        found = ", ".join(repr(raw.classes[i]) for i in np.flatnonzero(counts)) or "none"
        raise DataError(
            f"{raw.source}: training images in {present} class ({found}); a classifier needs at least 2 classes "
            "(with one, every network scores 100 %). Add images of other classes; in an image folder each class "
            "has its own folder, train/<class>/*.jpg."
        )
    single = [raw.classes[i] for i in np.flatnonzero(counts == 1)]
    if single:
        raise DataError(
            f"{raw.source}: class(es) {', '.join(map(repr, single))} have a single training image; carving a "
            "validation split needs at least 2 per class. Add images to those classes or remove them."
        )
    split_rng, subset_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    train_idx, val_idx = stratified_holdout(labels, val_fraction, split_rng)
    if subset is not None:
        if subset < present:
            raise DataError(
                f"{raw.source}: subset={subset} is smaller than the number of classes with images ({present}); "
                f"every class needs at least one training image. Use subset >= {present}."
            )
        train_idx = train_idx[stratified_subset(labels[train_idx], subset, subset_rng)]
        val_cap = max(subset // 4, 2 * present)
        val_idx = val_idx[stratified_subset(labels[val_idx], val_cap, subset_rng)]

    side = raw.train.images.shape[1]
    mean, std = mean_std(raw.train_moments[train_idx], side * side)
    return DatasetSplits(
        train=raw.train.subset(train_idx),
        val=raw.train.subset(val_idx),
        test=raw.test,
        classes=raw.classes,
        source=raw.source,
        mean=mean,
        std=std,
        conversion=raw.conversion,
    )


def content_key(source: str | os.PathLike[str], *, input_size: int) -> str | None:
    """For an image folder, a key of its contents (:func:`nas.data.folder.image_folder_key`), so that a run can
    tell when the images under the same path changed; None for the other sources (the embedded digits, and CIFAR
    python batches, whose files are fixed) and for paths that are no image folder (loading them says why)."""
    if isinstance(source, str) and source == DIGITS:
        return None
    try:
        path = Path(source).expanduser()
        if not (path / "train").is_dir():
            return None
    except (TypeError, OSError):
        return None
    return image_folder_key(Path(os.path.abspath(path)), input_size=int(input_size))


def _check_options(input_size: object, val_fraction: object, subset: object, seed: object) -> None:
    if isinstance(input_size, bool) or not isinstance(input_size, (int, np.integer)) or input_size < MIN_INPUT_SIZE:
        raise DataError(
            f"input_size must be an integer >= {MIN_INPUT_SIZE} (pixels per side), got {input_size!r}. "
            "Pass e.g. input_size=32."
        )
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 < val_fraction <= 0.5:
        raise DataError(
            f"val_fraction must be a number in (0, 0.5] (the share of each class held out for validation), "
            f"got {val_fraction!r}. Pass e.g. val_fraction=0.1."
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}. Pass e.g. seed=0.")
    if subset is not None and (isinstance(subset, bool) or not isinstance(subset, (int, np.integer)) or subset < 1):
        raise DataError(
            f"subset must be a positive number of training images or None, got {subset!r}. Pass e.g. subset=1000."
        )


def _load_source(source: str | os.PathLike[str], input_size: int, cache_dir: Path | None, progress: bool) -> RawSource:
    if isinstance(source, str) and source == DIGITS:
        return load_digits_source(input_size=int(input_size))
    try:
        path = Path(source).expanduser()
    except TypeError:
        raise DataError(f"dataset source must be a string or a path, got {source!r}; {_FORMS}.") from None
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise DataError(f"dataset source {path}: cannot be read ({exc.strerror or exc}); {_FORMS}. Check the path.") \
            from None
    if not exists:
        raise DataError(f"dataset source {path} does not exist; {_FORMS}. Check the path.")
    if not is_dir:
        raise DataError(f"dataset source {path} is a file, expected a directory; {_FORMS}.")
    path = Path(os.path.abspath(path))  # absolute for messages and the cache sidecar; symlinks kept as given
    if (path / "train").is_dir():
        return load_image_folder(path, input_size=int(input_size), cache_dir=cache_dir, progress=progress)
    if is_cifar_python_dir(path):
        return load_cifar_python(path, input_size=int(input_size))
    raise DataError(
        f"dataset source {path} has neither a train/ sub-folder nor a batches.meta file; {_FORMS}. "
        "Point to the folder that directly contains train/ or batches.meta."
    )
