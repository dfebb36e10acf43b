"""Fitting a table's correction on calibration networks (whole networks measured end to end).

Each calibration row holds ``parts`` (how many), ``part_sum_ms`` (the sum of its parts'
latencies: timed alongside the network in tables built since calibration does so, else their
table entries), ``measured_ms`` (the whole network, timed end to end) and, in tables built
since the boundary term exists, ``boundary_kelements``. With ``x = part_sum - (parts - 1) * o``
(``o``: the per-call overhead timed on a one-ReLU model) three nested models are fitted:

* ``offset``:   ``measured = x + b``
* ``scale``:    ``measured = a * x + b``
* ``boundary``: ``measured = a * (x - e * boundary_kelements) + b`` (``e >= 0``)

by least squares of *relative* errors (weights ``1 / measured``), which is what the table is
judged on (share of networks within +-10 %). A richer model replaces a simpler one only when
both (1) its leave-one-out error on the calibration networks is lower and (2) the parameter
it adds is significant (``|t| >= T_MIN``: ``a`` differs from 1, ``e`` from 0); and it needs
enough networks (:data:`MIN_ROWS`). So a handful of noisy networks cannot produce a wild
scale, and a boundary term is kept only where the device shows one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from nas.latency.table import Correction, calibration_misses

__all__ = ["MODELS", "MIN_ROWS", "T_MIN", "Candidate", "fit_model", "fit_candidates", "fit_correction",
           "calibration_record"]

MODELS: tuple[str, ...] = ("offset", "scale", "boundary")
MIN_ROWS = {"offset": 1, "scale": 5, "boundary": 8}
T_MIN = 2.0  # the parameter a richer model adds must be this many standard errors from its default

_FORMULA = {
    "offset": "latency = (sum(parts) - (n_parts - 1) * overhead) + b",
    "scale": "latency = a * (sum(parts) - (n_parts - 1) * overhead) + b",
    "boundary": "latency = a * (sum(parts) - (n_parts - 1) * overhead - e * boundary_kelements) + b",
}


@dataclass(frozen=True)
class Candidate:
    model: str
    correction: Correction
    fit_mape_percent: float
    loo_mape_percent: float | None  # None: too few networks to leave one out; inf: a held-out fit failed
    t_added: float | None  # t statistic of the parameter this model adds to the previous one

    def to_dict(self) -> dict[str, Any]:
        """Strict JSON: a held-out fit that failed (an infinite error) is written as null, with a note."""
        c = self.correction
        loo = self.loo_mape_percent
        failed = loo is not None and not math.isfinite(loo)
        return {"model": self.model, "scale": c.scale, "offset_ms": c.offset_ms,
                "boundary_ms_per_kelement": c.boundary_ms_per_kelement, "fit_mape_percent": self.fit_mape_percent,
                "loo_mape_percent": None if failed else loo, "t_added": self.t_added,
                **({"loo_note": "a fit with one network left out failed: never preferred"} if failed else {})}


def _solve(rows: Sequence[dict[str, Any]], overhead_ms: float, model: str) -> tuple[Correction, float | None] | None:
    """The weighted least-squares fit of ``model`` and the t statistic of the parameter it adds."""
    x = np.array([r["part_sum_ms"] - (r["parts"] - 1) * overhead_ms for r in rows], dtype=np.float64)
    y = np.array([r["measured_ms"] for r in rows], dtype=np.float64)
    w = 1.0 / y
    if model == "offset":
        offset = float(np.sum(w * w * (y - x)) / np.sum(w * w))
        return Correction(offset_ms=offset, per_part_overhead_ms=overhead_ms), None
    columns = [x] + ([np.array([r["boundary_kelements"] for r in rows], dtype=np.float64)]
                     if model == "boundary" else []) + [np.ones_like(x)]
    design = np.stack(columns, axis=1) * w[:, None]
    target = y * w
    coef, _, rank, _ = np.linalg.lstsq(design, target, rcond=None)
    if rank < design.shape[1] or not np.all(np.isfinite(coef)) or coef[0] <= 0:
        return None
    scale, offset = float(coef[0]), float(coef[-1])
    per_kelement = float(-coef[1] / scale) if model == "boundary" else 0.0
    if per_kelement < 0:
        return None
    dof = len(rows) - design.shape[1]
    t_added = None
    if dof > 0:
        sigma2 = float(np.sum((target - design @ coef) ** 2)) / dof
        se = np.sqrt(np.maximum(np.diag(np.linalg.pinv(design.T @ design)) * sigma2, 1e-300))
        t_added = float((coef[1] if model == "boundary" else coef[0] - 1.0) / se[1 if model == "boundary" else 0])
    return Correction(scale=scale, offset_ms=offset, per_part_overhead_ms=overhead_ms,
                      boundary_ms_per_kelement=per_kelement), t_added


def fit_model(rows: Sequence[dict[str, Any]], overhead_ms: float, model: str) -> Correction | None:
    """``model`` (one of :data:`MODELS`) fitted on all ``rows``; None where the fit is invalid (scale <= 0, e < 0)."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    fitted = _solve(rows, overhead_ms, model)
    return None if fitted is None else fitted[0]


