"""Sampling architectures from a space (define-by-run) and enumerating its block configurations.

Sampling goes through a :class:`Chooser`, so the same code serves a seeded random sample and
an Optuna trial (whose ``suggest_*`` calls make the choices; see :mod:`nas.search`). Choices
are *conditional*: a block's options are only asked for when the stage's sampled depth
includes that block, the CSE options only for ``cse`` blocks, and nothing but the type for
``skip`` blocks. A choice with a single option is not asked for at all.

Parameter names: ``s{i}.depth``; in a stage of the cross-product form ``s{i}.b{j}.type``,
``.expansion``, ``.kernel``, ``.se``, ``.activation``, ``.cse_reduction``, ``.cse_cap``; in a
stage of the candidate form one categorical ``s{i}.b{j}.op`` whose options are the candidates'
labels (``skip``, ``ir_e3_k3``, ...: Optuna's categorical values must be plain scalars)
(stage i, block j, both from 0).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from nas.arch.spec import ArchSpec, BlockSpec, HeadSpec, StemSpec, conv_out_size, skip_block
from nas.space.schema import BlockChoices, Candidate, SearchSpace, StageSpace

__all__ = ["Chooser", "RandomChooser", "LeaningChooser", "sample_arch", "random_arch", "leaning_arch", "BlockSlot",
           "block_slots", "enumerate_blocks", "make_block", "candidate_block", "space_skeleton"]


class Chooser(Protocol):
    def choose(self, name: str, options: Sequence[Any]) -> Any: ...

    def choose_int(self, name: str, low: int, high: int) -> int: ...


class RandomChooser:
    """Uniform choices from a seeded NumPy generator."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def choose(self, name: str, options: Sequence[Any]) -> Any:
        return options[int(self.rng.integers(len(options)))]

    def choose_int(self, name: str, low: int, high: int) -> int:
        return int(self.rng.integers(low, high + 1))


@functools.lru_cache(maxsize=8192, typed=True)  # blocks are immutable; replays of a search build the same ones
def make_block(*, kind: str, in_ch: int, out_ch: int, expansion: int | None, kernel: int | None, stride: int,
               se: bool | None, act: str | None, cse_reduction: int | None, cse_cap: int | None) -> BlockSpec:
    """The block of these choices; a ``skip`` block ignores every choice but its type (pass ``None``)."""
    if kind == "skip":
        return skip_block(in_ch=in_ch, out_ch=out_ch, stride=stride)
    assert expansion is not None and kernel is not None and se is not None and act is not None, kind
    cse = kind == "cse"
    return BlockSpec(type=kind, in_ch=in_ch, out_ch=out_ch, mid_ch=in_ch * expansion, kernel=kernel,
                     stride=stride, se=se, act=act, cse_reduction=cse_reduction if cse else None,
                     cse_cap=cse_cap if cse else None)


def space_skeleton(space: SearchSpace) -> tuple[StemSpec, HeadSpec]:
    stem = StemSpec(out_ch=space.stem_ch, kernel=space.stem_kernel, stride=space.stem_stride, act=space.stem_act)
    return stem, HeadSpec(kind=space.head_kind, width=space.head_width, act=space.head_act)


def _pick(chooser: Chooser, name: str, options: Sequence[Any]) -> Any:
    return options[0] if len(options) == 1 else chooser.choose(name, list(options))


@functools.lru_cache(maxsize=4096)  # a block is immutable, and searches draw the same few thousand times over
def candidate_block(cand: Candidate, *, in_ch: int, out_ch: int, stride: int) -> BlockSpec:
    """The block of one candidate at a position with these channels and stride."""
    return make_block(kind=cand.type, in_ch=in_ch, out_ch=out_ch, expansion=cand.expansion, kernel=cand.kernel,
                      stride=stride, se=cand.se, act=cand.activation, cse_reduction=cand.cse_reduction,
                      cse_cap=cand.cse_cap)


