"""Training settings and results as frozen dataclasses.

:class:`TrainConfig` is everything that defines *one* training run; it is saved in every
checkpoint so a resumed run can prove it continues the same training (see
:mod:`nas.train.checkpoint`). :class:`EpochMetrics` is one row of ``metrics.csv`` and what the
``on_epoch_end`` callback receives; :class:`TrainResult` is what :func:`~nas.train.train_model`
returns.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from nas.errors import ConfigError

__all__ = ["TrainConfig", "EpochMetrics", "TrainResult", "STATUSES", "epochs_text"]


def epochs_text(n: int) -> str:
    """``"1 epoch"``, ``"3 epochs"``: a count of epochs for messages."""
    return f"{n} epoch{'' if n == 1 else 's'}"


#: ``completed``: every epoch ran; ``diverged``: a non-finite loss ended the run;
#: ``stopped``: the ``on_epoch_end`` callback asked to stop.
STATUSES: tuple[str, ...] = ("completed", "diverged", "stopped")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class TrainConfig:
    """One training run: optimiser, schedule, data order and where it runs.

    Defaults follow the MobileNet recipes scaled to small-image proxy training: SGD with
    Nesterov momentum 0.9, weight decay 4e-5 (MobileNetV2's value; BN parameters and biases are
    exempt, as in MobileNetV3 and most later recipes), label smoothing 0.1, and a peak learning
    rate of 0.05 for batch 128. That peak is the linear-scaling rule (Goyal et al., 2017)
    applied to the 0.1-per-256 rule of thumb for SGD on ImageNet/CIFAR-size ResNets, which
    MobileNet-size networks tolerate as well; the cosine decay to zero (Loshchilov & Hutter,
    SGDR) needs no step milestones, so the same recipe works from 1 proxy epoch to 200.

    Fields that shape the optimisation (everything but ``epochs`` and the device/precision
    switches) must be identical for a run to be resumed from a checkpoint.

    ``augment``: random crops (4-pixel zero padding) and, with ``flip``, horizontal flips of half
    the images; ``flip=False`` for digits and text, which a mirror turns into other symbols.

    ``bn_recalibration``: before every validation, re-estimate the BatchNorm running statistics
    from this many (unaugmented) training images with the current weights (0: keep the
    running averages). Short runs need it: after a few dozen steps the running averages still
    mix the statistics of much earlier weights, which can put validation accuracy near chance
    while the network already classifies well in train mode (seen on CSE blocks, whose unit
    has no BatchNorm of its own). It changes evaluation only, never the optimisation.
    """

    epochs: int
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    warmup_epochs: float = 0.0
    steps_per_epoch: int | None = None
    augment: bool = True
    flip: bool = True
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    eval_batch_size: int = 512
    bn_recalibration: int = 0

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not _is_int(self.epochs) or self.epochs < 1:
            problems.append(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            problems.append(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if not _is_real(self.lr) or self.lr <= 0:
            problems.append(f"lr must be a finite number > 0, got {self.lr!r}")
        if not _is_real(self.momentum) or not 0 < self.momentum < 1:
            problems.append(f"momentum must be in (0, 1) (Nesterov needs momentum > 0), got {self.momentum!r}")
        if not _is_real(self.weight_decay) or self.weight_decay < 0:
            problems.append(f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        if not _is_real(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if not _is_real(self.warmup_epochs) or self.warmup_epochs < 0:
            problems.append(f"warmup_epochs must be a finite number >= 0, got {self.warmup_epochs!r}")
        elif _is_int(self.epochs) and self.warmup_epochs > self.epochs:
            problems.append(f"warmup_epochs ({self.warmup_epochs}) cannot exceed epochs ({self.epochs})")
        if self.steps_per_epoch is not None and (not _is_int(self.steps_per_epoch) or self.steps_per_epoch < 1):
            problems.append(f"steps_per_epoch must be None (one full pass) or an integer >= 1, "
                            f"got {self.steps_per_epoch!r}")
        if not isinstance(self.augment, bool):
            problems.append(f"augment must be a bool, got {self.augment!r}")
        if not isinstance(self.flip, bool):
            problems.append(f"flip must be a bool, got {self.flip!r}")
        if not _is_int(self.seed) or not 0 <= self.seed < 2**63:
            problems.append(f"seed must be an integer in [0, 2**63), got {self.seed!r}")
        if not isinstance(self.device, str) or not _valid_device_name(self.device):
            problems.append(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if not isinstance(self.amp, bool):
            problems.append(f"amp must be a bool, got {self.amp!r}")
        if not isinstance(self.channels_last, bool):
            problems.append(f"channels_last must be a bool, got {self.channels_last!r}")
        if not _is_int(self.eval_batch_size) or self.eval_batch_size < 1:
            problems.append(f"eval_batch_size must be an integer >= 1, got {self.eval_batch_size!r}")
        if not _is_int(self.bn_recalibration) or self.bn_recalibration < 0:
            problems.append(f"bn_recalibration must be an integer >= 0 (training images), got {self.bn_recalibration!r}")
        if problems:
            raise ConfigError("invalid training settings: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def _valid_device_name(name: str) -> bool:
    if name == "auto":
        return True
    try:
        return torch.device(name).type in ("cpu", "cuda")
    except (RuntimeError, ValueError):
        return False


@dataclass(frozen=True)
class EpochMetrics:
    """One epoch. ``train_*`` are running averages over the epoch's (augmented) batches in
    train mode; ``val_*`` are measured after the epoch in eval mode, with the plain (not
    label-smoothed) cross entropy; ``lr`` is the rate of the epoch's last optimisation step;
    ``seconds`` includes validation, ``images_per_second`` counts training only."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    lr: float
    seconds: float
    images_per_second: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainResult:
    """The outcome of :func:`~nas.train.train_model`.

    ``final_val_acc`` is the validation accuracy after the last *completed* epoch (0.0 when
    none completed); after divergence the model's weights are no longer those (they hold the
    non-finite values). ``wall_seconds`` adds up every call that contributed to the run, so a
    resumed run reports its whole training time.
    """

    status: str
    history: tuple[EpochMetrics, ...]
    epochs_run: int
    final_val_acc: float
    best_val_acc: float
    message: str
    wall_seconds: float

    def __post_init__(self) -> None:
        assert self.status in STATUSES, self.status

    @classmethod
    def from_history(cls, status: str, history: tuple[EpochMetrics, ...], *, message: str,
                     wall_seconds: float) -> TrainResult:
        accs = [m.val_acc for m in history]
        return cls(status=status, history=history, epochs_run=len(history),
                   final_val_acc=accs[-1] if accs else 0.0, best_val_acc=max(accs, default=0.0),
                   message=message, wall_seconds=wall_seconds)

    def summary(self) -> dict[str, Any]:
        """The fields of ``metrics.json`` (without the per-epoch history, which is in the CSV)."""
        return {"status": self.status, "message": self.message, "epochs_run": self.epochs_run,
                "final_val_acc": self.final_val_acc, "best_val_acc": self.best_val_acc,
                "wall_seconds": self.wall_seconds}
