"""``nas arch show`` and ``nas arch sample``."""

from __future__ import annotations

import json
from pathlib import Path

from nas.arch import arch_cost, arch_hash, count_params, load_arch_file, reference_arch, to_compact
from nas.space import load_space, random_arch
from tests.cli.conftest import Runner, assert_user_error
from tests.conftest import TINY_SPACE


def test_arch_show_table_and_json(nas: Runner) -> None:
    arch = reference_arch("mobilenetv2-cifar")
    text = nas("arch", "show", "mobilenetv2-cifar")
    assert text.code == 0
    assert f"parameters {count_params(arch):,}" in text.out and f"hash {arch_hash(arch)}" in text.out
    assert text.out.count("\nblock") == len(arch.blocks) and "\nstem" in text.out and "\nhead" in text.out
    info = json.loads(nas("arch", "show", "mobilenetv2-cifar@0.5", "--json").out)
    half = reference_arch("mobilenetv2-cifar@0.5")
    assert info["params"] == arch_cost(half).params and info["macs"] == arch_cost(half).macs
    assert info["compact"] == to_compact(half) and len(info["layers"]) == len(half.blocks) + 2
    # The compact string it printed is accepted back.
    again = json.loads(nas("arch", "show", info["compact"], "--json").out)
    assert again["hash"] == info["hash"]


def test_arch_sample_is_seeded_and_writes_json(tmp_path: Path, nas: Runner) -> None:
    out = tmp_path / "a.json"
    result = nas("arch", "sample", "--space", TINY_SPACE, "--seed", "3", "-o", out, "--json")
    assert result.code == 0
    expected = random_arch(load_space(TINY_SPACE), 3)
    assert load_arch_file(out) == expected and json.loads(result.out)["hash"] == arch_hash(expected)
    other = json.loads(nas("arch", "sample", "--space", TINY_SPACE, "--seed", "4", "--json").out)
    assert other["hash"] == arch_hash(random_arch(load_space(TINY_SPACE), 4))


def test_arch_user_errors(tmp_path: Path, nas: Runner) -> None:
    assert_user_error(nas("arch", "show", "mobilenetv9"), "mobilenetv9")
    missing = tmp_path / "space.yaml"
    assert_user_error(nas("arch", "sample", "--space", missing), str(missing))
