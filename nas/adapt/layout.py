"""Which channel space each dimension of each weight tensor belongs to.

NetAdapt shrinks channel counts and lets the smaller network inherit the larger one's
weights. To slice a tensor we must know, per dimension, which *channel space* it indexes:

* ``("w", g)``: the width of group ``g``. Group 0 is the stem's output; a block that is not a
  residual block (stride 2, or in != out) starts a new group with its output width, a
  residual block stays in its input's group. All tensors of a group are sliced together, so
  residual additions stay valid.
* ``("m", b)``: the hidden (expanded) channels of block ``b``. A block without an expansion
  conv has no hidden space of its own: its hidden channels *are* its input group.
* ``("s", b)``: the squeeze channels of block ``b``'s squeeze-excite (they follow ``mid / 4``).
* ``("h",)``: the head's width (1x1 conv head).
* ``("dw",)``: the outputs of a depthwise head (``mult`` per input channel, follows the last group).
* ``None``: not a channel space (kernel taps, CSE's per-position FC layers, classes).

A skip block has no hidden space: an identity has no weights (and, being residual, stays in its
input's group), a conv skip's 1x1 convolution maps its input group to its output group.

``block_ids`` lets a child network name its blocks by the parent's block numbers (when a
proposal drops a block), so labels of parent and child line up.
"""

from __future__ import annotations

from collections.abc import Sequence

from nas.arch import ArchSpec

__all__ = ["Label", "group_ids", "channel_layout"]

Label = tuple[str, ...] | tuple[str, int]


def group_ids(arch: ArchSpec) -> list[int]:
    """Group of each block's *output* (group 0 is the stem's output)."""
    out, g = [], 0
    for block in arch.blocks:
        if not block.residual:
            g += 1
        out.append(g)
    return out


def _bn(prefix: str, label: Label | None) -> dict[str, tuple[Label | None, ...]]:
    return {f"{prefix}.{name}": (label,) for name in ("weight", "bias", "running_mean", "running_var")} | {
        f"{prefix}.num_batches_tracked": ()}


def channel_layout(arch: ArchSpec, block_ids: Sequence[int] | None = None) -> dict[str, tuple[Label | None, ...]]:
    """Map every state-dict key of ``build_model(arch)`` to the labels of its dimensions."""
    ids = list(block_ids) if block_ids is not None else list(range(len(arch.blocks)))
    groups = group_ids(arch)
    layout: dict[str, tuple[Label | None, ...]] = {"stem.0.weight": (("w", 0), None, None, None)}
    layout |= _bn("stem.1", ("w", 0))
    in_group = 0
    for i, block in enumerate(arch.blocks):
        b = ids[i]
        w_in, w_out = ("w", in_group), ("w", groups[i])
        if block.type == "skip":
            if not block.is_identity:
                layout[f"blocks.{i}.body.0.weight"] = (w_out, w_in, None, None)
                layout |= _bn(f"blocks.{i}.body.1", w_out)
            in_group = groups[i]
            continue
        mid: Label = ("m", b) if block.has_expansion else w_in
        p, j = f"blocks.{i}.body", 0
        if block.has_expansion:
            layout[f"{p}.0.0.weight"] = (mid, w_in, None, None)
            layout |= _bn(f"{p}.0.1", mid)
            j = 1
        layout[f"{p}.{j}.0.weight"] = (mid, None, None, None)
        layout |= _bn(f"{p}.{j}.1", mid)
        j += 1
        if block.se:
            sq: Label = ("s", b)
            layout[f"{p}.{j}.reduce.weight"] = (sq, mid, None, None)
            layout[f"{p}.{j}.reduce.bias"] = (sq,)
            layout[f"{p}.{j}.expand.weight"] = (mid, sq, None, None)
            layout[f"{p}.{j}.expand.bias"] = (mid,)
            j += 1
        if block.type == "ir":
            layout[f"{p}.{j}.0.weight"] = (w_out, mid, None, None)
            layout |= _bn(f"{p}.{j}.1", w_out)
        else:
            for name in ("reduce.weight", "reduce.bias", "scale.weight", "scale.bias"):
                layout[f"{p}.{j}.{name}"] = (None,) * (2 if name.endswith("weight") else 1)
        in_group = groups[i]
    last: Label = ("w", in_group)
    head = arch.head
    if head.kind == "conv":
        layout["head.features.0.weight"] = (("h",), last, None, None)
        layout |= _bn("head.features.1", ("h",))
        feature: Label | None = ("h",)
    elif head.kind == "dw":
        layout["head.features.0.weight"] = (("dw",), None, None, None)
        layout |= _bn("head.features.1", ("dw",))
        feature = ("dw",)
    else:
        feature = last
    layout["head.classifier.weight"] = (None, feature)
    layout["head.classifier.bias"] = (None,)
    return layout
