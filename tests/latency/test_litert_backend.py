"""``nas lut build --backend litert``: LiteRT + XNNPACK under the ONNX Runtime backend's protocol (interleaved passes,
journal, --only-missing, calibration, on-demand entries, drift warning, pinning), on the nano space."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

import nas.export.tflite as tflite_module
import nas.latency.build as build_module
from nas.arch import parse_compact, to_compact
from nas.cli import main
from nas.errors import LatencyTableError
from nas.latency import MeasureSettings, TableEstimator, get_backend, is_local_table, load_table
from nas.latency.build import journal_path, space_parts
from nas.latency.signature import arch_parts
from nas.latency.formats import cache_folder
from nas.latency.measure import LiteRTBackend
from nas.space import load_space, random_arch
from tests.litert import require_litert

require_litert()

NANO = Path(__file__).with_name("nano_space.yaml")
FAST = ["--warmup", "1", "--repeats", "3", "--max-repeats", "10", "--min-seconds", "0", "--passes", "2",
        "--calibration", "2", "--quiet", "--no-pin", "--jobs", "1"]
SETTINGS = MeasureSettings(warmup=1, min_repeats=3, max_repeats=10, min_seconds=0, passes=2)
# a width the nano space never enumerates (NetAdapt proposes such widths): its middle block has 24 channels
WIDER = "in8x3-stem_k3_s1_c8_re-ir_m24_k3_s1_c8_re-head_c16_re-cls4"


@pytest.fixture(scope="module")
def litert_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("litert") / "litert-cpu-1t.json"
    assert main(["lut", "build", "--space", str(NANO), "--backend", "litert", "--threads", "1", "-o", str(out),
                 *FAST]) == 0
    return out


def test_built_table_records_the_runtime(litert_table: Path) -> None:
    table = load_table(litert_table)
    meta = table.metadata
    assert (meta["backend"], meta["execution_provider"], meta["threads"]) == ("litert", "XNNPACK", 1)
    assert meta["backend_version"].startswith("ai-edge-litert ")
    m = meta["measurement"]
    assert m["model_format"] == "tflite" and m["converter"].startswith("litert-torch ") and "NHWC" in m["layout"]
    assert m["passes"] == 2 and "opset" not in m
    assert set(table.entries) == {p.signature for p in space_parts(load_space(NANO))}
    assert all(e.source == "measured" and 0 < e.p10 <= e.median <= e.p90 and e.repeats >= 6
               for e in table.entries.values())
    assert table.correction.fitted_on == 2 and meta["calibration"]["drift"]["parts"] == 4
    assert is_local_table(table)  # this machine, with the backend installed
    assert not journal_path(litert_table).exists() and not cache_folder(litert_table).exists()  # cleaned up


def test_jobs_convert_every_model_in_worker_processes_before_timing(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "t.json"
    here: list[str] = []
    real_convert = tflite_module.to_tflite_bytes
    seen_in_cache: list[int] = []
    real_measure = build_module._measure_parts

    def counting(model: Any, shape: Any, **kw: Any) -> bytes:
        here.append(type(model).__name__)
        return real_convert(model, shape, **kw)

    def measuring(table: Any, *args: Any, **kw: Any) -> int:
        seen_in_cache.append(len(list(cache_folder(out).iterdir())))  # converted before the first timing
        return real_measure(table, *args, **kw)

    monkeypatch.setattr(tflite_module, "to_tflite_bytes", counting)  # seen in this process only
    monkeypatch.setattr(build_module, "_measure_parts", measuring)
    assert main(["lut", "build", "--space", str(NANO), "--backend", "litert", "-o", str(out),
                 *FAST[:-1], "2"]) == 0
    # 4 parts, 2 calibration networks (their parts are the space's): all made by the 2 workers
    assert seen_in_cache == [6]
    assert here == ["ReLU"]  # only the one-ReLU overhead model was converted here
    table = load_table(out)
    assert len(table.entries) == 4 and table.metadata["complete"] is True and table.correction.fitted_on == 2
    assert not cache_folder(out).exists()


def test_jobs_below_zero_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lut", "build", "--space", str(NANO), "--backend", "litert", "-o", str(tmp_path / "t.json"),
                 *FAST[:-1], "-1"]) == 2
    assert "--jobs: expected an integer >= 0, got -1" in capsys.readouterr().err


def test_an_interrupted_build_resumes_without_converting_again(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "t.json"
    converted: list[str] = []
    real_convert = tflite_module.to_tflite_bytes

    def counting(model: Any, shape: Any, **kw: Any) -> bytes:
        converted.append(type(model).__name__)
        return real_convert(model, shape, **kw)

    monkeypatch.setattr(tflite_module, "to_tflite_bytes", counting)
    passes: list[tuple[str, int]] = []
    real_add = build_module._Journal.add_pass

    def stop_after_five(journal: Any, signature: str, number: int, timing: Any) -> None:
        real_add(journal, signature, number, timing)
        passes.append((signature, number))
        if len(passes) == 5:  # pass 1 of all 4 parts, then pass 2 of the first
            raise KeyboardInterrupt

    monkeypatch.setattr(build_module._Journal, "add_pass", stop_after_five)
    assert main(["lut", "build", "--space", str(NANO), "--backend", "litert", "-o", str(out), *FAST]) == 130
    assert len(converted) == 4 and len(list(cache_folder(out).iterdir())) == 4  # the 4 parts, kept on disk
    assert journal_path(out).exists()
    monkeypatch.setattr(build_module._Journal, "add_pass", real_add)
    converted.clear()
    assert main(["lut", "build", "--space", str(NANO), "--backend", "litert", "-o", str(out), *FAST]) == 2  # refused
    assert main(["lut", "build", "--space", str(NANO), "--backend", "litert", "-o", str(out), *FAST,
                 "--only-missing"]) == 0
    # no part converted again: only the calibration's networks and overhead model are new
    assert converted.count("Sequential") + converted.count("Head") + converted.count("InvertedResidual") == 0
    assert len(converted) == 3
    table = load_table(out)
    assert len(table.entries) == 4 and table.metadata["complete"] is True
    assert not cache_folder(out).exists() and not journal_path(out).exists()
    # an ONNX-Runtime run cannot continue a LiteRT table
    assert main(["lut", "build", "--space", str(NANO), "--backend", "ort-cpu", "-o", str(out), *FAST,
                 "--only-missing"]) == 2


def test_missing_widths_are_measured_on_demand_and_stored(litert_table: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    table_path = tmp_path / "t.json"
    shutil.copy(litert_table, table_path)
    capsys.readouterr()
    assert main(["lut", "predict", "--table", str(table_path), WIDER, "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert [p["source"] for p in out["parts"]] == ["measured"] * 3
    assert "1 part(s) missing from the table were measured on this machine and stored in" in captured.err
    stored = load_table(table_path)
    sig = out["parts"][1]["signature"]
    assert sig.startswith("ir_i8_m24_o8") and stored.entries[sig].source == "measured"
    # interpolation leaves a copy of the original table unchanged
    again = tmp_path / "u.json"
    shutil.copy(litert_table, again)
    before = again.read_bytes()
    pred = TableEstimator(load_table(again), on_missing="interpolate").predict(parse_compact(WIDER))
    assert pred.interpolated == (sig,) and again.read_bytes() == before


def test_validate_and_recalibrate_with_drift_report(litert_table: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    table_path = tmp_path / "t.json"
    shutil.copy(litert_table, table_path)
    capsys.readouterr()
    assert main(["lut", "validate", "--table", str(table_path), "--space", str(NANO), "--samples", "3", "--json",
                 "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["same_device"] is True and result["table"]["n"] == 3
    # entries scaled down by 10: the recalibration's parts now run ~10x as long as the entries say -> a warning.
    # (Halving them was not enough on a busy machine: the fixture's entries, timed under twice the load of the
    # recalibration, came out at 1.04x.)
    data = json.loads(table_path.read_text())
    for entry in data["entries"].values():
        for key in ("median", "p10", "p90"):
            entry[key] /= 10
    table_path.write_text(json.dumps(data))
    assert main(["lut", "build", "--space", str(NANO), "--backend", "litert", "-o", str(table_path), *FAST,
                 "--recalibrate"]) == 0
    captured = capsys.readouterr()
    assert "calibration's 4 parts now / their entries: median" in captured.out
    assert "as long as their entries say: this machine is not in the state the entries were measured in" in captured.err


def test_backend_pins_only_while_timing_and_refuses_other_models(monkeypatch: pytest.MonkeyPatch) -> None:
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs sched_setaffinity and at least 2 allowed CPUs")
    before = os.sched_getaffinity(0)
    backend = LiteRTBackend(threads=1, settings=SETTINGS)
    model = backend.overhead_model((1, 3, 8, 8))
    calls: list[Any] = []
    real = os.sched_setaffinity
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cpus: (calls.append(set(cpus)), real(pid, cpus)))
    timing = backend.time_model(model, (1, 3, 8, 8))
    assert timing.repeats == 6 and timing.median > 0  # 2 passes of 3 runs
    assert len(calls) == 4 and all(len(c) == 1 for c in calls[::2]) and calls[1] == before  # pinned, then restored
    assert os.sched_getaffinity(0) == before
    from nas.export import to_onnx_bytes
    import torch

    with pytest.raises(LatencyTableError, match=r"backend 'litert': the model is not a LiteRT \(.tflite\) flatbuffer"):
        backend.time_model(to_onnx_bytes(torch.nn.ReLU(), (1, 3, 8, 8)), (1, 3, 8, 8))
    assert os.sched_getaffinity(0) == before


def test_backend_refusals() -> None:
    with pytest.raises(LatencyTableError, match=r"--threads: expected >= 1, got 0"):
        get_backend("litert", threads=0)
    with pytest.raises(LatencyTableError, match=r"--clock thread: .* valid only for --backend ort-cpu or litert with "
                                                r"--threads 1, got --backend litert --threads 2"):
        get_backend("litert", threads=2, settings=MeasureSettings(clock="thread"))
    thread_clock = get_backend("litert", threads=1, pin=False,
                               settings=MeasureSettings(warmup=0, min_repeats=2, max_repeats=2, min_seconds=0,
                                                        clock="thread"))
    assert thread_clock.time_model(thread_clock.overhead_model((1, 3, 8, 8)), (1, 3, 8, 8)).repeats == 2


def test_network_models_predict_like_the_table(litert_table: Path) -> None:
    """The table's correction maps its parts onto whole LiteRT networks timed now (a loose check: 2 networks)."""
    table = load_table(litert_table)
    backend = get_backend("litert", threads=1, settings=SETTINGS, pin=False)
    estimator = TableEstimator(table, on_missing="error", save=False)
    for compact in [row["arch"] for row in table.metadata["calibration"]["networks"]]:
        arch = parse_compact(compact)
        measured = backend.time_model(backend.network_model(arch), (1, 3, 8, 8)).median
        assert 0.2 < estimator.latency_ms(arch) / measured < 5, (to_compact(arch), measured)


