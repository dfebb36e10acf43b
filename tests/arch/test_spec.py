from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings

from nas.arch import (
    ArchSpec,
    BlockSpec,
    HeadSpec,
    StemSpec,
    arch_hash,
    from_json,
    load_arch_file,
    reference_arch,
    save_arch,
    to_json,
)
from nas.errors import SpecError
from tests.arch.strategies import arch_specs


def _block(**kw: object) -> BlockSpec:
    base = dict(type="ir", in_ch=16, out_ch=24, mid_ch=96, kernel=3, stride=1, se=False, act="relu")
    base.update(kw)
    return BlockSpec(**base)  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(arch_specs())
def test_json_round_trip_is_exact_and_canonical(arch: ArchSpec) -> None:
    text = to_json(arch)
    assert from_json(text) == arch
    assert to_json(from_json(text)) == text
    # Pretty and compact files carry the same content.
    assert from_json(to_json(arch, indent=2)) == arch


def test_same_network_same_bytes_and_hash() -> None:
    a, b = reference_arch("mobilenetv2-cifar"), reference_arch("mobilenetv2-cifar")
    assert a is not b and to_json(a) == to_json(b)
    assert arch_hash(a) == arch_hash(b)
    assert arch_hash(a) != arch_hash(reference_arch("mobilenetv2-cifar@0.5"))
    assert len(arch_hash(a)) == 16
    # Key order of the input does not matter.
    data = json.loads(to_json(a))
    shuffled = json.dumps(dict(reversed(list(data.items()))))
    assert to_json(from_json(shuffled)) == to_json(a)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        (dict(type="conv"), "block.type: expected one of ['ir', 'cse', 'skip'], got 'conv'"),
        (dict(kernel=4), "block.kernel: expected one of [3, 5, 7], got 4"),
        (dict(stride=3), "block.stride"),
        (dict(act="gelu"), "block.act"),
        (dict(in_ch=0), "block.in_ch: expected an integer >= 1, got 0"),
        (dict(mid_ch=2.5), "block.mid_ch: expected an integer"),
        (dict(se="yes"), "block.se: expected true or false"),
        (dict(cse_reduction=4), "only allowed on 'cse' blocks"),
        (dict(type="cse"), "needs cse_reduction and cse_cap"),
    ],
)
def test_block_validation_names_the_field(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(SpecError, match=None) as info:
        _block(**kwargs)
    assert fragment in str(info.value)


def test_inconsistent_channels_are_rejected() -> None:
    stem = StemSpec(out_ch=16)
    blocks = (_block(in_ch=16, out_ch=24), _block(in_ch=32, out_ch=24))
    with pytest.raises(SpecError, match=r"blocks\[1\]\.in_ch: expected 24 \(= blocks\[0\]\.out_ch\), got 32"):
        ArchSpec(32, 3, stem, blocks, HeadSpec(), 10)
    with pytest.raises(SpecError, match=r"blocks\[0\]\.in_ch: expected 8 \(= stem.out_ch\)"):
        ArchSpec(32, 3, StemSpec(out_ch=8), blocks[:1], HeadSpec(), 10)


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("stem", {"out_ch": 16}, "arch.stem: expected a StemSpec, got dict"),
        ("head", "conv", "arch.head: expected a HeadSpec, got str"),
        ("blocks", None, "arch.blocks: expected a sequence of BlockSpec, got NoneType"),
        ("blocks", _block(), "arch.blocks: expected a sequence of BlockSpec, got BlockSpec"),
    ],
)
def test_arch_parts_of_the_wrong_type_are_spec_errors(field: str, value: object, fragment: str) -> None:
    # They raised AttributeError/TypeError.
    parts: dict[str, object] = dict(input_size=32, in_ch=3, stem=StemSpec(out_ch=16), blocks=(_block(),),
                                    head=HeadSpec(), num_classes=10)
    parts[field] = value
    with pytest.raises(SpecError, match=fragment):
        ArchSpec(**parts)  # type: ignore[arg-type]
    # A list or another iterable of blocks is still taken.
    assert ArchSpec(32, 3, StemSpec(out_ch=16), [_block()], HeadSpec(), 10).blocks == (_block(),)  # type: ignore[arg-type]


