"""A network for inference only: every BatchNorm folded into the convolution before it.

In eval mode a BatchNorm is a per-channel affine map, so it can be merged into the preceding convolution's
weights and a bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``): the outputs stay the same up to float
rounding, and a pass over the activations per layer disappears. On the CPU that pass is memory-bound and
cost about as much as a depthwise convolution in a one-off timing (33 against 39 ms for 256x96x32x32, 2
threads, the 2-core AMD EPYC VM; not a results file). The supernet's scores use it
(:func:`nas.supernet.calibrated_subnet`): 12 % faster on 1,000 validation images
(``benchmarks/results/supernet_score_precision_val1000.md``).

The folded network is a copy: the network given is not changed, so it can still be trained, saved or
re-calibrated. The copy's BatchNorm layers become ``nn.Identity``, so it has no BatchNorm statistics to
re-estimate and cannot be trained as the original would.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from nas.arch.blocks import ConvBNAct

__all__ = ["fold_batchnorm"]


def fold_batchnorm(network: nn.Module, *, channels_last: bool = False) -> nn.Module:
    """A copy of ``network`` in eval mode with each :class:`~nas.arch.blocks.ConvBNAct`'s BatchNorm folded
    into its convolution (the BatchNorm replaced by ``nn.Identity``); ``channels_last`` puts all the copy's
    weights in that memory format (the folded ones are new tensors, whose layout is not guaranteed)."""
    folded = copy.deepcopy(network).eval()
    for module in folded.modules():
        if isinstance(module, ConvBNAct) and isinstance(module[1], nn.BatchNorm2d):
            conv, norm = module[0], module[1]
            assert isinstance(conv, nn.Conv2d), "ConvBNAct starts with its convolution"
            module[0] = fuse_conv_bn_eval(conv, norm)
            module[1] = nn.Identity()
    return folded.to(memory_format=torch.channels_last) if channels_last else folded
