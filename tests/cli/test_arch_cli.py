"""``nas arch show`` and ``nas arch sample``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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


@pytest.mark.parametrize(("compact", "kind", "width", "kernel"), [
    ("in16x3-stem_k3_s1_c16_re-ir_e3_k3_s2_c24_re-head_c64_re-cls10", "conv1x1+pool+fc", 64, 1),
    ("in16x3-stem_k3_s1_c16_re-ir_e3_k3_s2_c24_re-head_dw_c96_hs-cls10", "dw3x3+pool+fc", 96, 3),
    ("in16x3-stem_k3_s1_c16_re-ir_e3_k3_s2_c24_re-head_none-cls10", "pool+fc", "", ""),
])
def test_arch_show_prints_the_head_width(nas: Runner, compact: str, kind: str, width: int | str,
                                         kernel: int | str) -> None:
    head = next(row for row in json.loads(nas("arch", "show", compact, "--json").out)["layers"]
                if row["layer"] == "head")
    assert (head["kind"], head["in"], head["mid"], head["out"], head["k"]) == (kind, 24, width, 10, kernel)
    line = next(line for line in nas("arch", "show", compact).out.splitlines() if line.startswith("head"))
    expected = ["head", kind, "24", *([str(width)] if width else []), "10"]
    assert line.split()[:len(expected)] == expected


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


def test_arch_sample_output_and_seed_errors(tmp_path: Path, nas: Runner) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    assert_user_error(nas("arch", "sample", "--space", TINY_SPACE, "-o", folder), f"-o/--output {folder}: is a directory")
    taken = tmp_path / "notes.txt"
    taken.write_text("keep me")
    assert_user_error(nas("arch", "sample", "--space", TINY_SPACE, "-o", taken / "a.json"),
                      f"{taken} is a file, not a directory")
    assert taken.read_text() == "keep me"
    too_long = tmp_path / ("a" * 300 + ".json")  # the file system refuses even to look it up
    assert_user_error(nas("arch", "sample", "--space", TINY_SPACE, "-o", too_long), "cannot be used")
    # NumPy takes no negative seed: argparse refuses it (exit 2, with the usage line), no traceback.
    with pytest.raises(SystemExit) as exc:
        nas("arch", "sample", "--space", TINY_SPACE, "--seed", "-1")
    assert exc.value.code == 2


def test_arch_unreadable_files_are_user_errors(tmp_path: Path, nas: Runner) -> None:
    binary = tmp_path / "arch.json"
    binary.write_bytes(b"\xff\xfe\x00binary")
    assert_user_error(nas("arch", "show", binary), str(binary), "not a text file")
    assert_user_error(nas("arch", "sample", "--space", binary), str(binary), "not a text file")
    empty = tmp_path / "space.yaml"
    empty.write_text("")
    assert_user_error(nas("arch", "sample", "--space", empty), str(empty), "(top level): the file is empty")


def test_arch_show_prints_skip_blocks(nas: Runner) -> None:
    compact = "in32x3-stem_k3_s1_c32_re-skip_r2_s2_c64-ir_e3_k3_s1_c64_re-head_c1280_re-cls10"
    info = json.loads(nas("arch", "show", compact, "--json").out)
    conv, identity = info["layers"][1:3]
    assert (conv["kind"], conv["in"], conv["mid"], conv["out"], conv["k"], conv["s"], conv["se"], conv["act"]) == \
        ("skip(conv1x1)", 32, "", 64, 1, 2, "", "")
    assert (conv["params"], conv["macs"]) == (32 * 64 + 2 * 64, 32 * 64 * 16 * 16)
    assert (identity["kind"], identity["k"], identity["params"], identity["macs"]) == ("skip(identity)", "", 0, 0)
    assert info["compact"] == compact
    text = nas("arch", "show", compact).out
    assert [line.split()[:2] for line in text.splitlines() if line.startswith("block")][:2] == [
        ["block0", "skip(conv1x1)"], ["block1", "skip(identity)"]]


def test_an_arch_file_is_read_as_a_file_wherever_it_lies_and_with_a_byte_order_mark(
        tmp_path: Path, nas: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    arch = reference_arch("mobilenetv2-cifar@0.5")
    folder = tmp_path / "in32x3-runs"  # a folder named like the start of a compact string
    folder.mkdir()
    path = folder / "arch.json"
    path.write_text("\ufeff" + json.dumps(arch.to_dict()), encoding="utf-8")  # as Windows editors save it
    monkeypatch.chdir(tmp_path)
    info = json.loads(nas("arch", "show", "in32x3-runs/arch.json", "--json").out)  # relative: it looks compact
    assert info["hash"] == arch_hash(arch)
