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

__all__ = ["Chooser", "RandomChooser", "sample_arch", "random_arch", "BlockSlot", "block_slots",
           "enumerate_blocks", "make_block", "space_skeleton"]


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
