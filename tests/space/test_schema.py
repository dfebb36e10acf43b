from __future__ import annotations

from pathlib import Path

import pytest

from nas.errors import SpaceError
from nas.space import load_space
from tests.conftest import DEFAULT_SPACE, TINY_SPACE, write_space


def _write(tmp_path: Path, mutate) -> Path:  # type: ignore[no-untyped-def]
    return write_space(tmp_path, DEFAULT_SPACE, mutate)


def test_default_space_follows_the_cse_paper_skeleton() -> None:
    space = load_space(DEFAULT_SPACE)
    assert [s.channels for s in space.stages] == [16, 24, 32, 64, 96, 160, 320]
    assert [s.stride for s in space.stages] == [1, 1, 1, 2, 2, 1, 2]
    assert space.stage_resolutions() == (32, 32, 32, 32, 16, 8, 8)
    c = space.stages[0].choices
    assert c.type == ("ir", "cse") and c.expansion == (1, 2, 3, 4, 6) and c.kernel == (3, 5, 7)
    assert c.se == (False, True) and c.activation == ("relu", "hswish")


def test_digest_ignores_comments_and_formatting(tmp_path: Path) -> None:
    text = DEFAULT_SPACE.read_text()
    other = tmp_path / "same.yaml"
    other.write_text("# another comment\n" + text.replace("{size: 32, channels: 3}", "{channels: 3, size: 32}"))
    assert load_space(other).digest == load_space(DEFAULT_SPACE).digest
    changed = _write(tmp_path, lambda d: d["stages"][1].update(depth=[1, 3]))
    assert load_space(changed).digest != load_space(DEFAULT_SPACE).digest


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d.update(colour="red"), "colour: unknown key"),
        (lambda d: d["stages"][2].update(width=3), "stages[2].width: unknown key"),
        (lambda d: d["defaults"].update(kernel=[]), "defaults.kernel: the list of options is empty"),
        (lambda d: d["stages"][1].update(choices={"type": []}), "stages[1].choices.type: the list of options is empty"),
        (lambda d: d["defaults"].update(kernel=[3, 4]), "defaults.kernel[1]: expected one of [3, 5, 7], got 4"),
        (lambda d: d["defaults"].update(type=["ir", "resnet"]), "defaults.type[1]"),
        (lambda d: d["stages"][0].update(depth=[3, 1]), "stages[0].depth: max depth 1 is below min depth 3"),
        (lambda d: d["stages"][0].update(stride=3), "stages[0].stride: expected one of [1, 2], got 3"),
        (lambda d: d.pop("stages"), "missing required key 'stages'"),
        (lambda d: d["input"].update(size=4), "input.size: expected an integer >= 8"),
        (lambda d: d["stem"].pop("channels"), "stem: missing required key 'channels'"),
        (lambda d: d["defaults"].update(se=["yes"]), "defaults.se[0]: expected true or false"),
        (lambda d: d["defaults"].pop("kernel"), "stages[0].choices: no options for 'kernel'"),
        # Refused here, not later by the first sampled network (a SpecError without the file's name).
        (lambda d: d.update(head={"kind": "dw", "width": 1000}),
         "head.width: a 'dw' head needs a multiple of the last stage's 320 channels, got 1000; e.g. 960"),
        (lambda d: d.update(head={"kind": "none", "activation": "hswish"}),
         "head.activation: a 'none' head has no activation"),
        (lambda d: d.update(head={"kind": "none", "width": "banana"}), "head.width: a 'none' head has no width"),
        # A mapping with mixed key types made the digest's json.dumps(sort_keys=True) raise TypeError.
        (lambda d: d.update(description={1: "a", "b": "c"}), "description: expected free text"),
    ],
)
def test_invalid_files_name_the_file_and_key(tmp_path: Path, mutate, fragment: str) -> None:  # type: ignore[no-untyped-def]
    path = _write(tmp_path, mutate)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert str(path) in str(info.value)
    assert fragment in str(info.value)


def test_impossible_strides_for_the_input_size(tmp_path: Path) -> None:
    def strided(d):  # type: ignore[no-untyped-def]
        d["input"]["size"] = 8
        for st in d["stages"]:
            st["stride"] = 2

    with pytest.raises(SpaceError, match=r"stages\[3\]\.stride: stride 2 would downsample a 1x1 feature map"):
        load_space(_write(tmp_path, strided))


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match="cannot read search-space file"):
        load_space(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpaceError, match="not valid YAML at line"):
        load_space(bad)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "(top level): the file is empty; expected a mapping with the keys"),
        ("# only a comment\n", "(top level): the file is empty"),
        ("- 1\n", "(top level): expected a mapping, got list"),
    ],
)
def test_empty_and_non_mapping_files(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert str(info.value).startswith(f"{path}: {fragment}")


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    """PyYAML keeps the last of two keys; a space file must not silently lose the first."""
    text = DEFAULT_SPACE.read_text()
    assert "  kernel: [3, 5, 7]\n" in text
    path = tmp_path / "space.yaml"
    path.write_text(text.replace("  kernel: [3, 5, 7]\n", "  kernel: [3, 5, 7]\n  kernel: [3]\n"))
    line = text[:text.index("  kernel: [3, 5, 7]\n")].count("\n") + 2
    with pytest.raises(SpaceError, match=f"not valid YAML at line {line}: found key 'kernel' twice; keep one"):
        load_space(path)
    # A key brought in by a merge ('<<: *anchor') may still be overridden, as YAML intends.
    merged = text.replace("defaults:\n", "defaults: &d\n").replace(
        "{channels: 24, stride: 1, depth: [1, 2]}", "{channels: 24, stride: 1, depth: [1, 2], choices: {<<: *d, kernel: [3]}}")
    assert merged.count("<<: *d") == 1
    path.write_text(merged)
    assert load_space(path).stages[1].choices.kernel == (3,)


def test_an_override_of_a_merged_key_is_no_repeat_however_the_anchors_nest(tmp_path: Path) -> None:
    """A mapping merged into a shallower one is flattened first; its own override is still one key."""
    path = tmp_path / "space.yaml"
    path.write_text(
        "name: nested_merge\ninput: {size: 16, channels: 3}\nclasses: 10\nstem: {channels: 8}\n"
        "head: {kind: conv, width: 32}\n"
        "stages:\n"
        "  - {channels: 16, stride: 1, depth: [1, 1], choices: &base {type: [ir], expansion: [1, 6], kernel: [3], "
        "se: [false], activation: [relu]}}\n"
        "  - {channels: 24, stride: 2, depth: [1, 2], choices: &wide {<<: *base, kernel: [3, 5]}}\n"
        "defaults: {<<: *wide}\n")
    space = load_space(path)
    assert [stage.choices.kernel for stage in space.stages] == [(3,), (3, 5)]


@pytest.mark.parametrize("description", ["", "2024-11-24", "42"])
def test_an_empty_or_unquoted_description_loads(tmp_path: Path, description: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(TINY_SPACE.read_text().replace("name: tiny_test\n", f"name: tiny_test\ndescription: {description}\n"))
    assert load_space(path).name == "tiny_test"


def test_unusable_files_are_space_errors(tmp_path: Path) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(SpaceError, match=f"{binary}: not a text file"):
        load_space(binary)
    huge = tmp_path / "huge.yaml"
    huge.write_text(DEFAULT_SPACE.read_text().replace("classes: 10", "classes: " + "9" * 5000))
    with pytest.raises(SpaceError, match=f"{huge}: .*a number has too many digits"):
        load_space(huge)
