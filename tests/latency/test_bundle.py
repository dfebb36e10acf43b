"""Device bundles: make one for the tiny space, run its runner in a separate process as if this
machine were the device, import the results and compare with a table built here."""

from __future__ import annotations

import argparse
import ast
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nas.cli import main
from nas.cli.lut_remote import register_remote
from nas.errors import LatencyTableError
from nas.latency import TableEstimator, arch_parts, load_table
from nas.latency.build import CALIBRATION_SEED, build_table, calibration_archs, space_parts
from nas.latency.bundle import BUNDLE_FORMAT, make_bundle, runner_source
from nas.latency.importer import import_results
from nas.latency.measure import MeasureSettings, OrtBackend
from nas.latency.bundle_runner import LIMIT_HELP
from nas.space import load_space
from tests.conftest import REPO, TINY_SPACE

# Cheap, but enough repeats that medians of ~10-50 us blocks are stable on a busy machine; 2 interleaved passes.
SETTINGS = MeasureSettings(warmup=2, min_repeats=10, max_repeats=10, min_seconds=0, passes=2)
CALIBRATION = 4
# the resume/error runs only need to finish quickly
FAST = ["--warmup", "0", "--repeats", "1", "--max-repeats", "1", "--min-seconds", "0", "--no-pin"]


@pytest.fixture(scope="module")
def space():  # type: ignore[no-untyped-def]
    return load_space(TINY_SPACE)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, space) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("bundle") / "tiny_bundle.zip"
    summary = make_bundle(space, path, calibration=CALIBRATION, progress=False, settings=SETTINGS)
    assert summary.path == path and summary.entries == 130 and summary.calibration == CALIBRATION
    return path


