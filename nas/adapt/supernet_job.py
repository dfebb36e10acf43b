"""``nas adapt --supernet DIR``: supernet -> start network -> table -> data -> the supernet-scored NetAdapt loop.

Every check that needs no data runs before the data is loaded, each a one-line error:

* ``--space``, when given, must be the supernet's space;
* the start network (``--arch``; by default the supernet's largest network) must be a network of it;
* the table must be built for it (its ``metadata.space`` digest) and for the network's input and classes.

The data defaults to the supernet's own: the source, validation fraction, seed and subset recorded in
``supernet.json``, so the validation images scored are ones the supernet never trained on. Other data
is refused (``--data`` may name the same data elsewhere).
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
from nas.errors import DataError, NASError, SupernetError
from nas.latency import ON_MISSING, TableEstimator, check_table_for_arch, load_table
from nas.supernet import (LoadedSupernet, SupernetEvaluator, SupernetScoring, check_same_space, check_scoring_device,
                          load_supernet)
from nas.supernet.store import INFO_NAME, check_table_space, supernet_splits

__all__ = ["SupernetAdaptJob", "run_supernet_adapt_job"]


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


def _start_arch(job: SupernetAdaptJob, loaded: LoadedSupernet) -> tuple[ArchSpec, str]:
    if job.arch is None:
        return loaded.supernet.largest, "the supernet's largest network"
    arch = resolve_arch(job.arch) if isinstance(job.arch, str) else job.arch
    name = job.arch if isinstance(job.arch, str) else to_compact(job.arch)
    loaded.supernet.place(arch, what=f"--arch {name}")
    return arch, name


def _splits(job: SupernetAdaptJob, loaded: LoadedSupernet, *, progress: bool) -> tuple[Any, str]:
    """The supernet's own split (:func:`nas.supernet.store.supernet_splits`), and its fingerprint."""
    if job.subset is not None:
        raise SupernetError(f"--subset {job.subset}: a --supernet run scores on the supernet's own split (its "
                            f"subset is in {loaded.directory / INFO_NAME}); drop --subset")
    try:
        splits = supernet_splits(loaded, None if job.data is None else str(job.data), progress=progress)
    except DataError as exc:
        if job.data is not None:
            raise
        raise DataError(f"{exc} (the supernet's training data, from {loaded.directory / INFO_NAME}; pass where it "
                        "is now with --data)") from None
    return splits, str(loaded.info["data"]["fingerprint"])


def run_supernet_adapt_job(job: SupernetAdaptJob, *, progress: bool = True,
                           log: Callable[[str], None] = print) -> AdaptResult:
    """Check the inputs, then run (or resume) the supernet-scored NetAdapt loop."""
    loaded = load_supernet(job.supernet)
    if job.space is not None:
        from nas.space import load_space

        check_same_space(loaded, load_space(job.space), what=f"--space {job.space}")
    arch, name = _start_arch(job, loaded)
    table = load_table(job.target)
    check_table_space(table, loaded, job.target)
    check_table_for_arch(table, arch, arch_name=name)
    estimator = TableEstimator(table, on_missing=job.on_missing)
    check_scoring_device(job.scoring, job.settings.device)  # before the data is loaded
    splits, data = _splits(job, loaded, progress=progress)
    evaluator = SupernetEvaluator(loaded, splits, job.scoring, device=job.settings.device, keep=True)
    log(f"adapt with supernet {loaded.directory} (space '{loaded.space.name}', {loaded.epochs} epochs) from {name}; "
        f"table {job.target}; data {splits.source}: {len(splits.train)} train / {len(splits.val)} val images; "
        f"out {Path(job.out)}")
    ensure_dir(job.out, "--out")
    fingerprint = supernet_fingerprint(job.settings, evaluator, data)
    return adapt_with_supernet(arch, loaded.supernet, evaluator, estimator, job.settings, fingerprint, job.out,
                               progress=progress, log=log)
