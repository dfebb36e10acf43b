"""The weight-sharing supernet of a search space, and extraction of its sub-networks.

Every network of a space is a *sub-network* of one supernet: an :class:`~nas.arch.ArchSpec` of that
space, given to :meth:`Supernet.forward` as an argument (``supernet(images, arch)``). Nothing is
switched on or off by mutating modules: the supernet holds the shared tensors, and a sub-network's
block is the builder's own block (:func:`~nas.arch.build_block`) run on *slices* of them
(``torch.func.functional_call`` on a parameter-free template). :meth:`Supernet.sub_state` gives the
same slices as an ordinary state dict of :func:`~nas.arch.build_model`'s network, so an extracted
network computes exactly what the supernet computes in that configuration.

Sharing (Once-for-All, BigNAS), per block position (stage ``i``, block ``j``: positions beyond a
sub-network's depth are skipped, so elastic depth takes a stage's first blocks):

* **expansion** takes the first ``mid`` channels of the largest expansion (expand conv rows, depthwise
  filters, squeeze-excite's inputs and its first ``make_divisible(mid / 4)`` units, projection columns);
* **kernel** takes the centre ``k x k`` of the largest depthwise kernel;
* **block type**: ``ir``, ``cse`` and ``skip`` each have their own tensors (a CSE unit and a 1x1
  projection cannot share; the expand and depthwise layers could, but their features would serve two
  different heads); a CSE unit's hidden units are the first of the largest ``max(HW // r, cap)``;
* **squeeze-excite** on/off: the block with SE uses the SE tensors, the one without skips them;
* **activation** (ReLU6 or h-swish) has no parameters: both use the same tensors.

BatchNorm statistics are shared as well but mean nothing for any one sub-network: evaluators re-estimate
them for the sub-network (:mod:`nas.supernet.evaluate`). Stem and head are the space's and shared whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from nas.arch import ArchSpec, BlockSpec, Network, build_block, build_head, build_model, build_stem, init_weights
from nas.arch.blocks import ChannelFold, make_divisible
from nas.arch.spec import conv_out_size
from nas.errors import SupernetError
from nas.space import SearchSpace, block_slots, leaning_arch
from nas.space.sample import space_skeleton

__all__ = ["Supernet", "Position", "largest_arch", "smallest_arch"]

Tensors = dict[str, torch.Tensor]


def largest_arch(space: SearchSpace) -> ArchSpec:
    """The space's costliest network by multiply-adds (every stage at its deepest)."""
    return leaning_arch(space, seed=0, lean=-1.0)


def smallest_arch(space: SearchSpace) -> ArchSpec:
    """The space's cheapest network by multiply-adds (every stage at its shallowest)."""
    return leaning_arch(space, seed=0, lean=1.0)


@dataclass(frozen=True)
class Position:
    """Block ``block`` of stage ``stage``: its shapes, and every block the space allows there."""

    stage: int
    block: int
    in_ch: int
    out_ch: int
    stride: int
    resolution: int  # input resolution
    options: frozenset[BlockSpec]

    @property
    def name(self) -> str:
        return f"s{self.stage}.b{self.block}"


def _positions(space: SearchSpace) -> list[Position]:
    slots = {(slot.stage, slot.first): slot for slot in block_slots(space)}
    positions = []
    for i, stage in enumerate(space.stages):
        for j in range(stage.max_depth):
            slot = slots[(i, j == 0)]
            positions.append(Position(i, j, slot.in_ch, slot.out_ch, slot.stride, slot.resolution,
                                      frozenset(slot.options())))
    return positions


def _roles(spec: BlockSpec) -> list[str]:
    """The builder's ``body`` of an ``ir``/``cse`` block, layer by layer (see :mod:`nas.arch.blocks`)."""
    roles = ["expand"] if spec.mid_ch != spec.in_ch else []
    roles.append("dw")
    if spec.se:
        roles.append("se")
    roles.append("proj" if spec.type == "ir" else "cse")
    return roles


def _largest(pos: Position, kind: str) -> BlockSpec | None:
    """The block of type ``kind`` that holds the tensors of every ``kind`` block at ``pos`` (None: no such block)."""
    specs = [s for s in pos.options if s.type == kind]
    if not specs:
        return None
    if kind == "skip":
        return specs[0]
    out_res = conv_out_size(pos.resolution, pos.stride)
    widest = max(specs, key=lambda s: s.mid_ch)
    cse = max(specs, key=lambda s: s.cse_hidden(out_res)) if kind == "cse" else None  # the most hidden units
    return BlockSpec(type=kind, in_ch=pos.in_ch, out_ch=pos.out_ch, mid_ch=widest.mid_ch,
                     kernel=max(s.kernel for s in specs), stride=pos.stride, se=any(s.se for s in specs),
                     act=widest.act, cse_reduction=cse.cse_reduction if cse else None,
                     cse_cap=cse.cse_cap if cse else None)


