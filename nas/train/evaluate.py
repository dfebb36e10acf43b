"""Evaluation: mean cross entropy and top-1 accuracy over a split, in eval mode.

The loss is the plain cross entropy (no label smoothing): it is the quantity comparable across
runs with different smoothing, and the one reported as ``val_loss``. Sums are accumulated on
the device and read once at the end, so evaluation never stalls a GPU per batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import DataError
from nas.train.device import Precision, choose_precision, resolve_device
from nas.train.protocols import BatchesFactory, ImageArraysLike, default_batches_factory

__all__ = ["evaluate", "evaluate_batches", "eval_batches", "recalibrate_batchnorm", "score", "score_batches",
           "SplitScore"]


@dataclass(frozen=True)
class SplitScore:
    """Loss and accuracy over a split, and how many of its images were predicted as each class."""

    loss: float
    acc: float
    predicted: tuple[int, ...]

    @property
    def top_class(self) -> int:
        """The class predicted most often (the lowest index among ties)."""
        return max(range(len(self.predicted)), key=lambda k: (self.predicted[k], -k))

    @property
    def top_class_share(self) -> float:
        """The share of the images predicted as :attr:`top_class` (1.0: one class for every image)."""
        return self.predicted[self.top_class] / sum(self.predicted)


def score_batches(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                  precision: Precision) -> SplitScore:
    """:class:`SplitScore` of ``model`` over ``batches``; restores the model's train/eval mode."""
    device = precision.device
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    predicted: torch.Tensor | None = None
    seen = 0
    try:
        with torch.inference_mode(), precision.autocast():
            for images, labels in batches:
                images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
                logits = model(images).float()
                loss_sum += F.cross_entropy(logits, labels, reduction="sum").double()
                guesses = logits.argmax(dim=1)
                correct += (guesses == labels).sum()
                counts = torch.bincount(guesses, minlength=logits.shape[1])
                predicted = counts if predicted is None else predicted + counts
                seen += labels.numel()
    finally:
        model.train(was_training)
    if seen == 0 or predicted is None:
        raise DataError("cannot evaluate on an empty split: expected at least one image; check the dataset split")
    return SplitScore(loss_sum.item() / seen, correct.item() / seen, tuple(int(c) for c in predicted.tolist()))


def evaluate_batches(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                     precision: Precision) -> tuple[float, float]:
    """``(mean loss, accuracy)`` of ``model`` over ``batches``; restores the model's train/eval mode."""
    result = score_batches(model, batches, precision)
    return result.loss, result.acc


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                          precision: Precision, *, images: int) -> int:
    """Re-estimate every BatchNorm's running mean/variance from the first ``images`` of ``batches``.

    The statistics are reset and accumulated as a plain average over the batches (momentum
    ``None``), with the current weights, in train mode and without gradients; the model's
    mode and the layers' momenta are restored. Returns the number of images used (0 when the
    model has no BatchNorm).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or images <= 0:
        return 0
    momenta = [m.momentum for m in norms]
    was_training = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    seen = 0
    try:
        with precision.autocast():
            for x, _ in batches:
                if seen >= images:
                    break
                x = x[: images - seen].to(precision.device, non_blocking=True)
                model(x)
                seen += x.shape[0]
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return seen


def eval_batches(factory: BatchesFactory, arrays: ImageArraysLike, *, mean: tuple[float, ...],
                 std: tuple[float, ...], batch_size: int,
                 precision: Precision) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """One ordered, unaugmented pass. The generator is unused (no randomness) but passed, seeded,
    so that iterators which always expect one work, and the training generator is untouched."""
    return factory(arrays, mean=mean, std=std, batch_size=batch_size, device=precision.device, augment=False,
                   flip=False, shuffle=False, drop_last=False, channels_last=precision.channels_last,
                   generator=torch.Generator().manual_seed(0))


def evaluate(model: nn.Module, arrays: ImageArraysLike, *, mean: tuple[float, ...], std: tuple[float, ...],
             device: str | torch.device = "auto", batch_size: int = 512, amp: bool = True,
             batches_factory: BatchesFactory | None = None, recalibrate_on: ImageArraysLike | None = None,
             recalibrate_images: int = 0) -> tuple[float, float]:
    """``(loss, accuracy)`` of ``model`` on ``arrays``; the model is moved to ``device``.

    ``amp`` (CUDA only) evaluates under the same autocast as training would. With
    ``recalibrate_on`` (training images) and ``recalibrate_images > 0``, the BatchNorm statistics
    are first re-estimated from that many of them (:func:`recalibrate_batchnorm`), as the
    training loop does with ``TrainConfig.bn_recalibration``; this changes the model's buffers.
    """
    result = score(model, arrays, mean=mean, std=std, device=device, batch_size=batch_size, amp=amp,
                   batches_factory=batches_factory, recalibrate_on=recalibrate_on,
                   recalibrate_images=recalibrate_images)
    return result.loss, result.acc


def score(model: nn.Module, arrays: ImageArraysLike, *, mean: tuple[float, ...], std: tuple[float, ...],
          device: str | torch.device = "auto", batch_size: int = 512, amp: bool = True,
          batches_factory: BatchesFactory | None = None, recalibrate_on: ImageArraysLike | None = None,
          recalibrate_images: int = 0) -> SplitScore:
    """:func:`evaluate` with the predicted classes counted (:class:`SplitScore`)."""
    if len(arrays) == 0:
        raise DataError("cannot evaluate on an empty split: expected at least one image; check the dataset split")
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    precision = choose_precision(dev, amp=amp, channels_last=True)  # as training (nas.train.device)
    model.to(dev, memory_format=torch.channels_last)
    factory = batches_factory if batches_factory is not None else default_batches_factory()
    if recalibrate_on is not None and recalibrate_images > 0:
        recalibrate_batchnorm(model, eval_batches(factory, recalibrate_on, mean=mean, std=std,
                                                  batch_size=min(batch_size, recalibrate_images),
                                                  precision=precision),
                              precision, images=recalibrate_images)
    return score_batches(model, eval_batches(factory, arrays, mean=mean, std=std, batch_size=batch_size,
                                             precision=precision), precision)
