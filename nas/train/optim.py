"""The optimiser: SGD with Nesterov momentum and weight decay on weight matrices/kernels only.

Parameters with ``ndim <= 1`` are BatchNorm scales/shifts and biases. Decaying them pulls BN
scales towards zero (shrinking whole channels) and biases towards zero, which regularises
nothing useful in networks whose convolutions are followed by BN; MobileNetV3, EfficientNet
and most later recipes exempt them. Frozen parameters (``requires_grad=False``) are left out.
"""

from __future__ import annotations

from torch import nn
from torch.optim import SGD

from nas.train.config import TrainConfig

__all__ = ["param_groups", "build_optimizer"]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, object]]:
    """Two groups, always in this order: ``decay`` (ndim > 1) and ``no_decay`` (ndim <= 1)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return [
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]


def build_optimizer(model: nn.Module, config: TrainConfig) -> SGD:
    groups = param_groups(model, config.weight_decay)
    if not any(group["params"] for group in groups):
        raise ValueError(f"{type(model).__name__} has no trainable parameters (all require_grad=False?)")
    return SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True, weight_decay=config.weight_decay)
