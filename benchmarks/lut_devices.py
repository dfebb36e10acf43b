"""Device specificity, shown rather than claimed: where do two tables of one space disagree?

A hardware-aware search is only device-specific if the devices rank the choices differently.
This script compares two latency tables of the same search space (by default this machine's
onnxruntime CPU tables with 1 and 2 threads; ``--pair runtimes``: its onnxruntime and LiteRT (XNNPACK)
1-thread tables, two runtimes on one CPU) and reports:

* per block position (a stage's first block, or its repeats, at its resolution): Kendall's tau
  between the two tables' latencies of all its options, and the fastest option on each table;
* the *flips*: pairs of options of one position that differ in a single choice (type,
  expansion, kernel, SE, activation) and that the two tables order differently, each by more
  than ``--margin`` (5 %) - e.g. "kernel 7 instead of 5 costs +12 % on A but -8 % on B";
* for each choice, how much its cost changes from A to B (median ratio of B/A latencies of
  the options with that value): where the second device is relatively cheaper;
* what a search would see: the fastest network of the space on each table, and ``--networks``
  random networks ranked by predicted latency on both tables - Kendall's tau, and the overlap
  of the networks that fit a budget set at the same quantile (``--budget-quantile``) on each.

Outputs ``benchmarks/results/lut_devices.{md,csv}`` for the threads pair, ``lut_devices_runtimes.*`` for the
runtimes pair, ``lut_devices_A_vs_B.*`` for any other ``--a``/``--b`` (``--quick``: ``..._quick.*``).

Full runs (seconds; need both tables):
    python benchmarks/lut_devices.py --a latency_tables/ort-cpu-1t.json --b latency_tables/ort-cpu-2t.json
    python benchmarks/lut_devices.py --pair runtimes      # ort-cpu-1t.json vs litert-cpu-1t.json
Quick checks (build two tiny tables for tests/fixtures/tiny_space.yaml; ~1-2 min, ~3-5 min with LiteRT):
    python benchmarks/lut_devices.py --quick
    python benchmarks/lut_devices.py --quick --pair runtimes
"""

from __future__ import annotations

import argparse
import csv
import itertools
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau

from nas.arch import BlockSpec, to_compact
from nas.errors import LatencyTableError
from nas.latency import LatencyTable, MeasureSettings, TableEstimator, block_signature, load_table
from nas.latency.spaces import space_for_table
from nas.space import SearchSpace, block_slots, random_arch

from _common import CPU_TABLE, REPO, RESULTS, run_main  # beside this script

CHOICES = ("type", "expansion", "kernel", "se", "act")


@dataclass(frozen=True)
class Option:
    choice: tuple[Any, ...]  # values of CHOICES
    block: BlockSpec
    a_ms: float
    b_ms: float


@dataclass
class SlotReport:
    name: str
    options: list[Option]
    tau: float
    fastest_a: Option
    fastest_b: Option
    flips: list[dict[str, Any]] = field(default_factory=list)


def option_choice(block: BlockSpec) -> tuple[Any, ...]:
    expansion = block.mid_ch // block.in_ch if block.mid_ch % block.in_ch == 0 else f"m{block.mid_ch}"
    return (block.type, expansion, block.kernel, block.se, block.act)


def describe(choice: tuple[Any, ...]) -> str:
    kind, t, k, se, act = choice
    return f"{kind} e{t} k{k}{' se' if se else ''} {act}"


def slot_name(slot: Any) -> str:
    part = "first block" if slot.first else "repeats"
    return (f"stage {slot.stage + 1} {part} ({slot.in_ch}->{slot.out_ch}, s{slot.stride}, "
            f"{slot.resolution}x{slot.resolution})")


def entry_ms(table: LatencyTable, signature: str) -> float:
    entry = table.entries.get(signature)
    if entry is None:
        raise LatencyTableError(f"{table.name}: no entry for {signature}; both tables must cover the space "
                                "(build them with 'nas lut build')")
    return entry.median


def compare_slots(a: LatencyTable, b: LatencyTable, space: SearchSpace, margin: float) -> list[SlotReport]:
    reports = []
    for slot in block_slots(space):
        seen: dict[str, Option] = {}
        for block in slot.options():
            sig = block_signature(block, resolution=slot.resolution)
            seen.setdefault(sig, Option(option_choice(block), block, entry_ms(a, sig), entry_ms(b, sig)))
        options = list(seen.values())
        if len(options) < 2:
            continue
        tau = float(kendalltau([o.a_ms for o in options], [o.b_ms for o in options]).statistic)
        report = SlotReport(slot_name(slot), options, tau, min(options, key=lambda o: o.a_ms),
                            min(options, key=lambda o: o.b_ms))
        for x, y in itertools.combinations(options, 2):
            differ = [i for i in range(len(CHOICES)) if x.choice[i] != y.choice[i]]
            if len(differ) != 1:
                continue
            ra, rb = y.a_ms / x.a_ms - 1, y.b_ms / x.b_ms - 1  # cost of y relative to x
            if (ra > margin and rb < -margin) or (ra < -margin and rb > margin):
                i = differ[0]
                report.flips.append({"slot": report.name, "choice": CHOICES[i], "from": x.choice[i],
                                     "to": y.choice[i], "other": describe(x.choice), "a_change": ra,
                                     "b_change": rb})
        reports.append(report)
    return reports