def _sample_block(chooser: Chooser, p: str, stage: StageSpace, *, in_ch: int, stride: int) -> BlockSpec:
    """One block at a position whose parameter names start with ``p`` (``s{i}.b{j}.``)."""
    if stage.candidates:
        label = _pick(chooser, p + "op", stage.labels)
        return candidate_block(stage.candidate(label), in_ch=in_ch, out_ch=stage.channels, stride=stride)
    c = stage.choices
    assert c is not None
    kind = _pick(chooser, p + "type", c.type)
    if kind == "skip":
        return skip_block(in_ch=in_ch, out_ch=stage.channels, stride=stride)
    cse = kind == "cse"
    return make_block(
        kind=kind, in_ch=in_ch, out_ch=stage.channels, expansion=_pick(chooser, p + "expansion", c.expansion),
        kernel=_pick(chooser, p + "kernel", c.kernel), stride=stride,
        se=_pick(chooser, p + "se", c.se), act=_pick(chooser, p + "activation", c.activation),
        cse_reduction=_pick(chooser, p + "cse_reduction", c.cse_reduction) if cse else None,
        cse_cap=_pick(chooser, p + "cse_cap", c.cse_cap) if cse else None,
    )


def sample_arch(space: SearchSpace, chooser: Chooser) -> ArchSpec:
    stem, head = space_skeleton(space)
    blocks: list[BlockSpec] = []
    prev = stem.out_ch
    for i, stage in enumerate(space.stages):
        depth = stage.min_depth if stage.min_depth == stage.max_depth else \
            chooser.choose_int(f"s{i}.depth", stage.min_depth, stage.max_depth)
        for j in range(depth):
            blocks.append(_sample_block(chooser, f"s{i}.b{j}.", stage, in_ch=prev,
                                        stride=stage.stride if j == 0 else 1))
            prev = stage.channels
    return ArchSpec(input_size=space.input_size, in_ch=space.in_ch, stem=stem, blocks=tuple(blocks), head=head,
                    num_classes=space.num_classes)


def random_arch(space: SearchSpace, seed: int) -> ArchSpec:
    return sample_arch(space, RandomChooser(seed))


_NOT_ASKED = {"expansion": None, "kernel": None, "se": None, "activation": None, "cse_reduction": None,
              "cse_cap": None}


@dataclass(frozen=True)
class BlockSlot:
    """A block position that shares its options: a stage's first block, or its repeats. ``choices`` (the
    cross-product form) or ``candidates`` (the candidate form) is the stage's."""

    stage: int
    first: bool
    in_ch: int
    out_ch: int
    stride: int
    resolution: int  # input resolution
    choices: BlockChoices | None
    candidates: tuple[Candidate, ...] = ()

    def choice_options(self) -> Iterator[tuple[dict[str, Any], BlockSpec]]:
        """Every option of the slot as (the values a chooser is asked for it, keyed by the last part of the
        parameter name, e.g. ``{"type": "ir", "kernel": 3, ...}`` or ``{"op": "ir_e3_k3"}``; the block).
        Keys a block's type does not use are ``None`` (a skip block's kernel, an ir block's CSE options)."""
        if self.candidates:
            for cand in self.candidates:
                yield {"op": cand.label}, candidate_block(cand, in_ch=self.in_ch, out_ch=self.out_ch,
                                                          stride=self.stride)
            return
        c = self.choices
        assert c is not None
        for kind in c.type:
            if kind == "skip":
                yield {"type": kind, **_NOT_ASKED}, skip_block(in_ch=self.in_ch, out_ch=self.out_ch,
                                                              stride=self.stride)
                continue
            for t, k, se, act in itertools.product(c.expansion, c.kernel, c.se, c.activation):
                cse_opts = list(itertools.product(c.cse_reduction, c.cse_cap)) if kind == "cse" else [(None, None)]
                for rd, cap in cse_opts:
                    choice = {"type": kind, "expansion": t, "kernel": k, "se": se, "activation": act,
                              "cse_reduction": rd, "cse_cap": cap}
                    yield choice, make_block(kind=kind, in_ch=self.in_ch, out_ch=self.out_ch, expansion=t, kernel=k,
                                             stride=self.stride, se=se, act=act, cse_reduction=rd, cse_cap=cap)

    def options(self) -> Iterator[BlockSpec]:
        """Every block the slot can hold, in the order of :meth:`choice_options`."""
        for _, block in self.choice_options():
            yield block