def test_dw_head_needs_a_multiple_of_the_last_width() -> None:
    with pytest.raises(SpecError, match="head.width"):
        ArchSpec(32, 3, StemSpec(out_ch=16), (_block(),), HeadSpec("dw", 50, "relu"), 10)


def test_from_json_rejects_unknown_and_missing_keys_with_their_path() -> None:
    data = json.loads(to_json(reference_arch("cse-mix-cifar")))
    data["blocks"][3]["colour"] = "red"
    with pytest.raises(SpecError, match=r"blocks\[3\]: unknown key\(s\) \['colour'\]"):
        from_json(json.dumps(data))
    del data["blocks"][3]["colour"]
    del data["blocks"][2]["kernel"]
    # kernel has a default in the dataclass, but mid_ch does not.
    assert from_json(json.dumps(data)).blocks[2].kernel == 3
    del data["blocks"][2]["mid_ch"]
    with pytest.raises(SpecError, match=r"blocks\[2\]: missing key\(s\) \['mid_ch'\]"):
        from_json(json.dumps(data))
    with pytest.raises(SpecError, match="not valid JSON"):
        from_json("{nope")
    with pytest.raises(SpecError, match="arch.format"):
        from_json(json.dumps({**json.loads(to_json(reference_arch("cse-mix-cifar"))), "format": "x/2"}))


@pytest.mark.parametrize("width", [False, 0.0, "0", None, 1280])
def test_a_none_head_has_the_integer_width_0(width: object) -> None:
    # False and 0.0 equal 0 but are other JSON (and another hash) for the same network.
    with pytest.raises(SpecError, match=f"head.width: a 'none' head has width 0, got {width!r}"):
        HeadSpec("none", width, "relu")  # type: ignore[arg-type]
    data = json.loads(to_json(reference_arch("cse-mix-cifar")))
    data["head"] = {"act": "relu", "kind": "none", "width": width}
    with pytest.raises(SpecError, match="head.width"):
        from_json(json.dumps(data))


def test_unusable_json_is_a_spec_error(tmp_path: Path) -> None:
    """Duplicated keys, numbers int() refuses, deep nesting and non-UTF-8 files: SpecError, not a crash."""
    text = to_json(reference_arch("cse-mix-cifar"))
    assert '"num_classes":10' in text and '"in_ch":3,' in text
    # The last of two keys used to win silently: one file, two readings.
    with pytest.raises(SpecError, match="key 'num_classes' appears twice in one object"):
        from_json(text.replace('"num_classes":10', '"num_classes":10,"num_classes":100'))
    with pytest.raises(SpecError, match="key 'kernel' appears twice"):
        from_json(text.replace('"kernel":3', '"kernel":3,"kernel":5', 1))
    with pytest.raises(SpecError, match="a number has too many digits"):
        from_json(text.replace('"in_ch":3,', '"in_ch":' + "9" * 5000 + ",", 1))
    with pytest.raises(SpecError, match="nested too deeply"):
        from_json("[" * 100_000 + "]" * 100_000)
    binary = tmp_path / "arch.json"
    binary.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(SpecError, match=f"{binary}: not a text file"):
        load_arch_file(binary)
    duplicated = tmp_path / "dup.json"
    duplicated.write_text(json.dumps({"arch": json.loads(text)})[:-1] + ', "arch": 5}')
    with pytest.raises(SpecError, match=f"{duplicated}: key 'arch' appears twice"):
        load_arch_file(duplicated)
    # Written files, bare or wrapped as in best_arch.json, still load.
    arch = reference_arch("cse-mix-cifar")
    assert load_arch_file(save_arch(arch, tmp_path / "a.json")) == arch
    (tmp_path / "best.json").write_text(json.dumps({"arch": arch.to_dict(), "accuracy": 0.5}))
    assert load_arch_file(tmp_path / "best.json") == arch


def test_derived_properties() -> None:
    arch = reference_arch("mobilenetv2-cifar")
    assert arch.block_resolutions()[0] == 32 and arch.final_resolution == 4
    first = arch.blocks[0]
    assert not first.has_expansion and not first.residual
    assert arch.blocks[2].residual and arch.blocks[1].expand_ratio == 6
