"""``nas adapt`` end to end: table -> architecture -> weights -> data -> the NetAdapt loop.

:func:`run_adapt_job` is the one entry point for the CLI and for ``nas search --adapt`` (which
passes the search winner, and may hand over the splits and estimator it already has). Every
check that needs no training runs before the data is loaded, so a wrong file fails at once:

* the table must be for the network's input size, channels and classes (and for ``space``
  when one is given);
* the weights (a ``save_weights`` file, a training ``checkpoint.pt``, or a state dict in
  memory) must fit the architecture key by key and shape by shape;
* the dataset must have as many classes as the network.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nas.adapt.loop import AdaptResult, AdaptSettings, adapt
from nas.arch import ArchSpec, build_model, resolve_arch, to_compact
from nas.atomic import ensure_dir
from nas.errors import CheckpointError, DataError, NASError
from nas.latency import (ON_MISSING, LatencyEstimator, TableEstimator, check_table_for_arch,
                         load_table)

__all__ = ["AdaptJob", "run_adapt_job", "load_start_weights"]

Weights = str | os.PathLike | Mapping[str, torch.Tensor]

_MAX_PROBLEMS = 3

_MISSING = {"measure": "measured on this machine and stored in the table",
            "interpolate": "interpolated from measured entries of the same kind (recorded in history.csv)",
            "error": "refused (--on-missing error)"}


@dataclass(frozen=True)
class AdaptJob:
    """Everything one ``nas adapt`` run needs; ``settings`` holds the NetAdapt loop's knobs.

    ``arch``: an ArchSpec or anything :func:`nas.arch.resolve_arch` accepts (reference name,
    arch JSON file, compact string). ``weights``: a weights file, a training checkpoint or a
    state dict. ``target``: the latency table. ``data``: ``"digits"`` or a dataset folder
    (see :func:`nas.data.load_dataset`); ``subset`` caps the training images; the split seed
    is ``settings.seed``. ``on_missing``: how channel counts absent from the table are
    predicted (see :class:`nas.latency.TableEstimator`; ``auto`` measures them when the table
    is this machine's and interpolates otherwise).
    """

    arch: str | ArchSpec
    weights: Weights
    target: str | os.PathLike
    out: str | os.PathLike
    settings: AdaptSettings
    data: str | os.PathLike = "digits"
    space: str | os.PathLike | None = None
    subset: int | None = None
    val_fraction: float = 0.1
    on_missing: str = "auto"

    def __post_init__(self) -> None:
        if self.on_missing not in ON_MISSING:
            raise NASError(f"--on-missing: expected one of {list(ON_MISSING)}, got {self.on_missing!r}")


def load_start_weights(arch: ArchSpec, weights: Weights, *, arch_name: str = "the architecture") -> dict[str, Any]:
    """The state dict to start from, checked against ``build_model(arch)``.

    Raises CheckpointError naming the file and the first mismatching keys and shapes.
    """
    from nas.train.weights import CHECKPOINT_FORMAT, read_torch_file, state_dict_mismatch

    where = "<weights given in memory>" if isinstance(weights, Mapping) else str(weights)
    obj: Any = weights if isinstance(weights, Mapping) else read_torch_file(weights)
    if isinstance(obj, Mapping) and obj.get("format") == CHECKPOINT_FORMAT:
        obj = obj.get("model")
    if not (isinstance(obj, Mapping) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                             for k, v in obj.items())):
        raise CheckpointError(f"{where}: expected a training checkpoint or a state_dict (names to tensors), got a "
                              f"{type(obj).__name__}; save weights with nas.train.save_weights")
    model = build_model(arch)
    mismatch = state_dict_mismatch(model, obj)
    if mismatch is not None:
        problems = mismatch.split("; ")
        shown = "; ".join(problems[:_MAX_PROBLEMS])
        more = f"; and {len(problems) - _MAX_PROBLEMS} more" if len(problems) > _MAX_PROBLEMS else ""
        raise CheckpointError(f"{where}: the weights do not fit --arch {arch_name}: {shown}{more}. They were saved "
                              "from another architecture: pass the --arch they were trained with (for a nas run, its "
                              "arch.json), or weights trained for this one")
    return {k: v.detach().cpu().clone() for k, v in obj.items()}


def _arch_name(arch: str | ArchSpec) -> str:
    return arch if isinstance(arch, str) else to_compact(arch)


def run_adapt_job(job: AdaptJob, *, splits: Any | None = None, estimator: LatencyEstimator | None = None,
                  progress: bool = True, log: Callable[[str], None] = print) -> AdaptResult:
    """Check the inputs, then run (or resume) NetAdapt; see :func:`nas.adapt.adapt` for the outputs.

    ``splits`` and ``estimator`` may be passed by a caller that already has them (the search);
    otherwise they are built from ``job.data`` and ``job.target``.
    """
    arch = resolve_arch(job.arch) if isinstance(job.arch, str) else job.arch
    name = _arch_name(job.arch)
    if estimator is None:
        table = load_table(job.target)
        check_table_for_arch(table, arch, arch_name=name)
        if job.space is not None:
            from nas.latency.spaces import space_for_table

            space_for_table(table, str(job.space))
        estimator = TableEstimator(table, on_missing=job.on_missing)
        log(f"adapt: table {job.target} ({table.metadata.get('device')}); channel counts missing from the table are "
            f"{_MISSING[estimator.on_missing]}")
    weights = load_start_weights(arch, job.weights, arch_name=name)
    if splits is None:
        from nas.data import load_dataset

        splits = load_dataset(job.data, input_size=arch.input_size, val_fraction=job.val_fraction,
                              seed=job.settings.seed, subset=job.subset, progress=progress)
    if splits.num_classes != arch.num_classes:
        raise DataError(f"{job.data}: has {splits.num_classes} classes but the network ({name}) classifies "
                        f"{arch.num_classes}; adapt a network trained on this dataset")
    log(f"data: {splits.source}: {len(splits.train)} train / {len(splits.val)} val images; out {Path(job.out)}")
    ensure_dir(job.out, "--out")
    return adapt(arch, weights, estimator, splits, job.settings, job.out, progress=progress, log=log)