def choice_ratios(reports: list[SlotReport]) -> dict[str, dict[Any, float]]:
    """For each choice and value: median b/a latency ratio over the options that have it."""
    out: dict[str, dict[Any, float]] = {}
    for i, name in enumerate(CHOICES):
        values: dict[Any, list[float]] = {}
        for r in reports:
            for o in r.options:
                values.setdefault(o.choice[i], []).append(o.b_ms / o.a_ms)
        if len(values) > 1:
            out[name] = {v: float(np.median(rs)) for v, rs in sorted(values.items(), key=lambda kv: str(kv[0]))}
    return out


def fastest_network(space: SearchSpace, reports: list[SlotReport], which: str) -> str:
    """Slot by slot (additive tables): the fastest option everywhere, each stage at its minimum depth."""
    by_slot = {r.name: (r.fastest_a if which == "a" else r.fastest_b) for r in reports}
    parts = []
    for slot in block_slots(space):
        if slot.first:
            opt = by_slot.get(slot_name(slot))
            parts.append(describe(opt.choice) if opt else "(single option)")
    return " | ".join(parts)


def network_agreement(a: LatencyTable, b: LatencyTable, space: SearchSpace, networks: int,
                      quantile: float) -> dict[str, Any]:
    ea = TableEstimator(a, on_missing="error", save=False)
    eb = TableEstimator(b, on_missing="error", save=False)
    archs = [random_arch(space, 50_000 + i) for i in range(networks)]
    pa = np.array([ea.latency_ms(x) for x in archs])
    pb = np.array([eb.latency_ms(x) for x in archs])
    fit_a, fit_b = pa <= np.quantile(pa, quantile), pb <= np.quantile(pb, quantile)
    both, either = int((fit_a & fit_b).sum()), int((fit_a | fit_b).sum())
    # the fastest network on each table among those fitting B's budget, and vice versa
    ia, ib = int(np.argmin(pa)), int(np.argmin(pb))
    return {"a_fastest_on_b": float(pb[ia] / pb[ib] - 1), "b_fastest_on_a": float(pa[ib] / pa[ia] - 1),
            "networks": networks, "tau": float(kendalltau(pa, pb).statistic), "quantile": quantile,
            "fit_a": int(fit_a.sum()), "fit_b": int(fit_b.sum()), "fit_both": both,
            "jaccard": both / either if either else float("nan"),
            "only_a": [to_compact(archs[i]) for i in np.flatnonzero(fit_a & ~fit_b)[:3]],
            "only_b": [to_compact(archs[i]) for i in np.flatnonzero(fit_b & ~fit_a)[:3]],
            "fastest_same": ia == ib}


def check_pair(a: LatencyTable, b: LatencyTable) -> None:
    if a.space_digest != b.space_digest:
        raise LatencyTableError(f"{b.name}: built for space '{b.metadata['space'].get('name')}', but {a.name} for "
                                f"'{a.metadata['space'].get('name')}'; compare two tables of the same space")


def protocols(a: LatencyTable, b: LatencyTable) -> str:
    """Which measurement protocol each table used; a warning when they differ (noise then differs too)."""
    pa, pb = (MeasureSettings.from_metadata(t.metadata.get("measurement", {})).passes for t in (a, b))
    text = f"Entries: the minimum over {pa} (A) and {pb} (B) interleaved pass(es) of the per-pass median."
    if pa != pb:
        text += (" **The tables were measured with different numbers of passes: part of their differences may be "
                 "measurement noise, not the device.**")
    return text


def label(table: LatencyTable) -> str:
    m = table.metadata
    return f"{Path(table.name).name} ({m['backend']}, {m['threads']} thread(s))"


