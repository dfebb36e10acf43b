"""Benchmark keys: a network of a candidate-list space as the string of its candidates' indices.

NAS-Bench-Macro names its networks by keys such as ``"02012100"``: one digit per layer, the
index of that layer's candidate (``0`` skip, ``1`` ir e3 k3, ``2`` ir e6 k5). The mapping is
generic: for a space whose stages all have a fixed depth and a candidate list of at most ten
candidates, a key is the string of candidate indices (0-based, in the order the space file lists
them) of every block position, stage by stage, block by block. Other spaces have no keys
(a depth range makes positions optional; a cross-product stage has no single index per block),
and are refused with one :class:`~nas.errors.SpaceError`, as are keys of the wrong length or
with a digit that is not a candidate.

Both directions: :func:`key_to_arch` / :func:`key_to_params` (the sampling parameters
``s{i}.b{j}.op``, which replay through :func:`~nas.space.sample_arch`), and :func:`arch_to_key`
(any :class:`~nas.arch.ArchSpec`, e.g. a search trial's) / :func:`params_to_key`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from nas.arch import ArchSpec, to_compact
from nas.errors import SpaceError
from nas.space.sample import candidate_block, sample_arch, space_skeleton
from nas.space.schema import SearchSpace, StageSpace

__all__ = ["key_positions", "key_to_arch", "key_to_params", "arch_to_key", "params_to_key"]

_DIGITS = "0123456789"


def key_positions(space: SearchSpace) -> list[tuple[int, int, StageSpace]]:
    """``(stage, block, stage space)`` of every key digit in order; refuses a space that has no keys."""
    positions = []
    for i, stage in enumerate(space.stages):
        where = f"{space.source}: stages[{i}]"
        if not stage.candidates:
            raise SpaceError(f"{where}: keys need a candidate list at every block position (a key digit is a "
                             f"candidate's index), but this stage uses 'choices' (the cross product); space "
                             f"'{space.name}' has no benchmark keys")
        if stage.min_depth != stage.max_depth:
            raise SpaceError(f"{where}.depth: keys need a fixed depth (one integer) in every stage, got "
                             f"[{stage.min_depth}, {stage.max_depth}]; space '{space.name}' has no benchmark keys")
        if len(stage.candidates) > len(_DIGITS):
            raise SpaceError(f"{where}.candidates: keys write a candidate's index as one digit, so at most "
                             f"{len(_DIGITS)} candidates, got {len(stage.candidates)}; space '{space.name}' has no "
                             "benchmark keys")
        positions += [(i, j, stage) for j in range(stage.min_depth)]
    return positions


def _labels(stage: StageSpace) -> str:
    return ", ".join(f"{n} = {cand.label}" for n, cand in enumerate(stage.candidates))


def _indices(space: SearchSpace, key: Any) -> list[int]:
    positions = key_positions(space)
    if not isinstance(key, str) or len(key) != len(positions) or any(ch not in _DIGITS for ch in key):
        got = f"{len(key)} characters" if isinstance(key, str) else type(key).__name__
        raise SpaceError(f"{space.source}: key {key!r}: expected a string of {len(positions)} digits, one per block "
                         f"position of space '{space.name}', got {got}")
    out = []
    for n, ((i, j, stage), ch) in enumerate(zip(positions, key)):
        if int(ch) >= len(stage.candidates):
            raise SpaceError(f"{space.source}: key {key!r}: digit {n} (stage {i}, block {j}) is {ch}, but that "
                             f"position has {len(stage.candidates)} candidates ({_labels(stage)})")
        out.append(int(ch))
    return out


class _Recorder:
    """Answers every block choice from a key's indices and records the parameters."""

    def __init__(self, picks: dict[str, int]) -> None:
        self.picks = picks
        self.params: dict[str, Any] = {}

    def choose(self, name: str, options: Sequence[Any]) -> Any:
        value = options[self.picks[name]]
        self.params[name] = value
        return value

    def choose_int(self, name: str, low: int, high: int) -> int:  # pragma: no cover - keyed spaces fix depths
        raise AssertionError(f"{name}: a keyed space has no depth choice")


def _replay(space: SearchSpace, key: str) -> tuple[ArchSpec, dict[str, Any]]:
    picks = {f"s{i}.b{j}.op": index for (i, j, _), index in zip(key_positions(space), _indices(space, key))}
    chooser = _Recorder(picks)
    return sample_arch(space, chooser), chooser.params


def key_to_arch(space: SearchSpace, key: str) -> ArchSpec:
    """The network of ``key`` (e.g. ``"02012100"``)."""
    return _replay(space, key)[0]


def key_to_params(space: SearchSpace, key: str) -> dict[str, Any]:
    """The sampling parameters of ``key``'s network (``s{i}.b{j}.op`` -> label; a position with one candidate is
    not asked, so it has none)."""
    return _replay(space, key)[1]


@functools.lru_cache(maxsize=16384)  # a search asks again for networks it screens, confirms or repeats
def arch_to_key(space: SearchSpace, arch: ArchSpec) -> str:
    """The key of ``arch``; refuses a network that is not one of the space's (remembered: both are immutable)."""
    positions = key_positions(space)
    stem, head = space_skeleton(space)
    have = (arch.input_size, arch.in_ch, arch.num_classes, arch.stem, arch.head, len(arch.blocks))
    want = (space.input_size, space.in_ch, space.num_classes, stem, head, len(positions))
    if have != want:
        names = ("input size", "input channels", "classes", "stem", "head", "number of blocks")
        field = next(name for name, h, w in zip(names, have, want) if h != w)
        raise SpaceError(f"{space.source}: {to_compact(arch)} is not a network of space '{space.name}': its {field} "
                         f"differs ({have[names.index(field)]} instead of {want[names.index(field)]})")
    digits = []
    prev = stem.out_ch
    for n, ((i, j, stage), block) in enumerate(zip(positions, arch.blocks)):
        options = [candidate_block(c, in_ch=prev, out_ch=stage.channels, stride=stage.stride if j == 0 else 1)
                   for c in stage.candidates]
        if block not in options:
            raise SpaceError(f"{space.source}: {to_compact(arch)} is not a network of space '{space.name}': "
                             f"blocks[{n}] (stage {i}, block {j}) is none of the candidates there ({_labels(stage)})")
        digits.append(str(options.index(block)))
        prev = stage.channels
    return "".join(digits)


def params_to_key(space: SearchSpace, params: Mapping[str, Any]) -> str:
    """The key of a sampling-parameter dict (``s{i}.b{j}.op`` -> label, as a search trial stores them)."""
    digits = []
    for i, j, stage in key_positions(space):
        name = f"s{i}.b{j}.op"
        labels = [cand.label for cand in stage.candidates]
        if name not in params:
            if len(labels) == 1:  # a single candidate is not asked
                digits.append("0")
                continue
            raise SpaceError(f"{space.source}: parameters: no {name!r}; expected one of {labels}")
        if params[name] not in labels:
            raise SpaceError(f"{space.source}: parameters: {name} is {params[name]!r}; expected one of {labels}")
        digits.append(str(labels.index(params[name])))
    return "".join(digits)
