"""Final-training recipes: ``full`` (the paper-scale schedule) and ``short`` (a CPU-scale check).

Both use the shared training loop (:func:`nas.train.train_model`): SGD with Nesterov momentum
0.9, a linear warm-up then cosine decay to zero per step, label smoothing 0.1, random crop
(4-pixel zero padding) + horizontal flip, weight decay on convolution and linear weights only.

BatchNorm statistics are re-estimated from :data:`BN_RECALIBRATION` (2,048) unaugmented
training images with the final weights before the test accuracy is measured (and before
every per-epoch monitoring pass), as the search does before every validation with 512: the
running averages of a short run still mix the statistics of much earlier weights, which put
5 of 6 networks of a short MNIST retraining at chance level (10.0 % with the running averages,
31.7 % with the same weights re-estimated). 2,048 images rather than the search's 512 because
the final figure deserves the more precise estimate and costs once what a few dozen training
steps cost; with fewer training images, all of them. The tested, saved and exported weights
are the re-estimated ones.

=========  ======  =====  ======  =======  ======  ==============================================
recipe     epochs  batch  lr      warm-up  wd      meant for
=========  ======  =====  ======  =======  ======  ==============================================
``full``   200     128    0.1     1 epoch  5e-4    the reported figures (GPU: ~minutes per network)
``short``  5       64     0.05    0.5      5e-4    checking a run end to end on a CPU
=========  ======  =====  ======  =======  ======  ==============================================

Why these values: 200 epochs of cosine SGD at lr 0.1 / batch 128 with weight decay 5e-4 is
the common from-scratch CIFAR recipe for MobileNetV2-size networks (the CSE paper does not
state its own); 5e-4 rather than MobileNetV2's ImageNet value 4e-5 because a 32x32, 50k-image
dataset over-fits without it. The short recipe keeps the same optimiser at the proxy's batch
size and rate. ``epochs``, ``batch_size``, ``lr`` and ``augment`` can be overridden; a
recipe's :attr:`Recipe.tag` names every value that differs from the defaults (``-crop``: no
flips, ``-noaug``), so two different trainings never share a checkpoint folder, a reference
cache entry or a report section.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from nas.errors import NASError
from nas.train import TrainConfig

__all__ = ["Recipe", "RECIPES", "make_recipe", "BN_RECALIBRATION", "AUGMENTATIONS"]

#: ``--augment``: what the training images go through (see :class:`Recipe`).
AUGMENTATIONS: tuple[str, ...] = ("crop+flip", "crop", "none")
_AUGMENT_TAGS = {"crop+flip": "cropflip", "crop": "crop", "none": "noaug"}
_AUGMENT_TEXT = {"crop+flip": "random crop (pad 4) + flip", "crop": "random crop (pad 4), no flip",
                 "none": "no augmentation"}

#: See the module doc.
BN_RECALIBRATION = 2048


@dataclass(frozen=True)
class Recipe:
    name: str
    epochs: int
    batch_size: int
    lr: float
    warmup_epochs: float
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    #: ``crop+flip`` (random crop with 4-pixel padding, horizontal flip), ``crop`` (no flip: digits, text) or ``none``.
    augment: str = "crop+flip"
    #: Training images the BatchNorm statistics are re-estimated from before testing (module doc).
    bn_recalibration: int = BN_RECALIBRATION

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTATIONS:
            raise NASError(f"--augment: expected one of {', '.join(AUGMENTATIONS)}, got {self.augment!r}")
        try:
            self.train_config(seed=0, device="cpu")
        except ValueError as exc:
            raise NASError(f"recipe '{self.name}': {exc}; pass valid --epochs/--batch-size/--lr values") from None

    def train_config(self, *, seed: int, device: str = "auto", amp: bool = True) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           warmup_epochs=min(self.warmup_epochs, float(self.epochs)),
                           weight_decay=self.weight_decay, label_smoothing=self.label_smoothing,
                           augment=self.augment != "none", flip=self.augment == "crop+flip", seed=seed,
                           device=device, amp=amp,
                           bn_recalibration=self.bn_recalibration)

    @property
    def tag(self) -> str:
        """Folder name: ``short-5ep``; overridden batch/lr are added (``full-200ep-b256-lr0.2``)."""
        base = RECIPES.get(self.name)
        parts = [self.name, f"{self.epochs}ep"]
        if base is None or self.batch_size != base.batch_size:
            parts.append(f"b{self.batch_size}")
        if base is None or self.lr != base.lr:
            parts.append(f"lr{_number(self.lr)}")
        if base is None or self.augment != base.augment:
            parts.append(_AUGMENT_TAGS[self.augment])
        named = replace(base, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, augment=self.augment) \
            if base is not None else None
        if named is not None and named != self:
            parts.append(self.digest[:8])
        return "-".join(parts)

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        epochs = f"{self.epochs} epoch{'' if self.epochs == 1 else 's'}"
        return (f"{self.name}: {epochs}, batch {self.batch_size}, SGD Nesterov 0.9, peak lr {_number(self.lr)} "
                f"(warm-up {min(self.warmup_epochs, self.epochs):g} epoch(s), cosine to 0), weight decay "
                f"{self.weight_decay:g}, label smoothing {self.label_smoothing:g}, "
                f"{_AUGMENT_TEXT[self.augment]}; BatchNorm statistics "
                f"re-estimated from {self.bn_recalibration:,} training images before testing")


def _number(value: float) -> str:
    """``value`` as ``:g`` prints it (``0.2``, ``1e-05``) when that reads back as ``value``, else every digit
    (``repr``): two different learning rates never share a tag."""
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


RECIPES: dict[str, Recipe] = {
    "full": Recipe("full", epochs=200, batch_size=128, lr=0.1, warmup_epochs=1.0),
    "short": Recipe("short", epochs=5, batch_size=64, lr=0.05, warmup_epochs=0.5),
}


def make_recipe(name: str, *, epochs: int | None = None, batch_size: int | None = None,
                lr: float | None = None, augment: str | None = None) -> Recipe:
    """A named recipe with optional overrides; NASError naming the option on bad values."""
    if name not in RECIPES:
        raise NASError(f"--recipe: expected one of {', '.join(RECIPES)}, got {name!r}")
    for option, value in (("--epochs", epochs), ("--batch-size", batch_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise NASError(f"{option}: expected an integer >= 1, got {value!r}")
    if lr is not None and not lr > 0:
        raise NASError(f"--lr: expected a number > 0, got {lr!r}")
    base = RECIPES[name]
    return replace(base, epochs=epochs or base.epochs, batch_size=batch_size or base.batch_size,
                   lr=lr if lr is not None else base.lr, augment=augment if augment is not None else base.augment)
