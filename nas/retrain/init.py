"""Where a retrained winner's weights start: random (``--init scratch``) or the supernet's (``--init supernet``).

With a supernet (``nas supernet train``), each winner starts from its sub-network's shared weights
(:meth:`~nas.supernet.Supernet.extract`) with BatchNorm statistics re-estimated on the retraining's own
training images, then trains with the recipe as usual. The references always start from scratch (they are
no networks of the space). The supernet must be of the space the search ran on (the table's), and every
winner a network of it; anything else is refused before any training. The start is recorded in each
winner's ``trained.json`` (``init``) and the results are kept apart (recipe tag ``...-supernet``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.arch import ArchSpec
from nas.errors import RetrainError, SupernetError
from nas.latency import LatencyTable
from nas.retrain.source import Candidate
from nas.supernet.evaluate import SupernetScoring
from nas.supernet.store import LoadedSupernet, load_supernet
from nas.train.evaluate import score

__all__ = ["INITS", "SupernetInit", "supernet_init"]

#: The choices of ``nas retrain --init``.
INITS: tuple[str, ...] = ("scratch", "supernet")


@dataclass(frozen=True)
class SupernetInit:
    """Starts winners from the supernet's weights (see the module docstring)."""

    loaded: LoadedSupernet
    calibration_images: int = SupernetScoring.calibration_images

    def identity(self) -> dict[str, Any]:
        """What ``trained.json`` records as ``init`` (a retraining from another supernet is another training)."""
        return {"kind": "supernet", "supernet": str(self.loaded.directory.resolve()),
                "weights": self.loaded.fingerprint}

    def apply(self, model: nn.Module, arch: ArchSpec, splits: Any, *, device: str = "auto") -> float:
        """Load ``arch``'s shared weights into ``model`` (``build_model(arch)``), re-estimate its BatchNorm on
        training images of ``splits``; returns the accuracy on ``splits.val`` with these starting weights."""
        model.load_state_dict(self.loaded.supernet.sub_state(arch), strict=True)
        n = len(splits.train)
        sample = splits.train.subset(np.sort(np.random.default_rng(0).permutation(n)[: min(self.calibration_images,
                                                                                            n)]))
        with torch.no_grad():
            result = score(model, splits.val, mean=splits.mean, std=splits.std, device=device, batch_size=256,
                           recalibrate_on=sample, recalibrate_images=len(sample))
        return result.acc


def supernet_init(directory: str | None, table: LatencyTable, winners: list[Candidate]) -> SupernetInit:
    """The supernet in ``directory`` checked against the run (its table's space, every winner)."""
    if directory is None:
        raise RetrainError("--init supernet: needs --supernet DIR (a directory of 'nas supernet train' on the "
                           "search's space)")
    loaded = load_supernet(directory)
    if table.space_digest is not None and table.space_digest != loaded.space.digest:
        raise SupernetError(f"--supernet {directory}: trained on space '{loaded.space.name}' (digest "
                            f"{loaded.space.digest[:12]}), but the run searched space '{table.space_file}' (digest "
                            f"{table.space_digest[:12]}, from its table {table.name}); train a supernet of the "
                            f"run's space, or retrain with --init scratch")
    for c in winners:
        loaded.supernet.place(c.arch, what=f"--supernet {directory}: winner {c.label}")
    return SupernetInit(loaded)
