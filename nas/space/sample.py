"""Sampling architectures from a space (define-by-run) and enumerating its block configurations.

Sampling goes through a :class:`Chooser`, so the same code serves a seeded random sample and
an Optuna trial (whose ``suggest_*`` calls make the choices; see :mod:`nas.search`). Choices
are *conditional*: a block's options are only asked for when the stage's sampled depth
includes that block, and the CSE options only for ``cse`` blocks. A choice with a single
option is not asked for at all.

Parameter names: ``s{i}.depth``, ``s{i}.b{j}.type``, ``.expansion``, ``.kernel``, ``.se``,
``.activation``, ``.cse_reduction``, ``.cse_cap`` (stage i, block j, both from 0).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from nas.arch.spec import ArchSpec, BlockSpec, HeadSpec, StemSpec, conv_out_size
from nas.space.schema import BlockChoices, SearchSpace

__all__ = ["Chooser", "RandomChooser", "LeaningChooser", "sample_arch", "random_arch", "leaning_arch", "BlockSlot",
           "block_slots", "enumerate_blocks", "make_block", "space_skeleton"]


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


def make_block(*, kind: str, in_ch: int, out_ch: int, expansion: int, kernel: int, stride: int, se: bool,
               act: str, cse_reduction: int | None, cse_cap: int | None) -> BlockSpec:
    cse = kind == "cse"
    return BlockSpec(type=kind, in_ch=in_ch, out_ch=out_ch, mid_ch=in_ch * expansion, kernel=kernel,
                     stride=stride, se=se, act=act, cse_reduction=cse_reduction if cse else None,
                     cse_cap=cse_cap if cse else None)


def space_skeleton(space: SearchSpace) -> tuple[StemSpec, HeadSpec]:
    stem = StemSpec(out_ch=space.stem_ch, kernel=space.stem_kernel, stride=space.stem_stride, act=space.stem_act)
    return stem, HeadSpec(kind=space.head_kind, width=space.head_width, act=space.head_act)


def _pick(chooser: Chooser, name: str, options: Sequence[Any]) -> Any:
    return options[0] if len(options) == 1 else chooser.choose(name, list(options))


def sample_arch(space: SearchSpace, chooser: Chooser) -> ArchSpec:
    stem, head = space_skeleton(space)
    blocks: list[BlockSpec] = []
    prev = stem.out_ch
    for i, stage in enumerate(space.stages):
        depth = stage.min_depth if stage.min_depth == stage.max_depth else \
            chooser.choose_int(f"s{i}.depth", stage.min_depth, stage.max_depth)
        c = stage.choices
        for j in range(depth):
            p = f"s{i}.b{j}."
            kind = _pick(chooser, p + "type", c.type)
            cse = kind == "cse"
            blocks.append(make_block(
                kind=kind, in_ch=prev, out_ch=stage.channels, expansion=_pick(chooser, p + "expansion", c.expansion),
                kernel=_pick(chooser, p + "kernel", c.kernel), stride=stage.stride if j == 0 else 1,
                se=_pick(chooser, p + "se", c.se), act=_pick(chooser, p + "activation", c.activation),
                cse_reduction=_pick(chooser, p + "cse_reduction", c.cse_reduction) if cse else None,
                cse_cap=_pick(chooser, p + "cse_cap", c.cse_cap) if cse else None,
            ))
            prev = stage.channels
    return ArchSpec(input_size=space.input_size, in_ch=space.in_ch, stem=stem, blocks=tuple(blocks), head=head,
                    num_classes=space.num_classes)


def random_arch(space: SearchSpace, seed: int) -> ArchSpec:
    return sample_arch(space, RandomChooser(seed))


@dataclass(frozen=True)
class BlockSlot:
    """A block position that shares its options: a stage's first block, or its repeats."""

    stage: int
    first: bool
    in_ch: int
    out_ch: int
    stride: int
    resolution: int  # input resolution
    choices: BlockChoices

    def options(self) -> Iterator[BlockSpec]:
        c = self.choices
        for kind, t, k, se, act in itertools.product(c.type, c.expansion, c.kernel, c.se, c.activation):
            cse_opts = list(itertools.product(c.cse_reduction, c.cse_cap)) if kind == "cse" else [(None, None)]
            for rd, cap in cse_opts:
                yield make_block(kind=kind, in_ch=self.in_ch, out_ch=self.out_ch, expansion=t, kernel=k,
                                 stride=self.stride, se=se, act=act, cse_reduction=rd, cse_cap=cap)


def block_slots(space: SearchSpace) -> list[BlockSlot]:
    slots: list[BlockSlot] = []
    prev = space.stem_ch
    for i, (stage, res) in enumerate(zip(space.stages, space.stage_resolutions())):
        slots.append(BlockSlot(i, True, prev, stage.channels, stage.stride, res, stage.choices))
        if stage.max_depth >= 2:
            slots.append(BlockSlot(i, False, stage.channels, stage.channels, 1,
                                   conv_out_size(res, stage.stride), stage.choices))
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
    """Per stage (``s{i}.depth``) and per slot (``s{i}.first.KEY``, ``s{i}.repeat.KEY``) the choice of the
    cheapest (costliest) network by MACs; ties go to the option listed first."""
    from nas.arch.cost import block_cost

    sign = 1 if cheapest else -1  # min of the negated cost: the costliest, ties to the first listed
    out: dict[str, Any] = {f"s{i}.depth": stage.min_depth if cheapest else stage.max_depth
                           for i, stage in enumerate(space.stages)}
    for slot in block_slots(space):
        best = min(slot.options(), key=lambda b: sign * block_cost(b, resolution=slot.resolution).macs)
        where = f"s{slot.stage}.{'first' if slot.first else 'repeat'}."
        out |= {where + "type": best.type, where + "expansion": best.mid_ch // best.in_ch, where + "kernel": best.kernel,
                where + "se": best.se, where + "activation": best.act, where + "cse_reduction": best.cse_reduction,
                where + "cse_cap": best.cse_cap}
    return out


class LeaningChooser(RandomChooser):
    """Uniform choices, except that each choice is, with probability ``|lean|``, the one of the space's
    cheapest (``lean > 0``) or costliest (``lean < 0``) network by MACs.

    ``lean = 0`` draws from :class:`RandomChooser`'s distribution (not its samples: every choice also
    draws whether to lean), ``+1`` / ``-1`` give the two extremes: a series of leans from +1 to -1
    spans the space from its cheapest networks to its costliest, where uniform samples crowd in the
    middle (latency tables are calibrated on such a series). Options that cost the same MACs tie and
    go to the one listed first (e.g. the activation: ``relu`` in the default space, at both ends); a
    CSE option of a slot whose extreme block is not CSE is always drawn uniformly.
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
