"""``nas export``: an architecture (with trained weights) to ONNX, checked against onnxruntime."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from nas.arch import arch_hash, build_model, resolve_arch
from nas.cli._output import DefaultsFormatter, print_json
from nas.cli.arch import ARCH_HELP
from nas.cli._args import non_negative_int, positive_float, positive_int
from nas.errors import ExportError
from nas.export import OPSET, check_output_path, export_onnx
from nas.train import CHECKPOINT_NAME, load_weights

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    check_output_path(args.output, option="-o/--output")
    arch = resolve_arch(args.arch)
    torch.manual_seed(args.seed)
    model = build_model(arch)
    weights = None
    if args.weights:
        weights = Path(args.weights)
        if weights.is_dir():  # a run directory of `nas train`
            weights = weights / CHECKPOINT_NAME
        load_weights(model, weights)
    _refuse_overwriting_inputs(Path(args.output), [Path(args.arch), *([weights] if weights else [])])
    shape = (args.batch, arch.in_ch, arch.input_size, arch.input_size)
    report = export_onnx(model, args.output, input_shape=shape, atol=args.atol)
    result = {"path": report.path, "opset": report.opset, "input_shape": list(report.input_shape),
              "max_abs_diff": report.max_abs_diff, "tolerance": args.atol, "bytes": report.onnx_bytes,
              "arch_hash": arch_hash(arch), "weights": str(weights) if weights else None}
    if args.json:
        print_json(result)
        return 0
    source = f"weights from {weights}" if weights else f"random initial weights (seed {args.seed}; no --weights)"
    print(f"wrote {report.path} ({report.onnx_bytes / 1e3:.0f} kB): ONNX opset {report.opset}, input 'input' "
          f"{list(report.input_shape)} (batch dimension dynamic), output 'logits', {source}")
    print(f"parity with PyTorch (onnxruntime CPU, batch {args.batch}): max abs difference "
          f"{report.max_abs_diff:.2e} <= {args.atol:g}")
    if weights is None:
        print("note: freshly initialised networks output near-zero logits, so the parity figure says little; "
              "pass --weights to check the trained network")
    return 0


def _refuse_overwriting_inputs(output: Path, inputs: list[Path]) -> None:
    """Refuse an ONNX path that is one of the command's own input files (the ``--arch`` JSON, ``--weights``)."""
    for given in inputs:
        try:
            same = output.is_file() and given.is_file() and os.path.samefile(output, given)
        except OSError:  # e.g. a compact-string --arch longer than a file name may be
            same = False
        if same:
            raise ExportError(f"-o/--output {output}: is the input file {given}; writing the ONNX model there would "
                              f"destroy it. Choose another ONNX path, e.g. {output.with_name('model.onnx')}")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "export", help="export an architecture (and its trained weights) to ONNX, checked with onnxruntime",
        description=(
            f"Export an architecture to ONNX (opset {OPSET}, input 'input' of shape (batch, channels, size, size) "
            "with a dynamic batch dimension, output 'logits'), in float32 eval mode. Before the file is written, "
            "onnxruntime runs it on a random input and the largest absolute difference from PyTorch is reported; "
            "above --atol nothing is written and the exit status is 2."),
        formatter_class=DefaultsFormatter)
    p.add_argument("--arch", required=True, metavar="ARCH",
                   help=ARCH_HELP + "; for a `nas train` run, RUN/arch.json")
    p.add_argument("--weights", metavar="CKPT",
                   help="a checkpoint.pt written by `nas train` (or its run directory) or a state_dict file; "
                        "without it the network keeps its random initial weights (enough for latency measurement)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="ONNX file to write (not a directory)")
    p.add_argument("--batch", type=positive_int, default=1, metavar="N",
                   help="batch size traced and checked (the exported batch dimension is dynamic anyway)")
    p.add_argument("--atol", type=positive_float, default=1e-4, help="largest accepted |PyTorch - onnxruntime|")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the random weights when no --weights is given")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_run)
