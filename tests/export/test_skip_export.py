"""Networks with skip blocks export to ONNX with parity; an identity skip leaves no operator in the graph."""

from __future__ import annotations

from pathlib import Path

import onnx
import torch
from torch import nn

from nas.arch import build_model, parse_compact
from nas.export import export_onnx, to_onnx_bytes

WITH_SKIPS = "in16x3-stem_k3_s1_c8_re-skip_s2_c16-skip_s1_c16-ir_e3_k3_s1_c16_re-skip_s2_c24-head_c32_re-cls5"
WITHOUT_IDENTITIES = "in16x3-stem_k3_s1_c8_re-skip_s2_c16-ir_e3_k3_s1_c16_re-skip_s2_c24-head_c32_re-cls5"


def _trained_like(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
        if isinstance(m, nn.Linear):
            m.reset_parameters()
    return model


def test_skip_network_export_parity(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _trained_like(build_model(parse_compact(WITH_SKIPS)))
    report = export_onnx(model, tmp_path / "skips.onnx", input_shape=(2, 3, 16, 16))
    assert report.max_abs_diff <= 1e-4


def test_an_identity_skip_adds_no_operator() -> None:
    ops = {}
    for name, text in (("with", WITH_SKIPS), ("without", WITHOUT_IDENTITIES)):
        torch.manual_seed(0)
        graph = onnx.load_from_string(to_onnx_bytes(build_model(parse_compact(text)), (1, 3, 16, 16))).graph
        ops[name] = [node.op_type for node in graph.node]
    assert ops["with"] == ops["without"] and "Conv" in ops["with"]
