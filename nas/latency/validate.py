"""Does the table predict whole networks? Measure random networks end to end and compare.

Networks are sampled from the table's space with seeds ``20000 + i`` (calibration uses
``10000 + i``, so validation networks are never the ones the correction was fitted on).
Each is exported whole and timed with the table's backend and measurement settings, with the
table's protocol: the networks are timed together in ``passes`` interleaved passes (pass 1 over
every network, then pass 2, ...) and each network's latency is the minimum over its passes of
the per-pass median, so the measured side is as reproducible as the table's entries.

Metrics: Spearman rank correlation, mean absolute percentage error (MAPE), and the share of
networks predicted within +-10 %. The same metrics are reported for a FLOPs-only predictor,
``latency = c * MACs`` with ``c`` fitted by least squares on these very networks (which
favours the baseline): the table has to beat it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from nas.arch import ArchSpec, arch_cost, arch_hash, to_compact
from nas.latency.measure import Backend, Timing
from nas.latency.passes import TimingJob, time_interleaved
from nas.latency.predict import LatencyEstimator
from nas.space import SearchSpace, random_arch

__all__ = ["VALIDATION_SEED", "Metrics", "ValidationResult", "validate", "metrics", "save_scatter", "measure_networks"]

VALIDATION_SEED = 20_000


@dataclass(frozen=True)
class Metrics:
    n: int
    spearman: float
    mape_percent: float
    within_10_percent: float  # share in [0, 1]
    max_abs_error_percent: float

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "spearman": self.spearman, "mape_percent": self.mape_percent,
                "within_10_percent": self.within_10_percent, "max_abs_error_percent": self.max_abs_error_percent}


def metrics(predicted: np.ndarray, measured: np.ndarray) -> Metrics:
    err = np.abs(predicted - measured) / measured
    rho = float(spearmanr(predicted, measured).statistic) if len(measured) > 1 else float("nan")
    return Metrics(len(measured), rho, float(err.mean() * 100), float((err <= 0.10).mean()), float(err.max() * 100))


@dataclass(frozen=True)
class ValidationResult:
    rows: tuple[dict[str, Any], ...]
    table: Metrics
    flops: Metrics
    flops_ms_per_gmac: float

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table.to_dict(), "flops_baseline": self.flops.to_dict(),
                "flops_ms_per_gmac": self.flops_ms_per_gmac, "networks": list(self.rows)}


def measure_networks(archs: Sequence[ArchSpec], backend: Backend, *, passes: int | None = None,
                     progress: bool = True, desc: str = "measuring networks") -> list[list[Timing]]:
    """Every network's passes (``passes``, default the backend's), interleaved over the networks;
    :meth:`~nas.latency.measure.Timing.best_of` of a network's passes is its latency."""
    jobs = [TimingJob(str(i), (1, a.in_ch, a.input_size, a.input_size), lambda a=a: backend.network_model(a))
            for i, a in enumerate(archs)]
    timings = time_interleaved(backend, jobs, passes=passes, progress=progress, desc=desc)
    return [timings[str(i)] for i in range(len(archs))]


def validate(space: SearchSpace, estimator: LatencyEstimator, backend: Backend, *, samples: int,
             seed: int = VALIDATION_SEED, progress: bool = True) -> ValidationResult:
    archs = [random_arch(space, seed + i) for i in range(samples)]
    preds = [estimator.predict(arch) for arch in archs]  # before timing: a missing entry may be measured here
    rows = []
    for i, (arch, pred, passes) in enumerate(zip(archs, preds, measure_networks(archs, backend, progress=progress))):
        measured = Timing.best_of(passes)
        rows.append({"seed": seed + i, "hash": arch_hash(arch), "arch": to_compact(arch), "blocks": len(arch.blocks),
                     "macs": arch_cost(arch).macs, "predicted_ms": pred.total_ms, "measured_ms": measured.median,
                     "measured_p10_ms": measured.p10, "measured_p90_ms": measured.p90,
                     "measured_passes_ms": [t.median for t in passes],
                     "interpolated_parts": len(pred.interpolated)})
    measured = np.array([r["measured_ms"] for r in rows])
    predicted = np.array([r["predicted_ms"] for r in rows])
    macs = np.array([r["macs"] for r in rows], dtype=np.float64)
    c = float((macs * measured).sum() / (macs * macs).sum())
    for r, f in zip(rows, c * macs):
        r["flops_predicted_ms"] = float(f)
    return ValidationResult(tuple(rows), metrics(predicted, measured), metrics(c * macs, measured), c * 1e9)


def save_scatter(result: ValidationResult, path: str | os.PathLike, *, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = np.array([r["measured_ms"] for r in result.rows])
    fig, ax = plt.subplots(figsize=(5.5, 5))
    lo, hi = measured.min() * 0.8, measured.max() * 1.2
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8, label="exact")
    ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="0.85", label="+-10 %")
    ax.scatter(measured, [r["flops_predicted_ms"] for r in result.rows], s=12, marker="x", color="tab:orange",
               label=f"FLOPs-only (rho {result.flops.spearman:.3f}, {result.flops.within_10_percent:.0%} in 10 %)")
    ax.scatter(measured, [r["predicted_ms"] for r in result.rows], s=14, color="tab:blue",
               label=f"table (rho {result.table.spearman:.3f}, {result.table.within_10_percent:.0%} in 10 %)")
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_title(title or f"{result.table.n} random networks")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
