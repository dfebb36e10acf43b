"""Does the latency table predict whole networks? Fidelity of the shipped onnxruntime CPU table.

Goal (issue 3, nn-Meter's bar): over >= 100 random networks of the default space, measured end
to end on the table's own device and settings (onnxruntime CPU, 1 thread, batch 1, median),
>= 99 % predicted within +-10 % and Spearman >= 0.98.

What it does:

1. ``--networks`` random networks of the table's space, seeds ``--seed``, ``+1``, ... (default
   30000: disjoint from the calibration seeds 10000+ that fitted the correction and from
   ``nas lut validate``'s 20000+), each exported whole once and timed with the table's backend,
   settings and protocol (:mod:`nas.latency.measure`): ``--passes`` (default: the table's)
   passes interleaved over all networks, a network's latency the minimum over its passes of
   the per-pass median. This *measurement* is done twice, one after the other; the first is
   what the predictors are judged against, the second only gives the noise floor.
2. Predictors, all from information the table holds (never from these networks):

   * ``sum of parts``: the plain sum of the parts' entries;
   * ``table``: the table's stored correction (what ``nas search`` uses);
   * ``refit``: :func:`nas.latency.correction.fit_correction` (the fitter ``nas lut build``
     now uses) re-fitted on the table's own calibration networks; shows what a rebuild would
     give without rebuilding;
   * ``FLOPs-only``: ``c * MACs`` with ``c`` fitted on the same calibration networks (the
     baseline the table has to beat); ``FLOPs-only (oracle)`` fits ``c`` on the test networks.

3. Where the error comes from (the Markdown report has one section per item):

   * *noise*: measurement 2 used as a "predictor" of measurement 1 - no predictor can be judged
     more finely than that (and the best predictor against measurement 2, for comparison);
   * *per-call overhead / boundaries*: the share of each network's latency the correction
     removes for the isolated parts' call overhead and boundary traffic;
   * *model ceiling*: each correction model fitted leave-one-out on the test networks
     themselves (what the same formula could reach with a perfect calibration set);
   * *residual vs network features*: correlation of the table's relative error with the
     number of parts, CSE/SE blocks, boundary elements, MACs;
   * *table drift*: the parts of the first ``--remeasure-parts`` networks (default: all) timed
     again now with the table's protocol, against their entries (did the machine change since
     the table was built?); the predictor "table's correction on parts timed now" applies the
     table's correction to those fresh sums: the correction model judged (nearly) without the
     drift (the parts are timed some minutes after the networks, not alongside them).

Outputs: ``benchmarks/results/lut_fidelity.{md,csv,png}`` (``--quick``: ``lut_fidelity_quick.*``,
which only prove the script works and are not the figures); another ``--table`` than the shipped
``ort-cpu-1t.json`` adds its name: ``lut_fidelity_litert-cpu-1t.*``.

The figures are only meaningful on an otherwise idle machine (the report records the load
average). ``--clock thread`` times with the timing thread's CPU time instead of wall time, for
a look at the structural error on a shared machine (it leaves out preemption, not cache
pollution); the table's entries keep whatever clock they were measured with.

Any table of this machine works, whatever its backend: the networks and parts are made in the table's
model format (ONNX, or LiteRT .tflite for a ``litert`` table, :mod:`nas.latency.formats`) and timed with
its backend.

Full run (about 12 minutes on an idle 2-core CPU with a 5-pass table: ~2 min of exports, 2 x ~2.5 min of
network timing, ~5 min re-timing the parts of all 100 networks; much longer on a busy one):
    python benchmarks/lut_fidelity.py
The LiteRT table (needs the [litert] extra; each of the 100 networks (and of their ~700 distinct parts
unless ``--remeasure-parts 0``) is converted with litert-torch, ~1.5-15 s each on one core, in ``--jobs``
processes before anything is timed, and kept in ``--models`` so that a re-run converts nothing again):
    python benchmarks/lut_fidelity.py --table latency_tables/litert-cpu-1t.json    # -> lut_fidelity_litert-cpu-1t.*
Quick check (about a minute):
    python benchmarks/lut_fidelity.py --quick
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr
from tqdm import tqdm

from nas.arch import arch_cost, to_compact
from nas.errors import NASError
from nas.latency import MeasureSettings, TableEstimator, is_local_table, load_table, table_backend
from nas.latency.build import calibration_network
from nas.latency.correction import MODELS, fit_correction, fit_model
from nas.latency.formats import convert_ahead
from nas.latency.measure import Timing, usable_cpus
from nas.latency.passes import TimingJob, time_interleaved
from nas.latency.signature import arch_parts, boundary_kelements
from nas.latency.spaces import space_for_table
from nas.latency.table import Correction
from nas.latency.validate import Metrics, metrics
from nas.space import random_arch

from _common import CPU_TABLE, REPO, RESULTS, run_main  # beside this script

GOAL_WITHIN, GOAL_SPEARMAN = 0.99, 0.98


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", default=str(CPU_TABLE), help="latency table")
    p.add_argument("--space", help="search space (default: the table's own)")
    p.add_argument("--networks", type=int, default=100, help="random networks to measure (default 100)")
    p.add_argument("--seed", type=int, default=30_000, help="first network seed (default 30000)")
    p.add_argument("--passes", type=int,
                   help="interleaved passes over all networks per measurement (default: the table's)")
    p.add_argument("--remeasure-parts", type=int, default=None, metavar="K",
                   help="re-time the parts of the first K networks: the table's drift, and its correction on "
                        "parts timed now (default: all)")
    p.add_argument("--clock", choices=["wall", "thread"], help="override the table's clock (see the doc)")
    p.add_argument("--out", default=str(RESULTS), help="output folder")
    p.add_argument("--jobs", type=int, default=0, metavar="N",
                   help="LiteRT tables: convert the models in N processes before timing (default 0: one per CPU)")
    p.add_argument("--models", default=str(REPO / "runs" / "lut_fidelity" / "models"), metavar="DIR",
                   help="LiteRT tables: where the converted models are kept, so that a re-run converts nothing again "
                        "(default runs/lut_fidelity/models)")
    p.add_argument("--quick", action="store_true", help="8 networks, 2 re-timed: proves the script works")
    args = p.parse_args(argv)
    if args.quick:
        args.networks, args.remeasure_parts = 8, 2
    if args.remeasure_parts is None:
        args.remeasure_parts = args.networks
    if args.networks < 3 or (args.passes is not None and args.passes < 1) or args.remeasure_parts < 0 or args.jobs < 0:
        p.error("--networks >= 3, --passes >= 1, --remeasure-parts >= 0 and --jobs >= 0 are required")
    return args


# ----------------------------------------------------------------------------- predictors
def calibration_rows(table: Any, space: Any) -> tuple[list[dict[str, Any]], float]:
    """The table's calibration networks (rebuilt from their rows), with the features the fitter needs."""
    cal = table.metadata.get("calibration") or {}
    rows = []
    for r in cal.get("networks", []):
        arch = calibration_network(space, r)
        kelements = boundary_kelements(arch_parts(arch))
        if "boundary_kelements" in r and abs(kelements - r["boundary_kelements"]) > 1e-6 * max(1.0, kelements):
            raise NASError(f"calibration network {r['seed']} of the table is not the network rebuilt here "
                           f"(boundary kelements {r['boundary_kelements']} in the table, {kelements} here); rebuild "
                           "the table's calibration with 'nas lut build --recalibrate'")
        rows.append({**r, "boundary_kelements": kelements, "macs": arch_cost(arch).macs})
    return rows, float(cal.get("overhead_ms", table.correction.per_part_overhead_ms))


