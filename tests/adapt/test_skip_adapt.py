"""NetAdapt on networks with skip blocks: no hidden width to shrink, groups shrink through conv skips and
identities, weights are inherited so that removing dead channels keeps the function."""

from __future__ import annotations

import pytest
import torch

from nas.adapt import channel_layout, floor_arch, generate_proposals, group_ids, inherit_state
from nas.adapt.proposals import with_width
from nas.arch import ArchSpec, build_model, parse_compact
from tests.adapt.test_proposals import MacsEstimator, _silence, _sizes, random_bn_parent

# NAS-Bench-Macro's key 02012100 at a quarter of its widths and 16x16 inputs: conv skip, ir e6 k5, conv skip,
# ir e3 k3, ir e6 k5, ir e3 k3 (stride 2), identity, identity.
MACRO_LIKE = parse_compact("in16x3-stem_k3_s1_c8_re-skip_s2_c16-ir_e6_k5_s1_c16_re-skip_s2_c32-ir_e3_k3_s1_c32_re-"
                           "ir_e6_k5_s1_c32_re-ir_e3_k3_s2_c64_re-skip_r2_s1_c64-head_c96_re-cls10")


def test_groups_and_layout_of_skip_blocks() -> None:
    assert [b.type for b in MACRO_LIKE.blocks] == ["skip", "ir", "skip", "ir", "ir", "ir", "skip", "skip"]
    assert group_ids(MACRO_LIKE) == [1, 1, 2, 2, 2, 3, 3, 3]  # a conv skip starts a group, an identity stays in it
    state = build_model(MACRO_LIKE).state_dict()
    layout = channel_layout(MACRO_LIKE)
    assert set(state) == set(layout) and all(len(layout[k]) == state[k].dim() for k in state)
    assert layout["blocks.2.body.0.weight"] == (("w", 2), ("w", 1), None, None)
    assert layout["blocks.2.body.1.weight"] == (("w", 2),)
    assert not any(k.startswith(("blocks.6.", "blocks.7.")) for k in layout)  # identities have no weights


def test_proposals_leave_skip_blocks_structure_alone() -> None:
    est = MacsEstimator()
    start = est.latency_ms(MACRO_LIKE)
    proposals = generate_proposals(MACRO_LIKE, est, goal_ms=start * 0.99, allow_cse=True, allow_drop=True)
    by_kind: dict[str, set[str]] = {}
    for p in proposals:
        by_kind.setdefault(p.kind, set()).add(p.target)
        assert [b.type for b in p.arch.blocks] == [b.type for b in MACRO_LIKE.blocks] or p.kind in ("cse", "drop")
        assert [b.is_identity for b in p.arch.blocks] == [b.is_identity for b in MACRO_LIKE.blocks] or \
            p.kind == "drop"
        assert build_model(p.arch).eval()(torch.randn(1, 3, 16, 16)).shape == (1, 10)
    assert by_kind["mid"] == {"block1", "block3", "block4", "block5"}  # no skip block has a hidden width
    assert by_kind["cse"] == {"block1", "block3", "block4", "block5"}
    assert by_kind["drop"] == {"block1", "block3", "block4"}  # residual ir blocks only: never an identity
    assert {"group1", "group2", "group3"} <= by_kind["width"]  # groups that hold conv skips and identities
    floor = floor_arch(MACRO_LIKE, allow_drop=True)
    assert [b.type for b in floor.blocks].count("skip") == 4


def test_a_group_shrinks_through_conv_skips_and_identities() -> None:
    child = with_width(MACRO_LIKE, 3, 32)
    assert [(b.in_ch, b.out_ch) for b in child.blocks[5:]] == [(32, 32), (32, 32), (32, 32)]
    assert child.blocks[6].is_identity and child.blocks[7].is_identity
    child = with_width(MACRO_LIKE, 2, 16)
    assert (child.blocks[2].in_ch, child.blocks[2].out_ch, child.blocks[2].mid_ch) == (16, 16, 16)
    assert child.blocks[2].type == "skip" and not child.blocks[2].is_identity  # stride 2: still a conv skip


@pytest.mark.parametrize("shrink", [
    lambda a: with_width(a, 1, 8),    # conv skip's output and a residual ir block
    lambda a: with_width(a, 2, 16),   # conv skip, two residual ir blocks, the next block's input
    lambda a: with_width(a, 3, 40),   # a strided ir block's output, two identities, the head's input
], ids=["group1", "group2", "group3"])
def test_inheritance_through_skip_blocks_keeps_the_function(shrink) -> None:  # type: ignore[no-untyped-def]
    parent, state = random_bn_parent(MACRO_LIKE, seed=3)
    child_arch: ArchSpec = shrink(MACRO_LIKE)
    parent_sizes, child_sizes = _sizes(MACRO_LIKE), _sizes(child_arch)
    shrunk = {lab: parent_sizes[lab] - n for lab, n in child_sizes.items() if n < parent_sizes[lab]}
    assert len(shrunk) == 1
    for label, count in shrunk.items():
        _silence(state, MACRO_LIKE, label, torch.randperm(parent_sizes[label])[:count])
    parent.load_state_dict(state)
    child = build_model(child_arch).eval()
    child.load_state_dict(inherit_state(MACRO_LIKE, state, child_arch, tuple(range(len(MACRO_LIKE.blocks)))))
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(child(x), parent(x), atol=1e-5, rtol=1e-4)
