"""The per-step learning rate (linear warm-up, cosine to zero) and the epoch plan."""

from __future__ import annotations

import math

import pytest

from nas.train import lr_at
from nas.train.schedule import plan_steps


def test_warmup_is_linear_then_cosine_reaches_zero_after_last_step() -> None:
    peak, warmup, total = 0.4, 4, 14
    rates = [lr_at(s, peak=peak, warmup=warmup, total=total) for s in range(total + 1)]
    assert rates[:4] == pytest.approx([0.1, 0.2, 0.3, 0.4])  # linear, the first update already moves
    assert rates[4] == pytest.approx(peak)  # cosine starts at the peak
    assert rates[9] == pytest.approx(peak / 2)  # halfway through the 10 decay steps
    assert rates[6] == pytest.approx(peak * 0.5 * (1 + math.cos(math.pi * 2 / 10)))
    assert rates[total] == pytest.approx(0.0, abs=1e-12)  # 0 at the end of the last epoch
    assert all(a >= b for a, b in zip(rates[4:], rates[5:]))  # monotone decay
    assert rates[total - 1] > 0  # the last update still learns


def test_without_warmup_the_first_step_uses_the_peak() -> None:
    assert lr_at(0, peak=0.05, warmup=0, total=10) == pytest.approx(0.05)
    assert lr_at(5, peak=0.05, warmup=0, total=10) == pytest.approx(0.025)


def test_plan_full_pass_drops_the_last_partial_batch() -> None:
    plan = plan_steps(100, batch_size=32, epochs=3, warmup_epochs=0.5, steps_per_epoch=None)
    assert (plan.steps_per_epoch, plan.drop_last, plan.total, plan.warmup) == (3, True, 9, 2)


def test_plan_split_smaller_than_a_batch_gives_one_step() -> None:
    plan = plan_steps(10, batch_size=32, epochs=2, warmup_epochs=0.0, steps_per_epoch=None)
    assert (plan.steps_per_epoch, plan.drop_last, plan.total) == (1, False, 2)


def test_plan_steps_per_epoch_overrides_the_pass_length() -> None:
    assert plan_steps(1000, batch_size=10, epochs=2, warmup_epochs=1.0, steps_per_epoch=7).total == 14
    assert plan_steps(20, batch_size=10, epochs=1, warmup_epochs=0.0, steps_per_epoch=7).steps_per_epoch == 7