@pytest.fixture(scope="module")
def runner(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``run_bundle.py`` extracted on its own, as the device owner might."""
    folder = tmp_path_factory.mktemp("device")
    with zipfile.ZipFile(bundle) as zf:
        zf.extract("run_bundle.py", folder)
    return folder / "run_bundle.py"


def run_device(*args: Any, python: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *python, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def results(bundle: Path, runner: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("device_out") / "results.json"
    proc = run_device(runner, bundle, "-o", out, "--no-pin", python=("-I",))  # -I: no PYTHONPATH, no nas
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stderr and "[270/270] 100.0%" in proc.stderr  # 135 models x 2 passes, no tqdm
    assert not Path(f"{out}.partial").exists()  # merged into the final file
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


# ---------------------------------------------------------------------------------- the runner
def test_runner_needs_only_stdlib_numpy_and_onnxruntime(bundle: Path) -> None:
    source = runner_source()
    with zipfile.ZipFile(bundle) as zf:
        assert zf.read("run_bundle.py").decode() == source  # the module file, verbatim
    tree = ast.parse(source, feature_version=(3, 8))  # also: no syntax newer than Python 3.8
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "the runner is a standalone script: no relative imports"
            imported.add(str(node.module).split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "import_runtime":
            imported.add(node.args[0].value.split(".")[0])  # import_runtime("onnxruntime", ...): imported by name
    assert {"numpy", "onnxruntime"} <= imported
    outside = imported - set(sys.stdlib_module_names) - {"numpy", "onnxruntime"}
    assert not outside, f"run_bundle.py imports {outside}; the device only has the stdlib, numpy and onnxruntime"
    assert "__future__" in imported  # postponed annotations keep 'X | None' hints valid on Python 3.8


def test_bundle_contents(bundle: Path, space) -> None:  # type: ignore[no-untyped-def]
    with zipfile.ZipFile(bundle) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        infos = {i.filename: i for i in zf.infolist()}
        readme = zf.read("README.txt").decode()
    assert manifest["format"] == BUNDLE_FORMAT and manifest["opset"] >= 13
    assert manifest["space"] == {"name": "tiny_test", "file": str(TINY_SPACE), "digest": space.digest}
    assert (manifest["input_size"], manifest["in_ch"], manifest["num_classes"]) == (16, 3, 10)
    assert manifest["settings"] == SETTINGS.to_dict()
    sigs = [e["signature"] for e in manifest["entries"]]
    assert sigs == [p.signature for p in space_parts(space)]
    assert all(e["file"] in names for e in manifest["entries"]) and manifest["overhead"]["file"] in names
    assert manifest["entries"][0]["input_shape"] == [1, 3, 16, 16]
    assert [c["seed"] for c in manifest["calibration"]] == [CALIBRATION_SEED + i for i in range(CALIBRATION)]
    archs = calibration_archs(space, CALIBRATION)
    for c, (seed, _, arch) in zip(manifest["calibration"], archs, strict=True):
        assert c["file"] in names and set(c["parts"]) <= set(sigs)
        assert c["seed"] == seed and c["parts"] == [p.signature for p in arch_parts(arch)]
    assert {"run_bundle.py", "__main__.py", "README.txt"} <= names
    assert "python3 tiny_bundle.zip -o results.json" in readme and "nas lut import" in readme
    assert f"--limit N ({LIMIT_HELP})" in " ".join(readme.split())  # as the runner's --help says it
    models = [i for n, i in infos.items() if n.startswith("models/")]
    assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in models)
    # constant timing weights compress by orders of magnitude
    assert sum(i.file_size for i in models) > 20 * sum(i.compress_size for i in models)


def _earlier_bundle(path: Path) -> bytes:
    """Write the smallest zip that counts as an earlier bundle (its manifest's format) at ``path``."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", json.dumps({"format": BUNDLE_FORMAT}))
    return path.read_bytes()


def test_bundle_output_never_replaces_anything_but_a_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "ort-cpu-1t.json"
    shutil.copy(REPO / "latency_tables" / "ort-cpu-1t.json", table)  # a copy: the shipped table is never touched
    notes = tmp_path / "notes.zip"
    notes.write_text("not a zip")
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.txt", "a zip, but no bundle")
    before = {p: p.read_bytes() for p in (table, notes, archive)}
    cases = [(table, "-o names a .json file, but a bundle is a zip: use e.g. -o bundle.zip"),
             (tmp_path / "new.JSON", "-o names a .json file"),
             (notes, "already exists and is not a bundle zip made by 'nas lut bundle'"),
             (archive, "already exists and is not a bundle zip made by 'nas lut bundle'"),
             (tmp_path, "already exists and is not a bundle zip")]
    for out, fragment in cases:
        assert main(["lut", "bundle", "--space", str(TINY_SPACE), "-o", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {out}: {fragment}") and err.count("\n") == 1, err
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in before)


def test_make_bundle_is_atomic(tmp_path: Path, space, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import nas.latency.bundle as bundle_module

    calls = []

    def failing(self, module, shape):  # type: ignore[no-untyped-def]
        calls.append(module)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return b"onnx"

    monkeypatch.setattr(type(bundle_module.model_format("onnx")), "export", failing)
    target = tmp_path / "b.zip"
    previous = _earlier_bundle(target)
    with pytest.raises(KeyboardInterrupt):
        make_bundle(space, target, calibration=0, progress=False)
    assert target.read_bytes() == previous  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.zip"]  # no temp file left behind
    with pytest.raises(LatencyTableError, match="--calibration: expected 0 to 1000"):
        make_bundle(space, target, calibration=-1, progress=False)


def test_remote_results_agree_with_a_local_build(results: Path, tmp_path: Path, space) -> None:  # type: ignore[no-untyped-def]
    imported = import_results(results, tmp_path / "remote.json", device_name="this box")
    backend = OrtBackend("ort-cpu", threads=1, settings=SETTINGS, pin=False)
    built = build_table(space, backend, tmp_path / "local.json", calibration=CALIBRATION, progress=False)

    # same metadata fields as 'nas lut build', plus where the results came from
    assert set(imported.metadata) == set(built.metadata) | {"remote"}
    meta = imported.metadata
    assert meta["device"] == "this box (remote bundle)" and meta["backend"] == "ort-cpu"
    assert meta["execution_provider"] == "CPUExecutionProvider" and meta["threads"] == 1
    assert meta["cpu"] == built.metadata["cpu"] and meta["space"] == built.metadata["space"]
    assert meta["measurement"] == built.metadata["measurement"] and meta["complete"] is True
    assert meta["calibration"]["overhead_ms"] > 0 and len(meta["calibration"]["networks"]) == CALIBRATION
    assert imported.correction.fitted_on == CALIBRATION and imported.correction.per_part_overhead_ms > 0
    assert all(e.source == "measured" and e.repeats == 20 for e in imported.entries.values())  # 2 passes of 10
    assert meta["measurement"]["passes"] == 2 and "minimum over 2 passes" in meta["measurement"]["protocol"]

    shared = sorted(set(imported.entries) & set(built.entries))
    assert len(shared) == len(built.entries) == 130
    remote = np.array([imported.entries[s].median for s in shared])
    local = np.array([built.entries[s].median for s in shared])
    rho, ratio = spearman(remote, local), float(np.median(remote / local))
    print(f"\nremote vs local: spearman {rho:.3f}, median ratio {ratio:.3f}")
    # Bounds for a machine shared with other jobs, where two runs minutes apart see different loads (observed
    # here under load: rho 0.65..0.74, ratio 0.66..0.88; a CI run saw a whole table off by MAPE 75 %, Spearman
    # 0.98, between its build and its validation). They still catch entries swapped, mislabelled or in the wrong
    # unit.
    assert rho >= 0.5, f"rank correlation of remote and local entries {rho:.3f} < 0.5"
    low, high = 1 / 3, 3.0
    assert low <= ratio <= high, f"median remote/local ratio {ratio:.3f} outside [1/3, 3]"

    # the saved table loads, and predicts a calibration network within noise of its measurement
    table = load_table(tmp_path / "remote.json")
    arch = calibration_archs(space, CALIBRATION)[0][2]
    pred = TableEstimator(table, on_missing="error", save=False).predict(arch)
    measured = meta["calibration"]["networks"][0]["measured_ms"]
    assert pred.total_ms == pytest.approx(measured, rel=0.5)


def test_runner_resumes_without_remeasuring(bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    partial = Path(f"{out}.partial")

    def records() -> list[dict[str, Any]]:
        return [json.loads(line) for line in partial.read_text().splitlines()]

    # the zip runs itself through its __main__.py: python bundle.zip ...
    first = run_device(bundle, "-o", out, "--limit", "5", *FAST)
    assert first.returncode == 3, first.stderr
    assert "stopped after 5 timing passes (--limit)" in first.stderr and not out.exists()
    head, *done = records()
    assert head["kind"] == "header" and len(done) == 5

    second = run_device(bundle, "-o", out, "--limit", "5", *FAST)
    assert second.returncode == 3 and "resuming: 5 passes already in" in second.stderr
    now = records()
    assert now[: 6] == [head, *done]  # earlier lines untouched
    keys = [r["key"] for r in now[1:]]
    assert len(keys) == 10 and len(set(keys)) == 10  # nothing measured twice
    assert {r["pass"] for r in now[1:]} == {1}  # pass 1 goes over every model before any gets a second

    # a different measurement setting cannot continue the same partial file
    clash = run_device(bundle, "-o", out, *FAST[:-1], "--threads", "2")
    assert clash.returncode == 2 and "started with threads=1 but this run has 2" in clash.stderr
    assert "Traceback" not in clash.stderr
    pinned = run_device(bundle, "-o", out, *FAST[:-1])  # without --no-pin: pinning moves the timings too
    assert pinned.returncode == 2 and "started with pinned=False but this run has True" in pinned.stderr
    lines = partial.read_text().splitlines(keepends=True)  # as if started by another onnxruntime version
    partial.write_text(json.dumps({**head, "runtime": "onnxruntime 0"}) + "\n" + "".join(lines[1:]))
    upgraded = run_device(bundle, "-o", out, *FAST)
    assert upgraded.returncode == 2 and "started with runtime='onnxruntime 0' but this run has 'onnxruntime " \
        in upgraded.stderr
    partial.write_text("".join(lines))

    with partial.open("a") as f:  # as if killed while writing a line
        f.write('{"key": "entry:stem_i3_o8_k3_s1_relu_r16", "timing": {"med')
    last = run_device(bundle, "-o", out, *FAST)  # as it was started: without pinning
    assert last.returncode == 0, last.stderr
    assert "resuming: 10 passes already in" in last.stderr
    final = json.loads(out.read_text())
    for rec in now[1:]:  # kept, not re-measured: each entry is the faster of the kept pass and a new second one
        if rec["key"].startswith("entry:"):
            entry = final["entries"][rec["key"][len("entry:"):]]
            assert entry["repeats"] == 2 and entry["median"] <= rec["timing"]["median"]
    assert len(final["entries"]) == 130 and len(final["calibration"]) == CALIBRATION
    assert final["settings"]["min_repeats"] == 1 and not partial.exists()
    assert final["device"]["pinned_cpus"] is None

    again = run_device(bundle, "-o", out, *FAST)
    assert again.returncode == 2 and "already exists" in again.stderr  # a finished run is never overwritten


def test_runner_reads_an_extracted_folder(bundle: Path, tmp_path: Path) -> None:
    folder = tmp_path / "extracted"
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(folder)
    out = tmp_path / "r.json"
    proc = run_device(folder / "run_bundle.py", "-o", out, "--limit", "3", *FAST)  # bundle: the script's folder
    assert proc.returncode == 3, proc.stderr
    assert f"{folder}: timing 135 models" in proc.stderr
    assert len(Path(f"{out}.partial").read_text().splitlines()) == 1 + 3
    help_text = run_device(folder / "run_bundle.py", "--help", python=("-I", "-S")).stdout  # --help needs no numpy
    assert "--provider" in help_text and "--limit N" in help_text
    assert LIMIT_HELP in " ".join(help_text.split())  # as README.txt says it


def test_runner_errors_are_messages(bundle: Path, runner: Path, tmp_path: Path) -> None:
    def check(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
        assert proc.returncode == 2, proc.stderr
        assert fragment in proc.stderr and "Traceback" not in proc.stderr

    out = tmp_path / "r.json"
    check(run_device(runner, tmp_path / "nowhere.zip", "-o", out), "no such bundle")
    garbled = tmp_path / "garbled.zip"
    garbled.write_bytes(b"PK\x03\x04 this is not a zip file at all")
    check(run_device(runner, garbled, "-o", out), "not a readable bundle zip")
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("hello.txt", "hi")
    check(run_device(runner, empty, "-o", out), "manifest.json is missing from the bundle")
    bad = tmp_path / "bad_manifest"
    bad.mkdir()
    (bad / "manifest.json").write_text(json.dumps({"format": BUNDLE_FORMAT, "entries": []}))
    check(run_device(runner, bad, "-o", out), "manifest.json: space: missing")
    check(run_device(runner, bundle, "-o", out, "--provider", "NoSuchExecutionProvider"),
          "not 'NoSuchExecutionProvider'; pick one of those")
    # -S: no site-packages, i.e. a Python without numpy and onnxruntime installed
    check(run_device(runner, bundle, "-o", out, python=("-I", "-S")), "needs numpy and onnxruntime")
    for value in ("nan", "inf"):  # no results file could hold them
        check(run_device(runner, bundle, "-o", out, "--min-seconds", value), "--min-seconds: expected a number from "
                                                                              "0 to 3600")
    assert not out.exists() and not Path(f"{out}.partial").exists()


def test_runner_starts_afresh_from_a_partial_file_killed_before_its_header(bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    partial = Path(f"{out}.partial")
    for leftover in ("", '{"kind": "head'):  # created, or its header cut off, when the kill came
        partial.write_text(leftover)
        proc = run_device(bundle, "-o", out, "--limit", "2", *FAST)
        assert proc.returncode == 3, proc.stderr
        lines = [json.loads(line) for line in partial.read_text().splitlines()]
        assert lines[0]["kind"] == "header" and len(lines) == 3


# ---------------------------------------------------------------------------------- the import
def test_import_refuses_to_overwrite(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "table.json"
    out.write_text("an older table")
    with pytest.raises(LatencyTableError, match=r"table.json: already exists; importing never overwrites"):
        import_results(results, out)
    assert out.read_text() == "an older table"


def _mutate(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split("/")
    for key in parents:
        data = data[int(key)] if isinstance(data, list) else data[key]
    if value is KeyError:
        del data[last]
    else:
        data[last] = value


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        ("overhead_ms", KeyError, "overhead_ms: missing"),
        ("device/provider", KeyError, "device.provider: missing"),
        ("bundle/space/digest", 7, "bundle.space.digest: expected a non-empty string, got 7"),
        ("settings/min_repeats", 0, "settings.min_repeats: expected an integer >= 1, got 0"),
        ("entries/stem_i3_o8_k3_s1_relu_r16/median", float("nan"),
         "entries['stem_i3_o8_k3_s1_relu_r16'].median: expected a positive, finite number, got nan"),
        ("entries/stem_i3_o8_k3_s1_relu_r16/p90", KeyError, "entries['stem_i3_o8_k3_s1_relu_r16'].p90: missing"),
        ("entries/stem_i3_o8_k3_s1_relu_r16/p10", 1.0, "expected p10 <= median <= p90"),
        ("entries/stem_i3_o8_k3_s1_relu_r16/p90", 1e9, "p90: 1000000000.0 ms is more than a minute"),
        ("calibration/0/measured_ms", float("inf"), "calibration[0].measured_ms: expected a positive, finite number"),
        ("calibration/1/parts", ["ir_i9_m9_o9_k3_s1_se0_relu_r16"], "calibration[1].parts: 'ir_i9_m9_o9_k3_s1_se0"),
        ("format", "something else", "format: expected 'nas-latency-results/1'"),
    ],
)
def test_import_rejects_broken_results(results: Path, tmp_path: Path, path: str, value: Any, fragment: str) -> None:
    data = json.loads(results.read_text())
    _mutate(data, path, value)
    broken = tmp_path / "broken_results.json"
    broken.write_text(json.dumps(data))  # NaN/Infinity are written as JSON's non-standard literals
    with pytest.raises(LatencyTableError) as info:
        import_results(broken, tmp_path / "t.json")
    assert str(info.value).startswith(f"{broken}: ") and fragment in str(info.value)
    assert not (tmp_path / "t.json").exists()


def test_import_rejects_non_json(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text('{"format": "nas-latency-results/1", "entries": {')
    with pytest.raises(LatencyTableError, match=r"results.json: not valid JSON"):
        import_results(path, tmp_path / "t.json")
    with pytest.raises(LatencyTableError, match=r"missing.json: results file not found"):
        import_results(tmp_path / "missing.json", tmp_path / "t.json")


def test_cli_parses_and_imports(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="nas lut")
    register_remote(parser.add_subparsers(dest="lut_command", required=True))
    args = parser.parse_args(["bundle", "--space", "s.yaml", "-o", "b.zip", "--calibration", "3", "--no-references",
                              "--repeats", "5", "--quiet"])
    assert (args.space, args.output, args.calibration, args.no_references, args.repeats, args.quiet) == \
        ("s.yaml", "b.zip", 3, True, 5, True)
    assert args.func.__name__ == "_bundle"
    out = tmp_path / "t.json"
    args = parser.parse_args(["import", str(results), "-o", str(out), "--device-name", "Pi 4"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}: 130 entries measured on Pi 4 (remote bundle) (ort-cpu, 1 thread(s)" in text
    assert "correction: latency = " in text and f"on {CALIBRATION} networks" in text
    assert load_table(out).metadata["device"] == "Pi 4 (remote bundle)"
