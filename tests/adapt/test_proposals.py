"""Proposal generation and weight inheritance on small networks."""

from __future__ import annotations

import pytest
import torch

from nas.adapt import channel_layout, generate_proposals, group_ids, inherit_state
from nas.adapt.proposals import with_mid, with_width
from nas.arch import ArchSpec, arch_cost, build_model, parse_compact
from nas.latency import LatencyEstimator, Prediction
from nas.latency.table import Correction

SMALL = parse_compact("in16x3-stem_k3_s1_c16_re-ir_e3_k3_s1_c16_re-ir_e4_k5_s2_c24_hs_se-ir_e4_k3_s1_c24_re-"
                      "cse_e2_k3_s2_c32_re_rd4_cap8-ir_e2_k3_s1_c32_re-head_c64_hs-cls10")
DW_HEAD = parse_compact("in16x3-stem_k3_s1_c16_re-ir_e3_k3_s2_c24_re-cse_r2_e2_k3_s1_c24_re_rd4_cap8-"
                        "head_dw_c96_re-cls10")


class MacsEstimator(LatencyEstimator):
    """A stand-in device whose latency is proportional to multiply-adds (1 ms per MMAC)."""

    def predict(self, arch: ArchSpec) -> Prediction:
        ms = arch_cost(arch).macs / 1e6
        return Prediction(ms, ms, (), Correction())


@pytest.mark.parametrize("arch", [SMALL, DW_HEAD], ids=["small", "dw-head"])
def test_every_proposal_meets_delta_with_the_smallest_change(arch: ArchSpec) -> None:
    est = MacsEstimator()
    start = est.latency_ms(arch)
    goal = start * 0.97
    proposals = generate_proposals(arch, est, goal_ms=goal, allow_cse=True, allow_drop=True)
    kinds = {p.kind for p in proposals}
    assert {"mid", "width", "drop"} <= kinds
    for p in proposals:
        assert p.latency_ms <= goal
        model = build_model(p.arch)  # residual shapes consistent: ArchSpec validated, and it runs
        assert model.eval()(torch.randn(2, 3, 16, 16)).shape == (2, 10)
        if p.kind == "mid":
            i = int(p.target.removeprefix("block"))
            bigger = p.arch.blocks[i].mid_ch + 8
            if bigger < arch.blocks[i].mid_ch and bigger != arch.blocks[i].in_ch:
                # One step less shrinking would not have met the goal: the change is the smallest.
                assert est.latency_ms(with_mid(arch, i, bigger)) > goal
        if p.kind == "width":
            g = int(p.target.removeprefix("group"))
            widths = {b.out_ch for b, gi in zip(p.arch.blocks, group_ids(p.arch)) if gi == g}
            assert len(widths) <= 1  # the whole group shrank together


def test_width_shrink_keeps_residuals_and_follows_into_the_dw_head() -> None:
    child = with_width(DW_HEAD, 1, 16)
    assert [b.in_ch for b in child.blocks] == [16, 16, 16]
    assert all(b.out_ch == 16 for b in child.blocks)
    assert child.blocks[1].residual and child.blocks[2].residual
    assert child.head.width == 16 * 4  # depthwise head keeps its channel multiplier


def test_no_proposal_when_the_goal_is_unreachable() -> None:
    assert generate_proposals(SMALL, MacsEstimator(), goal_ms=1e-6) == []


def test_inheritance_keeps_the_largest_norm_filters() -> None:
    torch.manual_seed(0)
    parent = build_model(SMALL)
    state = parent.state_dict()
    block = 1  # ir 16 -> 64 -> 24 with SE
    key = f"blocks.{block}.body.0.0.weight"
    norms = state[key].flatten(1).norm(dim=1)
    # Make the importance unambiguous: scale some expansion filters up strongly.
    boost = torch.tensor([5, 17, 33, 40, 41, 50, 60, 63])
    state[key][boost] *= 100.0
    child_arch = with_mid(SMALL, block, 8)
    child = inherit_state(SMALL, state, child_arch, tuple(range(len(SMALL.blocks))))
    kept = child[key]
    assert kept.shape[0] == 8
    torch.testing.assert_close(kept, state[key][boost])
    # Consumers were sliced with the same indices (the projection's input columns).
    proj = f"blocks.{block}.body.3.0.weight"
    torch.testing.assert_close(child[proj], state[proj][:, boost])
    # Untouched blocks are copied exactly.
    torch.testing.assert_close(child["blocks.3.body.0.0.weight"], state["blocks.3.body.0.0.weight"])
    assert norms.numel() == 64


def test_inherited_network_computes_the_same_function_when_nothing_is_removed() -> None:
    torch.manual_seed(1)
    parent = build_model(SMALL).eval()
    state = parent.state_dict()
    child = build_model(SMALL).eval()
    child.load_state_dict(inherit_state(SMALL, state, SMALL, tuple(range(len(SMALL.blocks)))))
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(child(x), parent(x))


def test_layout_matches_the_builder() -> None:
    for arch in (SMALL, DW_HEAD):
        state = build_model(arch).state_dict()
        layout = channel_layout(arch)
        assert set(state) == set(layout)
        assert all(len(layout[k]) == state[k].dim() for k in state)
