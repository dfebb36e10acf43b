"""``nas export``: an architecture (with trained weights) to ONNX or LiteRT (.tflite), checked against the runtime
(onnxruntime, or ai-edge-litert's interpreter) before the file is written."""

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
from nas.export.tflite import LAYOUTS, LITERT_INSTALL, export_tflite
from nas.train import CHECKPOINT_NAME, load_weights

__all__ = ["register"]


FORMATS: tuple[str, ...] = ("onnx", "tflite")


def _run(args: argparse.Namespace) -> int:
    check_output_path(args.output, option="-o/--output")
    if args.layout is not None and args.format != "tflite":
        raise ExportError(f"--layout {args.layout}: applies to --format tflite only (an ONNX model takes NCHW input)")
    arch = resolve_arch(args.arch)
    torch.manual_seed(args.seed)
    model = build_model(arch)
    weights = None
    if args.weights:
        weights = Path(args.weights)
        if weights.is_dir():  # a run directory of `nas train`
            weights = weights / CHECKPOINT_NAME
        load_weights(model, weights)
    _refuse_overwriting_inputs(Path(args.output), [Path(args.arch), *([weights] if weights else [])], args.format)
    shape = (args.batch, arch.in_ch, arch.input_size, arch.input_size)
    source = f"weights from {weights}" if weights else f"random initial weights (seed {args.seed}; no --weights)"
    if args.format == "tflite":
        return _tflite(args, model, shape, arch, weights, source)
    report = export_onnx(model, args.output, input_shape=shape, atol=args.atol)
    result = {"format": "onnx", "path": report.path, "opset": report.opset, "input_shape": list(report.input_shape),
              "max_abs_diff": report.max_abs_diff, "tolerance": args.atol, "bytes": report.onnx_bytes,
              "arch_hash": arch_hash(arch), "weights": str(weights) if weights else None}
    if args.json:
        print_json(result)
        return 0
    print(f"wrote {report.path} ({report.onnx_bytes / 1e3:.0f} kB): ONNX opset {report.opset}, input 'input' "
          f"{list(report.input_shape)} (batch dimension dynamic), output 'logits', {source}")
    print(f"parity with PyTorch (onnxruntime CPU, batch {args.batch}): max abs difference "
          f"{report.max_abs_diff:.2e} <= {args.atol:g}")
    _untrained_note(weights)
    return 0


def _tflite(args: argparse.Namespace, model: torch.nn.Module, shape: tuple[int, ...], arch: object,
            weights: Path | None, source: str) -> int:
    layout = args.layout or "nhwc"
    report = export_tflite(model, args.output, input_shape=shape, layout=layout, atol=args.atol)
    result = {"format": "tflite", "path": report.path, "layout": layout, "input_shape": list(report.input_shape),
              "max_abs_diff": report.max_abs_diff, "tolerance": args.atol, "bytes": report.tflite_bytes,
              "converter": report.converter, "arch_hash": arch_hash(arch), "weights": str(weights) if weights else None}
    if args.json:
        print_json(result)
        return 0
    order = "batch, height, width, channels" if layout == "nhwc" else "batch, channels, height, width"
    print(f"wrote {report.path} ({report.tflite_bytes / 1e3:.0f} kB): LiteRT float32 ({report.converter}), input "
          f"{list(report.input_shape)} ({order}; the batch is fixed), {source}")
    print(f"parity with PyTorch (ai-edge-litert interpreter with XNNPACK, batch {args.batch}): max abs difference "
          f"{report.max_abs_diff:.2e} <= {args.atol:g}")
    _untrained_note(weights)
    return 0


def _untrained_note(weights: Path | None) -> None:
    if weights is None:
        print("note: freshly initialised networks output near-zero logits, so the parity figure says little; "
              "pass --weights to check the trained network")


def _refuse_overwriting_inputs(output: Path, inputs: list[Path], fmt: str = "onnx") -> None:
    """Refuse an output path that is one of the command's own input files (the ``--arch`` JSON, ``--weights``)."""
    for given in inputs:
        try:
            same = output.is_file() and given.is_file() and os.path.samefile(output, given)
        except OSError:  # e.g. a compact-string --arch longer than a file name may be
            same = False
        if same:
            what = "LiteRT" if fmt == "tflite" else "ONNX"
            raise ExportError(f"-o/--output {output}: is the input file {given}; writing the {what} model there "
                              f"would destroy it. Choose another {what} path, e.g. "
                              f"{output.with_name('model.' + fmt)}")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "export", help="export an architecture (and its trained weights) to ONNX or LiteRT (.tflite), parity-checked",
        description=(
            f"Export an architecture in float32 eval mode. --format onnx (default): ONNX opset {OPSET}, input "
            "'input' of shape (batch, channels, size, size) with a dynamic batch dimension, output 'logits'; "
            "onnxruntime checks it. --format tflite: LiteRT, converted with litert-torch (the optional extra: "
            f"{LITERT_INSTALL}), input NHWC (batch, size, size, channels; --layout nchw keeps PyTorch's order) of a "
            "fixed batch; ai-edge-litert's interpreter with XNNPACK checks it. Before the file is written, the "
            "runtime runs it on a random input and the largest absolute difference from PyTorch is reported; above "
            "--atol nothing is written and the exit status is 2."),
        formatter_class=DefaultsFormatter)
    p.add_argument("--arch", required=True, metavar="ARCH",
                   help=ARCH_HELP + "; for a `nas train` run, RUN/arch.json")
    p.add_argument("--weights", metavar="CKPT",
                   help="a checkpoint.pt written by `nas train` (or its run directory) or a state_dict file; "
                        "without it the network keeps its random initial weights (enough for latency measurement)")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="model file to write (.onnx or .tflite; not a directory)")
    p.add_argument("--format", choices=FORMATS, default="onnx",
                   help="onnx, or tflite for LiteRT (phones: Android, and Linux boards)")
    p.add_argument("--layout", choices=LAYOUTS, default=None,
                   help="--format tflite: the input's layout (default nhwc, what LiteRT kernels and camera pipelines use)")
    p.add_argument("--batch", type=positive_int, default=1, metavar="N",
                   help="batch size traced and checked (dynamic in the ONNX file, fixed in a LiteRT file)")
    p.add_argument("--atol", type=positive_float, default=1e-4, help="largest accepted |PyTorch - runtime|")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the random weights when no --weights is given")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_run)
