"""References fitting the run are retrained with the same recipe, once: the second run reuses the cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from nas.arch import arch_hash, parse_compact
from nas.retrain import RetrainJob, run_retrain

WINNER = "in32x3-stem_k3_s2_c8_re-ir_e1_k3_s2_c8_re-ir_e2_k3_s2_c16_re-head_c32_re-cls10"
REF = "mobilenetv2-cifar@0.35"


def _synthetic_run(folder: Path, table: Path) -> Path:
    """A minimal run directory as 'nas search' writes it, with one trained 32x32 trial."""
    folder.mkdir(parents=True)
    arch = parse_compact(WINNER)
    pd.DataFrame([{"number": 0, "state": "COMPLETE", "status": "trained", "latency_ms": 0.5, "val_acc": 0.3,
                   "objective": 0.3, "feasible": True, "hash": arch_hash(arch), "compact": WINNER}]).to_csv(
        folder / "trials.csv", index=False)
    (folder / "pareto.json").write_text(json.dumps({"budget_ms": 1.0, "front": []}))
    (folder / "summary.md").write_text(f"# Search summary\n\n- table: {table}\n- data: digits (embedded scikit-learn "
                                       f"8x8)\n- objective: reward ACC*(LAT/T)^w, soft\n")
    return folder


def test_reference_trained_once_and_reused(tiny_table: Path, tmp_path: Path) -> None:
    table = tmp_path / "table.json"
    shutil.copy(tiny_table, table)  # a 16x16 table: 32x32 parts cannot be predicted, only measured
    job = {"top": 1, "epochs": 1, "subset": 20, "test_subset": 20, "references": (REF,), "progress": False}
    run_a = _synthetic_run(tmp_path / "a", table)
    run_retrain(RetrainJob(run=str(run_a), **job), log=lambda _m: None)
    a = pd.read_csv(run_a / "retrain" / "results.csv")
    assert list(a["kind"]) == ["winner", "reference"] and a.loc[1, "name"] == REF
    ref_a = a.loc[1]
    assert ref_a["status"] == "completed" and ref_a["test_images"] == 20
    assert pd.isna(ref_a["predicted_ms"]) and ref_a["measured_ms"] > 0  # no 32x32 entry in the 16x16 table
    assert Path(ref_a["model_dir"]).is_absolute() and str(tmp_path / "nas-cache") in ref_a["model_dir"]
    assert Path(ref_a["onnx"]).is_file()
    md = (run_a / "report.md").read_text()
    assert f"| {REF} | reference |" in md

    run_b = _synthetic_run(tmp_path / "b", table)
    second_logs: list[str] = []
    run_retrain(RetrainJob(run=str(run_b), **job), log=second_logs.append)
    assert any("trained before (reference cache)" in line for line in second_logs)
    b = pd.read_csv(run_b / "retrain" / "results.csv")
    assert b.loc[1, "test_acc"] == ref_a["test_acc"] and b.loc[1, "model_dir"] == ref_a["model_dir"]