def _mape(correction: Correction, rows: Sequence[dict[str, Any]]) -> float:
    errors = [abs(correction.apply(r["part_sum_ms"], r["parts"], r.get("boundary_kelements", 0.0)) - r["measured_ms"])
              / r["measured_ms"] for r in rows]
    return float(np.mean(errors) * 100)


def fit_candidates(rows: Sequence[dict[str, Any]], overhead_ms: float) -> list[Candidate]:
    """Every model that ``rows`` support, fitted on all of them, with its leave-one-out error."""
    out = []
    for model in MODELS:
        if len(rows) < MIN_ROWS[model] or (model == "boundary" and not all("boundary_kelements" in r for r in rows)):
            continue
        fitted = _solve(rows, overhead_ms, model)
        if fitted is None:
            continue
        correction, t_added = fitted
        loo: float | None = None
        if len(rows) >= 2:
            errors = []
            for i in range(len(rows)):
                held_out = _solve([r for j, r in enumerate(rows) if j != i], overhead_ms, model)
                errors.append(float("inf") if held_out is None else _mape(held_out[0], [rows[i]]))
            loo = float(np.mean(errors))
        out.append(Candidate(model, correction, _mape(correction, rows), loo, t_added))
    return out


def _fallbacks(overhead_ms: float) -> list[tuple[str, Correction]]:
    """What a table uses when no fitted model predicts its own calibration networks plausibly."""
    return [("identity", Correction(per_part_overhead_ms=overhead_ms)),
            ("plain sum", Correction(per_part_overhead_ms=0.0))]


def fit_correction(rows: Sequence[dict[str, Any]], overhead_ms: float, *, source: str) -> Correction:
    """The correction for ``rows`` (see the module doc); the identity plus ``overhead_ms`` when there are none.

    Only a model that predicts every one of ``rows`` positive and within the tolerance a loaded table is
    held to (:func:`nas.latency.table.calibration_misses`) can be chosen: on a few tiny, noisy networks the
    least-squares offset can make the smallest one negative, and a build must not write a table that it
    would then refuse to load. Failing all, the identity (parts minus the per-call overhead), then the plain
    sum of the parts; failing those too, the usual choice, which ``nas lut build`` then warns about."""
    candidates = fit_candidates(rows, overhead_ms)
    if not candidates:
        return Correction(per_part_overhead_ms=float(overhead_ms), method="none: no calibration networks")
    plausible = [c for c in candidates if not calibration_misses(c.correction, rows)]
    rejected = [c.model for c in candidates if c not in plausible]
    best = (plausible or candidates)[0]
    for cand in (plausible or candidates)[1:]:
        if cand.loo_mape_percent is not None and best.loo_mape_percent is not None \
                and cand.loo_mape_percent < best.loo_mape_percent \
                and cand.t_added is not None and abs(cand.t_added) >= T_MIN:
            best = cand
    errors = ", ".join(f"{c.model} {c.loo_mape_percent:.2f} %" + (f" (t {c.t_added:.1f})" if c.t_added is not None else "")
                       for c in candidates if c.loo_mape_percent is not None and math.isfinite(c.loo_mape_percent))
    how = (f"least squares of relative errors on {len(rows)} whole networks ({source}) measured end to end; "
           f"overhead timed on a one-ReLU model")
    refused = ("" if not rejected else "; every model predicts a calibration network non-positive or outside the "
               "load tolerance" if not plausible else f"; refused for predicting a calibration network non-positive "
               f"or outside the load tolerance: {', '.join(rejected)}")
    if not plausible:
        for name, fallback in _fallbacks(overhead_ms):
            if not calibration_misses(fallback, rows):
                return replace(fallback, method=f"{name}: {fallback.describe()}; the models fitted by {how} "
                                                f"({errors or 'too few networks'}) each predict a calibration network "
                                                "non-positive or outside the load tolerance", fitted_on=len(rows))
    method = (f"'{best.model}' model, {_FORMULA[best.model]}; {how}; chosen by leave-one-out error and "
              f"significance ({errors or 'too few networks'}){refused}")
    return replace(best.correction, method=method, fitted_on=len(rows))


def calibration_record(rows: Sequence[dict[str, Any]], overhead_ms: float, correction: Correction) -> dict[str, Any]:
    """What goes into ``metadata.calibration``: the networks, the overhead, the fit error (None without
    networks: the table stays strict JSON), every model tried."""
    mape = _mape(correction, rows) if rows else None
    return {"networks": list(rows), "overhead_ms": overhead_ms, "fit_mape_percent": mape,
            "models": [c.to_dict() for c in fit_candidates(rows, overhead_ms)]}
