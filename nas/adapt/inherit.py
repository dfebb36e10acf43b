"""Weight inheritance: a shrunk network keeps the parent's most important filters.

For every channel space that shrinks, channels are ranked by the L2 norm of all the weights
that touch them (the filters producing them and the weights consuming them), as NetAdapt
does, and the top ones are kept in their original order. Tensors whose structure changed
(a projection replaced by CSE) keep the child's fresh initialisation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from nas.adapt.layout import Label, channel_layout, group_ids
from nas.arch import ArchSpec, build_model

__all__ = ["channel_importance", "inherit_state"]

_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def channel_importance(state: dict[str, torch.Tensor], layout: dict[str, tuple[Label | None, ...]]) -> dict[Label, torch.Tensor]:
    """Sum of squared weights per channel of every labelled space (conv and linear weights only)."""
    scores: dict[Label, torch.Tensor] = {}
    for key, labels in layout.items():
        tensor = state[key]
        if not key.endswith("weight") or tensor.dim() < 2:
            continue
        sq = tensor.detach().float() ** 2
        for dim, label in enumerate(labels):
            if label is None:
                continue
            per_channel = sq.sum(dim=[d for d in range(sq.dim()) if d != dim])
            scores[label] = scores.get(label, torch.zeros_like(per_channel)) + per_channel
    return scores


def _keep(scores: torch.Tensor, n: int) -> torch.Tensor:
    return torch.sort(torch.topk(scores, n).indices).values


def inherit_state(parent: ArchSpec, parent_state: dict[str, torch.Tensor], child: ArchSpec,
                  block_map: Sequence[int], *, seed: int = 0) -> dict[str, torch.Tensor]:
    """State dict for ``child``: inherited where possible, freshly initialised elsewhere."""
    torch.manual_seed(seed)
    child_state = build_model(child).state_dict()
    p_layout = channel_layout(parent)
    c_layout = channel_layout(child, block_ids=block_map)
    scores = channel_importance(parent_state, p_layout)
    # Sizes of every space in the child, to know which ones shrank.
    sizes: dict[Label, int] = {}
    for key, labels in c_layout.items():
        for dim, label in enumerate(labels):
            if label is not None:
                sizes[label] = child_state[key].shape[dim]
    keep: dict[Label, torch.Tensor] = {}
    for label, score in scores.items():
        if label in sizes and sizes[label] < score.numel():
            keep[label] = _keep(score, sizes[label])
    # A depthwise head follows its input group: outputs j*mult .. j*mult+mult-1 belong to input j.
    if child.head.kind == "dw" and parent.head.kind == "dw":
        mult = parent.head.width // parent.last_ch
        kept_in = keep.get(("w", group_ids(parent)[-1]), torch.arange(parent.last_ch))
        keep[("dw",)] = (kept_in[:, None] * mult + torch.arange(mult)[None, :]).reshape(-1)

    out = dict(child_state)
    for key, c_tensor in child_state.items():
        m = _BLOCK.match(key)
        p_key = key if m is None else f"blocks.{block_map[int(m.group(1))]}.{key[m.end():]}"
        p_tensor = parent_state.get(p_key)
        if p_tensor is None or p_layout.get(p_key) is None or p_tensor.dim() != c_tensor.dim():
            continue
        if p_layout[p_key] != c_layout[key]:
            continue  # the tensor means something else in the child (e.g. block type changed)
        t = p_tensor
        for dim, label in enumerate(c_layout[key]):
            if label is not None and label in keep and t.shape[dim] != c_tensor.shape[dim]:
                t = t.index_select(dim, keep[label])
        if t.shape == c_tensor.shape:
            out[key] = t.clone()
    return out
