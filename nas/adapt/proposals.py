"""NetAdapt proposals: the smallest change of one kind that cuts the predicted latency by delta.

Kinds (MobileNetV3 used the first two):

* ``mid``: shrink one block's hidden (expansion) channels, in steps of 8 (a block keeps its
  expansion conv: the hidden width never becomes equal to its input width);
* ``width``: shrink one group's width (the stem's output, or a stage's output shared by its
  residual blocks) in steps of 8, for every tensor of the group, so residuals stay valid;
* ``head``: shrink the 1x1 head's width in steps of 8;
* ``cse`` (optional): replace an inverted-residual block's 1x1 projection with CSE;
* ``drop`` (optional): remove one residual (repeated) block.

A skip block has no hidden width, so it gets no ``mid`` proposal, and no ``cse`` one; an
identity skip is never dropped (it is no operation: dropping it changes no latency). A group's
width shrinks through a conv skip like through any block that starts a group (its 1x1
convolution's output is the group's width), and through an identity like through a residual
block (its input and output are the group's width).

For the shrinking kinds, the candidate widths are the multiples of 8 below the current one;
the proposal is the largest width that meets the latency goal, i.e. the smallest change that
does so, found by bisection (see :func:`_first_meeting`). A kind/target that cannot meet the
goal at all yields no proposal.

Shrinking never changes a network's structure: a width at which a block would gain or lose
its expansion conv (hidden == input width) or a residual connection (input == output width
at stride 1) is skipped, so every tensor of the child has a counterpart in the parent and
the channel groups of both networks are the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from nas.adapt.layout import group_ids
from nas.arch import ArchSpec, BlockSpec
from nas.latency import LatencyEstimator, Prediction

__all__ = ["Proposal", "generate_proposals", "floor_arch", "with_mid", "with_width", "with_head", "to_cse",
           "drop_block", "PROPOSAL_KINDS"]

PROPOSAL_KINDS = ("mid", "width", "head", "cse", "drop")


@dataclass(frozen=True)
class Proposal:
    kind: str
    target: str
    description: str
    arch: ArchSpec
    block_map: tuple[int, ...]  # child block i inherits from parent block block_map[i]
    latency_ms: float
    interpolated: tuple[str, ...]  # parts ("block3", "head") whose latency was interpolated, not measured


def _identity(arch: ArchSpec) -> tuple[int, ...]:
    return tuple(range(len(arch.blocks)))


def with_mid(arch: ArchSpec, index: int, mid: int) -> ArchSpec:
    blocks = list(arch.blocks)
    blocks[index] = replace(blocks[index], mid_ch=mid)
    return arch.replace_blocks(tuple(blocks))


def with_width(arch: ArchSpec, group: int, width: int) -> ArchSpec:
    groups = group_ids(arch)
    stem = replace(arch.stem, out_ch=width) if group == 0 else arch.stem
    blocks: list[BlockSpec] = []
    in_group = 0
    for block, g in zip(arch.blocks, groups):
        in_ch = width if in_group == group else block.in_ch
        out_ch = width if g == group else block.out_ch
        mid = in_ch if not block.has_expansion else block.mid_ch
        blocks.append(replace(block, in_ch=in_ch, out_ch=out_ch, mid_ch=mid))
        in_group = g
    head = arch.head
    if head.kind == "dw" and in_group == group:
        head = replace(head, width=width * (head.width // arch.last_ch))
    return ArchSpec(arch.input_size, arch.in_ch, stem, tuple(blocks), head, arch.num_classes)


def with_head(arch: ArchSpec, width: int) -> ArchSpec:
    return ArchSpec(arch.input_size, arch.in_ch, arch.stem, arch.blocks, replace(arch.head, width=width),
                    arch.num_classes)


def to_cse(arch: ArchSpec, index: int, *, reduction: int, cap: int) -> ArchSpec:
    blocks = list(arch.blocks)
    blocks[index] = replace(blocks[index], type="cse", cse_reduction=reduction, cse_cap=cap)
    return arch.replace_blocks(tuple(blocks))


def drop_block(arch: ArchSpec, index: int) -> ArchSpec:
    return arch.replace_blocks(arch.blocks[:index] + arch.blocks[index + 1:])


def _structure(arch: ArchSpec) -> tuple[tuple[bool, bool], ...]:
    return tuple((b.has_expansion, b.residual) for b in arch.blocks)


def _smaller(current: int, minimum: int = 8) -> Iterator[int]:
    v = (current - 1) // 8 * 8
    while v >= minimum:
        yield v
        v -= 8


def _candidates(arch: ArchSpec, *, allow_cse: bool, allow_drop: bool, cse_reduction: int,
                cse_cap: int) -> Iterator[tuple[str, str, list[tuple[str, ArchSpec, tuple[int, ...]]]]]:
    """(kind, target, [(description, child, block_map), ...] from the smallest change up)."""
    ident = _identity(arch)
    for i, b in enumerate(arch.blocks):
        if b.has_expansion:
            options = [(f"block {i} hidden {b.mid_ch} -> {m}", with_mid(arch, i, m), ident)
                       for m in _smaller(b.mid_ch) if m != b.in_ch]
            yield "mid", f"block{i}", options
    groups = group_ids(arch)
    widths = {0: arch.stem.out_ch} | {g: b.out_ch for g, b in zip(groups, arch.blocks)}
    structure = _structure(arch)
    for g, w in widths.items():
        children = ((v, with_width(arch, g, v)) for v in _smaller(w))
        yield "width", f"group{g}", [(f"group {g} width {w} -> {v}", child, ident) for v, child in children
                                     if _structure(child) == structure]
    if arch.head.kind == "conv":
        yield "head", "head", [(f"head width {arch.head.width} -> {v}", with_head(arch, v), ident)
                               for v in _smaller(arch.head.width)]
    if allow_cse:
        for i, b in enumerate(arch.blocks):
            if b.type == "ir":
                yield "cse", f"block{i}", [(f"block {i} projection -> CSE (r{cse_reduction}, cap {cse_cap})",
                                            to_cse(arch, i, reduction=cse_reduction, cap=cse_cap), ident)]
    if allow_drop:
        for i, b in enumerate(arch.blocks):
            if b.residual and not b.is_identity:
                yield "drop", f"block{i}", [(f"drop block {i}", drop_block(arch, i),
                                             ident[:i] + ident[i + 1:])]


def _first_meeting(options: list[tuple[str, ArchSpec, tuple[int, ...]]], estimator: LatencyEstimator,
                   goal_ms: float) -> tuple[int, Prediction] | None:
    """Index (and prediction) of the smallest change in ``options`` that meets the goal.

    ``options`` go from the smallest change to the largest, so the predicted latency falls along
    the list. Galloping search: options 0, 1, 3, 7, 15, ... (and the last) are tried until one
    meets the goal, then the boundary after the last miss is bisected. That is about
    ``2 log2(n)`` predictions instead of up to ``n``, which matters when every prediction of a
    new width is a measurement; and it approaches from the small-change end, so a noisy
    measurement at an extreme width cannot hide a kind that meets the goal earlier. The index
    returned meets the goal and the one before it misses (the exhaustive scan's answer whenever
    the latency falls monotonically along the list).
    """
    cache: dict[int, Prediction] = {}

    def meets(i: int) -> bool:
        if i not in cache:
            cache[i] = estimator.predict(options[i][1])
        return cache[i].total_ms <= goal_ms

    last, miss, probe = len(options) - 1, -1, 0
    while probe <= last and not meets(probe):
        miss, probe = probe, min(2 * probe + 1, last)
        if probe == miss:  # the last option missed too
            return None
    if probe > last:
        return None
    hit = probe
    while hit - miss > 1:
        mid = (miss + hit) // 2
        if meets(mid):
            hit = mid
        else:
            miss = mid
    return hit, cache[hit]


def generate_proposals(arch: ArchSpec, estimator: LatencyEstimator, *, goal_ms: float, allow_cse: bool = False,
                       allow_drop: bool = False, cse_reduction: int = 16, cse_cap: int = 16) -> list[Proposal]:
    """One proposal per kind/target that can meet ``goal_ms``: its smallest change that does."""
    out = []
    for kind, target, options in _candidates(arch, allow_cse=allow_cse, allow_drop=allow_drop,
                                             cse_reduction=cse_reduction, cse_cap=cse_cap):
        found = _first_meeting(options, estimator, goal_ms)
        if found is None:
            continue
        index, pred = found
        description, child, block_map = options[index]
        interpolated = tuple(p.name for p in pred.parts if p.source == "interpolated")
        out.append(Proposal(kind, target, description, child, block_map, pred.total_ms, interpolated))
    return out


def floor_arch(arch: ArchSpec, *, allow_drop: bool = False) -> ArchSpec:
    """The smallest network the shrinking kinds can reach: every hidden, group and head width at
    its minimum (and, with ``allow_drop``, every repeated block dropped). Used to warn early that
    a budget is out of reach; the table is not guaranteed monotone, so this is an estimate."""
    while True:
        for _kind, _target, options in _candidates(arch, allow_cse=False, allow_drop=allow_drop, cse_reduction=16,
                                                    cse_cap=16):
            if options:
                arch = options[-1][1]
                break
        else:
            return arch