def flops_constant(macs: np.ndarray, measured: np.ndarray) -> float:
    """ms per MAC, least squares through the origin."""
    return float((macs * measured).sum() / (macs * macs).sum())


def loo_predictions(rows: list[dict[str, Any]], overhead_ms: float, model: str) -> np.ndarray:
    """Each row predicted by ``model`` fitted on all the other rows."""
    out = np.full(len(rows), np.nan)
    for i, r in enumerate(rows):
        c = fit_model([q for j, q in enumerate(rows) if j != i], overhead_ms, model)
        if c is not None:
            out[i] = c.apply(r["part_sum_ms"], r["parts"], r["boundary_kelements"])
    return out


def apply(c: Correction, rows: list[dict[str, Any]]) -> np.ndarray:
    return np.array([c.apply(r["part_sum_ms"], r["parts"], r["boundary_kelements"]) for r in rows])


# ----------------------------------------------------------------------------- measuring
def measure_twice(archs: list[Any], backend: Any) -> tuple[list[list[Timing]], list[list[Timing]]]:
    """Two independent measurements of every network (each: the backend's passes, interleaved).

    Each network is exported once and kept zlib-compressed (constant timing weights shrink
    ~100x), so the second measurement does not pay the export again.
    """
    models = [zlib.compress(backend.network_model(a), 1) for a in tqdm(archs, desc="exporting networks", unit="net")]
    jobs = [TimingJob(str(i), (1, a.in_ch, a.input_size, a.input_size), lambda i=i: zlib.decompress(models[i]))
            for i, a in enumerate(archs)]
    out = []
    for k in (1, 2):
        timings = time_interleaved(backend, jobs, desc=f"measurement {k}/2")
        out.append([timings[str(i)] for i in range(len(archs))])
    return out[0], out[1]


