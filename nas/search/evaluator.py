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
from dataclasses import asdict, dataclass
from typing import Any

import torch

from nas.arch import ArchSpec, build_model

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

    @property
    def fingerprint(self) -> str:
        """Identifies the evaluation protocol (results are only comparable within one)."""
        return type(self).__name__


@dataclass(frozen=True)
class ProxySettings:
    epochs: int = 3
    batch_size: int = 64
    lr: float = 0.05
    warmup_epochs: float = 0.3
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ProxyEvaluator(AccuracyEvaluator):
    """A few epochs of the shared training loop on the (subset of the) training split."""

    def __init__(self, splits: Any, settings: ProxySettings, *, device: str = "auto") -> None:
        self.splits = splits
        self.settings = settings
        self.device = device

    @property
    def fingerprint(self) -> str:
        key = json.dumps({"settings": self.settings.to_dict(), "data": self.splits.source,
                          "train": len(self.splits.train), "val": len(self.splits.val)}, sort_keys=True)
        return hashlib.sha256(key.encode()).hexdigest()[:12]

    def evaluate(self, arch: ArchSpec, *, report: Report | None = None) -> Evaluation:
        from nas.train import TrainConfig, train_model

        s = self.settings
        torch.manual_seed(s.seed)
        model = build_model(arch)
        config = TrainConfig(epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, warmup_epochs=s.warmup_epochs,
                             seed=s.seed, device=self.device)
        accs: list[float] = []

        def on_epoch_end(m: Any) -> None:
            accs.append(float(m.val_acc))
            if report is not None:
                report(m.epoch, float(m.val_acc))

        start = time.perf_counter()
        result = train_model(model, self.splits, config, on_epoch_end=on_epoch_end, progress=False)
        return Evaluation(accs[-1] if accs else 0.0, tuple(accs), result.status, time.perf_counter() - start,
                          result.message)
