"""Training checkpoints: what is saved after every epoch and inside long ones, and the checks made on resume.

``checkpoint.pt`` is a dict of tensors and plain Python values only (loadable with
``torch.load(weights_only=True)``):

==================  ===========================================================================
``format``          :data:`~nas.train.weights.CHECKPOINT_FORMAT`
``model``           the model's state_dict (CPU tensors)
``optimizer``       the SGD state_dict (momentum buffers, param groups)
``scaler``          the float16 GradScaler's state_dict, or None
``epoch``           epochs completed (1-based count)
``global_step``     optimisation steps taken (the LR schedule is a function of it)
``generator``       state of the CPU generator that drives shuffling and augmentation (in a mid-epoch
                    checkpoint: its state at the start of the epoch, whose draws a resume replays)
``torch_rng``       ``torch.get_rng_state()`` (dropout and anything else on the global RNG)
``cuda_rng``        ``torch.cuda.get_rng_state_all()`` (empty list on CPU)
``config``          ``TrainConfig.to_dict()``
``history``         one dict per completed epoch (``EpochMetrics.to_dict()``)
``wall_seconds``    training time of all calls so far
``device``          where it was trained, e.g. ``cuda:0 bfloat16 channels-last`` (information)
``torch_version``   information
``partial``         in a mid-epoch checkpoint: :class:`EpochProgress` as a dict; otherwise None (or absent)
==================  ===========================================================================

``checkpoint.pt`` is only written after an epoch *completed* (never for a diverged epoch); it is the
file every reader of a training's weights uses (export, ``nas supernet``, ``--init``). A long epoch
also saves its progress every few minutes to ``checkpoint-mid-epoch.pt`` (:data:`MID_EPOCH_NAME`),
which only resuming reads, only a run of the same length resumes, and the next epoch's checkpoint
replaces; both only ever hold finite weights. Resuming restores every piece above (from the mid-epoch file when it is the later one), so
on the same device, software and number of CPU threads (which fixes the order of float reductions)
a resumed run takes exactly the steps an uninterrupted run would have taken.

What may differ on resume: ``epochs`` (growing it extends the run; the cosine is recomputed
over the new length, so the remaining rates differ from the first run's), and the execution
settings ``device``, ``amp``, ``channels_last``, ``eval_batch_size`` (results then stop being
bitwise reproducible, but the training is the same). Everything else defines the training
(:data:`MUST_MATCH`) and must be equal, or the run would silently mix two trainings.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from nas.errors import CheckpointError
from nas.train.config import EpochMetrics, TrainConfig, epochs_text
from nas.train.weights import CHECKPOINT_FORMAT, atomic_torch_save, check_state_dict, read_torch_file

__all__ = ["sha256_file", "CHECKPOINT_NAME", "MID_EPOCH_NAME", "MUST_MATCH", "RunState", "EpochProgress",
           "save_checkpoint", "read_checkpoint", "check_config", "restore_checkpoint", "has_checkpoint",
           "latest_checkpoint"]

CHECKPOINT_NAME = "checkpoint.pt"
#: Progress inside an epoch, saved every few minutes of a long one (resuming only).
MID_EPOCH_NAME = "checkpoint-mid-epoch.pt"

#: Config fields that must be equal between a checkpoint and the run resuming it.
MUST_MATCH: tuple[str, ...] = ("batch_size", "lr", "momentum", "weight_decay", "label_smoothing", "warmup_epochs",
                               "steps_per_epoch", "augment", "flip", "seed")

_REQUIRED = ("model", "optimizer", "epoch", "global_step", "generator", "torch_rng", "config", "history")


@dataclass(frozen=True)
class EpochProgress:
    """How far an unfinished epoch got: its steps and the running sums of its training metrics."""

    epoch: int  # the epoch in progress (1-based)
    steps: int  # steps of it taken
    loss_sum: float  # sum over its images of the training loss
    correct: int  # its correctly classified training images
    seen: int  # its training images
    seconds: float  # its training time so far


@dataclass(frozen=True)
class RunState:
    """Progress of a run after its last completed epoch (``epoch == 0``: nothing trained yet), and inside the
    next one when ``partial`` is given (then ``global_step`` counts its steps too)."""

    epoch: int
    global_step: int
    history: tuple[EpochMetrics, ...]
    wall_seconds: float
    partial: EpochProgress | None = None


def save_checkpoint(path: str | os.PathLike, *, model: nn.Module, optimizer: Optimizer,
                    scaler: torch.amp.GradScaler | None, generator_state: torch.Tensor, config: TrainConfig,
                    state: RunState, device: str) -> Path:
    cuda_rng = list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else []
    checkpoint: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "model": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": state.epoch,
        "global_step": state.global_step,
        "generator": generator_state,
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": cuda_rng,
        "config": config.to_dict(),
        "history": [m.to_dict() for m in state.history],
        "wall_seconds": state.wall_seconds,
        "device": device,
        "torch_version": str(torch.__version__),  # TorchVersion is not a plain str
        "partial": asdict(state.partial) if state.partial is not None else None,
    }
    return atomic_torch_save(checkpoint, path)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and structurally validate a checkpoint (no model needed)."""
    obj = read_torch_file(path, what="checkpoint")
    if not isinstance(obj, Mapping) or obj.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a training checkpoint (expected format {CHECKPOINT_FORMAT!r}); "
                              f"delete it or point the run at another directory")
    missing = [k for k in _REQUIRED if k not in obj]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint (missing {', '.join(missing)}); "
                              f"delete it to start over")
    if not isinstance(obj["model"], Mapping) or not isinstance(obj["config"], Mapping):
        raise CheckpointError(f"{path}: malformed checkpoint (its model or config entry is not a mapping); "
                              f"delete it to start over")
    return dict(obj)


