"""Folding BatchNorm into the convolutions for inference: the same outputs, a copy, no BatchNorm left."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nas.arch import build_model, fold_batchnorm, parse_compact
from nas.arch.blocks import ConvBNAct, CSEBlock, SkipBlock, SqueezeExcite

#: Every kind of ConvBNAct the builder makes: the stem, an expansion, depthwise kernels 3/5, a projection,
#: squeeze-excite, a CSE block, a skip block's 1x1 convolution + BN, both activations, and the head.
EVERY_KIND = ("in16x3-stem_k3_s1_c8_re-ir_e3_k5_s1_c8_hs_se-ir_e1_k3_s2_c16_re-cse_e3_k3_s1_c16_re_rd4_cap8"
              "-skip_s2_c24-head_c32_hs-cls10")


def trained_like(seed: int = 0) -> nn.Module:
    """The network with BatchNorm statistics and affine parameters far from their initial values."""
    torch.manual_seed(seed)
    model = build_model(parse_compact(EVERY_KIND))
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n) * 0.5)
            module.running_var.copy_(torch.rand(n) * 2 + 0.1)
            module.weight.data.copy_(torch.randn(n))
            module.bias.data.copy_(torch.randn(n) * 0.3)
    return model.eval()


def test_the_network_covers_every_block_kind() -> None:
    kinds = {type(m) for m in trained_like().modules()}
    assert {ConvBNAct, CSEBlock, SkipBlock, SqueezeExcite} <= kinds


@pytest.mark.parametrize("channels_last", [False, True])
def test_folded_outputs_equal_the_networks_and_no_batchnorm_is_left(channels_last: bool) -> None:
    model = trained_like()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
        folded = fold_batchnorm(model, channels_last=channels_last)
        got = folded(x.contiguous(memory_format=torch.channels_last) if channels_last else x)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    assert sum(isinstance(m, ConvBNAct) for m in folded.modules()) == \
        sum(isinstance(m, ConvBNAct) for m in model.modules())
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert not folded.training
    stem_weight = next(p for p in folded.parameters() if p.dim() == 4)  # the stem's 3x3x3 kernels
    assert stem_weight.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert stem_weight.is_contiguous() != channels_last


def test_the_network_given_is_not_changed() -> None:
    model = trained_like().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fold_batchnorm(model)
    assert model.training  # its mode is kept
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) > 0
