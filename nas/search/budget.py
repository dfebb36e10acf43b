"""Latency budgets: the fastest and slowest networks of a space, and the default budget.

The table is additive over parts, so the extremes are found slot by slot: per block position
the option with the smallest (largest) part latency, then per stage the depth that minimises
(maximises) the whole network's predicted latency. Both forms of a stage work alike: a slot's
options are its cross-product combinations or its candidates (:meth:`nas.space.BlockSlot.choice_options`),
and an identity skip block, which is no part, ranks at 0 ms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nas.arch import ArchSpec, reference_arch
from nas.errors import BudgetError, NASError
from nas.latency import TableEstimator, block_signature
from nas.latency.signature import Part
from nas.space import SearchSpace, block_slots, sample_arch

__all__ = ["extreme_arch", "extreme_params", "default_budget", "check_budget", "DEFAULT_BUDGET_FRACTION", "Budget"]

#: Default budget: this fraction of the reference MobileNetV2's predicted latency on the table.
DEFAULT_BUDGET_FRACTION = 0.5


@dataclass(frozen=True)
class Budget:
    ms: float
    rule: str  # how it was chosen, for the summary


class _SlotChooser:
    """Replays one choice dict per stage slot (first block, repeats) and records the parameters (only those
    :func:`~nas.space.sample_arch` asks for, so they replay through it, e.g. with a recording chooser)."""

    def __init__(self, depths: dict[int, int], picks: dict[tuple[int, bool], dict[str, Any]]) -> None:
        self.depths, self.picks = depths, picks
        self.params: dict[str, Any] = {}

    def choose(self, name: str, options: Sequence[Any]) -> Any:
        stage, block, key = name.split(".")
        value = self.picks[(int(stage[1:]), block == "b0")][key]
        assert value in options, (name, value, options)
        self.params[name] = value
        return value

    def choose_int(self, name: str, low: int, high: int) -> int:
        value = self.depths[int(name.split(".")[0][1:])]
        self.params[name] = value
        return value


def _extreme(space: SearchSpace, estimator: TableEstimator, fastest: bool) -> tuple[ArchSpec, dict[str, Any]]:
    pick = min if fastest else max
    picks: dict[tuple[int, bool], dict[str, Any]] = {}
    for slot in block_slots(space):
        # Options of one slot differ only in the part itself (same input and output tensors), so
        # the slot's part latency ranks them whatever the table's correction.
        options = list(slot.choice_options())
        costs = [estimator.part_latency(Part("block", block_signature(b, resolution=slot.resolution), b, b.in_ch,
                                             slot.resolution)).ms for _, b in options]  # an identity: 0 ms
        picks[(slot.stage, slot.first)] = options[pick(range(len(options)), key=costs.__getitem__)][0]
    depths = {i: s.min_depth for i, s in enumerate(space.stages)}

    def latency(depths: dict[int, int]) -> float:
        return estimator.latency_ms(sample_arch(space, _SlotChooser(depths, picks)))

    for i, stage in enumerate(space.stages):  # whole-network predictions: the correction counts parts
        depths[i] = pick(range(stage.min_depth, stage.max_depth + 1), key=lambda d: latency({**depths, i: d}))
    chooser = _SlotChooser(depths, picks)
    arch = sample_arch(space, chooser)
    return arch, chooser.params


def extreme_arch(space: SearchSpace, estimator: TableEstimator, *, fastest: bool = True) -> ArchSpec:
    """The fastest (slowest) network of the space according to the table."""
    return _extreme(space, estimator, fastest)[0]


def extreme_params(space: SearchSpace, estimator: TableEstimator, *, fastest: bool = True) -> dict[str, Any]:
    """The sampling parameters (``s{i}.depth``, ``s{i}.b{j}.kernel``, ``s{i}.b{j}.op``, ...) of :func:`extreme_arch`."""
    return _extreme(space, estimator, fastest)[1]


def default_budget(space: SearchSpace, estimator: TableEstimator) -> Budget:
    ref = reference_arch("mobilenetv2-cifar")
    if (ref.input_size, ref.in_ch, ref.num_classes) == (space.input_size, space.in_ch, space.num_classes):
        try:
            ref_ms = estimator.latency_ms(ref)
            return Budget(DEFAULT_BUDGET_FRACTION * ref_ms,
                          f"{DEFAULT_BUDGET_FRACTION:.0%} of mobilenetv2-cifar's predicted {ref_ms:.3f} ms")
        except NASError:
            pass
    lo = estimator.latency_ms(extreme_arch(space, estimator, fastest=True))
    hi = estimator.latency_ms(extreme_arch(space, estimator, fastest=False))
    return Budget((lo + hi) / 2, f"midpoint of the space's fastest ({lo:.3f} ms) and slowest ({hi:.3f} ms) networks")


def check_budget(budget_ms: float, space: SearchSpace, estimator: TableEstimator) -> ArchSpec:
    """Refuse a budget below the fastest network of the space; returns that network."""
    if not (budget_ms > 0 and math.isfinite(budget_ms)):
        raise BudgetError(f"--latency-ms: expected a positive, finite number of milliseconds, got {budget_ms}")
    fastest = extreme_arch(space, estimator, fastest=True)
    fastest_ms = estimator.latency_ms(fastest)
    if budget_ms < fastest_ms:
        raise BudgetError(
            f"--latency-ms {budget_ms:g}: no network of space '{space.name}' is that fast on "
            f"{estimator.table.name}; the fastest achievable is {fastest_ms:.3f} ms. Raise the budget to at least "
            f"{fastest_ms:.3f} ms, or search a smaller space.")
    return fastest

