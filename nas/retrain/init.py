"""Where a retrained winner's weights start: random (``--init scratch``), the supernet's (``--init supernet``)
or a weights file (``--init FILE``).

With a supernet (``nas supernet train``), each winner starts from its sub-network's shared weights
(:meth:`~nas.supernet.Supernet.extract`) with BatchNorm statistics re-estimated on the retraining's own
training images, then trains with the recipe as usual. The supernet must be of the space the search ran on
(the table's), and every winner a network of it.

With a weights file (``nas supernet extract -o model.pt``, whose architecture is written beside it as
``model.arch.json``, or a ``nas train`` run directory), the winner of that architecture starts from the file's
weights as they are, BatchNorm statistics included; the run's other winners are not retrained by this command
(retrain them with ``--init scratch`` or ``supernet``). A file whose architecture is none of the run's ``--top``
winners is refused.

The references always start from scratch (they are no networks of the space). Anything that does not fit is
refused before any training. The start is recorded in each winner's ``trained.json`` (``init``) and the results
are kept apart (recipe tag ``...-supernet`` or ``...-init<weights digest>-<architecture digest>``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.arch import ArchSpec, arch_hash, build_model, load_arch_file, to_compact
from nas.errors import NASError, RetrainError, SupernetError
from nas.latency import LatencyTable
from nas.retrain.source import Candidate
from nas.supernet.evaluate import SupernetScoring
from nas.supernet.extract import arch_file_for
from nas.supernet.store import INFO_NAME, LoadedSupernet, load_supernet
from nas.train.checkpoint import CHECKPOINT_NAME, sha256_file
from nas.train.evaluate import score
from nas.train.weights import load_weights

__all__ = ["StartWeights", "SupernetInit", "start_weights"]

_NAS_TRAIN_ARCH = "arch.json"  # beside the checkpoint.pt of a `nas train` run directory


class StartWeights(ABC):
    """The initial weights of the winners, when not random."""

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """What ``trained.json`` records as ``init`` (a retraining from other weights is another training)."""

    @property
    @abstractmethod
    def tag(self) -> str:
        """The suffix of the results' recipe tag, e.g. ``-supernet``."""

    @abstractmethod
    def describe(self) -> str:
        """One line for the log: where the weights come from."""

    @abstractmethod
    def apply(self, model: nn.Module, arch: ArchSpec, splits: Any, *, device: str = "auto") -> float:
        """Load the weights into ``model`` (``build_model(arch)``); returns the accuracy on ``splits.val`` with
        these starting weights."""


@dataclass(frozen=True)
class SupernetInit(StartWeights):
    """Starts winners from the supernet's weights (see the module docstring)."""

    loaded: LoadedSupernet
    calibration_images: int = SupernetScoring.calibration_images

    def identity(self) -> dict[str, Any]:
        return {"kind": "supernet", "supernet": str(self.loaded.directory.resolve()),
                "weights": self.loaded.fingerprint}

    @property
    def tag(self) -> str:
        return "-supernet"

    def describe(self) -> str:
        return (f"the weights of the supernet in {self.loaded.directory} (trained {self.loaded.epochs} epoch(s)), "
                f"BatchNorm re-estimated")

    def apply(self, model: nn.Module, arch: ArchSpec, splits: Any, *, device: str = "auto") -> float:
        model.load_state_dict(self.loaded.supernet.sub_state(arch), strict=True)
        n = len(splits.train)
        sample = splits.train.subset(np.sort(np.random.default_rng(0).permutation(n)[: min(self.calibration_images,
                                                                                            n)]))
        with torch.no_grad():
            result = score(model, splits.val, mean=splits.mean, std=splits.std, device=device, batch_size=256,
                           recalibrate_on=sample, recalibrate_images=len(sample))
        return result.acc


