"""Latency budgets: the fastest and slowest networks of a space, and the default budget.

The table is additive over parts, so the extremes are found slot by slot: each stage takes
the depth and, per block position, the option that minimises (maximises) the part latency
minus the per-part overhead that the table's correction removes.
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.arch import ArchSpec, reference_arch
from nas.errors import BudgetError, NASError
from nas.latency import TableEstimator, block_signature
from nas.latency.signature import Part
from nas.space import SearchSpace, block_slots, space_skeleton

__all__ = ["extreme_arch", "default_budget", "check_budget", "DEFAULT_BUDGET_FRACTION", "Budget"]

#: Default budget: this fraction of the reference MobileNetV2's predicted latency on the table.
DEFAULT_BUDGET_FRACTION = 0.5


@dataclass(frozen=True)
class Budget:
    ms: float
    rule: str  # how it was chosen, for the summary


def extreme_arch(space: SearchSpace, estimator: TableEstimator, *, fastest: bool = True) -> ArchSpec:
    overhead = estimator.table.correction.per_part_overhead_ms
    pick = min if fastest else max
    slots = block_slots(space)
    stem, head = space_skeleton(space)
    blocks = []
    for i, stage in enumerate(space.stages):
        first = next(s for s in slots if s.stage == i and s.first)
        repeat = next((s for s in slots if s.stage == i and not s.first), None)

        def cost(slot):  # type: ignore[no-untyped-def]
            options = list(slot.options())
            costs = [estimator.part_latency(Part("block", block_signature(b, resolution=slot.resolution), b,
                                                 b.in_ch, slot.resolution)).ms - overhead for b in options]
            best = pick(range(len(options)), key=costs.__getitem__)
            return options[best], costs[best]

        b_first, _ = cost(first)
        depths = range(stage.min_depth, stage.max_depth + 1)
        if repeat is None:
            depth, b_rep = stage.min_depth, None
        else:
            b_rep, c_rep = cost(repeat)
            depth = pick(depths, key=lambda d: (d - 1) * c_rep)
        blocks.append(b_first)
        blocks += [b_rep] * (depth - 1)  # type: ignore[list-item]
    return ArchSpec(space.input_size, space.in_ch, stem, tuple(blocks), head, space.num_classes)


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
    if not budget_ms > 0:
        raise BudgetError(f"--latency-ms: expected a positive number of milliseconds, got {budget_ms}")
    fastest = extreme_arch(space, estimator, fastest=True)
    fastest_ms = estimator.latency_ms(fastest)
    if budget_ms < fastest_ms:
        raise BudgetError(
            f"--latency-ms {budget_ms:g}: no network of space '{space.name}' is that fast on "
            f"{estimator.table.name}; the fastest achievable is {fastest_ms:.3f} ms. Raise the budget to at least "
            f"{fastest_ms:.3f} ms, or search a smaller space.")
    return fastest