def remeasure_parts(archs: list[Any], table: Any, backend: Any) -> list[dict[str, Any]]:
    """The parts of ``archs`` timed again now with the table's protocol, summed per network."""
    parts = {p.signature: p for a in archs for p in arch_parts(a)}
    jobs = [TimingJob(sig, p.input_shape, lambda p=p: backend.part_model(p)) for sig, p in parts.items()]
    timings = time_interleaved(backend, jobs, desc="re-timing parts")
    fresh = {sig: Timing.best_of(t).median for sig, t in timings.items()}
    return [{"fresh_sum_ms": sum(fresh[p.signature] for p in arch_parts(a)),
             "table_sum_ms": sum(table.entries[p.signature].median for p in arch_parts(a))} for a in archs]


# ----------------------------------------------------------------------------- report
def row_of(name: str, m: Metrics) -> list[str]:
    return [name, str(m.n), f"{m.spearman:.4f}", f"{m.mape_percent:.2f}", f"{m.within_10_percent:.1%}",
            f"{m.max_abs_error_percent:.1f}"]


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def save_plot(path: Path, measured: np.ndarray, series: dict[str, np.ndarray], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5.5))
    values = np.concatenate([measured, *series.values()])
    lo, hi = values.min() * 0.9, values.max() * 1.1
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8, label="exact")
    ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="0.88", label="+-10 %")
    styles = [("x", "tab:orange"), ("o", "tab:blue"), ("^", "tab:green"), ("s", "tab:red")]
    for (name, pred), (marker, color) in zip(series.items(), styles):
        within = float((np.abs(pred - measured) / measured <= 0.10).mean())
        rho = float(spearmanr(pred, measured).statistic)
        ax.scatter(measured, pred, s=14, marker=marker, color=color, alpha=0.8,
                   label=f"{name} (rho {rho:.3f}, {within:.0%} in 10 %)")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    load_before = os.getloadavg()
    table = load_table(args.table)
    space = space_for_table(table, args.space)
    if not is_local_table(table):
        raise NASError(f"{args.table}: measured on '{table.metadata['device']}', not on this machine; the benchmark "
                       "times networks here, so it needs a table of this machine")
    meta = table.metadata
    backend = table_backend(meta, clock=args.clock, passes=args.passes)
    settings = backend.settings

    archs = [random_arch(space, args.seed + i) for i in range(args.networks)]
    estimator = TableEstimator(table, on_missing="error", save=False)
    preds = [estimator.predict(a) for a in archs]
    rows = [{"seed": args.seed + i, "parts": len(p.parts), "part_sum_ms": p.part_sum_ms,
             "boundary_kelements": p.boundary_kelements, "macs": arch_cost(a).macs,
             "cse_blocks": sum(b.type == "cse" for b in a.blocks), "se_blocks": sum(b.se for b in a.blocks),
             "table_ms": p.total_ms, "arch": to_compact(a)} for i, (a, p) in enumerate(zip(archs, preds))]

    if backend.format.name != "onnx":  # slow conversions (LiteRT): in --jobs processes, kept for a re-run
        backend.format.cache.folder = Path(args.models)
        parts = [q for a in archs[: args.remeasure_parts] for q in arch_parts(a)]
        convert_ahead(backend.format, [*archs, *parts], args.jobs or usable_cpus(), desc="converting networks and parts")
    first, second = measure_twice(archs, backend)
    measured = np.array([Timing.best_of(t).median for t in first])
    measured2 = np.array([Timing.best_of(t).median for t in second])
    for r, m, m2, passes in zip(rows, measured, measured2, first):
        r["measured_ms"], r["measured2_ms"] = float(m), float(m2)
        for k, t in enumerate(passes):
            r[f"pass{k + 1}_ms"] = t.median

    cal_rows, overhead = calibration_rows(table, space)
    refit = fit_correction(cal_rows, overhead, source="the table's calibration networks") if cal_rows else None
    part_sum = np.array([r["part_sum_ms"] for r in rows])
    macs = np.array([r["macs"] for r in rows], dtype=np.float64)
    series: dict[str, np.ndarray] = {"sum of parts": part_sum, "table": np.array([r["table_ms"] for r in rows])}
    if refit is not None:
        series["refit"] = apply(refit, rows)
        c_cal = flops_constant(np.array([r["macs"] for r in cal_rows], dtype=np.float64),
                               np.array([r["measured_ms"] for r in cal_rows]))
        series["FLOPs-only"] = c_cal * macs
    series["FLOPs-only (oracle)"] = flops_constant(macs, measured) * macs
    for name, pred in series.items():
        for r, v in zip(rows, pred):
            r[f"{name}_ms"] = float(v)
    results = {name: metrics(pred, measured) for name, pred in series.items()}
    noise = metrics(measured2, measured)

    ceiling = {}
    for model in MODELS:
        loo = loo_predictions(rows, overhead, model)
        if np.all(np.isfinite(loo)):
            ceiling[model] = metrics(loo, measured)

    residual = measured / np.array([r["table_ms"] for r in rows]) - 1
    features = {name: np.array([r[name] for r in rows], dtype=np.float64)
                for name in ("parts", "cse_blocks", "se_blocks", "boundary_kelements", "macs", "part_sum_ms")}
    correlations = {name: float(np.corrcoef(residual, v)[0, 1]) if np.ptp(v) > 0 else float("nan")
                    for name, v in features.items()}
    drift = remeasure_parts(archs[: args.remeasure_parts], table, backend) if args.remeasure_parts else []
    load_after = os.getloadavg()
    # the table's correction on the parts timed now: the model alone, without the entries' drift since the build
    now_name = "table's correction on parts timed now"
    for r, d in zip(rows, drift):
        r["parts_now_sum_ms"] = d["fresh_sum_ms"]
        r[f"{now_name}_ms"] = table.correction.apply(d["fresh_sum_ms"], r["parts"], r["boundary_kelements"])

    # ------------------------------------------------------------------ write
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "lut_fidelity_quick" if args.quick else "lut_fidelity"
    if Path(args.table).resolve() != CPU_TABLE.resolve():  # another table's figures never overwrite the shipped one's
        stem += f"_{Path(args.table).stem}"
    with open(out / f"{stem}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    best = results.get("refit", results["table"])
    save_plot(out / f"{stem}.png", measured, {k: series[k] for k in ("FLOPs-only", "sum of parts", "table", "refit")
                                              if k in series},
              f"{Path(args.table).name}: {args.networks} random networks (seeds {args.seed}+)\n{meta['device']}, "
              f"{meta['threads']} thread(s), clock {settings.clock}")

    headers = ["predictor", "networks", "Spearman", "MAPE %", "within +-10 %", "max error %"]
    best_name = "refit" if "refit" in results else "table"
    body = [row_of(name, m) for name, m in results.items()]
    body.append(row_of(f"{best_name}, judged against measurement 2", metrics(series[best_name], measured2)))
    if drift:
        k = len(drift)
        body.append(row_of(now_name + ("" if k == len(rows) else f" (first {k} networks)"),
                           metrics(np.array([r[f"{now_name}_ms"] for r in rows[:k]]), measured[:k])))
    body.append(row_of("noise floor: measurement 2 vs measurement 1", noise))
    overhead_share = np.mean([(r["parts"] - 1) * table.correction.per_part_overhead_ms / r["measured_ms"]
                              for r in rows]) * 100
    lines = [
        f"# Latency table fidelity: {Path(args.table).name}",
        "",
        f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}; device: {meta['device']}; backend "
        f"{meta['backend']} ({meta['backend_version']}), {meta['threads']} thread(s), batch {meta['batch_size']}; "
        f"clock {settings.clock}; settings: warmup {settings.warmup}, {settings.min_repeats}..{settings.max_repeats} "
        f"repeats, >= {settings.min_seconds} s per pass; protocol: {settings.protocol()}. The table's entries: "
        f"{MeasureSettings.from_metadata(meta['measurement']).protocol()}.",
        f"Networks: {args.networks} random networks of '{space.name}', seeds {args.seed}..{args.seed + args.networks - 1}"
        f" (the table's correction was fitted on seeds {', '.join(str(r['seed']) for r in cal_rows[:2])}...), "
        f"measured twice with {settings.passes} interleaved pass(es) each; measurement 1 is the reference.",
        f"Load average (1 min) before / after: {load_before[0]:.2f} / {load_after[0]:.2f} on {os.cpu_count()} CPUs"
        + " (the timing itself adds ~threads)"
        + (" - **the machine was busy: these figures include other jobs' interference**"
           if load_before[0] > 0.5 or load_after[0] > meta["threads"] + 0.5 else "") + ".",
        f"Goal: >= {GOAL_WITHIN:.0%} within +-10 % and Spearman >= {GOAL_SPEARMAN}. Best table predictor here: "
        f"{best.within_10_percent:.1%} within +-10 %, Spearman {best.spearman:.4f} -> goal "
        f"{'MET' if best.within_10_percent >= GOAL_WITHIN and best.spearman >= GOAL_SPEARMAN else 'NOT met'}.",
        "",
        "## Predictors",
        "",
        md_table(headers, body),
        "",
        f"* table correction: {table.correction.describe()} ({table.correction.method or 'no method recorded'})",
    ]
    if refit is not None:
        lines.append(f"* refit: {refit.describe()} ({refit.method})")
    lines += [
        "* FLOPs-only: c x MACs, c fitted on the table's calibration networks; (oracle): on these networks.",
        "",
        "## Where the error comes from",
        "",
        f"* **Noise**: measuring the same networks again with the same protocol (measurement 2 vs 1) agrees to "
        f"MAPE {noise.mape_percent:.2f} %, {noise.within_10_percent:.1%} within +-10 %, max "
        f"{noise.max_abs_error_percent:.1f} %, Spearman {noise.spearman:.4f}; a predictor cannot be judged more "
        "finely than this.",
        f"* **Per-call overhead**: each isolated part was timed with one call overhead "
        f"({table.correction.per_part_overhead_ms * 1000:.1f} us); the (n - 1) extra calls are "
        f"{overhead_share:.1f} % of a network's latency on average (removed by the correction).",
    ]
    if refit is not None and refit.boundary_ms_per_kelement:
        share = np.mean([refit.scale * r["boundary_kelements"] * refit.boundary_ms_per_kelement / r["measured_ms"]
                         for r in rows]) * 100
        lines.append(f"* **Boundaries (fusion/layout across parts)**: the refit charges "
                     f"{refit.boundary_ms_per_kelement * 1e3:.3f} us per 1000 boundary elements that isolated parts "
                     f"move and the whole network does not: {share:.1f} % of a network's latency on average.")
    else:
        lines.append("* **Boundaries (fusion/layout across parts)**: the refit found no significant boundary term "
                     "on the calibration networks.")
    lines += [
        "* **Model ceiling** (each correction model fitted leave-one-out on these very networks, i.e. with a "
        "perfect calibration set; the gap to 'refit' is what more or cleaner calibration networks could gain):",
        "",
        md_table(headers, [row_of(f"{m} model, leave-one-out", v) for m, v in ceiling.items()]),
        "",
        "* **Residual vs network features** (Pearson correlation of measured / table - 1 with each; large values "
        "point at an effect the additive model misses):",
        "",
        md_table(list(correlations), [[f"{v:+.2f}" for v in correlations.values()]]),
        "",
    ]
    if drift:
        ratio = np.array([d["fresh_sum_ms"] / d["table_sum_ms"] for d in drift])
        lines.append(f"* **Table drift**: the parts of {len(drift)} networks timed again now sum to "
                     f"{np.median(ratio):.3f}x their table entries (median; range {ratio.min():.3f}..{ratio.max():.3f}); "
                     "far from 1 means the machine is not in the state the table was built in (load, clock, "
                     "thermal) and the table or the measurement here is off by that much.")
    lines += ["", f"Per-network data: `{stem}.csv`; plot: `{stem}.png`; run time {time.monotonic() - started:.0f} s.",
              "", f"Command: `python benchmarks/lut_fidelity.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
              ""]
    text = "\n".join(lines)
    (out / f"{stem}.md").write_text(text)
    print(text)
    print(f"wrote {out / stem}.md, .csv, .png")
    return 0


if __name__ == "__main__":
    run_main(main)