def test_lut_fidelity_runs_on_a_litert_table(litert_table: Path, tmp_path: Path) -> None:
    from tests.conftest import load_benchmark

    fidelity = load_benchmark("lut_fidelity")
    assert fidelity.main(["--table", str(litert_table), "--space", str(NANO), "--networks", "3",
                          "--remeasure-parts", "1", "--passes", "1", "--out", str(tmp_path), "--jobs", "2",
                          "--models", str(tmp_path / "models")]) == 0
    # the 3 networks and the first one's parts, converted by 2 processes before any timing, kept for a re-run
    # (the nano space is small: two seeds can draw the same network, converted once)
    archs = [random_arch(load_space(NANO), 30_000 + i) for i in range(3)]
    distinct = len({to_compact(a) for a in archs}) + len({q.signature for q in arch_parts(archs[0])})
    assert len(list((tmp_path / "models").iterdir())) == distinct
    stem = f"lut_fidelity_{litert_table.stem}"  # never the shipped table's lut_fidelity.md
    text = (tmp_path / f"{stem}.md").read_text()
    assert "backend litert (ai-edge-litert" in text and "3 random networks of 'nano_test'" in text
    assert (tmp_path / f"{stem}.csv").exists() and (tmp_path / f"{stem}.png").exists()
    assert not (tmp_path / "lut_fidelity.md").exists()


