"""Does the latency table predict the small networks a search at a tight budget works with?

``lut_fidelity.py`` judges the table on random networks of the default space, whose latencies
(2-9 ms on this machine) sit where the table's correction was fitted. A search at half of
MobileNetV2's latency works at the fast end instead (about 1-1.5 ms). This script measures,
end to end with the table's protocol (its passes, interleaved over the networks; measured
twice, the second only for the noise floor):

* ``mobilenetv2-cifar`` scaled by the width multiplier, alpha 0.25, 0.3, ..., 1.0;
* the reference networks ``cse-mix-cifar`` and ``cse-only-cifar``;
* the winners of ``benchmarks/search_vs_baselines.py`` (from its results JSON, when present);
* the fastest network of the space (every stage at its minimum depth, every choice at its
  cheapest);

and reports, for each, the table's prediction and the plain sum of its parts against the
measurement, and the Spearman / MAPE / share within +-10 % over all of them. Widths the table
lacks are interpolated (marked in the CSV).

Outputs: ``benchmarks/results/lut_fast_end.{md,csv}``. About 2 minutes on an idle 2-core CPU:
    python benchmarks/lut_fast_end.py
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from nas.arch import ArchSpec, arch_cost, parse_compact, reference_arch, to_compact, width_multiplier
from nas.latency import MeasureSettings, TableEstimator, Timing, get_backend, load_table
from nas.latency.spaces import space_for_table
from nas.latency.validate import measure_networks, metrics
from nas.search.budget import extreme_arch

from _common import CPU_TABLE, RESULTS  # beside this script


def networks(space: Any, estimator: TableEstimator, svb_json: Path) -> dict[str, ArchSpec]:
    ref = reference_arch("mobilenetv2-cifar")
    out = {f"mobilenetv2-cifar@{a:g}": width_multiplier(ref, a) for a in np.round(np.arange(0.25, 1.001, 0.05), 2)}
    out |= {name: reference_arch(name) for name in ("cse-mix-cifar", "cse-only-cifar")}
    if svb_json.exists():
        for row in json.loads(svb_json.read_text())["rows"]:
            out.setdefault(f"{row['network']} (search_vs_baselines)", parse_compact(row["compact"]))
    out["fastest network of the space"] = extreme_arch(space, estimator, fastest=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table", default=str(CPU_TABLE))
    p.add_argument("--search-results", default=str(RESULTS / "search_vs_baselines.json"))
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)

    table = load_table(args.table)
    space = space_for_table(table, None)
    meta = table.metadata
    settings = MeasureSettings.from_metadata(meta["measurement"])
    backend = get_backend(meta["backend"], threads=meta["threads"], settings=settings)
    estimator = TableEstimator(table, on_missing="interpolate", save=False)
    archs = networks(space, estimator, Path(args.search_results))
    load_before = os.getloadavg()[0]
    first = measure_networks(list(archs.values()), backend, desc="measurement 1/2")
    second = measure_networks(list(archs.values()), backend, desc="measurement 2/2")
    load_after = os.getloadavg()[0]

    rows = []
    for (name, arch), t1, t2 in zip(archs.items(), first, second):
        pred = estimator.predict(arch)
        m1, m2 = Timing.best_of(t1).median, Timing.best_of(t2).median
        rows.append({"network": name, "table_ms": pred.total_ms, "sum_of_parts_ms": pred.part_sum_ms,
                     "measured_ms": m1, "measured2_ms": m2, "error_percent": 100 * (pred.total_ms / m1 - 1),
                     "interpolated_parts": sum(pt.source == "interpolated" for pt in pred.parts),
                     "macs": arch_cost(arch).macs, "arch": to_compact(arch)})
    measured = np.array([r["measured_ms"] for r in rows])
    summary = {"table": metrics(np.array([r["table_ms"] for r in rows]), measured),
               "sum of parts": metrics(np.array([r["sum_of_parts_ms"] for r in rows]), measured),
               "noise floor: measurement 2 vs 1": metrics(np.array([r["measured2_ms"] for r in rows]), measured)}

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "lut_fast_end.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# Latency table at the fast end of the space: {Path(args.table).name}", "",
             f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}; {meta['device']}; "
             f"{meta['backend']} ({meta['backend_version']}), {meta['threads']} thread(s), batch 1; protocol: "
             f"{settings.protocol()}; load average (1 min) before / after {load_before:.2f} / {load_after:.2f}. "
             "Each network measured twice; measurement 1 is the reference.", "",
             "| network | table ms | sum of parts ms | measured ms | table error % | interpolated parts |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: r["measured_ms"]):
        lines.append(f"| {r['network']} | {r['table_ms']:.3f} | {r['sum_of_parts_ms']:.3f} | {r['measured_ms']:.3f} | "
                     f"{r['error_percent']:+.1f} | {r['interpolated_parts']} |")
    lines += ["", "| predictor | networks | Spearman | MAPE % | within +-10 % | max error % |",
              "|---|---|---|---|---|---|"]
    for name, m in summary.items():
        lines.append(f"| {name} | {m.n} | {m.spearman:.4f} | {m.mape_percent:.2f} | {m.within_10_percent:.1%} | "
                     f"{m.max_abs_error_percent:.1f} |")
    small = [r for r in rows if r["measured_ms"] < 2.0]
    if small:
        lines += ["", f"Networks under 2 ms measured ({len(small)}): the table's error is "
                  f"{min(r['error_percent'] for r in small):+.1f} % to {max(r['error_percent'] for r in small):+.1f} % "
                  f"(median {np.median([r['error_percent'] for r in small]):+.1f} %); positive means the table "
                  "over-predicts."]
    lines += ["", "Command: `python benchmarks/lut_fast_end.py`", ""]
    text = "\n".join(lines)
    (out / "lut_fast_end.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
