"""The correction: boundary elements of a network, the nested models and their choice by
leave-one-out error, and old tables (without the boundary term) still loading and predicting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nas.arch import parse_compact
from nas.latency import TableEstimator, arch_parts, load_table
from nas.latency.correction import calibration_record, fit_candidates, fit_correction
from nas.latency.signature import boundary_kelements
from nas.latency.table import Correction, calibration_misses
from tests.latency.test_table import ARCH, handmade

OVERHEAD = 0.01


def rows(n: int, *, scale: float, offset: float, per_kelement: float, noise: float, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        parts = int(rng.integers(10, 20))
        part_sum = float(rng.uniform(2.0, 8.0))
        kelements = float(rng.uniform(50, 250))
        truth = scale * (part_sum - (parts - 1) * OVERHEAD - per_kelement * kelements) + offset
        out.append({"seed": i, "parts": parts, "part_sum_ms": part_sum, "boundary_kelements": kelements,
                    "measured_ms": truth * (1 + noise * rng.standard_normal())})
    return out


def test_boundary_kelements_of_a_network() -> None:
    arch = parse_compact("in16x3-stem_k3_s1_c8_re-ir_e3_k3_s1_c8_re-cse_e1_k5_s2_c16_hs_rd4_cap8-head_c32_hs-cls10")
    # stem -> 8x16x16, block0 -> 8x16x16, block1 (stride 2) -> 16x8x8; the head's logits cross no boundary
    assert boundary_kelements(arch_parts(arch)) == pytest.approx((8 * 256 + 8 * 256 + 16 * 64) / 1000)
    assert [p.output_elements for p in arch_parts(arch)] == [2048, 2048, 1024, 10]


def test_boundary_model_is_recovered_and_chosen() -> None:
    data = rows(20, scale=1.1, offset=0.3, per_kelement=0.004, noise=0.003)
    c = fit_correction(data, OVERHEAD, source="synthetic")
    assert c.method.startswith("'boundary' model") and c.fitted_on == 20
    assert c.scale == pytest.approx(1.1, rel=0.05) and c.offset_ms == pytest.approx(0.3, abs=0.1)
    assert c.boundary_ms_per_kelement == pytest.approx(0.004, rel=0.15)
    record = calibration_record(data, OVERHEAD, c)
    assert [m["model"] for m in record["models"]] == ["offset", "scale", "boundary"]
    assert record["fit_mape_percent"] < 1.0 and record["networks"] == data


def test_simpler_model_kept_when_the_boundary_term_does_not_help() -> None:
    data = rows(20, scale=1.2, offset=0.2, per_kelement=0.0, noise=0.02, seed=1)
    c = fit_correction(data, OVERHEAD, source="synthetic")
    assert c.method.startswith("'scale' model") and c.boundary_ms_per_kelement == 0.0
    assert c.scale == pytest.approx(1.2, rel=0.1)


def test_few_networks_fit_an_offset_only() -> None:
    data = rows(4, scale=3.0, offset=0.0, per_kelement=0.0, noise=0.2, seed=2)
    c = fit_correction(data, OVERHEAD, source="synthetic")
    assert c.method.startswith("'offset' model") and c.scale == 1.0 and c.fitted_on == 4
    assert [cand.model for cand in fit_candidates(data, OVERHEAD)] == ["offset"]
    none = fit_correction([], OVERHEAD, source="synthetic")
    assert (none.scale, none.offset_ms, none.per_part_overhead_ms, none.fitted_on) == (1.0, 0.0, OVERHEAD, 0)


def tiny_noisy_rows() -> list[dict]:
    """Six tiny networks timed on a busy machine (the shape of a CI failure): most measured at half their
    parts' sum, one above it, so the least-squares offset predicts that one below zero."""
    sums = [0.03, 0.08, 0.09, 0.085, 0.10, 0.12]
    measured = [0.074, 0.030, 0.035, 0.032, 0.040, 0.050]
    return [{"seed": 10000 + i, "parts": 1, "part_sum_ms": x, "boundary_kelements": 1.0, "measured_ms": y}
            for i, (x, y) in enumerate(zip(sums, measured))]


