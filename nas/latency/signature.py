"""Canonical, readable signatures of the parts a network is made of.

A latency table has one entry per distinct part. A part is the stem, one block at one input
resolution, or the head (with pooling and classifier)::

    stem_i3_o32_k3_s1_relu_r32                         stem: in/out channels, kernel, stride, act, input res
    ir_i32_m192_o32_k3_s1_se0_relu_r32                 inverted residual: in/mid/out channels, kernel,
    cse_i32_m64_o64_k3_s2_se1_hswish_rd16_cap16_r32    stride, SE, act, [CSE r/cap], input resolution
    skip_i32_o64_s2_r32                                skip block: in/out channels, stride, input resolution
    head_conv_i320_w1280_relu_n10_r4                   head kind, in channels, width, act, classes, res

:func:`parse_signature` turns a signature back into the spec it came from, so a table can be
checked for unknown signatures, and missing entries can be measured on demand.

An *identity* skip block (stride 1, as many output channels as input ones) is no part: it is
no operation in the exported network, so :func:`arch_parts` leaves it out, as if the block were
not there, and :func:`parse_signature` refuses its signature. A network's part count (the
table's correction charges a per-part overhead for each part but the first) and its
boundaries (:func:`boundary_kelements`) are then those of the operations that run. A skip
block that changes the shape (a 1x1 convolution + BN) is a part like any other block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from collections.abc import Sequence

from nas.arch import ArchSpec, BlockSpec, HeadSpec, StemSpec, conv_out_size, skip_block
from nas.errors import LatencyTableError

__all__ = ["Part", "stem_signature", "block_signature", "head_signature", "arch_parts", "parse_signature",
           "boundary_kelements"]


@dataclass(frozen=True)
class Part:
    """One measurable piece of a network: ``spec`` is a StemSpec, BlockSpec or HeadSpec."""

    name: str  # "stem", "block3", "head"
    signature: str
    spec: StemSpec | BlockSpec | HeadSpec
    in_ch: int
    resolution: int  # input resolution
    num_classes: int = 0  # heads only

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, self.in_ch, self.resolution, self.resolution)

    @property
    def output_elements(self) -> int:
        """Elements of the tensor this part hands to the next one (heads: their logits)."""
        if isinstance(self.spec, HeadSpec):
            return self.num_classes
        return self.spec.out_ch * conv_out_size(self.resolution, self.spec.stride) ** 2


def boundary_kelements(parts: Sequence[Part]) -> float:
    """Thousands of tensor elements crossing the boundaries between consecutive ``parts``.

    Timed in isolation, every part reads its input from and writes its output to the
    runtime's boundary (e.g. a layout conversion on onnxruntime CPU); inside a whole
    network most of that traffic disappears. The correction can charge it per element.
    """
    return sum(p.output_elements for p in parts[:-1]) / 1000.0


def stem_signature(stem: StemSpec, *, in_ch: int, resolution: int) -> str:
    return f"stem_i{in_ch}_o{stem.out_ch}_k{stem.kernel}_s{stem.stride}_{stem.act}_r{resolution}"


def block_signature(block: BlockSpec, *, resolution: int) -> str:
    if block.type == "skip":  # nothing else to say: its other fields are pinned
        return f"skip_i{block.in_ch}_o{block.out_ch}_s{block.stride}_r{resolution}"
    core = (f"{block.type}_i{block.in_ch}_m{block.mid_ch}_o{block.out_ch}_k{block.kernel}_s{block.stride}"
            f"_se{int(block.se)}_{block.act}")
    if block.type == "cse":
        core += f"_rd{block.cse_reduction}_cap{block.cse_cap}"
    return f"{core}_r{resolution}"


def head_signature(head: HeadSpec, *, in_ch: int, num_classes: int, resolution: int) -> str:
    return f"head_{head.kind}_i{in_ch}_w{head.width}_{head.act}_n{num_classes}_r{resolution}"


def arch_parts(arch: ArchSpec) -> list[Part]:
    """The stem, every block but the identity skips (see the module doc) and the head of ``arch``, with their
    signatures. A block's part is named after its position in ``arch.blocks`` (``block3``), identities counted."""
    parts = [Part("stem", stem_signature(arch.stem, in_ch=arch.in_ch, resolution=arch.input_size), arch.stem,
                  arch.in_ch, arch.input_size)]
    for i, (block, res) in enumerate(zip(arch.blocks, arch.block_resolutions())):
        if block.is_identity:
            continue
        parts.append(Part(f"block{i}", block_signature(block, resolution=res), block, block.in_ch, res))
    res = arch.final_resolution
    parts.append(Part("head", head_signature(arch.head, in_ch=arch.last_ch, num_classes=arch.num_classes,
                                             resolution=res), arch.head, arch.last_ch, res, arch.num_classes))
    return parts


