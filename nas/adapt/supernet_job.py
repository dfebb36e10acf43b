"""``nas adapt --supernet DIR``: supernet -> start network -> table -> data -> the supernet-scored NetAdapt loop.

Every check that needs no data runs before the data is loaded, each a one-line error:

* ``--space``, when given, must be the supernet's space;
* the start network (``--arch``; by default the supernet's largest network) must be a network of it;
* the table must be built for it (its ``metadata.space`` digest) and for the network's input and classes.

The data defaults to the supernet's own: the source, validation fraction, seed and subset recorded in
``supernet.json``, so the validation images scored are ones the supernet never trained on. Other data
(``--data``/``--subset``) is allowed, with a warning when it is not what the supernet was trained on.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.adapt.loop import AdaptResult, AdaptSettings
from nas.adapt.supernet_loop import adapt_with_supernet, supernet_fingerprint
from nas.arch import ArchSpec, resolve_arch, to_compact
from nas.atomic import ensure_dir
from nas.errors import DataError, LatencyTableError, NASError, SupernetError
from nas.latency import ON_MISSING, LatencyTable, TableEstimator, check_table_for_arch, load_table
from nas.supernet import LoadedSupernet, SupernetEvaluator, SupernetScoring, check_same_space, load_supernet
from nas.supernet.store import INFO_NAME

__all__ = ["SupernetAdaptJob", "run_supernet_adapt_job", "supernet_data_source"]

_PREFIXES = ("CIFAR python batches ", "image folder ")  # how nas.data names the sources it loaded


@dataclass(frozen=True)
class SupernetAdaptJob:
    """One ``nas adapt --supernet`` run. ``arch``: None (the supernet's largest network), an ArchSpec or what
    :func:`nas.arch.resolve_arch` accepts; ``data``/``subset``: None for the supernet's own."""

    supernet: str | os.PathLike[str]
    target: str | os.PathLike[str]
    out: str | os.PathLike[str]
    settings: AdaptSettings
    arch: str | ArchSpec | None = None
    data: str | os.PathLike[str] | None = None
    subset: int | None = None
    space: str | os.PathLike[str] | None = None
    on_missing: str = "auto"
    scoring: SupernetScoring = field(default_factory=SupernetScoring)

    def __post_init__(self) -> None:
        if self.on_missing not in ON_MISSING:
            raise NASError(f"--on-missing: expected one of {list(ON_MISSING)}, got {self.on_missing!r}")


def supernet_data_source(loaded: LoadedSupernet) -> str:
    """The ``load_dataset`` source of the data the supernet was trained on (from ``supernet.json``)."""
    source = loaded.info["data"].get("source")
    if isinstance(source, str):
        if source.startswith("digits"):
            return "digits"
        for prefix in _PREFIXES:
            if source.startswith(prefix):
                return source[len(prefix):]
    raise SupernetError(f"{loaded.directory / INFO_NAME}: data.source: {source!r} names no dataset this version can "
                        "load; pass the supernet's training data with --data")


def _start_arch(job: SupernetAdaptJob, loaded: LoadedSupernet) -> tuple[ArchSpec, str]:
    if job.arch is None:
        return loaded.supernet.largest, "the supernet's largest network"
    arch = resolve_arch(job.arch) if isinstance(job.arch, str) else job.arch
    name = job.arch if isinstance(job.arch, str) else to_compact(job.arch)
    loaded.supernet.place(arch, what=f"--arch {name}")
    return arch, name


def _check_table(table: LatencyTable, loaded: LoadedSupernet, target: str | os.PathLike[str]) -> None:
    if table.space_digest != loaded.space.digest:
        space = table.metadata.get("space") or {}
        raise LatencyTableError(
            f"--target {target}: metadata.space: the table was built for space '{space.get('name')}' (digest "
            f"{str(table.space_digest)[:12]}), the supernet in {loaded.directory} for '{loaded.space.name}' (digest "
            f"{loaded.space.digest[:12]}); use a table of the supernet's space (nas lut build --space SPACE.yaml, "
            "with that space's file) or a supernet trained on the table's space")


def _splits(job: SupernetAdaptJob, loaded: LoadedSupernet, *, progress: bool,
            log: Callable[[str], None]) -> tuple[Any, str]:
    """The splits to score on, and their fingerprint."""
    from nas.data import load_dataset
    from nas.supernet.train import data_fingerprint

    info, where = loaded.info["data"], loaded.directory / INFO_NAME
    for key, kind in (("val_fraction", (int, float)), ("seed", int)):
        if isinstance(info.get(key), bool) or not isinstance(info.get(key), kind):
            raise SupernetError(f"{where}: data.{key}: expected a number, got {info.get(key)!r}; train the supernet "
                                "again into a new directory")
    source = supernet_data_source(loaded) if job.data is None else job.data
    subset = info.get("subset") if job.subset is None else job.subset
    try:
        splits = load_dataset(source, input_size=loaded.space.input_size, val_fraction=info["val_fraction"],
                              seed=info["seed"], subset=subset, progress=progress)
    except DataError as exc:
        if job.data is not None:
            raise
        raise DataError(f"{exc} (the supernet's training data, from {where} data.source; pass where it is now "
                        "with --data)") from None
    if splits.num_classes != loaded.space.num_classes:
        raise DataError(f"--data {source}: has {splits.num_classes} classes but the supernet's space "
                        f"'{loaded.space.name}' classifies {loaded.space.num_classes}; use the supernet's data")
    fingerprint = data_fingerprint(splits)
    if fingerprint != info.get("fingerprint"):
        log(f"warning: {splits.source} (subset {subset}) is not the data the supernet in {loaded.directory} was "
            "trained on: its validation images may include images the supernet trained on, which inflates scores")
    return splits, fingerprint


def run_supernet_adapt_job(job: SupernetAdaptJob, *, progress: bool = True,
                           log: Callable[[str], None] = print) -> AdaptResult:
    """Check the inputs, then run (or resume) the supernet-scored NetAdapt loop."""
    loaded = load_supernet(job.supernet)
    if job.space is not None:
        from nas.space import load_space

        check_same_space(loaded, load_space(job.space), what=f"--space {job.space}")
    arch, name = _start_arch(job, loaded)
    table = load_table(job.target)
    _check_table(table, loaded, job.target)
    check_table_for_arch(table, arch, arch_name=name)
    estimator = TableEstimator(table, on_missing=job.on_missing)
    splits, data = _splits(job, loaded, progress=progress, log=log)
    evaluator = SupernetEvaluator(loaded, splits, job.scoring, device=job.settings.device)
    log(f"adapt with supernet {loaded.directory} (space '{loaded.space.name}', {loaded.epochs} epochs) from {name}; "
        f"table {job.target}; data {splits.source}: {len(splits.train)} train / {len(splits.val)} val images; "
        f"out {Path(job.out)}")
    ensure_dir(job.out, "--out")
    fingerprint = supernet_fingerprint(job.settings, evaluator, data)
    return adapt_with_supernet(arch, loaded.supernet, evaluator, estimator, job.settings, fingerprint, job.out,
                               progress=progress, log=log)