def test_a_fit_that_its_own_table_would_refuse_is_never_chosen() -> None:
    data = tiny_noisy_rows()
    offset = next(c for c in fit_candidates(data, OVERHEAD) if c.model == "offset").correction
    assert calibration_misses(offset, data), "the rows must make the plain offset fit implausible"
    c = fit_correction(data, OVERHEAD, source="synthetic")
    assert calibration_misses(c, data) == []
    assert all(c.apply(r["part_sum_ms"], r["parts"], 1.0) > 0 for r in data)
    assert "refused for predicting a calibration network non-positive" in c.method or c.method.startswith("identity")


def test_the_fallback_is_the_identity_when_no_model_is_plausible() -> None:
    data = tiny_noisy_rows()[:4]  # too few for the scale model: only the offset is fitted, and it misses
    c = fit_correction(data, OVERHEAD, source="synthetic")
    assert c.method.startswith("identity: ") and (c.scale, c.offset_ms) == (1.0, 0.0)
    assert c.per_part_overhead_ms == OVERHEAD and c.fitted_on == 4 and calibration_misses(c, data) == []


def test_rows_without_boundary_elements_skip_that_model() -> None:
    data = [{k: v for k, v in r.items() if k != "boundary_kelements"} for r in rows(12, scale=1.0, offset=0.1,
                                                                                    per_kelement=0.0, noise=0.01)]
    assert [c.model for c in fit_candidates(data, OVERHEAD)] == ["offset", "scale"]


def test_tables_without_the_boundary_term_still_load(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps(handmade()))  # a schema-1 correction without boundary_ms_per_kelement
    table = load_table(path)
    assert table.correction.boundary_ms_per_kelement == 0.0
    pred = TableEstimator(table, on_missing="error").predict(ARCH)
    assert pred.total_ms == pytest.approx(1.0 * (1.0 - 3 * 0.01) + 0.5)  # unchanged formula
    assert pred.boundary_kelements == pytest.approx(boundary_kelements(arch_parts(ARCH)))

    data = handmade()
    data["correction"]["boundary_ms_per_kelement"] = 0.002
    path.write_text(json.dumps(data))
    pred = TableEstimator(load_table(path), on_missing="error").predict(ARCH)
    assert pred.total_ms == pytest.approx(1.0 - 3 * 0.01 - 0.002 * pred.boundary_kelements + 0.5)
    assert Correction(boundary_ms_per_kelement=0.002).apply(1.0, 4, 5.0) == pytest.approx(1.0 - 0.01)


def test_calibration_record_without_networks_stays_strict_json() -> None:
    record = calibration_record([], 0.01, fit_correction([], 0.01, source="none"))
    assert record["fit_mape_percent"] is None and record["networks"] == [] and record["models"] == []
    json.dumps(record, allow_nan=False)  # raises on NaN


def test_a_failed_held_out_fit_is_written_as_strict_json() -> None:
    import json
    import math

    from nas.latency.correction import Candidate

    failed = Candidate("boundary", Correction(), 1.0, math.inf, -3.0).to_dict()
    assert failed["loo_mape_percent"] is None and "failed" in failed["loo_note"]
    json.dumps(failed, allow_nan=False)  # no Infinity: other JSON tools read the table
    kept = Candidate("scale", Correction(), 1.0, 2.5, 11.0).to_dict()
    assert kept["loo_mape_percent"] == 2.5 and "loo_note" not in kept


def test_the_shipped_tables_are_strict_json() -> None:
    import json

    from tests.conftest import REPO

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    for path in sorted((REPO / "latency_tables").glob("*.json")):
        json.loads(path.read_text(), parse_constant=refuse)
