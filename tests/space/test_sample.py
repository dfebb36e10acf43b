from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from scipy.stats import spearmanr

from nas.arch import arch_cost, arch_hash, block_cost
from nas.space import LeaningChooser, block_slots, enumerate_blocks, leaning_arch, load_space, random_arch, sample_arch
from tests.conftest import DEFAULT_SPACE, TINY_SPACE


def test_sampling_is_seeded_and_stays_in_the_space() -> None:
    space = load_space(DEFAULT_SPACE)
    hashes = {arch_hash(random_arch(space, seed)) for seed in range(20)}
    assert len(hashes) == 20
    assert arch_hash(random_arch(space, 3)) == arch_hash(random_arch(space, 3))
    allowed = {(b, r) for b, r in enumerate_blocks(space)}
    for seed in range(20):
        arch = random_arch(space, seed)
        assert all((b, r) in allowed for b, r in zip(arch.blocks, arch.block_resolutions()))
        depths = [sum(1 for b in arch.blocks if b.out_ch == st.channels) for st in space.stages]
        assert all(st.min_depth <= d <= st.max_depth for st, d in zip(space.stages, depths))


class Recorder:
    """A chooser that always takes the last option and records what it was asked."""

    def __init__(self) -> None:
        self.asked: dict[str, list[Any]] = {}

    def choose(self, name: str, options: Sequence[Any]) -> Any:
        self.asked[name] = list(options)
        return options[-1]

    def choose_int(self, name: str, low: int, high: int) -> int:
        self.asked[name] = [low, high]
        return low


def test_choices_are_conditional() -> None:
    space = load_space(TINY_SPACE)
    rec = Recorder()
    arch = sample_arch(space, rec)
    # Depth takes the minimum, so only block 0 of each stage is asked about.
    assert "s0.depth" in rec.asked and "s2.depth" not in rec.asked  # stage 2 has a fixed depth
    assert "s0.b0.type" in rec.asked and "s0.b1.type" not in rec.asked
    # The last type is 'cse', so its options were asked; single-option lists are not asked.
    assert all(b.type == "cse" for b in arch.blocks)
    assert "s0.b0.cse_reduction" not in rec.asked  # only one option in the tiny space


def test_enumeration_counts_every_slot_option() -> None:
    space = load_space(DEFAULT_SPACE)
    slots = block_slots(space)
    assert len(slots) == 7 + 5  # every stage's first block + the repeats of stages with max depth >= 2
    assert all(len(list(s.options())) == 2 * 5 * 3 * 2 * 2 for s in slots)
    assert len(enumerate_blocks(space)) == 12 * 120
    tiny = load_space(TINY_SPACE)
    # 5 slots, but stage 0's first block (8 -> 8, stride 1) equals its repeats: 4 distinct.
    assert len(block_slots(tiny)) == 5
    assert len(enumerate_blocks(tiny)) == 4 * (2 * 2 * 2 * 2 * 2)


def test_leaning_samples_span_the_space_from_cheapest_to_costliest() -> None:
    space = load_space(DEFAULT_SPACE)
    allowed = {(b, r) for b, r in enumerate_blocks(space)}
    cheapest, costliest = leaning_arch(space, 0, 1.0), leaning_arch(space, 0, -1.0)
    assert arch_hash(cheapest) == arch_hash(leaning_arch(space, 99, 1.0))  # the extremes ignore the seed
    assert [len(cheapest.blocks), len(costliest.blocks)] == [sum(s.min_depth for s in space.stages),
                                                              sum(s.max_depth for s in space.stages)]
    random_macs = [arch_cost(random_arch(space, seed)).macs for seed in range(50)]
    assert arch_cost(cheapest).macs < min(random_macs) and arch_cost(costliest).macs > max(random_macs)
    # one slot's options by MACs: the cheapest network takes the cheapest option of each
    slot = block_slots(space)[0]
    macs = sorted(block_cost(b, resolution=slot.resolution).macs for b in slot.options())
    assert block_cost(cheapest.blocks[0], resolution=slot.resolution).macs == macs[0]
    assert block_cost(costliest.blocks[0], resolution=slot.resolution).macs == macs[-1]

    leans = np.linspace(1, -1, 21)
    series = [leaning_arch(space, 100 + i, float(lean)) for i, lean in enumerate(leans)]
    assert all((b, r) in allowed for a in series for b, r in zip(a.blocks, a.block_resolutions()))
    rho = spearmanr(leans, [arch_cost(a).macs for a in series]).statistic
    assert rho < -0.9, rho  # leaning further towards the cheapest end gives cheaper networks
    assert arch_hash(leaning_arch(space, 7, 0.3)) == arch_hash(leaning_arch(space, 7, 0.3))  # seeded


def test_leaning_chooser_rejects_a_lean_outside_minus_one_to_one() -> None:
    with pytest.raises(ValueError, match=r"lean must lie in \[-1, 1\], got 1.5"):
        LeaningChooser(load_space(TINY_SPACE), 0, 1.5)
