"""Hypothesis strategies for valid architectures."""

from __future__ import annotations

from hypothesis import strategies as st

from nas.arch import ArchSpec, BlockSpec, HeadSpec, StemSpec, skip_block


@st.composite
def arch_specs(draw: st.DrawFn) -> ArchSpec:
    stem = StemSpec(out_ch=draw(st.integers(1, 64)), kernel=draw(st.sampled_from([1, 3, 5, 7])),
                    stride=draw(st.sampled_from([1, 2])), act=draw(st.sampled_from(["relu", "hswish"])))
    blocks = []
    prev = stem.out_ch
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["ir", "cse", "skip"]))
        out = draw(st.integers(1, 96))
        if kind == "skip":  # the identity (stride 1, same width) about half the time
            identity = draw(st.booleans())
            blocks.append(skip_block(in_ch=prev, out_ch=prev if identity else out,
                                     stride=1 if identity else draw(st.sampled_from([1, 2]))))
            prev = blocks[-1].out_ch
            continue
        mid = draw(st.one_of(st.just(prev), st.integers(1, 6).map(lambda t, p=prev: p * t), st.integers(1, 400)))
        blocks.append(BlockSpec(
            type=kind, in_ch=prev, out_ch=out, mid_ch=mid, kernel=draw(st.sampled_from([3, 5, 7])),
            stride=draw(st.sampled_from([1, 2])), se=draw(st.booleans()), act=draw(st.sampled_from(["relu", "hswish"])),
            cse_reduction=draw(st.integers(1, 64)) if kind == "cse" else None,
            cse_cap=draw(st.integers(1, 32)) if kind == "cse" else None,
        ))
        prev = out
    head_kind = draw(st.sampled_from(["conv", "dw", "none"]))
    width = {"conv": draw(st.integers(1, 2048)), "dw": prev * draw(st.integers(1, 4)), "none": 0}[head_kind]
    act = "relu" if head_kind == "none" else draw(st.sampled_from(["relu", "hswish"]))
    head = HeadSpec(kind=head_kind, width=width, act=act)
    return ArchSpec(input_size=draw(st.integers(8, 64)), in_ch=draw(st.integers(1, 4)), stem=stem,
                    blocks=tuple(blocks), head=head, num_classes=draw(st.integers(2, 1000)))
