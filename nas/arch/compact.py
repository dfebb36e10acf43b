"""Compact architecture strings, in the spirit of timm's ``ir_r2_k3_s2_e6_c24``.

A network is a ``-``-separated list of segments::

    in32x3-stem_k3_s1_c32_re-ir_e1_k3_s1_c16_re-ir_r2_e6_k3_s1_c24_re-...-head_c1280_re-cls10

* ``in{size}x{channels}``: input resolution and channels (first segment).
* ``stem_k{k}_s{s}_c{c}_{act}``: the stem convolution.
* Blocks: ``ir``, ``cse`` or ``skip`` followed by ``_``-separated tokens:

  ===========  =========================================================================
  ``r{n}``     repeat n times; the first repeat has the given stride, the others stride 1
  ``e{t}``     expansion ratio: hidden channels = t * input channels (``e1``: no expansion)
  ``m{n}``     hidden channels given directly (NetAdapt makes widths that are not t * in)
  ``k{k}``     depthwise kernel, 3, 5 or 7 (default 3)
  ``s{s}``     stride, 1 or 2 (default 1)
  ``c{c}``     output channels (required)
  ``se``       squeeze-excite on (absent: off)
  ``re``/``hs`` activation ReLU6 / h-swish (default ``re``)
  ``rd{r}``    CSE reduction ratio (``cse`` only, required there)
  ``cap{n}``   CSE minimum hidden units (``cse`` only, required there)
  ===========  =========================================================================

  A ``skip`` block takes only ``r``, ``s`` and ``c`` (``skip_s2_c64``: a 1x1 convolution + BN
  from the input width to 64 channels at stride 2; ``skip_s1_c64`` after a 64-channel block:
  the identity); any other token is refused, naming it.

* ``head_c{w}_{act}`` (1x1 conv head), ``head_dw_c{w}_{act}`` (depthwise head), ``head_none``.
* ``cls{n}``: number of classes (last segment).

:func:`to_compact` writes the canonical form (every token explicit, identical consecutive
blocks grouped with ``r``); :func:`parse_compact` accepts it and the shorthands above (a block's
tokens in any order) and rejects anything else, numbers with leading zeros included, with a message
naming the segment and the token.
"""

from __future__ import annotations

import functools
import re

from nas.arch.spec import BLOCK_TYPES, MAX_BLOCKS, ArchSpec, BlockSpec, HeadSpec, StemSpec, over_limit, skip_block
from nas.errors import SpecError

__all__ = ["to_compact", "parse_compact", "looks_compact"]

_ACT_TOKEN = {"relu": "re", "hswish": "hs"}
_TOKEN_ACT = {v: k for k, v in _ACT_TOKEN.items()}
#: Numbers are ASCII digits only (``\d`` would also take e.g. Arabic-Indic digits), without leading zeros (one
#: network, one spelling: ``c024`` is not ``c24``).
_NUMBER = r"(0|[1-9][0-9]*)"
_TOKEN = re.compile(rf"(cap|rd|cls|in|[rekmsc]){_NUMBER}")
_INPUT = re.compile(rf"in{_NUMBER}x{_NUMBER}")
_CLASSES = re.compile(rf"cls{_NUMBER}")


def looks_compact(text: str) -> bool:
    """Whether ``text`` is meant as a compact string (starts with ``in<digits>x``)."""
    return re.match(r"in[0-9]+x[0-9]+-", text) is not None


# ------------------------------------------------------------------------------- writing
def _mid_token(block: BlockSpec) -> str:
    return f"e{block.mid_ch // block.in_ch}" if block.mid_ch % block.in_ch == 0 else f"m{block.mid_ch}"


def _block_tokens(block: BlockSpec) -> list[str]:
    if block.type == "skip":
        return [f"s{block.stride}", f"c{block.out_ch}"]
    tokens = [_mid_token(block), f"k{block.kernel}", f"s{block.stride}", f"c{block.out_ch}"]
    if block.se:
        tokens.append("se")
    tokens.append(_ACT_TOKEN[block.act])
    if block.type == "cse":
        tokens += [f"rd{block.cse_reduction}", f"cap{block.cse_cap}"]
    return tokens


def _joins_group(first: BlockSpec, block: BlockSpec) -> bool:
    """Whether ``block`` is what an ``r`` repeat of ``first`` would produce."""
    as_repeat = ["s1" if re.fullmatch(r"s\d+", t) else t for t in _block_tokens(first)]
    return (block.type == first.type and block.stride == 1 and block.in_ch == block.out_ch == first.out_ch
            and _block_tokens(block) == as_repeat)


