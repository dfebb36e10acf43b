"""NetAdapt proposals that stay inside a search space (``nas adapt --supernet``).

A supernet scores only networks of its space, whose stage widths are fixed, so the width cuts of
:mod:`nas.adapt.proposals` are not available. Here a proposal changes one block position to a
cheaper block the space allows there, or drops a stage's last block. Kinds:

* ``expansion``, ``kernel``, ``se``, ``act``, ``cse``: the block with only that choice changed (a
  smaller expansion, a smaller kernel, squeeze-excite off, the other activation, other CSE options);
* ``type``: another block type with the same expansion, kernel, SE and activation (``ir`` <-> ``cse``);
* ``skip``: the position's skip block, where the space lists ``skip``;
* ``block``: any other option of a stage given as a list of candidates (they may differ in several
  choices at once; in a cross-product stage each of those is reached one choice at a time);
* ``drop``: a stage's last block, when the stage's depth range allows one block fewer.

As in NetAdapt, a kind/target is taken to its *smallest* change that meets the step's latency goal:
its options cheaper than the current network, ordered from the smallest latency cut up, and the first
that meets the goal is the proposal (a kind/target that cannot meet it yields none). Every option is a
whole network checked by :meth:`~nas.supernet.Supernet.place`; its latency is the table's prediction
for the whole network. :func:`space_candidates` predicts each option once per step, so relaxing the goal
(see :mod:`nas.adapt.loop`) only re-picks (:func:`pick_proposals`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from nas.adapt.proposals import Proposal
from nas.arch import ArchSpec, BlockSpec
from nas.errors import SupernetError
from nas.latency import LatencyEstimator, Prediction
from nas.supernet import Position, Supernet

__all__ = ["SPACE_PROPOSAL_KINDS", "Candidates", "Option", "block_label", "change_kind", "pick_proposals",
           "space_candidates", "space_proposals"]

SPACE_PROPOSAL_KINDS = ("expansion", "kernel", "se", "act", "cse", "type", "skip", "block", "drop")
_SINGLE = {frozenset({"mid_ch"}): "expansion", frozenset({"kernel"}): "kernel", frozenset({"se"}): "se",
           frozenset({"act"}): "act"}
_FIELDS = ("type", "mid_ch", "kernel", "se", "act", "cse_reduction", "cse_cap")
_SHARED = {"mid_ch", "kernel", "se", "act"}


@dataclass(frozen=True)
class Option:
    description: str
    arch: ArchSpec
    block_map: tuple[int, ...]  # child block i comes from parent block block_map[i]
    prediction: Prediction


#: ``(kind, target, options from the smallest latency cut up)``
Candidates = list[tuple[str, str, list[Option]]]


def block_label(b: BlockSpec) -> str:
    """A block in a few words: ``skip``, ``ir e3 k5 se hswish``, ``cse e1 k3 relu rd4 cap8``."""
    if b.type == "skip":
        return "skip"
    mid = f"e{b.mid_ch // b.in_ch}" if b.mid_ch % b.in_ch == 0 else f"m{b.mid_ch}"
    words = [b.type, mid, f"k{b.kernel}", *(["se"] if b.se else []), b.act]
    if b.type == "cse":
        words += [f"rd{b.cse_reduction}", f"cap{b.cse_cap}"]
    return " ".join(words)


def change_kind(old: BlockSpec, new: BlockSpec, *, candidate_stage: bool) -> str | None:
    """The kind of replacing ``old`` by ``new`` at one position (None: not a proposal of any kind)."""
    if new.type == "skip":
        return "skip" if old.type != "skip" else None
    diff = {f for f in _FIELDS if getattr(old, f) != getattr(new, f)}
    if old.type != "skip" and old.type != new.type and not diff & _SHARED:
        return "type"
    if old.type == new.type and diff and diff <= {"cse_reduction", "cse_cap"}:
        return "cse"
    kind = _SINGLE.get(frozenset(diff)) if old.type == new.type else None
    return kind if kind is not None else ("block" if candidate_stage else None)


def _describe(kind: str, pos: Position, old: BlockSpec, new: BlockSpec) -> str:
    if kind == "expansion":
        return f"{pos.name} hidden {old.mid_ch} -> {new.mid_ch}"
    if kind == "kernel":
        return f"{pos.name} kernel {old.kernel} -> {new.kernel}"
    if kind == "se":
        return f"{pos.name} squeeze-excite off"
    if kind == "act":
        return f"{pos.name} activation {old.act} -> {new.act}"
    return f"{pos.name} {block_label(old)} -> {block_label(new)}"


def _in_space(supernet: Supernet, arch: ArchSpec) -> bool:
    try:
        supernet.place(arch)
    except SupernetError:
        return False
    return True


def _block_key(b: BlockSpec) -> tuple[str, ...]:
    return tuple(str(getattr(b, f)) for f in _FIELDS)


def space_candidates(supernet: Supernet, arch: ArchSpec, estimator: LatencyEstimator) -> Candidates:
    """Every kind/target of ``arch`` (a network of the supernet's space) with its options cheaper than ``arch``,
    ordered from the smallest predicted cut up (ties: a stable order of the blocks)."""
    placed = supernet.place(arch)
    current_ms = estimator.predict(arch).total_ms
    ident = tuple(range(len(arch.blocks)))
    found: dict[tuple[str, str], list[Option]] = defaultdict(list)
    for i, (index, old) in enumerate(zip(placed, arch.blocks, strict=True)):
        pos = supernet.positions[index]
        candidate_stage = bool(supernet.space.stages[pos.stage].candidates)
        for new in sorted(pos.options - {old}, key=_block_key):
            kind = change_kind(old, new, candidate_stage=candidate_stage)
            if kind is None:
                continue
            child = arch.replace_blocks(arch.blocks[:i] + (new,) + arch.blocks[i + 1:])
            if _in_space(supernet, child):
                found[(kind, pos.name)].append(Option(_describe(kind, pos, old, new), child, ident,
                                                      estimator.predict(child)))
    for stage, space_stage in enumerate(supernet.space.stages):
        mine = [i for i, index in enumerate(placed) if supernet.positions[index].stage == stage]
        if len(mine) > space_stage.min_depth:
            last = mine[-1]
            child = arch.replace_blocks(arch.blocks[:last] + arch.blocks[last + 1:])
            if _in_space(supernet, child):
                name = supernet.positions[placed[last]].name
                found[("drop", f"s{stage}")].append(Option(
                    f"drop {name} (stage {stage} depth {len(mine)} -> {len(mine) - 1})", child,
                    ident[:last] + ident[last + 1:], estimator.predict(child)))
    out: Candidates = []
    for (kind, target), options in found.items():
        cheaper = [o for o in options if o.prediction.total_ms < current_ms]
        if cheaper:
            out.append((kind, target, sorted(cheaper, key=lambda o: -o.prediction.total_ms)))
    return out


def pick_proposals(candidates: Candidates, goal_ms: float) -> list[Proposal]:
    """One proposal per kind/target that can meet ``goal_ms``: its smallest cut that does."""
    out = []
    for kind, target, options in candidates:
        option = next((o for o in options if o.prediction.total_ms <= goal_ms), None)
        if option is not None:
            pred = option.prediction
            interpolated = tuple(p.name for p in pred.parts if p.source == "interpolated")
            out.append(Proposal(kind, target, option.description, option.arch, option.block_map, pred.total_ms,
                                interpolated))
    return out


def space_proposals(supernet: Supernet, arch: ArchSpec, estimator: LatencyEstimator, *,
                    goal_ms: float) -> list[Proposal]:
    """The in-space proposals of ``arch`` for ``goal_ms`` (:func:`space_candidates`, then :func:`pick_proposals`)."""
    return pick_proposals(space_candidates(supernet, arch, estimator), goal_ms)