def _slice(role: str, name: str, t: torch.Tensor, spec: BlockSpec, out_res: int) -> torch.Tensor:
    """The part of the shared tensor ``name`` of layer ``role`` that block ``spec`` uses (a view)."""
    if t.dim() == 0:  # BatchNorm's num_batches_tracked
        return t
    mid = spec.mid_ch
    if role == "expand":
        return t[:mid]
    if role == "dw":
        if name == "0.weight":  # (mid, 1, K, K): the first filters, their centre k x k
            off = (t.shape[-1] - spec.kernel) // 2
            return t[:mid, :, off:off + spec.kernel, off:off + spec.kernel]
        return t[:mid]
    if role == "se":
        squeeze = make_divisible(mid / 4)
        if name == "reduce.weight":
            return t[:squeeze, :mid]
        if name == "expand.weight":
            return t[:mid, :squeeze]
        return t[:squeeze] if name == "reduce.bias" else t[:mid]
    if role == "proj":
        return t[:, :mid] if name == "0.weight" else t
    assert role == "cse", role
    hidden = spec.cse_hidden(out_res)
    if name.startswith("reduce."):
        return t[:hidden]
    return t[:, :hidden] if name == "scale.weight" else t


class Supernet(nn.Module):
    """The supernet of ``space``: ``supernet(images, arch)`` runs sub-network ``arch`` (default: the largest)."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space
        self.positions = _positions(space)
        self.largest = largest_arch(space)
        self.smallest = smallest_arch(space)
        stem, _ = space_skeleton(space)
        self.stem = build_stem(stem, in_ch=space.in_ch)
        self.blocks = nn.ModuleList()
        self._shapes: list[dict[str, BlockSpec]] = []
        for pos in self.positions:
            shapes = {kind: spec for kind in ("ir", "cse", "skip") if (spec := _largest(pos, kind)) is not None}
            self._shapes.append(shapes)
            self.blocks.append(nn.ModuleDict({k: build_block(s, resolution=pos.resolution) for k, s in shapes.items()}))
        self.head = build_head(self.largest)
        init_weights(self)
        # Parameter-free templates of each block actually run (structure only, on the meta device) and the
        # fixed fold buffers of CSE units: caches of structure, never of weights.
        self._templates: dict[tuple[int, BlockSpec], nn.Module] = {}
        self._folds: dict[tuple[int, int, torch.device], torch.Tensor] = {}
        self._placed: dict[ArchSpec, tuple[int, ...]] = {}

    # -- which position each block of a network occupies -------------------------------------------------

    def place(self, arch: ArchSpec, *, what: str = "architecture") -> tuple[int, ...]:
        """The position index of each of ``arch``'s blocks; :class:`SupernetError` when ``arch`` is not a
        network of this supernet's space."""
        if arch in self._placed:
            return self._placed[arch]
        space = self.space
        stem, head = space_skeleton(space)
        skeleton = {"input size": (arch.input_size, space.input_size), "input channels": (arch.in_ch, space.in_ch),
                    "classes": (arch.num_classes, space.num_classes), "stem": (arch.stem, stem),
                    "head": (arch.head, head)}
        for field, (got, expected) in skeleton.items():
            if got != expected:
                raise SupernetError(f"{what}: its {field} is {got}, the supernet's (space '{space.name}') is "
                                    f"{expected}: it is not a network of this supernet")
        reached = [0]
        starts = [sum(s.max_depth for s in space.stages[:i]) for i in range(len(space.stages))]

        def match(stage: int, start: int) -> list[int] | None:
            reached[0] = max(reached[0], start)
            if stage == len(space.stages):
                return [] if start == len(arch.blocks) else None
            st = space.stages[stage]
            for depth in range(st.min_depth, st.max_depth + 1):
                here = [starts[stage] + j for j in range(depth)]
                if start + depth > len(arch.blocks):
                    break
                if all(arch.blocks[start + j] in self.positions[p].options for j, p in enumerate(here)):
                    reached[0] = max(reached[0], start + depth)
                    rest = match(stage + 1, start + depth)
                    if rest is not None:
                        return here + rest
            return None

        placed = match(0, 0)
        if placed is None:
            n = min(reached[0], len(arch.blocks) - 1)
            raise SupernetError(f"{what}: not a network of space '{space.name}' (the supernet's): its block {n} "
                                f"({arch.blocks[n].to_dict()}) fits no block position of the space after the "
                                f"blocks before it (or the stages' depths do not add up to its "
                                f"{len(arch.blocks)} blocks)")
        self._placed[arch] = result = tuple(placed)
        return result

    # -- the shared tensors of one block -----------------------------------------------------------------

    def _block_tensors(self, index: int, spec: BlockSpec, *, fold: bool) -> Tensors:
        """``spec``'s state at position ``index`` under the builder's names (views of the shared tensors);
        with ``fold``, also the CSE unit's fixed (non-persistent) fold buffer, which a forward needs."""
        shared = self.blocks[index][spec.type]
        if spec.type == "skip":
            return dict(shared.state_dict(keep_vars=True))
        big = self._shapes[index][spec.type]
        out_res = conv_out_size(self.positions[index].resolution, spec.stride)
        big_roles, roles = _roles(big), _roles(spec)
        out: Tensors = {}
        for n, role in enumerate(roles):
            layer = shared.body[big_roles.index(role)]
            for name, t in layer.state_dict(keep_vars=True).items():
                out[f"body.{n}.{name}"] = _slice(role, name, t, spec, out_res)
        if fold and spec.type == "cse":
            out[f"body.{len(roles) - 1}.fold.inv_count"] = self._fold(spec.mid_ch, spec.out_ch, shared)
        return out

    def _fold(self, mid: int, out: int, like: nn.Module) -> torch.Tensor:
        device = next(like.parameters()).device
        key = (mid, out, device)
        if key not in self._folds:
            self._folds[key] = ChannelFold(in_ch=mid, out_ch=out).inv_count.to(device)
        return self._folds[key]

    def _template(self, index: int, spec: BlockSpec) -> nn.Module:
        key = (index, spec)
        if key not in self._templates:
            with torch.device("meta"):
                self._templates[key] = build_block(spec, resolution=self.positions[index].resolution)
        return self._templates[key]

    @staticmethod
    def _follow_momentum(template: nn.Module, shared: nn.Module) -> None:
        """Give the template's BatchNorms the shared ones' momentum: ``None`` while the statistics are
        re-estimated (:func:`nas.train.evaluate.recalibrate_batchnorm` sets it on the supernet's modules)."""
        norms = [m for m in shared.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if norms:
            for m in template.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.momentum = norms[0].momentum

    # -- running and extracting a sub-network -------------------------------------------------------------

    def forward(self, x: torch.Tensor, arch: ArchSpec | None = None) -> torch.Tensor:
        arch = self.largest if arch is None else arch
        x = self.stem(x)
        for index, spec in zip(self.place(arch), arch.blocks, strict=True):
            template = self._template(index, spec)
            template.train(self.training)
            self._follow_momentum(template, self.blocks[index][spec.type])
            x = functional_call(template, self._block_tensors(index, spec, fold=True), (x,), strict=True)
        return self.head(x)

    def sub_state(self, arch: ArchSpec) -> Tensors:
        """``build_model(arch).state_dict()``'s keys with the supernet's values for ``arch`` (copies)."""
        state: Tensors = {f"stem.{k}": v for k, v in self.stem.state_dict().items()}
        for n, (index, spec) in enumerate(zip(self.place(arch), arch.blocks, strict=True)):
            state |= {f"blocks.{n}.{k}": v for k, v in self._block_tensors(index, spec, fold=False).items()}
        state |= {f"head.{k}": v for k, v in self.head.state_dict().items()}
        return {k: v.detach().clone().contiguous() for k, v in state.items()}

    def extract(self, arch: ArchSpec) -> Network:
        """An ordinary network of ``arch`` (built by the one builder) holding the supernet's weights for it."""
        model = build_model(arch)
        model.load_state_dict(self.sub_state(arch), strict=True)
        return model.to(next(self.parameters()).device)

    def shared_modules(self) -> Iterator[tuple[str, nn.Module]]:
        """``(position name, module)`` of every block type's shared tensors (for reports)."""
        for pos, blocks in zip(self.positions, self.blocks, strict=True):
            for kind, module in blocks.items():
                yield f"{pos.name}.{kind}", module