@functools.lru_cache(maxsize=8192)  # a search writes thousands of networks' strings
def to_compact(arch: ArchSpec) -> str:
    segments = [f"in{arch.input_size}x{arch.in_ch}",
                f"stem_k{arch.stem.kernel}_s{arch.stem.stride}_c{arch.stem.out_ch}_{_ACT_TOKEN[arch.stem.act]}"]
    blocks = arch.blocks
    i = 0
    while i < len(blocks):
        first, n = blocks[i], 1
        while i + n < len(blocks) and _joins_group(first, blocks[i + n]):
            n += 1
        tokens = _block_tokens(first)
        if n > 1:
            tokens.insert(0, f"r{n}")
        segments.append("_".join([first.type, *tokens]))
        i += n
    head = arch.head
    if head.kind == "none":
        segments.append("head_none")
    else:
        kind = "dw_" if head.kind == "dw" else ""
        segments.append(f"head_{kind}c{head.width}_{_ACT_TOKEN[head.act]}")
    segments.append(f"cls{arch.num_classes}")
    return "-".join(segments)


# ------------------------------------------------------------------------------- parsing
def _fail(index: int, segment: str, why: str) -> SpecError:
    return SpecError(f"compact arch string, segment {index} ({segment!r}): {why}")


def _int(index: int, segment: str, digits: str) -> int:
    """``int(digits)``, as a SpecError when Python refuses that many digits."""
    try:
        return int(digits)
    except ValueError:
        raise _fail(index, segment, f"the number {digits[:12]}... ({len(digits)} digits) is too large") from None


def _numbers(index: int, segment: str, tokens: list[str], allowed: set[str]) -> tuple[dict[str, int], set[str]]:
    values: dict[str, int] = {}
    flags: set[str] = set()
    for token in tokens:
        if token in ("se", "re", "hs"):
            if token in flags or (token in ("re", "hs") and flags & {"re", "hs"}):
                raise _fail(index, segment, f"token {token!r} conflicts with an earlier token")
            flags.add(token)
            if token not in allowed:
                raise _fail(index, segment, f"token {token!r} is not allowed here")
            continue
        m = _TOKEN.fullmatch(token)
        if not m or m.group(1) not in allowed:
            raise _fail(index, segment, f"unknown token {token!r}; expected one of "
                                        f"{sorted(a + ('' if a in ('se', 're', 'hs') else 'N') for a in allowed)}")
        key = m.group(1)
        if key in values:
            raise _fail(index, segment, f"token {token!r} repeats {key!r}")
        values[key] = _int(index, segment, m.group(2))
    return values, flags


def _act(flags: set[str]) -> str:
    return _TOKEN_ACT["hs"] if "hs" in flags else "relu"


_SKIP_TOKENS = {"r", "s", "c"}


def _parse_skip(index: int, segment: str, tokens: list[str], in_ch: int) -> list[BlockSpec]:
    for token in tokens:
        m = _TOKEN.fullmatch(token)
        key = m.group(1) if m else token
        if key in {"e", "m", "k", "se", "re", "hs", "rd", "cap"}:
            raise _fail(index, segment, f"token {token!r} is not allowed on a skip block: a skip block has no hidden "
                                        "width, kernel, squeeze-excite, activation or CSE unit; it takes only "
                                        "'r<N>', 's<N>' and 'c<N>'")
    values, _ = _numbers(index, segment, tokens, _SKIP_TOKENS)
    repeats = _repeats(index, segment, values)
    blocks = []
    for rep in range(repeats):
        try:
            blocks.append(skip_block(in_ch=in_ch if rep == 0 else values["c"], out_ch=values["c"],
                                     stride=values.get("s", 1) if rep == 0 else 1))
        except SpecError as exc:
            raise _fail(index, segment, str(exc)) from None
    return blocks


def _repeats(index: int, segment: str, values: dict[str, int]) -> int:
    """How many blocks a segment stands for; refuses a segment without output channels."""
    if "c" not in values:
        raise _fail(index, segment, "missing output channels token 'c<N>'")
    repeats = values.get("r", 1)
    if repeats < 1:
        raise _fail(index, segment, f"'r{repeats}': repeats must be >= 1")
    why = over_limit(repeats, MAX_BLOCKS, "blocks")
    if why:  # checked before a single block is built: r99999999 used to run into MemoryError
        raise _fail(index, segment, f"'r{repeats}': {why}")
    return repeats


