"""The candidate-list form of a stage, and skip blocks in the cross-product form: grammar, refusals, sampling."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from nas.arch import arch_cost, skip_block
from nas.errors import SpaceError
from nas.search._chooser import TrialChooser
from nas.space import (
    Candidate,
    block_slots,
    enumerate_blocks,
    leaning_arch,
    load_space,
    parse_space,
    random_arch,
    sample_arch,
)
from nas.space.sample import _extreme_choices
from tests.conftest import REPO, TINY_SPACE

MACRO = REPO / "search_spaces" / "nas_bench_macro.yaml"

BASE: dict[str, Any] = {
    "name": "candidates_test", "input": {"size": 16, "channels": 3}, "classes": 10,
    "stem": {"channels": 8}, "head": {"kind": "conv", "width": 32},
    "defaults": {"se": [False], "activation": ["relu", "hswish"], "kernel": [3, 5]},
    "stages": [
        {"channels": 16, "stride": 2, "depth": 2,
         "candidates": [{"type": "skip"}, {"type": "ir", "expansion": 3, "kernel": 3, "activation": "relu"},
                        {"type": "ir", "expansion": 6, "kernel": 5, "activation": "hswish", "se": True}]},
        {"channels": 16, "stride": 1, "depth": [1, 2], "choices": {"type": ["ir", "skip"], "expansion": [1, 3]}},
    ],
}


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _mutated(mutate) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(yaml.safe_dump(BASE))
    mutate(data)
    return data


def _cands(data: dict[str, Any], stage: int = 0) -> list[dict[str, Any]]:
    return data["stages"][stage]["candidates"]


class Recorder:
    """Takes the option at ``index`` (clipped) and records what it was asked."""

    def __init__(self, index: int = -1) -> None:
        self.index = index
        self.asked: dict[str, list[Any]] = {}

    def choose(self, name: str, options: Sequence[Any]) -> Any:
        self.asked[name] = list(options)
        return options[min(self.index, len(options) - 1)]

    def choose_int(self, name: str, low: int, high: int) -> int:
        self.asked[name] = [low, high]
        return high


def test_candidates_load_with_labels_and_omitted_keys_from_single_option_defaults(tmp_path: Path) -> None:
    space = load_space(_write(tmp_path, BASE))
    first, second = space.stages
    assert first.choices is None and second.candidates == ()
    assert first.candidates == (
        Candidate("skip"), Candidate("ir", 3, 3, False, "relu"), Candidate("ir", 6, 5, True, "hswish"))
    assert [c.label for c in first.candidates] == ["skip", "ir_e3_k3", "ir_e6_k5_se_hs"]
    # A skip in the cross product: its stage still takes the ir options it needs.
    assert second.choices is not None and second.choices.type == ("ir", "skip")


def test_labels_are_the_compact_tokens_and_distinct() -> None:
    cse = Candidate("cse", 2, 7, False, "relu", 16, 8)
    assert cse.label == "cse_e2_k7_rd16_cap8"
    labels = {Candidate("ir", e, k, se, act).label for e in (1, 6) for k in (3, 5) for se in (False, True)
              for act in ("relu", "hswish")}
    assert len(labels) == 16


def test_defaults_may_be_absent_when_every_stage_lists_candidates(tmp_path: Path) -> None:
    def full(d: dict[str, Any]) -> None:
        d.pop("defaults")
        d["stages"] = d["stages"][:1]
        for c in _cands(d)[1:]:
            c.update(se=c.get("se", False))

    space = load_space(_write(tmp_path, _mutated(full)))
    assert [c.label for c in space.stages[0].candidates] == ["skip", "ir_e3_k3", "ir_e6_k5_se_hs"]


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d["stages"][0].update(choices={"kernel": [3]}),
         "stages[0].candidates: a stage takes either 'choices' (every combination of option lists) or 'candidates' "
         "(a list of preset blocks), not both"),
        (lambda d: d["stages"][0].update(candidates=[]), "stages[0].candidates: expected a non-empty list"),
        (lambda d: d["stages"][0].update(candidates={"type": "skip"}), "stages[0].candidates: expected a non-empty list"),
        (lambda d: _cands(d).append("skip"), "stages[0].candidates[3]: expected a mapping, got str"),
        (lambda d: _cands(d)[1].update(width=3), "stages[0].candidates[1].width: unknown key"),
        (lambda d: _cands(d)[1].update(kernel=[3, 5]),
         "stages[0].candidates[1].kernel: expected one value, got [3, 5]; a candidate is one block"),
        (lambda d: _cands(d)[1].update(kernel=4), "stages[0].candidates[1].kernel: expected one of [3, 5, 7], got 4"),
        (lambda d: _cands(d)[1].update(expansion=0), "stages[0].candidates[1].expansion: expected an integer >= 1"),
        (lambda d: _cands(d)[1].update(se="no"), "stages[0].candidates[1].se: expected true or false"),
        (lambda d: _cands(d)[0].update(type="conv"),
         "stages[0].candidates[0].type: expected one of ['ir', 'cse', 'skip'], got 'conv'"),
        (lambda d: _cands(d)[0].update(kernel=3),
         "stages[0].candidates[0].kernel: a 'skip' candidate takes no other keys"),
        (lambda d: _cands(d)[0].update(se=False), "stages[0].candidates[0].se: a 'skip' candidate takes no other keys"),
        (lambda d: _cands(d)[1].update(cse_cap=8),
         "stages[0].candidates[1].cse_cap: only 'cse' candidates take CSE options"),
        (lambda d: _cands(d)[1].pop("kernel"),
         "stages[0].candidates[1].kernel: missing; 'defaults.kernel' has 2 options [3, 5], so the candidate must "
         "name its own"),
        (lambda d: _cands(d)[1].pop("expansion"),
         "stages[0].candidates[1].expansion: missing; there is no 'defaults.expansion' with one option to take it "
         "from"),
        (lambda d: _cands(d)[1].pop("type"), "stages[0].candidates[1].type: missing; there is no 'defaults.type'"),
        (lambda d: _cands(d).append({"type": "cse", "expansion": 2, "kernel": 3, "activation": "relu"}),
         "stages[0].candidates[3].cse_reduction: missing; there is no 'defaults.cse_reduction'"),
        (lambda d: _cands(d).append({"type": "skip"}),
         "stages[0].candidates[3]: the same block as stages[0].candidates[0] (skip); list each candidate once"),
        # The same block once its omitted 'se' is taken from the defaults' one option.
        (lambda d: _cands(d).append({"type": "ir", "expansion": 3, "kernel": 3, "activation": "relu", "se": False}),
         "stages[0].candidates[3]: the same block as stages[0].candidates[1] (ir_e3_k3)"),
        (lambda d: d["stages"][1]["choices"].update(type=["ir", "skip", "skip"]),
         "stages[1].choices.type: repeated options"),
        (lambda d: d["stages"][1]["choices"].update(type=["ir", "mbconv"]),
         "stages[1].choices.type[1]: expected one of ['ir', 'cse', 'skip'], got 'mbconv'"),
    ],
)
def test_refusals_name_the_file_and_the_field(tmp_path: Path, mutate, fragment: str) -> None:  # type: ignore[no-untyped-def]
    path = _write(tmp_path, _mutated(mutate))
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert str(info.value).startswith(f"{path}: ")
    assert fragment in str(info.value)


def test_a_stage_of_skips_needs_no_other_options(tmp_path: Path) -> None:
    data = _mutated(lambda d: d.pop("defaults"))
    data["stages"] = [data["stages"][0] | {"candidates": [{"type": "skip"}]},
                      {"channels": 24, "stride": 2, "depth": [1, 3], "choices": {"type": ["skip"]}}]
    space = load_space(_write(tmp_path, data))
    assert space.stages[1].choices is not None and space.stages[1].choices.kernel == ()
    rec = Recorder()
    arch = sample_arch(space, rec)
    assert rec.asked == {"s1.depth": [1, 3]}  # single options are not asked
    assert [b.type for b in arch.blocks] == ["skip"] * 5 and [b.is_identity for b in arch.blocks] == \
        [False, True, False, True, True]
    # ...while an ir type in the list needs them, naming the first missing one.
    data["stages"][1]["choices"]["type"] = ["skip", "ir"]
    with pytest.raises(SpaceError, match=r"stages\[1\]\.choices: no options for 'expansion'"):
        load_space(_write(tmp_path, data))


def test_candidate_sampling_asks_one_categorical_per_block_and_skips_ask_nothing_else(tmp_path: Path) -> None:
    space = load_space(_write(tmp_path, BASE))
    labels = ["skip", "ir_e3_k3", "ir_e6_k5_se_hs"]
    rec = Recorder(index=-1)  # the last option everywhere: ir_e6_k5_se_hs, depth 2, then type 'skip'
    arch = sample_arch(space, rec)
    assert rec.asked == {"s0.b0.op": labels, "s0.b1.op": labels, "s1.depth": [1, 2], "s1.b0.type": ["ir", "skip"],
                         "s1.b1.type": ["ir", "skip"]}
    assert [b.type for b in arch.blocks] == ["ir", "ir", "skip", "skip"]
    assert arch.blocks[2:] == (skip_block(in_ch=16, out_ch=16),) * 2
    rec = Recorder(index=0)  # skip candidates; type 'ir' asks its options (se has one: not asked)
    arch = sample_arch(space, rec)
    assert rec.asked["s0.b0.op"] == labels and arch.blocks[:2] == (skip_block(in_ch=8, out_ch=16, stride=2),
                                                                   skip_block(in_ch=16, out_ch=16))
    assert {k: v for k, v in rec.asked.items() if k.startswith("s1.b0.")} == {
        "s1.b0.type": ["ir", "skip"], "s1.b0.expansion": [1, 3], "s1.b0.kernel": [3, 5],
        "s1.b0.activation": ["relu", "hswish"]}


def test_slots_enumerate_both_forms(tmp_path: Path) -> None:
    space = load_space(_write(tmp_path, BASE))
    slots = block_slots(space)
    assert [(s.stage, s.first) for s in slots] == [(0, True), (0, False), (1, True), (1, False)]
    assert [choice for choice, _ in slots[0].choice_options()] == [{"op": "skip"}, {"op": "ir_e3_k3"},
                                                                   {"op": "ir_e6_k5_se_hs"}]
    ir_then_skip = list(slots[2].choice_options())
    assert len(ir_then_skip) == 2 * 2 * 1 * 2 + 1  # expansion x kernel x se x activation, then skip
    assert ir_then_skip[-1] == ({"type": "skip", "expansion": None, "kernel": None, "se": None, "activation": None,
                                 "cse_reduction": None, "cse_cap": None}, skip_block(in_ch=16, out_ch=16))
    blocks = enumerate_blocks(space)
    # slot 0: 3; slot 1 (16 -> 16 at 8x8): 3; slots 2 and 3: 8 ir + the identity, of which the identity and
    # ir_e3_k3 are slot 1's: identities are blocks too.
    assert len(blocks) == 3 + 3 + 9 - 2 == len(set(blocks))
    assert (skip_block(in_ch=16, out_ch=16), 8) in blocks


def test_random_and_optuna_sampling_of_the_macro_space() -> None:
    space = load_space(MACRO)
    allowed = set(enumerate_blocks(space))
    archs = [random_arch(space, seed) for seed in range(30)]
    assert len(set(archs)) == 30
    assert all((b, r) in allowed for a in archs for b, r in zip(a.blocks, a.block_resolutions()))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    arch = sample_arch(space, TrialChooser(trial))
    assert sorted(trial.params) == sorted(f"s{i}.b{j}.op" for i, d in enumerate((2, 3, 3)) for j in range(d))
    assert set(trial.params.values()) <= {"skip", "ir_e3_k3", "ir_e6_k5"}
    assert len(arch.blocks) == 8


def test_leaning_and_the_extremes_of_a_candidate_space() -> None:
    space = load_space(MACRO)
    cheapest, costliest = leaning_arch(space, 0, 1.0), leaning_arch(space, 0, -1.0)
    assert [b.type for b in cheapest.blocks] == ["skip"] * 8
    assert all(b.type == "ir" and b.kernel == 5 and b.mid_ch == 6 * b.in_ch for b in costliest.blocks)
    macs = [arch_cost(random_arch(space, seed)).macs for seed in range(30)]
    assert arch_cost(cheapest).macs < min(macs) and arch_cost(costliest).macs > max(macs)
    extreme = _extreme_choices(space, cheapest=True)
    assert extreme == {"s0.depth": 2, "s1.depth": 3, "s2.depth": 3, "s0.first.op": "skip", "s0.repeat.op": "skip",
                       "s1.first.op": "skip", "s1.repeat.op": "skip", "s2.first.op": "skip", "s2.repeat.op": "skip"}
    mid = [arch_cost(leaning_arch(space, seed, 0.5)).macs for seed in range(10)]
    assert sum(mid) / 10 < sum(macs) / 30  # leaning towards the cheapest end gives cheaper networks


def test_leaning_in_a_cross_product_stage_with_skip(tmp_path: Path) -> None:
    space = load_space(_write(tmp_path, BASE))
    extreme = _extreme_choices(space, cheapest=False)
    assert extreme["s1.first.type"] == "ir" and extreme["s1.first.expansion"] == 3  # the costliest of stage 1
    cheap = _extreme_choices(space, cheapest=True)
    assert cheap["s1.repeat.type"] == "skip" and cheap["s1.repeat.kernel"] is None  # drawn uniformly if asked
    for seed in range(10):
        assert random_arch(space, seed) is not None and leaning_arch(space, seed, 0.7) is not None
    assert all(b.type == "skip" for b in leaning_arch(space, 0, 1.0).blocks)


def test_the_digest_covers_the_candidates(tmp_path: Path) -> None:
    digest = load_space(_write(tmp_path, BASE)).digest
    assert load_space(_write(tmp_path, _mutated(lambda d: _cands(d)[1].update(kernel=5)))).digest != digest
    assert load_space(_write(tmp_path, _mutated(lambda d: _cands(d).reverse()))).digest != digest
    text = MACRO.read_text()
    other = tmp_path / "macro.yaml"
    other.write_text("# reformatted\n" + text.replace("{channels: 128, stride: 2,", "{stride: 2, channels: 128,"))
    assert load_space(other).digest == load_space(MACRO).digest


def test_parse_space_of_a_mapping_names_string_source() -> None:
    with pytest.raises(SpaceError, match=r"^<string>: stages\[0\]\.candidates\[0\]\.kernel"):
        parse_space(_mutated(lambda d: _cands(d)[0].update(kernel=3)))


def test_the_cross_product_form_is_unchanged_for_the_old_spaces() -> None:
    tiny = load_space(TINY_SPACE)
    assert all(stage.candidates == () and stage.choices is not None for stage in tiny.stages)
    assert tiny.stages[0].choices.type == ("ir", "cse")