def test_lut_devices_compares_the_two_runtimes(litert_table: Path, tmp_path: Path) -> None:
    from tests.conftest import load_benchmark

    devices = load_benchmark("lut_devices")
    ort = tmp_path / "ort.json"
    assert main(["lut", "build", "--space", str(NANO), "--backend", "ort-cpu", "-o", str(ort), *FAST]) == 0
    shutil.copy(NANO, tmp_path / NANO.name)  # where the benchmark finds the tables' space
    litert = Path(shutil.copy(litert_table, tmp_path / "litert.json"))
    text = devices.run(ort, litert, tmp_path, "pair", networks=20)
    assert "Two runtimes: A ort-cpu" in text and "B litert (ai-edge-litert" in text and "XNNPACK" in text
    assert "(ONNX NCHW, LiteRT NHWC)" in text and (tmp_path / "pair.csv").exists()
    # the results' names: the named pairs keep theirs, any other pair is named after its tables
    assert devices.stem_for("x", "y", "runtimes") == "lut_devices_runtimes"
    assert devices.stem_for(devices.PAIRS["threads"][0], devices.PAIRS["threads"][1], None) == "lut_devices"
    assert devices.stem_for(ort, litert, None) == "lut_devices_ort_vs_litert"


def test_retrain_predicts_but_never_measures_its_onnx_export_on_a_litert_table(litert_table: Path) -> None:
    """``nas retrain`` exports ONNX: timing it with LiteRT would fail on every resume, and mean another runtime."""
    from nas.retrain.latency import LatencyProbe

    table = load_table(litert_table)
    assert is_local_table(table) and not LatencyProbe(table).local