def _parse_blocks(index: int, segment: str, in_ch: int) -> list[BlockSpec]:
    kind, *tokens = segment.split("_")
    if kind == "skip":
        return _parse_skip(index, segment, tokens, in_ch)
    allowed = {"r", "e", "m", "k", "s", "c", "se", "re", "hs"}
    if kind == "cse":
        allowed |= {"rd", "cap"}
    values, flags = _numbers(index, segment, tokens, allowed)
    repeats = _repeats(index, segment, values)
    if ("e" in values) == ("m" in values):
        raise _fail(index, segment, "give exactly one of 'e<ratio>' or 'm<hidden channels>'")
    if kind == "cse" and not {"rd", "cap"} <= set(values):
        raise _fail(index, segment, "a cse block needs 'rd<reduction>' and 'cap<N>'")
    blocks = []
    for rep in range(repeats):
        ch_in = in_ch if rep == 0 else values["c"]
        mid = ch_in * values["e"] if "e" in values else values["m"]
        try:
            blocks.append(BlockSpec(
                type=kind, in_ch=ch_in, out_ch=values["c"], mid_ch=mid, kernel=values.get("k", 3),
                stride=values.get("s", 1) if rep == 0 else 1, se="se" in flags, act=_act(flags),
                cse_reduction=values.get("rd"), cse_cap=values.get("cap"),
            ))
        except SpecError as exc:
            raise _fail(index, segment, str(exc)) from None
    return blocks


def parse_compact(text: str) -> ArchSpec:
    segments = text.strip().split("-")
    if len(segments) < 5:
        raise SpecError(f"compact arch string {text!r}: expected 'in<size>x<ch>-stem_...-<blocks>-head_...-cls<N>' "
                        f"(at least 5 '-'-separated segments), got {len(segments)}")
    m = _INPUT.fullmatch(segments[0])
    if not m:
        raise _fail(0, segments[0], "expected 'in<size>x<channels>', e.g. 'in32x3'")
    input_size, in_ch = _int(0, segments[0], m.group(1)), _int(0, segments[0], m.group(2))

    kind, *tokens = segments[1].split("_")
    if kind != "stem":
        raise _fail(1, segments[1], "expected the stem, e.g. 'stem_k3_s1_c32_re'")
    values, flags = _numbers(1, segments[1], tokens, {"k", "s", "c", "re", "hs"})
    if "c" not in values:
        raise _fail(1, segments[1], "missing output channels token 'c<N>'")
    try:
        stem = StemSpec(out_ch=values["c"], kernel=values.get("k", 3), stride=values.get("s", 1), act=_act(flags))
    except SpecError as exc:
        raise _fail(1, segments[1], str(exc)) from None

    blocks: list[BlockSpec] = []
    prev = stem.out_ch
    for index in range(2, len(segments) - 2):
        segment = segments[index]
        kind = segment.split("_")[0]
        if kind not in BLOCK_TYPES:
            raise _fail(index, segment, f"unknown block type {kind!r}; expected one of {list(BLOCK_TYPES)}")
        new = _parse_blocks(index, segment, prev)
        blocks += new
        prev = new[-1].out_ch
        if len(blocks) > MAX_BLOCKS:
            raise _fail(index, segment, f"the string has more than {MAX_BLOCKS} blocks by here, above the limit of "
                                        f"{MAX_BLOCKS} blocks (far above any real network; see "
                                        f"search_spaces/README.md#limits)")

    index = len(segments) - 2
    segment = segments[index]
    kind, *tokens = segment.split("_")
    if kind != "head":
        raise _fail(index, segment, "expected the head, e.g. 'head_c1280_re', 'head_dw_c1280_re' or 'head_none'")
    try:
        if tokens == ["none"]:
            head = HeadSpec(kind="none", width=0)
        else:
            head_kind = "conv"
            if tokens and tokens[0] == "dw":
                head_kind, tokens = "dw", tokens[1:]
            values, flags = _numbers(index, segment, tokens, {"c", "re", "hs"})
            if "c" not in values:
                raise _fail(index, segment, "missing width token 'c<N>'")
            head = HeadSpec(kind=head_kind, width=values["c"], act=_act(flags))
    except SpecError as exc:
        raise exc if str(exc).startswith("compact") else _fail(index, segment, str(exc)) from None

    m = _CLASSES.fullmatch(segments[-1])
    if not m:
        raise _fail(len(segments) - 1, segments[-1], "expected 'cls<N>', e.g. 'cls10'")
    try:
        return ArchSpec(input_size=input_size, in_ch=in_ch, stem=stem, blocks=tuple(blocks), head=head,
                        num_classes=_int(len(segments) - 1, segments[-1], m.group(1)))
    except SpecError as exc:
        raise SpecError(f"compact arch string: {exc}") from None
