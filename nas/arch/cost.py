"""Parameter and multiply-add (MAC) counts computed from a spec, without building a module.

Convention: MACs count the multiply-accumulates of convolutions and fully connected layers
(``out_positions * kernel_area * in_ch / groups * out_ch``); BatchNorm (folded into the
convolution at export), activations, pooling, gating multiplies and the CSE channel mean/fold
are element-wise and not counted. Parameters count trainable weights including BN's affine
weight and bias (running statistics are buffers, not parameters). An identity skip block costs
nothing; a skip block that changes the shape costs its 1x1 convolution and BN.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from nas.arch.blocks import make_divisible
from nas.arch.spec import ArchSpec, BlockSpec, HeadSpec, StemSpec, conv_out_size

__all__ = ["Cost", "block_cost", "stem_cost", "head_cost", "arch_cost", "count_params"]


@dataclass(frozen=True)
class Cost:
    params: int
    macs: int

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.params + other.params, self.macs + other.macs)


ZERO = Cost(0, 0)


def _conv_bn(in_ch: int, out_ch: int, kernel: int, out_res: int, groups: int = 1) -> Cost:
    weights = kernel * kernel * (in_ch // groups) * out_ch
    return Cost(weights + 2 * out_ch, weights * out_res * out_res)


def _linear(n_in: int, n_out: int, positions: int = 1) -> Cost:
    return Cost(n_in * n_out + n_out, n_in * n_out * positions)


def stem_cost(stem: StemSpec, *, in_ch: int, input_size: int) -> Cost:
    return _conv_bn(in_ch, stem.out_ch, stem.kernel, conv_out_size(input_size, stem.stride))


def block_cost(block: BlockSpec, *, resolution: int) -> Cost:
    """Cost of one block whose input is ``resolution x resolution``."""
    out_res = conv_out_size(resolution, block.stride)
    if block.type == "skip":  # the identity costs nothing; else a 1x1 convolution + BN
        return ZERO if block.is_identity else _conv_bn(block.in_ch, block.out_ch, 1, out_res)
    cost = ZERO
    if block.has_expansion:
        cost += _conv_bn(block.in_ch, block.mid_ch, 1, resolution)
    cost += _conv_bn(block.mid_ch, block.mid_ch, block.kernel, out_res, groups=block.mid_ch)
    if block.se:
        squeeze = make_divisible(block.mid_ch / 4)
        cost += _linear(block.mid_ch, squeeze) + _linear(squeeze, block.mid_ch)
    if block.type == "ir":
        cost += _conv_bn(block.mid_ch, block.out_ch, 1, out_res)
    else:
        positions = out_res * out_res
        hidden = block.cse_hidden(out_res)
        cost += _linear(positions, hidden) + _linear(hidden, positions)
    return cost


def head_cost(head: HeadSpec, *, in_ch: int, resolution: int, num_classes: int) -> Cost:
    if head.kind == "conv":
        features = _conv_bn(in_ch, head.width, 1, resolution)
    elif head.kind == "dw":
        features = _conv_bn(in_ch, head.width, 3, resolution, groups=in_ch)
    else:
        features = ZERO
    width = in_ch if head.kind == "none" else head.width
    return features + _linear(width, num_classes)


@functools.lru_cache(maxsize=8192)  # a Cost is immutable; a search describes thousands of networks
def arch_cost(arch: ArchSpec) -> Cost:
    total = stem_cost(arch.stem, in_ch=arch.in_ch, input_size=arch.input_size)
    for block, res in zip(arch.blocks, arch.block_resolutions()):
        total += block_cost(block, resolution=res)
    return total + head_cost(arch.head, in_ch=arch.last_ch, resolution=arch.final_resolution,
                             num_classes=arch.num_classes)


def count_params(arch: ArchSpec) -> int:
    return arch_cost(arch).params