def runtimes_note(a: LatencyTable, b: LatencyTable) -> str:
    """When the two tables are two runtimes: what else differs between their entries than the kernels."""
    ma, mb = a.metadata, b.metadata
    if ma["backend"] == mb["backend"]:
        return ""
    return (f"Two runtimes: A {ma['backend']} ({ma['backend_version']}, {ma['execution_provider']}), B "
            f"{mb['backend']} ({mb['backend_version']}, {mb['execution_provider']}). Their per-call overheads differ "
            f"(A {a.correction.per_part_overhead_ms * 1000:.1f} us, B {b.correction.per_part_overhead_ms * 1000:.1f} "
            "us per part, removed by each table's correction), and so do their models' layouts at part boundaries "
            "(ONNX NCHW, LiteRT NHWC): the block rankings below are the runtimes' own.")


def report_markdown(a: LatencyTable, b: LatencyTable, reports: list[SlotReport], ratios: dict[str, dict[Any, float]],
                    nets: dict[str, Any], space: SearchSpace, margin: float, note: str = "") -> str:
    la, lb = label(a), label(b)
    flips = [f for r in reports for f in r.flips]
    two = runtimes_note(a, b)
    lines = [f"# Device specificity: {la} vs {lb}", "", f"Space '{space.name}'. A: {la}, measured on "
             f"{a.metadata['device']}. B: {lb}, measured on {b.metadata['device']}." + (f" {note}" if note else ""), "",
             protocols(a, b), "", *([two, ""] if two else []),
             "## Per block position", "",
             "| position | options | Kendall tau | fastest on A | fastest on B | flips |", "|---|---|---|---|---|---|"]
    for r in reports:
        same = "" if r.fastest_a.choice == r.fastest_b.choice else " **(differs)**"
        lines.append(f"| {r.name} | {len(r.options)} | {r.tau:.3f} | {describe(r.fastest_a.choice)} "
                     f"({r.fastest_a.a_ms * 1000:.0f} us) | {describe(r.fastest_b.choice)} "
                     f"({r.fastest_b.b_ms * 1000:.0f} us){same} | {len(r.flips)} |")
    differs = sum(r.fastest_a.choice != r.fastest_b.choice for r in reports)
    lines += ["", f"{differs} of {len(reports)} positions have a different fastest option; "
                  f"{len(flips)} single-choice pairs are ordered differently by more than {margin:.0%} on each table.",
              "", f"## Choices whose ranking flips (each side > {margin:.0%})", ""]
    if flips:
        lines += ["| position | choice | from -> to | other choices | change on A | change on B |",
                  "|---|---|---|---|---|---|"]
        for f in sorted(flips, key=lambda f: -abs(f["a_change"] - f["b_change"]))[:40]:
            lines.append(f"| {f['slot']} | {f['choice']} | {f['from']} -> {f['to']} | {f['other']} | "
                         f"{f['a_change']:+.1%} | {f['b_change']:+.1%} |")
        if len(flips) > 40:
            lines.append(f"| ... {len(flips) - 40} more in the CSV | | | | | |")
    else:
        lines.append("None: the two tables order every single-choice pair the same way (beyond the margin).")
    lines += ["", "## Relative cost of each choice on B (median B/A latency ratio of the options with it)", ""]
    for name, values in ratios.items():
        lines.append(f"* {name}: " + ", ".join(f"{v} {r:.3f}" for v, r in values.items()))
    lines += ["", "## What a search would see", "",
              f"* Fastest network (slot by slot, stages at minimum depth, first blocks): A: "
              f"{fastest_network(space, reports, 'a')}; B: {fastest_network(space, reports, 'b')}.",
              f"* {nets['networks']} random networks (seeds 50000+), predicted with each table's correction: "
              f"Kendall tau of their latency ranking {nets['tau']:.3f}; with a budget at each table's "
              f"{nets['quantile']:.0%} quantile, {nets['fit_a']} fit on A and {nets['fit_b']} on B, "
              f"{nets['fit_both']} on both (Jaccard {nets['jaccard']:.2f}); the fastest of them is "
              f"{'the same' if nets['fastest_same'] else 'a different network'} on the two tables"
              + ("." if nets["fastest_same"] else
                 f": A's fastest is {nets['a_fastest_on_b']:+.1%} slower than B's fastest on B, B's fastest "
                 f"{nets['b_fastest_on_a']:+.1%} slower than A's on A.")]
    if nets["only_a"]:
        lines.append(f"* e.g. within budget on A only: `{nets['only_a'][0]}`")
    if nets["only_b"]:
        lines.append(f"* e.g. within budget on B only: `{nets['only_b'][0]}`")
    return "\n".join(lines) + "\n"


