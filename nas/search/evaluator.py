"""The accuracy side of a trial: a small interface and the proxy-training implementation.

The search calls :meth:`AccuracyEvaluator.evaluate` with a ``report`` callback that receives
``(epoch, val_acc)`` after every epoch; the callback may raise (that is how trials are
pruned). Training itself knows nothing about Optuna.
"""

from __future__ import annotations

import hashlib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch

from nas.arch import ArchSpec, build_model
from nas.errors import SearchError

__all__ = ["Evaluation", "AccuracyEvaluator", "ProxyEvaluator", "ProxySettings"]

Report = Callable[[int, float], None]


@dataclass(frozen=True)
class Evaluation:
    accuracy: float  # validation accuracy after the last epoch run
    acc_per_epoch: tuple[float, ...]
    status: str  # completed | diverged | stopped
    seconds: float
    message: str = ""


class AccuracyEvaluator(ABC):
    @abstractmethod
    def evaluate(self, arch: ArchSpec, *, report: Report | None = None) -> Evaluation: ...

    def reseeded(self, seed: int) -> AccuracyEvaluator:
        """The same evaluation with another training seed (to confirm a candidate's result)."""
        raise SearchError(f"{type(self).__name__} cannot re-evaluate with another seed; use --confirm-top 0")

    @property
    def rescores(self) -> bool:
        """Whether a confirmation measures more finely than a trial (:meth:`confirmer`): then the
        candidate's own seed is measured again too, and the confirmations replace the trial's result."""
        return False

    def confirmer(self, seed: int) -> AccuracyEvaluator:
        """What confirms a candidate with ``seed``: :meth:`reseeded` unless :attr:`rescores`."""
        return self.reseeded(seed)

    @property
    def fingerprint(self) -> str:
        """Identifies the evaluation protocol (results are only comparable within one)."""
        return type(self).__name__

    @property
    def epochs(self) -> int | None:
        """Epochs of a full evaluation, when known: nobody is stopped early after the last one."""
        return None

    @property
    def trains(self) -> bool:
        """Whether an evaluation builds and trains a network (the search then frees its memory after each trial)."""
        return True


@dataclass(frozen=True)
class ProxySettings:
    """The proxy-training recipe: a few epochs of the shared training loop.

    Tuned for short runs: no warm-up and no augmentation (a few epochs do not overfit, and
    flips would confuse digits); before every validation the BatchNorm statistics are
    re-estimated from ``bn_recalibration`` training images with the current weights
    (``TrainConfig.bn_recalibration``). Without that, the running averages of a few dozen
    steps still mix the statistics of much earlier weights: validation accuracy can stay at
    chance while training accuracy is already well above it (worst for CSE blocks, whose unit
    has no BatchNorm), and early stopping would compare noise.
    """

    epochs: int = 3
    batch_size: int = 32
    lr: float = 0.05
    warmup_epochs: float = 0.0
    bn_recalibration: int = 512
    augment: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        for name, value, low in (("--epochs", self.epochs, 1), ("--batch-size", self.batch_size, 1),
                                 ("--seed", self.seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SearchError(f"{name}: expected an integer >= {low}, got {value!r}")
        if isinstance(self.bn_recalibration, bool) or not isinstance(self.bn_recalibration, int) \
                or self.bn_recalibration < 0:
            raise SearchError(f"proxy settings: bn_recalibration: expected an integer >= 0, got {self.bn_recalibration!r}")
        if not (self.lr > 0 and 0 <= self.warmup_epochs <= self.epochs):
            raise SearchError(f"proxy settings: expected lr > 0 and 0 <= warmup_epochs <= epochs, got {self}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ProxyEvaluator(AccuracyEvaluator):
    """A few epochs of the shared training loop on the (subset of the) training split."""

    def __init__(self, splits: Any, settings: ProxySettings, *, device: str = "auto") -> None:
        self.splits = splits
        self.settings = settings
        self.device = device
        self._fingerprint: str | None = None

    @property
    def epochs(self) -> int | None:
        return self.settings.epochs

    @property
    def fingerprint(self) -> str:
        """The recipe and the *content* of the train and validation images: workers that hold the
        same data under different paths agree, a different split or subset does not."""
        if self._fingerprint is None:
            digest = hashlib.sha256(json.dumps(self.settings.to_dict(), sort_keys=True).encode())
            for split in (self.splits.train, self.splits.val):
                digest.update(np.ascontiguousarray(split.images).tobytes())
                digest.update(np.ascontiguousarray(split.labels).tobytes())
            self._fingerprint = digest.hexdigest()[:12]
        return self._fingerprint

    def reseeded(self, seed: int) -> ProxyEvaluator:
        return ProxyEvaluator(self.splits, replace(self.settings, seed=seed), device=self.device)

    def evaluate(self, arch: ArchSpec, *, report: Report | None = None) -> Evaluation:
        from nas.train import TrainConfig, train_model

        s = self.settings
        torch.manual_seed(s.seed)
        model = build_model(arch)
        config = TrainConfig(epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, warmup_epochs=s.warmup_epochs,
                             augment=s.augment, seed=s.seed, device=self.device, bn_recalibration=s.bn_recalibration)
        accs: list[float] = []

        def on_epoch_end(m: Any) -> None:
            accs.append(float(m.val_acc))
            if report is not None:
                report(m.epoch, float(m.val_acc))

        start = time.perf_counter()
        result = train_model(model, self.splits, config, on_epoch_end=on_epoch_end, progress=False)
        return Evaluation(accs[-1] if accs else 0.0, tuple(accs), result.status, time.perf_counter() - start,
                          result.message)
