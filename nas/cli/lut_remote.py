"""``nas lut bundle`` and ``nas lut import``: latency tables for devices that cannot run nas.

:func:`register_remote` adds both to the ``nas lut`` sub-command parser (``nas/cli/lut.py``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path

from nas.errors import ConfigError, LatencyTableError
from nas.latency.bundle import BUNDLE_FORMATS
from nas.latency.build import DEFAULT_CALIBRATION
from nas.latency.measure import DEFAULT_PASSES, MeasureSettings

__all__ = ["register_remote", "require_at_least", "MEASURE_MINIMUMS"]

_DEFAULTS = MeasureSettings()
#: The smallest values of the measurement options ``nas lut build`` and ``nas lut bundle`` share.
MEASURE_MINIMUMS: dict[str, float] = {"warmup": 0, "repeats": 1, "max_repeats": 1, "min_seconds": 0, "passes": 1}


def require_at_least(args: argparse.Namespace, minimums: Mapping[str, float]) -> None:
    """Refuse a count option below its minimum (``None``: not given, fine) with one message naming it."""
    for name, minimum in minimums.items():
        value = getattr(args, name)
        if value is not None and not value >= minimum:  # 'not >=' also refuses NaN
            kind = "an integer" if isinstance(value, int) else "a number"
            raise ConfigError(f"--{name.replace('_', '-')}: expected {kind} >= {minimum:g}, got {value}")


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def _bundle(args: argparse.Namespace) -> int:
    from nas.latency.bundle import check_bundle_output, make_bundle
    from nas.space import load_space

    require_at_least(args, MEASURE_MINIMUMS)
    check_bundle_output(Path(args.output))  # at once, before reading the space
    space = load_space(args.space)
    settings = MeasureSettings(warmup=args.warmup, min_repeats=args.repeats,
                               max_repeats=max(args.repeats, args.max_repeats), min_seconds=args.min_seconds,
                               passes=args.passes)
    summary = make_bundle(space, args.output, references=not args.no_references, calibration=args.calibration,
                          progress=not args.quiet, settings=settings, fmt=args.format)
    name = Path(args.output).name
    kind = "LiteRT (.tflite) " if args.format == "tflite" else ""
    print(f"wrote {args.output}: {summary.entries} {kind}timing models, an overhead model and {summary.calibration} "
          f"calibration networks for space '{space.name}' ({_size(summary.size_bytes)}, {summary.seconds:.0f} s)")
    if args.format == "tflite":
        folder = Path(args.output).stem
        print(f"an Android phone, from a computer with adb:  unzip {name} -d {folder} && cd {folder} && "
              "./run_android.sh --benchmark-model PATH/TO/android_aarch64_benchmark_model -o results.json")
        print(f"a Linux board (Python 3.8+ with numpy and ai-edge-litert):  python3 {name} -o results.json")
    else:
        print(f"on the device (Python 3.8+ with numpy and onnxruntime):  python3 {name} -o results.json")
    print(f"then here:  nas lut import results.json -o TABLE.json --device-name 'DEVICE'   (README.txt in {name} "
          "says the same)")
    return 0


def _import(args: argparse.Namespace) -> int:
    source = Path(args.results)
    if source.suffix.lower() in (".yaml", ".yml"):
        return _import_ofa(args)
    if args.space or args.ofa_expand != "auto":
        raise LatencyTableError(f"{source}: --space and --ofa-expand apply to published .yaml tables only; a "
                                "results JSON names its own space")
    from nas.latency.importer import import_results

    table = import_results(source, args.output, device_name=args.device_name, force=args.force)
    for warning in table.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    c, meta = table.correction, table.metadata
    mape = meta["calibration"]["fit_mape_percent"]
    fit = f"fit error {mape:.2f} % on {c.fitted_on} networks" if mape is not None else "no calibration networks"
    print(f"wrote {args.output}: {len(table.entries)} entries measured on {meta['device']} ({meta['backend']}, "
          f"{meta['threads']} thread(s), {meta['backend_version']})")
    print(f"correction: {c.describe()} ({fit})")
    return 0


def _import_ofa(args: argparse.Namespace) -> int:
    from nas.latency.ofa import import_ofa_yaml
    from nas.space import load_space

    if not args.space:
        raise LatencyTableError(f"{args.results}: a published .yaml table needs --space FILE: it is converted to the "
                                "parts of that search space")
    space = load_space(args.space)
    result = import_ofa_yaml(args.results, args.output, space=space, device_name=args.device_name,
                             expand=args.ofa_expand)
    skipped = ", ".join(f"{n} {why}" for why, n in result.skipped.items()) or "none"
    print(f"wrote {args.output}: {len(result.table.entries)} imported entries from {result.used} of {result.keys} "
          f"keys of {args.results} (skipped: {skipped})")
    print(f"covers {result.covered} of the {result.space_parts} parts of space '{space.name}'"
          + ("" if result.missing else " (all)"))
    if result.missing:
        shown = result.missing[: 3 if args.quiet else 8]
        more = len(result.missing) - len(shown)
        print("not covered, e.g.: " + ", ".join(shown) + (f" (and {more} more)" if more else ""))
        cse = sum(1 for sig in result.missing if sig.startswith("cse_"))
        if cse:
            print(f"{cse} of the parts not covered are CSE blocks, which published tables do not have")
        print("networks using them are predicted by interpolation (nas lut predict --on-missing interpolate) where "
              "entries of the same kind exist, or fail with --on-missing error")
    print("correction: none (per-block table, no whole-network calibration)")
    return 0


def register_remote(lut: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``bundle`` and ``import`` to the ``nas lut`` sub-parsers ``lut``."""
    b = lut.add_parser(
        "bundle", help="export a self-contained bundle that measures a device without nas installed",
        description="Export every part a search space can produce (and calibration networks) to ONNX (or, with "
                    "--format tflite, to LiteRT .tflite files), with standalone runners, into one zip. ONNX: on the "
                    "device (anything with Python 3.8+, numpy and onnxruntime) run 'python3 BUNDLE.zip -o "
                    "results.json'. LiteRT: for an Android phone run the bundle's run_android.sh on a computer with "
                    "adb; on a Linux board 'python3 BUNDLE.zip -o results.json' with ai-edge-litert. Then bring "
                    "results.json back and turn it into a table with 'nas lut import'.")
    b.add_argument("--space", required=True, metavar="FILE", help="search-space YAML file")
    b.add_argument("-o", "--output", required=True, metavar="BUNDLE.zip", help="bundle zip to write")
    b.add_argument("--format", choices=BUNDLE_FORMATS, default="onnx",
                   help="onnx (default): ONNX models and run_bundle.py (Python, numpy, onnxruntime on the device); "
                        "tflite: LiteRT models with run_android.sh (a phone over adb, LiteRT's benchmark_model) and "
                        "run_python.py (a Linux board with ai-edge-litert); needs pip install -e '.[litert]' here")
    b.add_argument("--calibration", type=int, default=DEFAULT_CALIBRATION,
                   help="whole networks, from the space's cheapest to its costliest, to time end to end for the "
                        f"correction (default {DEFAULT_CALIBRATION})")
    b.add_argument("--no-references", action="store_true",
                   help="leave out the reference networks' parts (e.g. mobilenetv2-cifar), smaller bundle")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    g = b.add_argument_group("default measurement settings of the runner (the device owner may override them)")
    g.add_argument("--warmup", type=int, default=_DEFAULTS.warmup,
                   help=f"untimed runs before timing (default {_DEFAULTS.warmup})")
    g.add_argument("--repeats", type=int, default=_DEFAULTS.min_repeats,
                   help=f"minimum timed runs per model (default {_DEFAULTS.min_repeats})")
    g.add_argument("--max-repeats", type=int, default=_DEFAULTS.max_repeats,
                   help=f"maximum timed runs per model (default {_DEFAULTS.max_repeats})")
    g.add_argument("--min-seconds", type=float, default=_DEFAULTS.min_seconds,
                   help=f"keep timing until this much time has passed (default {_DEFAULTS.min_seconds})")
    g.add_argument("--passes", type=int, default=DEFAULT_PASSES,
                   help="interleaved passes over all models; each result is the fastest pass's median (default "
                        f"{DEFAULT_PASSES}, as 'nas lut build')")
    b.set_defaults(func=_bundle)

    i = lut.add_parser(
        "import", help="make a table from a device's results.json or a published OFA/ProxylessNAS .yaml table",
        description="RESULTS.json (written on the device by a bundle's run_bundle.py): validated and turned into a "
                    "table with measured entries and a correction fitted on the device's calibration networks. "
                    "FILE.yaml (a published Once-for-All / ProxylessNAS latency lookup table): its layer keys are "
                    "converted to the blocks of --space; needs --space and --device-name. An existing table is "
                    "never overwritten.")
    i.add_argument("results", metavar="RESULTS.json|FILE.yaml", help="results from a bundle, or a published table")
    i.add_argument("-o", "--output", required=True, metavar="TABLE", help="table JSON to write (must not exist)")
    i.add_argument("--device-name", metavar="TEXT",
                   help="device name for the table (results JSON: default the runner's description; "
                        "required for .yaml)")
    i.add_argument("--space", metavar="FILE", help=".yaml only: the search space to convert the table to")
    i.add_argument("--ofa-expand", choices=["auto", "ratio", "channels"], default="auto",
                   help=".yaml only: 'expand:' is the expansion ratio (MobileNetV2/ProxylessNAS tables) or the "
                        "middle channel count (MobileNetV3 tables); auto: channels when a key has se:/hs: fields")
    i.add_argument("--quiet", action="store_true", help="shorter output")
    i.add_argument("--force", action="store_true",
                   help="results JSON only: write the table even when the correction fitted on the device's "
                        "calibration networks misses them (see latency_tables/README.md, Correction), with a warning")
    i.set_defaults(func=_import)
