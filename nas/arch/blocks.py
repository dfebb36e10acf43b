"""The block library: stateless ``nn.Module`` building blocks with explicit keyword arguments.

Inverted residual (MobileNetV2, with MobileNetV3's options)::

    [1x1 expand + BN + act]  (only when mid != in)
    -> k x k depthwise (stride s) + BN + act
    -> [squeeze-excite: avgpool -> 1x1 -> ReLU -> 1x1 -> hard-sigmoid gate]   (se=True)
    -> 1x1 linear projection + BN (no activation)
    (+ input, when stride == 1 and in == out)

CSE block (Park & Kim, "Further Optimize MobileNetV2 with Channel-wise Squeeze and
Excitation"): the same up to the depthwise convolution (and optional SE); the 1x1 projection
is replaced by the channel-wise squeeze-and-excitation unit :class:`ChannelwiseSqueezeExcite`:

    squeeze:  s = mean over channels of x              (B, 1, H, W) -> flatten (B, H*W)
    reduce:   h = ReLU(FC_{HW -> m}(s)),  m = max(H*W // r, cap)
    scale:    g = sigmoid(FC_{m -> HW}(h))  -> reshape (B, 1, H, W)
    excite:   y = x * g   (the one H x W map is "stacked" over every channel)
    map:      y (mid channels) -> out channels, parameter-free (below)

Its parameters, ``2 * HW * m + m + HW``, depend on the resolution and not on the channel
count, the property the paper builds on: cheap in late, low-resolution, wide stages.

Channel mapping (the paper leaves open how ``mid`` becomes ``out`` without a 1x1 conv). We
use *cyclic channel folding*, which has no parameters and costs one pass over the tensor:

* ``mid == out``: identity.
* ``mid > out``: output channel ``j`` is the mean of the input channels ``i`` with
  ``i % out == j`` (zero-pad to a multiple of ``out``, reshape to ``(B, k, out, H, W)``,
  sum over ``k``, divide by how many real channels each output received).
* ``mid < out``: the channels are tiled cyclically: output ``j`` is input ``j % mid``.

Skip block (NAS-Bench-Macro's candidate 0): the identity when stride 1 and in == out (no
parameters, no operation); otherwise a 1x1 convolution with the block's stride, no bias, and
BatchNorm, no activation, so that a skip can stand where the shape changes.

The preceding 1x1 expansion convolution is learned, so it learns to place features where the
fixed fold will combine them. There is no BN after the unit: the gated activations are already
normalised by the depthwise BN, and a BN with affine weights would add channel-dependent
parameters the paper's block does not have.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "make_activation",
    "ConvBNAct",
    "SqueezeExcite",
    "ChannelFold",
    "ChannelwiseSqueezeExcite",
    "InvertedResidual",
    "CSEBlock",
    "SkipBlock",
    "make_divisible",
]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never below 90 % of it."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def make_activation(name: str) -> nn.Module:
    """``relu`` -> ReLU6 (MobileNetV2), ``hswish`` -> x * ReLU6(x + 3) / 6 (MobileNetV3)."""
    if name == "relu":
        return nn.ReLU6(inplace=True)
    if name == "hswish":
        return nn.Hardswish(inplace=True)
    raise ValueError(f"unknown activation {name!r}")


class ConvBNAct(nn.Sequential):
    """``k x k`` convolution ('same' padding) + BatchNorm + optional activation."""

    def __init__(self, *, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1,
                 act: str | None = "relu") -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        if act is not None:
            layers.append(make_activation(act))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """MobileNetV3 squeeze-and-excite: width ``make_divisible(channels / 4)``, hard-sigmoid gate."""

    def __init__(self, *, channels: int, squeeze_ch: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeeze_ch, 1)
        self.act = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(squeeze_ch, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class ChannelFold(nn.Module):
    """Parameter-free cyclic channel folding/tiling from ``in_ch`` to ``out_ch`` channels."""

    def __init__(self, *, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.in_ch, self.out_ch = in_ch, out_ch
        self.folds = -(-in_ch // out_ch)  # ceil
        counts = torch.tensor([len(range(j, in_ch, out_ch)) for j in range(out_ch)], dtype=torch.float32)
        # A fixed buffer (not a parameter): 1 / number of input channels folded into each output.
        self.register_buffer("inv_count", (1.0 / counts.clamp(min=1)).view(1, out_ch, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_ch == self.out_ch:
            return x
        b, _, h, w = x.shape
        if self.in_ch < self.out_ch:
            reps = -(-self.out_ch // self.in_ch)
            return x.repeat(1, reps, 1, 1)[:, : self.out_ch]
        pad = self.folds * self.out_ch - self.in_ch
        if pad:
            x = torch.cat([x, x.new_zeros(b, pad, h, w)], dim=1)
        folded = x.reshape(b, self.folds, self.out_ch, h, w).sum(dim=1)
        return folded * self.inv_count


class ChannelwiseSqueezeExcite(nn.Module):
    """The CSE unit (see module docstring): replaces the 1x1 projection of a bottleneck."""

    def __init__(self, *, in_ch: int, out_ch: int, resolution: int, hidden: int) -> None:
        super().__init__()
        positions = resolution * resolution
        self.resolution = resolution
        self.reduce = nn.Linear(positions, hidden)
        self.act = nn.ReLU(inplace=True)
        self.scale = nn.Linear(hidden, positions)
        self.gate = nn.Sigmoid()
        self.fold = ChannelFold(in_ch=in_ch, out_ch=out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        squeezed = x.mean(dim=1).reshape(b, h * w)
        gate = self.gate(self.scale(self.act(self.reduce(squeezed)))).reshape(b, 1, h, w)
        return self.fold(x * gate)


def _expand_depthwise(*, in_ch: int, mid_ch: int, kernel: int, stride: int, se: bool,
                      act: str) -> list[nn.Module]:
    layers: list[nn.Module] = []
    if mid_ch != in_ch:
        layers.append(ConvBNAct(in_ch=in_ch, out_ch=mid_ch, kernel=1, act=act))
    layers.append(ConvBNAct(in_ch=mid_ch, out_ch=mid_ch, kernel=kernel, stride=stride, groups=mid_ch, act=act))
    if se:
        layers.append(SqueezeExcite(channels=mid_ch, squeeze_ch=make_divisible(mid_ch / 4)))
    return layers


class InvertedResidual(nn.Module):
    """MobileNetV2/V3 inverted residual with linear bottleneck."""

    def __init__(self, *, in_ch: int, mid_ch: int, out_ch: int, kernel: int, stride: int, se: bool,
                 act: str) -> None:
        super().__init__()
        self.residual = stride == 1 and in_ch == out_ch
        self.body = nn.Sequential(
            *_expand_depthwise(in_ch=in_ch, mid_ch=mid_ch, kernel=kernel, stride=stride, se=se, act=act),
            ConvBNAct(in_ch=mid_ch, out_ch=out_ch, kernel=1, act=None),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


class CSEBlock(nn.Module):
    """Bottleneck with its 1x1 projection replaced by channel-wise squeeze and excitation."""

    def __init__(self, *, in_ch: int, mid_ch: int, out_ch: int, kernel: int, stride: int, se: bool,
                 act: str, out_resolution: int, hidden: int) -> None:
        super().__init__()
        self.residual = stride == 1 and in_ch == out_ch
        self.body = nn.Sequential(
            *_expand_depthwise(in_ch=in_ch, mid_ch=mid_ch, kernel=kernel, stride=stride, se=se, act=act),
            ChannelwiseSqueezeExcite(in_ch=mid_ch, out_ch=out_ch, resolution=out_resolution, hidden=hidden),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


class SkipBlock(nn.Module):
    """The identity, or, where the shape changes (stride 2 or in != out), a 1x1 convolution + BN (no activation)."""

    def __init__(self, *, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.identity = stride == 1 and in_ch == out_ch
        self.body: nn.Module = nn.Identity() if self.identity else \
            ConvBNAct(in_ch=in_ch, out_ch=out_ch, kernel=1, stride=stride, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