@dataclass(frozen=True)
class _FileInit(StartWeights):
    """Starts the winner of the file's architecture from the file's weights, as they are."""

    path: Path
    arch: ArchSpec
    digest: str

    def identity(self) -> dict[str, Any]:
        # by content, not path: the same file moved or copied is the same start
        return {"kind": "weights", "sha256": self.digest, "arch_hash": arch_hash(self.arch)}

    @property
    def tag(self) -> str:
        return f"-init{self.digest[:8]}-{arch_hash(self.arch)[:4]}"

    def describe(self) -> str:
        return f"the weights in {self.path} (sha256 {self.digest[:12]}), BatchNorm statistics as stored"

    def apply(self, model: nn.Module, arch: ArchSpec, splits: Any, *, device: str = "auto") -> float:
        assert arch_hash(arch) == arch_hash(self.arch), "only the file's architecture starts from it"
        load_weights(model, self.path)
        with torch.no_grad():
            return score(model, splits.val, mean=splits.mean, std=splits.std, device=device, batch_size=256).acc


def _supernet_init(directory: str | None, table: LatencyTable, winners: list[Candidate]) -> SupernetInit:
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


def _weights_and_arch(text: str) -> tuple[Path, Path]:
    path = Path(text).expanduser()
    if path.is_dir() and (path / INFO_NAME).is_file():
        raise RetrainError(f"--init {text}: is a supernet directory; start every winner from it with --init supernet "
                           f"--supernet {text}, or extract one network with 'nas supernet extract'")
    if path.is_dir():  # a run directory of `nas train`
        return path / CHECKPOINT_NAME, path / _NAS_TRAIN_ARCH
    return path, arch_file_for(path)


def _file_init(text: str, winners: list[Candidate]) -> tuple[_FileInit, list[Candidate]]:
    """The weights file ``text`` and the winners that start from it (those of its architecture)."""
    weights, arch_path = _weights_and_arch(text)
    if not weights.is_file():
        raise RetrainError(f"--init {text}: expected scratch, supernet or a weights file (of 'nas supernet "
                           f"extract', or a 'nas train' run directory), but {weights} does not exist; check the path")
    if not arch_path.is_file():
        raise RetrainError(f"--init {text}: its architecture file {arch_path} does not exist ('nas supernet "
                           f"extract -o {weights.name}' writes it beside the weights); write the network's "
                           f"architecture JSON there")
    try:
        arch = load_arch_file(arch_path)
    except NASError as exc:
        raise RetrainError(f"--init {text}: {exc}") from None
    chosen = [c for c in winners if c.hash == arch_hash(arch)]
    if not chosen:
        offered = ", ".join(f"{c.label} {c.hash[:12]}" for c in winners)
        raise RetrainError(f"--init {text}: holds architecture {arch_hash(arch)[:12]} ({to_compact(arch)}), which is "
                           f"none of the run's {len(winners)} winner(s) to retrain ({offered}); extract one of them "
                           f"(nas supernet extract --arch RUN/best_arch.json), or raise --top (on a Pareto run, to "
                           f"the front's size: a smaller --top picks members spread along it)")
    try:  # a file that does not fit the architecture (or cannot be read) is refused before any data is loaded
        load_weights(build_model(arch), weights)
    except NASError as exc:
        raise RetrainError(f"--init {text}: {exc}") from None
    return _FileInit(weights, arch, sha256_file(weights)), chosen


def start_weights(init: str, supernet: str | None, table: LatencyTable,
                  winners: list[Candidate]) -> tuple[StartWeights | None, list[Candidate]]:
    """``--init``/``--supernet`` checked against the run: the winners' start (None: random) and the winners it
    retrains (refusals before any data is loaded)."""
    if init == "supernet":
        return _supernet_init(supernet, table, winners), winners
    if supernet is not None:
        raise RetrainError(f"--supernet {supernet}: only used with --init supernet (the default is --init "
                           f"scratch: random initial weights); add --init supernet, or drop --supernet")
    if init == "scratch":
        return None, winners
    return _file_init(init, winners)
