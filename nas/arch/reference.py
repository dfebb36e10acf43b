"""Reference networks, loadable by name, and the width-multiplier transform.

* ``mobilenetv2-cifar``: the usual CIFAR-10 MobileNetV2 (stem 3x3 conv to 32 channels at
  stride 1; rows t-c-n-s 1-16-1-1, 6-24-2-1, 6-32-3-2, 6-64-4-2, 6-96-3-1, 6-160-3-2,
  6-320-1-1; 1x1 conv head to 1280; ReLU6 throughout).
* ``cse-mix-cifar``: the CSE paper's Table 1: bottleneck rows 1-16-1-1, 6-24-1-1, 6-32-2-1,
  then bottleneck-with-CSE rows 2-64-4-2, 2-96-3-2, 2-160-3-1, 2-320-1-2, a depthwise 3x3
  head with channel multiplier 4 (320 -> 1280, the table's "depthwise conv2d 1280"), cap 16.
* ``cse-only-cifar``: the same skeleton with every block a CSE block, cap 8 (Table 5).

The CSE paper lists no stem convolution (its first row takes the 3-channel image); we keep
MobileNetV2's 32-channel stem, which it most likely used. The CSE reduction ratio is not
stated; we use r = 16 (SENet's default). The README compares parameter counts with the
paper's.

A name may carry a width multiplier, ``mobilenetv2-cifar@0.5`` (MobileNetV1's alpha).
"""

from __future__ import annotations

from collections.abc import Callable

from nas.arch.blocks import make_divisible
from nas.arch.spec import ArchSpec, BlockSpec, HeadSpec, StemSpec
from nas.errors import SpecError

__all__ = ["REFERENCE_NAMES", "reference_arch", "width_multiplier", "from_rows"]

Row = tuple[str, int, int, int, int]  # type, t, c, n, s


def from_rows(rows: list[Row], *, stem_ch: int = 32, head: HeadSpec = HeadSpec("conv", 1280, "relu"),
              cse_reduction: int = 16, cse_cap: int = 16, input_size: int = 32, num_classes: int = 10,
              act: str = "relu") -> ArchSpec:
    """Build an ``ArchSpec`` from MobileNetV2-style ``(type, t, c, n, s)`` rows."""
    blocks: list[BlockSpec] = []
    prev = stem_ch
    for kind, t, c, n, s in rows:
        for i in range(n):
            cse = kind == "cse"
            blocks.append(BlockSpec(type=kind, in_ch=prev, out_ch=c, mid_ch=prev * t, kernel=3,
                                    stride=s if i == 0 else 1, se=False, act=act,
                                    cse_reduction=cse_reduction if cse else None, cse_cap=cse_cap if cse else None))
            prev = c
    return ArchSpec(input_size=input_size, in_ch=3, stem=StemSpec(out_ch=stem_ch, kernel=3, stride=1, act=act),
                    blocks=tuple(blocks), head=head, num_classes=num_classes)


def _mobilenetv2_cifar() -> ArchSpec:
    return from_rows([("ir", 1, 16, 1, 1), ("ir", 6, 24, 2, 1), ("ir", 6, 32, 3, 2), ("ir", 6, 64, 4, 2),
                      ("ir", 6, 96, 3, 1), ("ir", 6, 160, 3, 2), ("ir", 6, 320, 1, 1)])


_CSE_SKELETON: list[tuple[int, int, int, int]] = [
    (1, 16, 1, 1), (6, 24, 1, 1), (6, 32, 2, 1), (2, 64, 4, 2), (2, 96, 3, 2), (2, 160, 3, 1), (2, 320, 1, 2),
]


def _cse_mix_cifar() -> ArchSpec:
    rows = [("ir" if i < 3 else "cse", t, c, n, s) for i, (t, c, n, s) in enumerate(_CSE_SKELETON)]
    return from_rows(rows, head=HeadSpec("dw", 1280, "relu"), cse_cap=16)


def _cse_only_cifar() -> ArchSpec:
    rows = [("cse", t, c, n, s) for t, c, n, s in _CSE_SKELETON]
    return from_rows(rows, head=HeadSpec("dw", 1280, "relu"), cse_cap=8)


_REFERENCES: dict[str, Callable[[], ArchSpec]] = {
    "mobilenetv2-cifar": _mobilenetv2_cifar,
    "cse-mix-cifar": _cse_mix_cifar,
    "cse-only-cifar": _cse_only_cifar,
}
REFERENCE_NAMES: tuple[str, ...] = tuple(_REFERENCES)


def width_multiplier(arch: ArchSpec, alpha: float) -> ArchSpec:
    """Scale every channel count by ``alpha``, rounded to a multiple of 8 (MobileNetV1/V2).

    Hidden widths keep their expansion ratio when it is an integer; the head keeps at least
    its original width, as in MobileNetV2 (1280 for alpha < 1). ``alpha == 1`` is identity.
    """
    if not 0 < alpha <= 4:
        raise SpecError(f"width multiplier: expected 0 < alpha <= 4, got {alpha}")
    if alpha == 1:
        return arch

    def scale(ch: int) -> int:
        return make_divisible(ch * alpha)

    stem = StemSpec(out_ch=scale(arch.stem.out_ch), kernel=arch.stem.kernel, stride=arch.stem.stride, act=arch.stem.act)
    blocks: list[BlockSpec] = []
    prev = stem.out_ch
    for b in arch.blocks:
        out = scale(b.out_ch)
        mid = prev * (b.mid_ch // b.in_ch) if b.mid_ch % b.in_ch == 0 else scale(b.mid_ch)
        blocks.append(BlockSpec(type=b.type, in_ch=prev, out_ch=out, mid_ch=mid, kernel=b.kernel, stride=b.stride,
                                se=b.se, act=b.act, cse_reduction=b.cse_reduction, cse_cap=b.cse_cap))
        prev = out
    head = arch.head
    if head.kind == "conv":
        head = HeadSpec("conv", max(head.width, scale(head.width)), head.act)
    elif head.kind == "dw":
        head = HeadSpec("dw", prev * max(1, head.width // arch.last_ch), head.act)
    return ArchSpec(arch.input_size, arch.in_ch, stem, tuple(blocks), head, arch.num_classes)


def reference_arch(name: str) -> ArchSpec:
    """``name`` or ``name@alpha``; raises SpecError listing the known names."""
    base, at, alpha_text = name.partition("@")
    if base not in _REFERENCES:
        raise SpecError(f"unknown reference network {base!r}; known: {', '.join(REFERENCE_NAMES)} "
                        "(optionally with a width multiplier, e.g. mobilenetv2-cifar@0.5)")
    arch = _REFERENCES[base]()
    if at:  # 'name@' with nothing after it (e.g. an unset shell variable) is refused, not read as alpha 1
        try:
            alpha = float(alpha_text)
        except ValueError:
            raise SpecError(f"{name!r}: the width multiplier after '@' must be a number, got {alpha_text!r}") from None
        arch = width_multiplier(arch, alpha)
    return arch
