"""``nas supernet train``: the sandwich rule with in-place distillation, on the one training loop.

Every step (BigNAS, Yu et al. 2020; Once-for-All's progressive shrinking is not used) trains, on the
same batch:

* the **largest** sub-network on the labels (cross-entropy with label smoothing);
* the **smallest** and ``random_subnets`` **random** sub-networks on the largest one's soft predictions
  (in-place distillation: cross-entropy against its detached softmax), which BigNAS finds steadier than
  labels for the small ones;

and takes one SGD step on the sum of the losses. Each sub-network's loss is backpropagated before the next
one runs (the gradients add up to those of the sum), so one sub-network's activations are held at a time,
not 2 + N. The random sub-networks are drawn from the step number and the seed, so a resumed run (kill -9
or Ctrl-C, then the same command) takes exactly the steps of an uninterrupted one. Checkpoints, resume,
progress bar with ETA, divergence checks and CUDA mixed precision are the shared loop's
(:func:`nas.train.train_model`); validation after each epoch scores the largest sub-network (BatchNorm
re-estimated for it).
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas.atomic import ensure_dir
from nas.errors import NASError, SupernetError
from nas.space import SearchSpace, load_space, random_arch
from nas.supernet.model import Supernet
from nas.supernet.store import INFO_NAME, read_info, write_info
from nas.train.checkpoint import has_checkpoint
from nas.train.config import EpochMetrics, TrainConfig, TrainResult
from nas.train.device import cpu_threads, use_cpu_threads
from nas.train.loop import LossFn, train_model
from nas.write_errors import storing

__all__ = ["SandwichSettings", "SupernetTrainJob", "sandwich_loss", "data_fingerprint", "not_learning_warning",
           "run_supernet_train"]


@dataclass(frozen=True)
class SandwichSettings:
    random_subnets: int = 2  # N: sub-networks drawn at random per step, besides the largest and the smallest
    distill: bool = True  # the smaller ones learn from the largest one's predictions (else from the labels)

    def __post_init__(self) -> None:
        if isinstance(self.random_subnets, bool) or not isinstance(self.random_subnets, int) \
                or not 0 <= self.random_subnets <= 16:
            raise SupernetError(f"--random-subnets: expected an integer from 0 to 16, got {self.random_subnets!r}")


def _soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -(target * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


def _step_seed(seed: int, step: int, k: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}/{step}/{k}".encode()).digest()[:8], "big")


def sandwich_loss(space: SearchSpace, settings: SandwichSettings, *, seed: int, label_smoothing: float) -> LossFn:
    """The step loss of the sandwich rule (see the module docstring) for :func:`nas.train.train_model`."""
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def loss_fn(model: nn.Module, images: torch.Tensor,
                labels: torch.Tensor, step: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        assert isinstance(model, Supernet)
        largest = model(images, model.largest)
        target = F.softmax(largest.detach().float(), dim=1)
        yield largest, criterion(largest.float(), labels)
        others = [model.smallest, *(random_arch(space, _step_seed(seed, step, k))
                                    for k in range(settings.random_subnets))]
        for arch in others:
            logits = model(images, arch)
            yield logits, (_soft_cross_entropy(logits, target) if settings.distill else
                           criterion(logits.float(), labels))
    return loss_fn


def data_fingerprint(splits: Any) -> str:
    """The content of the training and validation images and labels (12 hex digits)."""
    digest = hashlib.sha256()
    for split in (splits.train, splits.val):
        digest.update(np.ascontiguousarray(split.images).tobytes())
        digest.update(np.ascontiguousarray(split.labels).tobytes())
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class SupernetTrainJob:
    space: str
    data: str
    out: str
    # The defaults (2 epochs of a 150-image subset, batch 32) fit ``nas supernet train`` with the default space
    # on digits in under 2 minutes on 2 busy CPU cores (81-83 s measured): a check of the pipeline, not a useful
    # supernet; ``nas supernet train --help`` gives the settings recommended for CIFAR-10.
    epochs: int = 2
    batch_size: int = 32
    lr: float = 0.02  # the step sums 4 sub-networks' losses: 0.05 made the defaults' loss rise, 0.1 diverged
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    warmup_epochs: float = 0.0
    augment: bool = True
    flip: bool = True
    seed: int = 0
    subset: int | None = 150
    val_fraction: float = 0.1
    device: str = "auto"
    amp: bool = True
    cache_dir: str | None = None
    threads: int = 0
    sandwich: SandwichSettings = SandwichSettings()


def _config(job: SupernetTrainJob) -> TrainConfig:
    try:
        return TrainConfig(epochs=job.epochs, batch_size=job.batch_size, lr=job.lr, weight_decay=job.weight_decay,
                           label_smoothing=job.label_smoothing, warmup_epochs=job.warmup_epochs,
                           augment=job.augment, flip=job.flip, seed=job.seed, device=job.device, amp=job.amp,
                           bn_recalibration=512)
    except ValueError as exc:
        raise NASError(f"training options: {exc}; fix the option(s) named above") from None


def _data_argument(data: str) -> str:
    """``--data`` as another directory can load it again: ``digits``, or an absolute path."""
    return data if data == "digits" else os.path.abspath(os.path.expanduser(data))


def _check_dir(out: Path, space: SearchSpace, data: dict[str, Any], settings: dict[str, Any]) -> bool:
    """Whether ``out`` already holds this supernet (resume); refuse one of another space, data or settings."""
    if not (out / INFO_NAME).exists():
        if has_checkpoint(out):  # its data is unknown: resuming it could score training images
            raise SupernetError(f"{out}: holds a training checkpoint but no {INFO_NAME}, so "
                                "not a supernet directory this command can resume; choose another --out")
        return False
    info = read_info(out)
    checks = (("the space", info["space"].get("digest"), space.digest, "--space"),
              ("the data", info["data"].get("fingerprint"), data["fingerprint"], "--data/--subset/--val-fraction/--seed"),
              ("the sandwich settings", info.get("settings"), settings, "--random-subnets/--no-distill"))
    for what, saved, now, option in checks:
        if saved != now:
            raise SupernetError(f"{out / INFO_NAME}: {out} holds a supernet trained with another {what[4:]} "
                                f"({saved!r}, this command: {now!r}); repeat the original {option}, or choose "
                                f"another --out")
    return True


#: An epoch's mean step loss above this many times that of guessing uniformly, with the largest network below
#: ``CHANCE_MARGIN`` x chance on validation, is a run that is not learning (a learning rate too high).
NOT_LEARNING_LOSS = 1.2
CHANCE_MARGIN = 1.5


def not_learning_warning(num_classes: int, settings: SandwichSettings,
                         warn: Callable[[str], None]) -> Callable[[EpochMetrics], bool]:
    """An ``on_epoch_end`` callback that warns (once, without stopping the run) when an epoch's training loss is
    well above that of every sub-network guessing uniformly, ``(2 + N) x ln(classes)``, and the largest network
    is at chance on validation: the sign of a learning rate too high (the loss rises instead of diverging)."""
    uniform = (2 + settings.random_subnets) * math.log(num_classes)
    warned = False

    def check(metrics: EpochMetrics) -> bool:
        nonlocal warned
        if not warned and metrics.train_loss > NOT_LEARNING_LOSS * uniform \
                and metrics.val_acc < CHANCE_MARGIN / num_classes:
            warned = True
            warn(f"warning: epoch {metrics.epoch}: the sandwich loss {metrics.train_loss:.2f} is above that of "
                 f"guessing uniformly ({2 + settings.random_subnets} sub-networks x ln {num_classes} = {uniform:.2f}) "
                 f"and the largest network is at chance on validation ({metrics.val_acc:.3f}): the supernet is not "
                 "learning. The learning rate is probably too high: stop (Ctrl-C) and train again in a new --out "
                 "with a lower --lr or a longer --warmup-epochs")
        return False

    return check


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_supernet_train(job: SupernetTrainJob, *, progress: bool = True, log: Callable[[str], None] = print,
                       warn: Callable[[str], None] = _stderr) -> TrainResult:
    """Train (or resume) the supernet of ``job.space`` on ``job.data`` into ``job.out``; ``warn`` receives the
    warning of a run that is not learning (:func:`not_learning_warning`), also when ``log`` is silent."""
    from nas.data import load_dataset

    space = load_space(job.space)
    space_text = Path(job.space).read_text(encoding="utf-8")
    config = _config(job)
    out = Path(job.out)
    splits = load_dataset(job.data, input_size=space.input_size, val_fraction=job.val_fraction, seed=job.seed,
                          subset=job.subset, cache_dir=job.cache_dir, progress=progress)
    if splits.num_classes != space.num_classes:
        raise SupernetError(f"--data {job.data}: has {splits.num_classes} classes but space '{space.name}' "
                            f"({job.space}) classifies {space.num_classes}; set 'classes: {splits.num_classes}' "
                            f"in a copy of the space file")
    data = {"source": splits.source, "argument": _data_argument(job.data), "fingerprint": data_fingerprint(splits),
            "subset": job.subset, "val_fraction": job.val_fraction, "seed": job.seed, "mean": list(splits.mean), "std": list(splits.std),
            "images": {"train": len(splits.train), "val": len(splits.val)}}
    settings = {**asdict(job.sandwich), "rule": "sandwich (largest + smallest + N random), in-place distillation"}
    resuming = _check_dir(out, space, data, settings)
    ensure_dir(out, "--out")
    if not resuming:
        with storing(out / INFO_NAME):
            write_info(out, space_text=space_text, space=space, data=data, settings=settings)
    threads = cpu_threads(job.threads)
    use_cpu_threads(threads)
    log(f"supernet of space '{space.name}' ({sum(s.max_depth for s in space.stages)} block positions); data "
        f"{splits.source}: {len(splits.train)} train / {len(splits.val)} val images; {threads} CPU thread(s); "
        f"{'resuming in' if resuming else 'into'} {out}")
    torch.manual_seed(job.seed)  # the initial weights (the loop seeds everything after)
    supernet = Supernet(space)
    loss_fn = sandwich_loss(space, job.sandwich, seed=job.seed, label_smoothing=job.label_smoothing)
    return train_model(supernet, splits, config, out_dir=out, progress=progress, loss_fn=loss_fn,
                       on_epoch_end=not_learning_warning(space.num_classes, job.sandwich, warn))