# re.ASCII: \d is 0-9 only (a signature written with other scripts' digits is not the same entry)
_ACT = "(relu|hswish)"
_STEM = re.compile(rf"stem_i(\d+)_o(\d+)_k(\d+)_s(\d+)_{_ACT}_r(\d+)", re.ASCII)
_BLOCK = re.compile(rf"(ir|cse)_i(\d+)_m(\d+)_o(\d+)_k(\d+)_s(\d+)_se([01])_{_ACT}(?:_rd(\d+)_cap(\d+))?_r(\d+)",
                    re.ASCII)
_SKIP = re.compile(r"skip_i(\d+)_o(\d+)_s(\d+)_r(\d+)", re.ASCII)
_HEAD = re.compile(rf"head_(conv|dw|none)_i(\d+)_w(\d+)_{_ACT}_n(\d+)_r(\d+)", re.ASCII)


def parse_signature(signature: str) -> Part:
    """Inverse of the ``*_signature`` functions; raises LatencyTableError for unknown forms."""
    try:
        if m := _STEM.fullmatch(signature):
            i, o, k, s, act, r = m.groups()
            return Part("stem", signature, StemSpec(out_ch=int(o), kernel=int(k), stride=int(s), act=act), int(i),
                        int(r))
        if m := _BLOCK.fullmatch(signature):
            kind, i, mid, o, k, s, se, act, rd, cap, r = m.groups()
            if (kind == "cse") != (rd is not None):
                raise ValueError("CSE fields must appear exactly on cse blocks")
            block = BlockSpec(type=kind, in_ch=int(i), out_ch=int(o), mid_ch=int(mid), kernel=int(k), stride=int(s),
                              se=se == "1", act=act, cse_reduction=int(rd) if rd else None,
                              cse_cap=int(cap) if cap else None)
            return Part("block", signature, block, int(i), int(r))
        if m := _SKIP.fullmatch(signature):
            i, o, s, r = m.groups()
            block = skip_block(in_ch=int(i), out_ch=int(o), stride=int(s))
            if block.is_identity:
                raise ValueError("an identity skip block (stride 1, in == out) is no operation and never a part "
                                 "of a table")
            return Part("block", signature, block, int(i), int(r))
        if m := _HEAD.fullmatch(signature):
            kind, i, w, act, n, r = m.groups()
            return Part("head", signature, HeadSpec(kind=kind, width=int(w), act=act), int(i), int(r), int(n))
    except (ValueError, LatencyTableError) as exc:
        raise LatencyTableError(f"invalid signature {signature!r}: {exc}") from None
    raise LatencyTableError(
        f"unknown signature {signature!r}; expected forms like 'stem_i3_o32_k3_s1_relu_r32', "
        "'ir_i32_m192_o32_k3_s1_se0_relu_r32', 'cse_i32_m64_o64_k3_s2_se0_relu_rd16_cap16_r32', "
        "'skip_i32_o64_s2_r32' or "
        "'head_conv_i320_w1280_relu_n10_r4'"
    )
