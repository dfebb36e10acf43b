"""The learning-rate schedule: linear warm-up, then cosine decay to zero, per optimisation step.

Epoch length. One epoch is one pass over the training split in batches of ``batch_size``,
dropping the last incomplete batch (a tiny last batch gives noisy BatchNorm statistics and a
batch of one fails in train mode); a split smaller than one batch gives one (smaller) batch.
``steps_per_epoch`` replaces that count: below it, the epoch ends early (NetAdapt's short
fine-tuning); above it, the epoch continues into fresh shuffled passes, so "T steps" always
means T updates whatever the split size. The plan is fixed before training, so the
schedule's length is known up front.

The rate is a pure function of the global step (no scheduler object with its own state), so a
resumed run gets the right rate from the saved step alone, and the schedule is easy to test.

Step ``s`` (0-based) is the ``s``-th parameter update of ``total`` updates:

* warm-up, ``s < warmup``: ``peak * (s + 1) / warmup``, so the first update already moves
  (a rate of exactly 0 would waste it) and the last warm-up update uses ``peak``;
* then ``peak * (1 + cos(pi * (s - warmup) / (total - warmup))) / 2``: ``peak`` at the first
  post-warm-up update, reaching 0 at ``s == total``, i.e. right after the last update.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["lr_at", "warmup_steps", "StepPlan", "plan_steps"]


def warmup_steps(warmup_epochs: float, steps_per_epoch: int) -> int:
    """Warm-up length in updates (fractional epochs allowed; rounded to the nearest update)."""
    return int(round(warmup_epochs * steps_per_epoch))


def lr_at(step: int, *, peak: float, warmup: int, total: int) -> float:
    """Learning rate of update ``step`` (0-based) of ``total``; see the module docstring."""
    assert 0 <= warmup <= total and total >= 1, (warmup, total)
    if step < warmup:
        return peak * (step + 1) / warmup
    decay = total - warmup
    progress = min(1.0, (step - warmup) / decay) if decay > 0 else 1.0
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class StepPlan:
    """How many updates an epoch and the run take, and how many warm up."""

    steps_per_epoch: int
    drop_last: bool
    warmup: int
    total: int


def plan_steps(num_train: int, *, batch_size: int, epochs: int, warmup_epochs: float,
               steps_per_epoch: int | None) -> StepPlan:
    assert num_train > 0
    drop_last = num_train >= batch_size
    full_pass = num_train // batch_size if drop_last else 1
    steps = steps_per_epoch if steps_per_epoch is not None else full_pass
    total = steps * epochs
    return StepPlan(steps, drop_last, min(warmup_steps(warmup_epochs, steps), total), total)