def block_slots(space: SearchSpace) -> list[BlockSlot]:
    slots: list[BlockSlot] = []
    prev = space.stem_ch
    for i, (stage, res) in enumerate(zip(space.stages, space.stage_resolutions())):
        slots.append(BlockSlot(i, True, prev, stage.channels, stage.stride, res, stage.choices, stage.candidates))
        if stage.max_depth >= 2:
            slots.append(BlockSlot(i, False, stage.channels, stage.channels, 1,
                                   conv_out_size(res, stage.stride), stage.choices, stage.candidates))
        prev = stage.channels
    return slots


def enumerate_blocks(space: SearchSpace) -> list[tuple[BlockSpec, int]]:
    """Every distinct (block, input resolution) the space can produce, in a stable order."""
    seen: dict[tuple[BlockSpec, int], None] = {}
    for slot in block_slots(space):
        for block in slot.options():
            seen.setdefault((block, slot.resolution), None)
    return list(seen)


def _extreme_choices(space: SearchSpace, *, cheapest: bool) -> dict[str, Any]:
    """Per stage (``s{i}.depth``) and per slot (``s{i}.first.KEY``, ``s{i}.repeat.KEY``; KEY as in
    :meth:`BlockSlot.choice_options`) the choice of the cheapest (costliest) network by MACs; ties go to the
    option listed first."""
    from nas.arch.cost import block_cost

    sign = 1 if cheapest else -1  # min of the negated cost: the costliest, ties to the first listed
    out: dict[str, Any] = {f"s{i}.depth": stage.min_depth if cheapest else stage.max_depth
                           for i, stage in enumerate(space.stages)}
    for slot in block_slots(space):
        choice, _ = min(slot.choice_options(),
                        key=lambda option: sign * block_cost(option[1], resolution=slot.resolution).macs)
        where = f"s{slot.stage}.{'first' if slot.first else 'repeat'}."
        out |= {where + key: value for key, value in choice.items()}
    return out


class LeaningChooser(RandomChooser):
    """Uniform choices, except that each choice is, with probability ``|lean|``, the one of the space's
    cheapest (``lean > 0``) or costliest (``lean < 0``) network by MACs.

    ``lean = 0`` draws from :class:`RandomChooser`'s distribution (not its samples: every choice also
    draws whether to lean), ``+1`` / ``-1`` give the two extremes: a series of leans from +1 to -1
    spans the space from its cheapest networks to its costliest, where uniform samples crowd in the
    middle (latency tables are calibrated on such a series). Options that cost the same MACs tie and
    go to the one listed first (e.g. the activation: ``relu`` in the default space, at both ends); an
    option the slot's extreme block does not have (a CSE option where it is not CSE, a kernel where it
    is a skip) is always drawn uniformly. In a stage of candidates the one choice is the candidate.
    """

    def __init__(self, space: SearchSpace, seed: int, lean: float) -> None:
        if not -1.0 <= lean <= 1.0:
            raise ValueError(f"lean must lie in [-1, 1], got {lean}")
        super().__init__(seed)
        self.lean = lean
        self.extreme = _extreme_choices(space, cheapest=lean >= 0)

    def _leans(self) -> bool:
        return bool(self.rng.random() < abs(self.lean))

    def choose(self, name: str, options: Sequence[Any]) -> Any:
        stage, block, key = name.split(".")
        preferred = self.extreme[f"{stage}.{'first' if block == 'b0' else 'repeat'}.{key}"]
        leans = self._leans()
        return preferred if leans and preferred in options else super().choose(name, options)

    def choose_int(self, name: str, low: int, high: int) -> int:
        leans = self._leans()
        return int(self.extreme[name]) if leans else super().choose_int(name, low, high)


def leaning_arch(space: SearchSpace, seed: int, lean: float) -> ArchSpec:
    """A network drawn by :class:`LeaningChooser`."""
    return sample_arch(space, LeaningChooser(space, seed, lean))
