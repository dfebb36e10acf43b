"""The one stateless builder: ``ArchSpec -> nn.Module``.

The pieces (stem, each block, head) are built by the same functions the latency tables use
to measure them in isolation, so a table entry and the block inside a network are the same
module.
"""

from __future__ import annotations

import torch
from torch import nn

from nas.arch.blocks import CSEBlock, ConvBNAct, InvertedResidual, SkipBlock
from nas.arch.spec import ArchSpec, BlockSpec, HeadSpec, StemSpec, conv_out_size

__all__ = ["Network", "build_model", "build_stem", "build_block", "build_head", "init_weights"]


def build_stem(stem: StemSpec, *, in_ch: int) -> nn.Module:
    return ConvBNAct(in_ch=in_ch, out_ch=stem.out_ch, kernel=stem.kernel, stride=stem.stride, act=stem.act)


def build_block(block: BlockSpec, *, resolution: int) -> nn.Module:
    """Build one block whose input is ``resolution x resolution``."""
    if block.type == "skip":
        return SkipBlock(in_ch=block.in_ch, out_ch=block.out_ch, stride=block.stride)
    common = dict(in_ch=block.in_ch, mid_ch=block.mid_ch, out_ch=block.out_ch, kernel=block.kernel,
                  stride=block.stride, se=block.se, act=block.act)
    if block.type == "ir":
        return InvertedResidual(**common)
    out_res = conv_out_size(resolution, block.stride)
    return CSEBlock(**common, out_resolution=out_res, hidden=block.cse_hidden(out_res))


class Head(nn.Module):
    """Feature head, global average pooling and the linear classifier."""

    def __init__(self, *, head: HeadSpec, in_ch: int, num_classes: int) -> None:
        super().__init__()
        if head.kind == "conv":
            self.features: nn.Module = ConvBNAct(in_ch=in_ch, out_ch=head.width, kernel=1, act=head.act)
        elif head.kind == "dw":
            self.features = ConvBNAct(in_ch=in_ch, out_ch=head.width, kernel=3, groups=in_ch, act=head.act)
        else:
            self.features = nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(in_ch if head.kind == "none" else head.width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def build_head(arch: ArchSpec) -> nn.Module:
    return Head(head=arch.head, in_ch=arch.last_ch, num_classes=arch.num_classes)


class Network(nn.Module):
    """``stem -> blocks -> head``; built only by :func:`build_model`."""

    def __init__(self, *, stem: nn.Module, blocks: nn.Sequential, head: nn.Module) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = blocks
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def init_weights(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


def build_model(arch: ArchSpec) -> Network:
    """Build a freshly initialised network for ``arch`` (use ``torch.manual_seed`` to fix it)."""
    resolutions = arch.block_resolutions()
    model = Network(
        stem=build_stem(arch.stem, in_ch=arch.in_ch),
        blocks=nn.Sequential(*(build_block(b, resolution=r) for b, r in zip(arch.blocks, resolutions))),
        head=build_head(arch),
    )
    init_weights(model)
    return model