def write_csv(path: Path, reports: list[SlotReport]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["position", *CHOICES, "a_ms", "b_ms", "b_over_a", "rank_a", "rank_b"])
        for r in reports:
            rank_a = {id(o): i + 1 for i, o in enumerate(sorted(r.options, key=lambda o: o.a_ms))}
            rank_b = {id(o): i + 1 for i, o in enumerate(sorted(r.options, key=lambda o: o.b_ms))}
            for o in r.options:
                w.writerow([r.name, *o.choice, f"{o.a_ms:.6f}", f"{o.b_ms:.6f}", f"{o.b_ms / o.a_ms:.4f}",
                            rank_a[id(o)], rank_b[id(o)]])


def run(path_a: str | Path, path_b: str | Path, out: Path, stem: str, *, margin: float = 0.05, networks: int = 1000,
        quantile: float = 0.25, note: str = "") -> str:
    a, b = load_table(path_a), load_table(path_b)
    check_pair(a, b)
    space = space_for_table(a)
    reports = compare_slots(a, b, space, margin)
    text = report_markdown(a, b, reports, choice_ratios(reports), network_agreement(a, b, space, networks, quantile),
                           space, margin, note)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text(text)
    write_csv(out / f"{stem}.csv", reports)
    return text


#: the pairs --pair names: (table A, table B, results stem)
PAIRS = {"threads": (CPU_TABLE, REPO / "latency_tables" / "ort-cpu-2t.json", "lut_devices"),
         "runtimes": (CPU_TABLE, REPO / "latency_tables" / "litert-cpu-1t.json", "lut_devices_runtimes")}


def build_tiny_pair(folder: Path, pair: str = "threads") -> tuple[Path, Path]:
    """Two tables of the tiny test space, fast settings (quick mode): 1 and 2 threads of onnxruntime, or (``pair``
    ``runtimes``) onnxruntime and LiteRT with 1 thread."""
    from nas.latency import build_table, get_backend
    from nas.space import load_space

    source = REPO / "tests" / "fixtures" / "tiny_space.yaml"
    shutil.copy(source, folder / source.name)  # beside the tables, where run() looks for their space
    space = load_space(source)
    settings = MeasureSettings(warmup=2, min_repeats=10, max_repeats=50, min_seconds=0.01, passes=2)
    runs = [("ort-cpu", 2), ("ort-cpu", 1)] if pair == "threads" else [("litert", 1), ("ort-cpu", 1)]
    paths = []
    for backend, threads in reversed(runs):
        path = folder / f"tiny-{backend}-{threads}t.json"
        build_table(space, get_backend(backend, threads=threads, settings=settings), path, calibration=6)
        paths.append(path)
    return paths[0], paths[1]


def stem_for(a: str | Path, b: str | Path, pair: str | None) -> str:
    """The results' file stem: the named pair's, or ``lut_devices_A_vs_B``."""
    if pair is not None:
        return PAIRS[pair][2]
    for pa, pb, stem in PAIRS.values():
        if Path(a).resolve() == pa.resolve() and Path(b).resolve() == pb.resolve():
            return stem
    return f"lut_devices_{Path(a).stem}_vs_{Path(b).stem}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--a", default=None, help="first table (default: the --pair's)")
    p.add_argument("--b", default=None, help="second table, same space (default: the --pair's)")
    p.add_argument("--pair", choices=sorted(PAIRS), default=None,
                   help="threads (default): ort-cpu-1t.json vs ort-cpu-2t.json; runtimes: ort-cpu-1t.json vs "
                        "litert-cpu-1t.json")
    p.add_argument("--margin", type=float, default=0.05, help="a flip must exceed this on both tables (0.05)")
    p.add_argument("--networks", type=int, default=1000, help="random networks for the search view (1000)")
    p.add_argument("--budget-quantile", type=float, default=0.25, help="budget at this quantile of each table (0.25)")
    p.add_argument("--out", default=str(RESULTS), help="output folder")
    p.add_argument("--quick", action="store_true",
                   help="build two tiny tables (1 and 2 threads) for the tiny test space and compare them")
    args = p.parse_args(argv)
    pair = args.pair or ("threads" if args.a is None and args.b is None else None)
    a = args.a or str(PAIRS[pair or "threads"][0])
    b = args.b or str(PAIRS[pair or "threads"][1])
    stem = stem_for(a, b, pair)
    if args.quick:
        with tempfile.TemporaryDirectory() as tmp:
            qa, qb = build_tiny_pair(Path(tmp), pair or "threads")
            text = run(qa, qb, Path(args.out), f"{stem}_quick", margin=args.margin, networks=200,
                       quantile=args.budget_quantile, note="Quick mode: tiny test space, fast timing settings; "
                                                           "proves the script works, not a result.")
    else:
        text = run(a, b, Path(args.out), stem, margin=args.margin, networks=args.networks,
                   quantile=args.budget_quantile)
    print(text)
    return 0


if __name__ == "__main__":
    run_main(main)
