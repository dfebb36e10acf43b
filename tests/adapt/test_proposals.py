"""Proposal generation and weight inheritance on small networks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from nas.adapt import channel_layout, floor_arch, generate_proposals, group_ids, inherit_state
from nas.adapt.proposals import with_head, with_mid, with_width
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


# A stride-1 transition (group 0 -> 1) and a hidden width below its input width: shrinking group 1 to 16 would
# make block 0 residual (16 -> 16) and take block 1's expansion away (hidden 16 == input 16).
HAZARD = parse_compact("in16x3-stem_k3_s1_c16_re-ir_m24_k3_s1_c24_re-ir_m16_k3_s1_c24_re-head_c32_re-cls10")


def _structure(arch: ArchSpec) -> list[tuple[bool, bool]]:
    return [(b.has_expansion, b.residual) for b in arch.blocks]


def test_width_proposals_never_change_the_block_structure() -> None:
    est = MacsEstimator()
    start = est.latency_ms(HAZARD)
    proposals = generate_proposals(HAZARD, est, goal_ms=start - 1e-9)
    assert {p.kind for p in proposals} == {"mid", "width", "head"}
    for p in proposals:
        assert _structure(p.arch) == _structure(HAZARD), p.description
        assert group_ids(p.arch) == group_ids(HAZARD)
    group1 = next(p for p in proposals if p.target == "group1")
    assert group1.description == "group 1 width 24 -> 8"  # 16 skipped: it would change the structure
    assert est.latency_ms(with_width(HAZARD, 1, 16)) < start  # although it would have met the goal


def test_floor_is_where_proposals_run_out() -> None:
    est = MacsEstimator()
    for arch in (SMALL, HAZARD):
        floor = floor_arch(arch)
        assert est.latency_ms(floor) < est.latency_ms(arch)
        assert generate_proposals(floor, est, goal_ms=est.latency_ms(floor) - 1e-9) == []
        assert floor.head.kind != "conv" or floor.head.width == 8
        dropped = floor_arch(arch, allow_drop=True)
        assert not any(b.residual for b in dropped.blocks)


SE_NET = parse_compact("in16x3-stem_k3_s1_c16_re-ir_e3_k3_s1_c16_hs_se-ir_e4_k3_s2_c24_re-ir_e3_k3_s1_c24_hs-"
                       "head_c64_hs-cls10")


def _silence(state: dict[str, torch.Tensor], arch: ArchSpec, label: tuple, channels: torch.Tensor) -> None:
    """Make ``channels`` of ``label`` carry exactly zero: producers, BN affine and consumers all zero."""
    for key, labels in channel_layout(arch).items():
        for dim, lab in enumerate(labels):
            if lab == label:
                state[key].index_fill_(dim, channels, 1.0 if key.endswith("running_var") else 0.0)


def random_bn_parent(arch: ArchSpec, *, seed: int) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """``arch`` built with non-trivial BN statistics (so that a wrong slice would show), and a copy of its state."""
    torch.manual_seed(seed)
    parent = build_model(arch).eval()
    with torch.no_grad():
        for m in parent.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return parent, {k: v.clone() for k, v in parent.state_dict().items()}


def _sizes(arch: ArchSpec) -> dict[tuple, int]:
    state = build_model(arch).state_dict()
    return {lab: state[k].shape[d] for k, labels in channel_layout(arch).items() for d, lab in enumerate(labels)
            if lab is not None}


@pytest.mark.parametrize("shrink", [
    lambda a: with_mid(a, 0, 32),     # hidden channels of a block with squeeze-excite (its squeeze width follows)
    lambda a: with_width(a, 0, 8),    # the stem's group, shared by a residual block
    lambda a: with_width(a, 1, 16),   # a stage's group: stride-2 block, residual block, head input
    lambda a: with_head(a, 32),       # the 1x1 head
], ids=["mid", "stem-group", "stage-group", "head"])
def test_inheritance_removes_only_dead_channels_so_the_function_is_unchanged(shrink) -> None:
    parent, state = random_bn_parent(SE_NET, seed=2)
    child_arch = shrink(SE_NET)
    parent_sizes, child_sizes = _sizes(SE_NET), _sizes(child_arch)
    shrunk = {lab: parent_sizes[lab] - n for lab, n in child_sizes.items() if n < parent_sizes[lab]}
    assert shrunk
    for label, count in shrunk.items():  # kill exactly as many channels as the child loses, at random places
        _silence(state, SE_NET, label, torch.randperm(parent_sizes[label])[:count])
    parent.load_state_dict(state)
    child = build_model(child_arch).eval()
    child.load_state_dict(inherit_state(SE_NET, state, child_arch, tuple(range(len(SE_NET.blocks)))))
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(child(x), parent(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("arch", [SMALL, HAZARD, DW_HEAD], ids=["small", "hazard", "dw-head"])
@pytest.mark.parametrize("cut", [0.01, 0.05, 0.2])
def test_each_proposal_is_the_smallest_change_of_its_kind_that_meets_the_goal(arch: ArchSpec, cut: float) -> None:
    from nas.adapt.proposals import _candidates

    est = MacsEstimator()
    goal = est.latency_ms(arch) * (1 - cut)
    proposals = {(p.kind, p.target): p for p in generate_proposals(arch, est, goal_ms=goal)}
    for kind, target, options in _candidates(arch, allow_cse=False, allow_drop=False, cse_reduction=16, cse_cap=16):
        meeting = [i for i, (_, child, _) in enumerate(options) if est.latency_ms(child) <= goal]
        if not meeting:  # an exhaustive scan finds nothing: no proposal of that kind
            assert (kind, target) not in proposals
        else:  # the proposal is the first option (smallest change) an exhaustive scan finds
            assert proposals[(kind, target)].description == options[meeting[0]][0]


class ListEstimator(LatencyEstimator):
    """Latency ``values[i]`` for the option whose "arch" is ``i``; counts the predictions made."""

    def __init__(self, values: list[float]) -> None:
        self.values, self.calls = values, 0

    def predict(self, arch) -> Prediction:  # type: ignore[no-untyped-def, override]
        self.calls += 1
        return Prediction(self.values[arch], self.values[arch], (), Correction())


def _search(values: list[float], goal: float) -> tuple[int | None, int]:
    from nas.adapt.proposals import _first_meeting

    est = ListEstimator(values)
    found = _first_meeting([(str(i), i, ()) for i in range(len(values))], est, goal)  # type: ignore[misc]
    return (None if found is None else found[0]), est.calls


@given(st.lists(st.floats(0.0, 100.0), min_size=0, max_size=130), st.floats(0.0, 100.0))
def test_search_finds_a_boundary_and_the_first_one_when_latency_falls(values: list[float], goal: float) -> None:
    index, calls = _search(values, goal)
    if index is None:
        assert all(values[i] > goal for i in [0, len(values) - 1] if values)  # both ends were tried and missed
    else:
        assert values[index] <= goal and (index == 0 or values[index - 1] > goal)
    monotone = sorted(values, reverse=True)
    first = next((i for i, v in enumerate(monotone) if v <= goal), None)
    assert _search(monotone, goal)[0] == first  # the exhaustive scan's answer
    assert calls <= 2 * max(1, len(values)).bit_length() + 1


def test_a_noisy_extreme_does_not_hide_an_earlier_option() -> None:
    assert _search([10, 9, 8, 7, 6, 50], 8.5) == (2, 4)  # tries 0, 1, 3, then 2
    assert _search([10, 10, 10], 5)[0] is None
