"""Benchmark keys <-> architectures: every NAS-Bench-Macro key round-trips; parameters match the benchmark's file."""

from __future__ import annotations

import itertools
import json
import random
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from nas.arch import arch_cost, count_params, parse_compact, skip_block, to_compact
from nas.errors import SpaceError
from nas.space import load_space, random_arch, sample_arch
from nas.space.keys import arch_to_key, key_positions, key_to_arch, key_to_params, params_to_key
from tests.conftest import DEFAULT_SPACE, REPO, SHARED, write_space

MACRO = REPO / "search_spaces" / "nas_bench_macro.yaml"
BENCHMARK = SHARED / "benchmarks" / "nas-bench-macro" / "nas-bench-macro_cifar10.json"
ALL_KEYS = ["".join(digits) for digits in itertools.product("012", repeat=8)]


@cache
def benchmark() -> dict[str, Any]:
    if not BENCHMARK.is_file():
        pytest.fail(f"the NAS-Bench-Macro file is missing: expected {BENCHMARK} (../shared beside the repo)")
    return json.loads(BENCHMARK.read_text())


def test_every_key_round_trips_through_archs_and_params() -> None:
    space = load_space(MACRO)
    archs = set()
    for key in ALL_KEYS:
        arch = key_to_arch(space, key)
        params = key_to_params(space, key)
        assert arch_to_key(space, arch) == key and params_to_key(space, params) == key
        assert sample_arch(space, _Replay(params)) == arch  # the parameters replay through sampling
        archs.add(arch)
    assert len(archs) == 3 ** 8
    assert set(benchmark()) == set(ALL_KEYS)


class _Replay:
    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def choose(self, name: str, options: list[Any]) -> Any:
        assert self.params[name] in options
        return self.params[name]

    def choose_int(self, name: str, low: int, high: int) -> int:  # pragma: no cover - fixed depths
        raise AssertionError(name)


def test_the_digits_are_the_benchmark_candidates_in_order() -> None:
    space = load_space(MACRO)
    arch = key_to_arch(space, "02012100")
    assert key_to_params(space, "02012100")["s0.b1.op"] == "ir_e6_k5"
    assert [b.type for b in arch.blocks] == ["skip", "ir", "skip", "ir", "ir", "ir", "skip", "skip"]
    assert arch.blocks[0] == skip_block(in_ch=32, out_ch=64, stride=2) and arch.blocks[6].is_identity
    assert (arch.blocks[1].mid_ch, arch.blocks[1].kernel) == (6 * 64, 5)
    assert (arch.blocks[3].mid_ch, arch.blocks[3].kernel) == (3 * 128, 3)
    assert [b.out_ch for b in arch.blocks] == [64, 64, 128, 128, 128, 256, 256, 256]
    assert [b.stride for b in arch.blocks] == [2, 1, 2, 1, 1, 2, 1, 1]


def test_parameters_agree_exactly_with_the_benchmark_file() -> None:
    space = load_space(MACRO)
    data = benchmark()
    for key in random.Random(0).sample(ALL_KEYS, 30) + ["00000000", "22222222"]:
        cost = arch_cost(key_to_arch(space, key))
        assert cost.params == data[key]["params"], key
        assert cost.macs == data[key]["flops"], key  # the file's 'flops' are multiply-adds (benchmarks/macro_space.py)


def test_a_search_trial_architecture_gives_its_key() -> None:
    space = load_space(MACRO)
    arch = random_arch(space, 3)
    key = arch_to_key(space, arch)
    assert parse_compact(to_compact(arch)) == arch and key_to_arch(space, key) == arch
    assert count_params(arch) == benchmark()[key]["params"]


@pytest.mark.parametrize(("key", "fragment"), [
    ("0201210", "key '0201210': expected a string of 8 digits, one per block position of space 'nas_bench_macro', "
                "got 7 characters"),
    ("020121000", "got 9 characters"),
    ("0201210x", "expected a string of 8 digits"),
    ("0201210\u0661", "expected a string of 8 digits"),  # an Arabic-Indic one is no digit of a key
    (2012100, "key 2012100: expected a string of 8 digits, one per block position of space 'nas_bench_macro', got int"),
    ("02012103", "digit 7 (stage 2, block 2) is 3, but that position has 3 candidates (0 = skip, 1 = ir_e3_k3, "
                 "2 = ir_e6_k5)"),
])
def test_bad_keys_are_refused_naming_what_is_wrong(key: Any, fragment: str) -> None:
    with pytest.raises(SpaceError) as info:
        key_to_arch(load_space(MACRO), key)
    assert str(info.value).startswith(f"{MACRO}: ") and fragment in str(info.value)


def test_networks_and_params_of_another_space_are_refused() -> None:
    space = load_space(MACRO)
    other = key_to_arch(space, "01201202")  # its last block: ir e6 k5; with kernel 3 it is no candidate
    changed = other.replace_blocks(other.blocks[:-1] + (other.blocks[-1].__class__(
        **{**other.blocks[-1].to_dict(), "kernel": 3}),))
    with pytest.raises(SpaceError, match=r"is not a network of space 'nas_bench_macro': blocks\[7\] \(stage 2, "
                                         r"block 2\) is none of the candidates there \(0 = skip, 1 = ir_e3_k3, "
                                         r"2 = ir_e6_k5\)"):
        arch_to_key(space, changed)
    with pytest.raises(SpaceError, match="its number of blocks differs \\(7 instead of 8\\)"):
        arch_to_key(space, other.replace_blocks(other.blocks[:-1]))
    with pytest.raises(SpaceError, match=r"parameters: no 's2\.b2\.op'; expected one of \['skip'"):
        params_to_key(space, {k: v for k, v in key_to_params(space, "01201201").items() if k != "s2.b2.op"})
    with pytest.raises(SpaceError, match=r"parameters: s0\.b0\.op is 'ir_e6_k3'; expected one of"):
        params_to_key(space, {**key_to_params(space, "01201201"), "s0.b0.op": "ir_e6_k3"})


def _space_file(tmp_path: Path, mutate) -> Path:  # type: ignore[no-untyped-def]
    return write_space(tmp_path, MACRO, mutate)


@pytest.mark.parametrize(("mutate", "fragment"), [
    (lambda d: d["stages"][1].update(depth=[2, 3]),
     "stages[1].depth: keys need a fixed depth (one integer) in every stage, got [2, 3]"),
    (lambda d: d["stages"][2].update(candidates=None) or d["stages"][2].pop("candidates") or d["stages"][2].update(
        choices={"type": ["ir"], "expansion": [3], "kernel": [3]}),
     "stages[2]: keys need a candidate list at every block position"),
    (lambda d: d["stages"][0].update(candidates=[{"type": "skip"}] + [
        {"type": "ir", "expansion": e, "kernel": k} for e in (1, 2, 3, 4, 6) for k in (3, 5)]),
     "stages[0].candidates: keys write a candidate's index as one digit, so at most 10 candidates, got 11"),
])
def test_spaces_without_keys_are_refused(tmp_path: Path, mutate, fragment: str) -> None:  # type: ignore[no-untyped-def]
    path = _space_file(tmp_path, mutate)
    space = load_space(path)
    for call in (lambda: key_positions(space), lambda: key_to_arch(space, "0" * 8),
                 lambda: arch_to_key(space, random_arch(space, 0)), lambda: params_to_key(space, {})):
        with pytest.raises(SpaceError) as info:
            call()
        assert str(info.value).startswith(f"{path}: ") and fragment in str(info.value)
    with pytest.raises(SpaceError, match="uses 'choices'"):
        key_positions(load_space(DEFAULT_SPACE))
