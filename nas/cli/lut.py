"""``nas lut``: build, extend, query and validate latency tables."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from nas.arch import resolve_arch
from nas.cli._output import format_table, print_json
from nas.cli.arch import ARCH_HELP
from nas.cli.lut_remote import MEASURE_MINIMUMS, register_remote, require_at_least
from nas.errors import LatencyTableError
from nas.latency import (
    BACKENDS,
    CLOCKS,
    DEFAULT_CALIBRATION,
    DEFAULT_PASSES,
    LatencyTable,
    MeasureSettings,
    TableEstimator,
    add_entries,
    build_table,
    check_table_for_arch,
    get_backend,
    is_local_table,
    load_table,
    table_backend,
)
from nas.latency.measure import cpu_name, usable_cpus
from nas.latency.spaces import space_for_table
from nas.latency.output import check_output, writing
from nas.latency.table import correction_problem
from nas.space import SearchSpace, load_space

__all__ = ["register"]

#: ``nas lut build`` warns when the calibration's parts drifted further than this from their entries.
DRIFT_WARNING = 0.05


def _settings(args: argparse.Namespace) -> MeasureSettings:
    return MeasureSettings(warmup=args.warmup, min_repeats=args.repeats, max_repeats=max(args.repeats, args.max_repeats),
                           min_seconds=args.min_seconds, clock=args.clock, passes=args.passes)


def _build(args: argparse.Namespace) -> int:
    require_at_least(args, MEASURE_MINIMUMS)
    require_at_least(args, {"jobs": 0})
    space = load_space(args.space)
    backend = get_backend(args.backend, threads=args.threads, settings=_settings(args), pin=not args.no_pin)
    jobs = args.jobs or usable_cpus()
    table = build_table(space, backend, args.output, only_missing=args.only_missing, calibration=args.calibration,
                        progress=not args.quiet, recalibrate=args.recalibrate, jobs=jobs)
    c, cal = table.correction, table.metadata["calibration"]
    fit = ("" if cal.get("fit_mape_percent") is None
           else f" (fit error {cal['fit_mape_percent']:.2f} % on {c.fitted_on} networks)")
    print(f"wrote {args.output}: {len(table.entries)} entries ({args.passes} interleaved pass(es) each); correction: "
          f"{c.describe()}{fit}")
    problem = correction_problem(table)
    if problem:
        print(f"warning: {args.output}: correction: {problem}. The table is saved, but loading it is refused until "
              "the calibration is timed again on a quieter machine (add --recalibrate) or used with --force",
              file=sys.stderr)
    drift = cal.get("drift")
    if drift:
        print(f"calibration's {drift['parts']} parts now / their entries: median {drift['median']:.3f} "
              f"(range {drift['min']:.3f}..{drift['max']:.3f})")
        if abs(drift["median"] - 1) > DRIFT_WARNING:
            print(f"warning: {args.output}: the parts run {drift['median']:.2f}x as long as their entries say: this "
                  "machine is not in the state the entries were measured in (load, clock, thermal). The correction "
                  "does not absorb that; predictions will be off by about that factor. Rebuild the entries on a quiet "
                  "machine (a new -o path) if it persists.", file=sys.stderr)
    return 0


def _measured_note(estimator: TableEstimator) -> str | None:
    """One line saying which parts the table lacked were measured here and where they went, if any."""
    n = len(estimator.measured)
    if not n:
        return None
    where = f"stored in {estimator.table.name}" if estimator.save and not estimator.unsaved else "not saved"
    shown = ", ".join(estimator.measured[:8]) + (f" and {n - 8} more" if n > 8 else "")
    return (f"note: {n} part(s) missing from the table were measured on this machine and {where} ({shown}); "
            "'--on-missing interpolate' estimates them instead and leaves the table unchanged")


def _load(path: str, force: bool) -> LatencyTable:
    """The table at ``path``; with ``force`` an implausible correction is printed as a warning instead of refused."""
    table = load_table(path, force=force)
    for warning in table.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return table


def _predict(args: argparse.Namespace) -> int:
    table = _load(args.table, args.force)
    arch = resolve_arch(args.arch)
    check_table_for_arch(table, arch, arch_name=args.arch)
    estimator = TableEstimator(table, on_missing=args.on_missing)
    pred = estimator.predict(arch)
    note = _measured_note(estimator)
    if args.json:
        print_json({"arch": args.arch, **pred.to_dict()})
        if note:
            print(note, file=sys.stderr)
        return 0
    rows = [[p.name, p.signature, f"{p.ms:.4f}", p.source] for p in pred.parts]
    print(format_table(["part", "signature", "ms", "source"], rows))
    c = pred.correction
    print(f"\nsum of parts {pred.part_sum_ms:.3f} ms -> predicted {pred.total_ms:.3f} ms "
          f"({c.describe()}; boundary kelements {pred.boundary_kelements:.1f})")
    if pred.interpolated:
        print(f"note: {len(pred.interpolated)} part(s) interpolated from neighbouring entries (not measured)")
    if note:
        print(note)
    return 0


def _add(args: argparse.Namespace) -> int:
    table = load_table(args.table)
    archs = [resolve_arch(a) for a in args.arch]
    for name, arch in zip(args.arch, archs):  # before anything is measured: the table would no longer load
        check_table_for_arch(table, arch, arch_name=name)
    n = add_entries(table, archs, progress=not args.quiet)
    print(f"measured {n} new entr{'y' if n == 1 else 'ies'}; {args.table} now has {len(table.entries)}")
    return 0


def _other_device(table: LatencyTable, space: SearchSpace) -> str | None:
    """A sentence saying that ``table`` was not measured on this machine (so validating compares two devices), or
    None when it was (:func:`~nas.latency.predict.is_local_table`)."""
    if is_local_table(table):
        return None
    meta = table.metadata
    return (f"{table.name} was measured on {meta['device']} (CPU {meta.get('cpu')}, {meta['backend']} "
            f"{meta['execution_provider']}), not on this machine ({cpu_name()}): the networks below are timed here, so "
            "the figures compare two devices and say nothing about how well the table predicts its own device. To "
            f"measure this machine: nas lut build --space {space.source} -o THIS_MACHINE.json")


def _validate(args: argparse.Namespace) -> int:
    from nas.latency.validate import save_scatter, validate

    require_at_least(args, {"samples": 1, "passes": 1})
    table = _load(args.table, args.force)
    space = space_for_table(table, args.space)
    if table.metadata["backend"] not in BACKENDS:
        raise LatencyTableError(
            f"{args.table}: metadata.backend {table.metadata['backend']!r}: 'nas lut validate' times networks here "
            f"with the table's backend, and this machine has {list(BACKENDS)}; a table from a device bundle is "
            "checked against the networks the device timed (metadata.calibration.fit_mape_percent)")
    other = _other_device(table, space)
    if other and not args.json:
        print(f"note: {other}", flush=True)
    plot = Path(args.plot) if args.plot else Path(args.table).with_suffix(".validate.png")
    _check_plot(plot)  # before minutes of timing
    backend = table_backend(table.metadata, clock=args.clock, passes=args.passes)
    result = validate(space, TableEstimator(table, on_missing=args.on_missing, save=False), backend,
                      samples=args.samples, progress=not args.quiet and not args.json)
    plot_error: LatencyTableError | None = None
    try:  # the figures are printed even when the plot cannot be written
        with writing(plot, "the plot", after="the results are printed; choose another --plot path"):
            save_scatter(result, plot, title=f"{Path(args.table).name}: {args.samples} random networks")
    except LatencyTableError as exc:
        plot_error = exc
    _print_validation(args, result, other, None if plot_error else plot)
    if plot_error is not None:
        raise plot_error
    return 0


def _check_plot(plot: Path) -> None:
    from matplotlib.backend_bases import FigureCanvasBase

    kinds = sorted(FigureCanvasBase.get_supported_filetypes())
    if plot.suffix.lower().lstrip(".") not in kinds:
        raise LatencyTableError(f"{plot}: --plot: expected a file name ending in one of {', '.join(kinds)} (the "
                                f"image format), got {plot.suffix or 'no extension'!r}; e.g. {plot.with_suffix('.png')}")
    check_output(plot, what="the plot", option="--plot")


def _print_validation(args: argparse.Namespace, result: Any, other: str | None, plot: Path | None) -> None:
    if args.json:
        print_json({"same_device": other is None, "device_note": other, **result.to_dict(),
                    "plot": str(plot) if plot else None})
        return
    rows = []
    for name, m in (("table", result.table), ("FLOPs-only", result.flops)):
        rows.append([name, m.n, f"{m.spearman:.4f}", f"{m.mape_percent:.2f}", f"{m.within_10_percent:.1%}",
                     f"{m.max_abs_error_percent:.1f}"])
    print(format_table(["predictor", "networks", "spearman", "MAPE %", "within 10 %", "max error %"], rows))
    if other:
        print("(another device's table timed against this machine: see the note above)")
    if plot is not None:
        print(f"\nscatter plot: {plot}")


def _add_measure_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("measurement")
    g.add_argument("--warmup", type=int, default=10, help="untimed runs before timing (default 10)")
    g.add_argument("--repeats", type=int, default=30, help="minimum timed runs per entry (default 30)")
    g.add_argument("--max-repeats", type=int, default=300, help="maximum timed runs per entry (default 300)")
    g.add_argument("--min-seconds", type=float, default=0.05,
                   help="keep timing until this much time has passed (default 0.05)")
    g.add_argument("--passes", type=int, default=DEFAULT_PASSES,
                   help="each entry is the minimum over this many passes of the per-pass median; the passes run "
                        f"interleaved over all parts, so a slow stretch of the host spoils at most one (default "
                        f"{DEFAULT_PASSES}; 1: a single pass, as before)")
    g.add_argument("--clock", choices=CLOCKS, default="wall",
                   help="wall: elapsed time (default); thread: the timing thread's CPU time, for --threads 1 on a "
                        "machine shared with other jobs (leaves out time they take the CPU away)")
    g.add_argument("--no-pin", action="store_true", help="do not pin the timing thread to --threads CPUs while a model is timed "
                        "(by default it is pinned during timing only, then restored)")


def _add_force(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true",
                   help="use a table whose correction misses its own calibration networks (see latency_tables/"
                        "README.md, Correction) with a warning instead of refusing it, e.g. to look at it")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "lut", help="latency lookup tables: build, predict, add, validate, bundle, import",
        description="Measure a device once into a latency table (JSON, see latency_tables/README.md), then predict "
                    "any network of the space from it. On this machine: 'build'. For a phone or a Raspberry Pi: "
                    "'bundle', run the bundle there, then 'import' its results. 'validate' checks a table against "
                    "whole networks measured end to end.")
    lsub = p.add_subparsers(dest="lut_command", metavar="ACTION", required=True)

    b = lsub.add_parser("build", help="measure every block a search space can produce",
                        description="Export every distinct block (and stem/head) of a space to ONNX (--backend "
                                    "ort-cpu/ort-cuda) or LiteRT .tflite (--backend litert: ai-edge-litert with its "
                                    "XNNPACK CPU delegate, as Android runs models; needs pip install -e '.[litert]'), "
                                    "time it in --passes interleaved passes, then calibrate on whole networks timed "
                                    "the same way. Resumable: every pass is journaled as it is measured; re-run with "
                                    "--only-missing after an interruption.")
    b.add_argument("--space", required=True, metavar="FILE", help="search-space YAML file")
    b.add_argument("--backend", default="ort-cpu", choices=BACKENDS,
                   help="timing backend: ort-cpu (default), ort-cuda (onnxruntime), litert (LiteRT + XNNPACK)")
    b.add_argument("--threads", type=int, default=1,
                   help="threads: onnxruntime's intra-op threads, LiteRT's num_threads (default 1)")
    b.add_argument("-o", "--output", required=True, metavar="TABLE", help="table JSON to write")
    b.add_argument("--only-missing", action="store_true",
                   help="continue an existing or interrupted table: keep its entries, measure the rest")
    b.add_argument("--calibration", type=int, default=DEFAULT_CALIBRATION,
                   help="whole networks, from the space's cheapest to its costliest, timed with their parts to fit "
                        f"the correction (default {DEFAULT_CALIBRATION})")
    b.add_argument("--recalibrate", action="store_true",
                   help="keep the table's entries (implies --only-missing) but time the calibration networks (and "
                        "their parts) again and refit the correction, e.g. after changing --calibration; it reports "
                        "how far the parts drifted from their entries but does not correct the entries")
    b.add_argument("--jobs", type=int, default=0, metavar="N",
                   help="--backend litert: convert the models in N processes before any timing starts (default 0: "
                        "one per CPU; converting the default space's ~1,500 parts takes ~35 min on one core)")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_measure_options(b)
    b.set_defaults(func=_build, resume_hint="re-run it with --only-missing to measure the rest")

    pr = lsub.add_parser("predict", help="predict a network's latency with a per-block breakdown",
                         description="Predict a network's latency from a table, with a per-part breakdown.")
    pr.add_argument("--table", required=True, metavar="TABLE", help="latency table JSON")
    pr.add_argument("arch", metavar="ARCH", help=ARCH_HELP)
    pr.add_argument("--on-missing", default="auto", choices=["auto", "measure", "interpolate", "error"],
                    help="parts the table lacks: measure: time them here and save them into the table (only on the "
                         "table's device); interpolate: estimate them, table unchanged; error: stop; auto (default): "
                         "measure if this is the table's device, else interpolate")
    pr.add_argument("--json", action="store_true", help="machine-readable output")
    _add_force(pr)
    pr.set_defaults(func=_predict)

    a = lsub.add_parser("add", help="measure the missing entries of given architectures into a table",
                        description="Measure, on this machine (the table's device), every part of the given "
                                    "architectures that the table lacks, and save them into the table.")
    a.add_argument("--table", required=True, metavar="TABLE", help="latency table JSON (updated in place)")
    a.add_argument("arch", nargs="+", metavar="ARCH", help=ARCH_HELP)
    a.add_argument("--quiet", action="store_true", help="no progress bars")
    a.set_defaults(func=_add)

    v = lsub.add_parser("validate", help="compare predictions with end-to-end measurements of random networks",
                        description="Measure N random networks of the table's space end to end on the table's "
                                    "backend, with the table's protocol (its passes, interleaved over the networks), and "
                                    "compare with the table's predictions (Spearman, MAPE, share within +-10 %), next "
                                    "to a FLOPs-only predictor; saves a scatter plot.")
    v.add_argument("--table", required=True, metavar="TABLE", help="latency table JSON")
    v.add_argument("--samples", type=int, default=30, help="number of random networks (default 30)")
    v.add_argument("--space", metavar="FILE", help="search space (default: the table's own)")
    v.add_argument("--plot", metavar="PNG", help="scatter plot path (default: TABLE with .validate.png)")
    v.add_argument("--on-missing", default="auto", choices=["auto", "measure", "interpolate", "error"],
                   help="how to treat parts missing from the table (default auto)")
    v.add_argument("--clock", choices=CLOCKS, help="time the networks with this clock instead of the table's "
                                                   "(see 'nas lut build --help')")
    v.add_argument("--passes", type=int, help="time the networks in this many interleaved passes instead of the "
                                              "table's number (see 'nas lut build --help')")
    v.add_argument("--json", action="store_true", help="machine-readable output")
    v.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_force(v)
    v.set_defaults(func=_validate)

    register_remote(lsub)