def check_config(path: str | os.PathLike, saved: Mapping[str, Any], config: TrainConfig, epochs_done: int) -> None:
    """Raise CheckpointError when ``config`` cannot continue the training saved at ``path``."""
    folder = Path(path).parent
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    for name in MUST_MATCH:
        # A field added after the checkpoint was written: it trained with the field's default.
        old, new = saved.get(name, defaults[name]), getattr(config, name)
        if old != new:
            raise CheckpointError(
                f"{path}: config field {name!r} differs: the checkpoint was trained with {name}={old!r}, this run "
                f"has {name}={new!r}; resuming would mix two different trainings. Use the same settings, or "
                f"delete {folder} (or disable resuming) to start over")
    if config.epochs < epochs_done:
        raise CheckpointError(
            f"{path}: config field 'epochs' is {config.epochs}, but the checkpoint has already trained "
            f"{epochs_text(epochs_done)}; use epochs >= {epochs_done}, or delete {folder} (or disable resuming) to "
            f"start over")


def _history(path: str | os.PathLike, rows: object) -> tuple[EpochMetrics, ...]:
    names = {f.name for f in fields(EpochMetrics)}
    if not isinstance(rows, list) or not all(isinstance(r, Mapping) and set(r) == names for r in rows):
        raise CheckpointError(f"{path}: malformed history in checkpoint; delete it to start over")
    return tuple(EpochMetrics(**r) for r in rows)


def _partial(path: str | os.PathLike, obj: object, epoch: int) -> EpochProgress | None:
    if obj is None:
        return None
    names = {f.name for f in fields(EpochProgress)}
    kinds = {"epoch": int, "steps": int, "loss_sum": float, "correct": int, "seen": int, "seconds": float}
    if not isinstance(obj, Mapping) or set(obj) != names \
            or not all(isinstance(obj[k], t) and not isinstance(obj[k], bool) for k, t in kinds.items()) \
            or obj["epoch"] != epoch + 1 or obj["steps"] < 1:
        raise CheckpointError(f"{path}: malformed mid-epoch progress in checkpoint (expected the fields "
                              f"{', '.join(sorted(names))} of epoch {epoch + 1}); delete it to resume after epoch {epoch}")
    return EpochProgress(**obj)


def restore_checkpoint(path: str | os.PathLike, checkpoint: Mapping[str, Any], *, model: nn.Module,
                       optimizer: Optimizer, scaler: torch.amp.GradScaler | None,
                       generator: torch.Generator) -> RunState:
    """Load every saved state into the live objects; the model is checked before anything changes."""
    check_state_dict(model, checkpoint["model"], path)
    history = _history(path, checkpoint["history"])
    partial = _partial(path, checkpoint.get("partial"), int(checkpoint["epoch"]))
    model.load_state_dict(checkpoint["model"], strict=True)
    try:
        optimizer.load_state_dict(checkpoint["optimizer"])
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: the optimizer state does not fit this model ({exc}); delete the "
                              f"checkpoint to start over") from None
    if scaler is not None and checkpoint.get("scaler"):
        scaler.load_state_dict(checkpoint["scaler"])
    generator.set_state(checkpoint["generator"])
    torch.set_rng_state(checkpoint["torch_rng"])
    cuda_rng = checkpoint.get("cuda_rng") or []
    if torch.cuda.is_available() and len(cuda_rng) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_rng)
    return RunState(epoch=int(checkpoint["epoch"]), global_step=int(checkpoint["global_step"]), history=history,
                    wall_seconds=float(checkpoint.get("wall_seconds", 0.0)), partial=partial)


def has_checkpoint(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a training that has started: a checkpoint after an epoch or inside one."""
    return (Path(folder) / CHECKPOINT_NAME).exists() or (Path(folder) / MID_EPOCH_NAME).exists()


def latest_checkpoint(folder: str | os.PathLike, *, epochs: int) -> tuple[Path, dict[str, Any]] | None:
    """The checkpoint to resume a run of ``epochs`` epochs from in ``folder``, and its contents: the mid-epoch
    one when it is later than ``checkpoint.pt`` and was saved by a run of ``epochs`` epochs (another length has
    another learning-rate schedule, which would change inside the epoch), else that; None when there is
    neither. A mid-epoch file that an epoch's checkpoint has overtaken (a run stopped between writing one and
    removing the other) is removed; one of another length is kept for a run of its length."""
    folder = Path(folder)
    epoch_path, mid_path = folder / CHECKPOINT_NAME, folder / MID_EPOCH_NAME
    latest = (epoch_path, read_checkpoint(epoch_path)) if epoch_path.exists() else None
    if mid_path.exists():
        mid = read_checkpoint(mid_path)
        if latest is not None and int(mid["global_step"]) <= int(latest[1]["global_step"]):
            mid_path.unlink()
        elif mid["config"].get("epochs") == epochs:
            return mid_path, mid
    return latest


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes (hex), read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
