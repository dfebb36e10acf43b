"""LiteRT bundles (``nas lut bundle --format tflite``): a phone measured through a stand-in ``adb``, a Linux board
through ``run_python.py``, real ``benchmark_model`` output parsed, the results imported as a ``litert`` table.

No phone is attached here: ``adb`` on PATH is a stand-in that records every command it is given and runs
``adb shell`` commands on this machine, with the phone's ``/data/local/tmp`` mapped to a folder; the
``benchmark_model`` pushed to the "phone" is a stand-in that times the model with ai-edge-litert on this
machine and prints its statistics as LiteRT's ``benchmark_model`` does. What the tests check is what
``run_android.sh`` does with adb and how its outputs become a table.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from nas.cli import main
from nas.errors import LatencyTableError
from nas.latency import TableEstimator, load_table
from nas.latency.bundle import TFLITE_BUNDLE_FORMAT, make_bundle
from nas.latency.importer import import_results
from nas.latency.litert_runner import RunnerError, file_key, parse_benchmark_output
from nas.latency.measure import MeasureSettings
from nas.space import load_space, random_arch
from tests.litert import require_litert

require_litert()

NANO = Path(__file__).with_name("nano_space.yaml")
FIXTURE = Path(__file__).parent / "fixtures" / "litert_benchmark_model_output.txt"
SETTINGS = MeasureSettings(warmup=2, min_repeats=5, max_repeats=20, min_seconds=0, passes=2)
MODELS = 4 + 1 + 2  # parts, overhead, calibration networks

FAKE_ADB = '''#!{python}
"""Stand-in adb: records its arguments, maps the phone's /data/local/tmp to $FAKE_PHONE, runs shell commands here."""
import json, os, shutil, subprocess, sys
root, args = os.environ["FAKE_PHONE"], sys.argv[1:]
with open(os.environ["FAKE_ADB_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[:1] == ["-s"]:
    args = args[2:]
def here(path):
    return path.replace("/data/local/tmp", root + "/data/local/tmp")
if args == ["get-state"]:
    print(os.environ.get("FAKE_STATE", "device"))
    sys.exit(0)
if args[0] == "push":
    src, dst = args[1], here(args[2])
    if os.path.isdir(src):
        shutil.copytree(src, os.path.join(dst, os.path.basename(src.rstrip("/"))), dirs_exist_ok=True)
    else:
        shutil.copy(src, dst)
    sys.exit(0)
if args[0] == "shell" and args[1] == "getprop":
    print({{"ro.product.manufacturer": "Google", "ro.product.model": "Pixel 7", "ro.soc.model": "GS201",
           "ro.hardware": "panther", "ro.product.cpu.abi": "arm64-v8a",
           "ro.build.version.release": "14"}}.get(args[2], ""))
    sys.exit(0)
if args[0] == "shell":
    sys.exit(subprocess.run(["sh", "-c", here(" ".join(args[1:]))]).returncode)
sys.exit("fake adb: unknown command " + " ".join(args))
'''

FAKE_BENCHMARK_MODEL = '''#!{python}
"""Stand-in benchmark_model: times --graph with ai-edge-litert (XNNPACK) here, prints LiteRT's statistics lines."""
import hashlib, sys, time
import numpy as np
from ai_edge_litert import interpreter as lite
opts = dict(a[2:].split("=", 1) for a in sys.argv[1:])
it = lite.Interpreter(model_path=opts["graph"], num_threads=int(opts["num_threads"]))
it.allocate_tensors()
d = it.get_input_details()[0]
it.set_tensor(d["index"], np.zeros(d["shape"], np.float32))
def stats(n):
    us = []
    for _ in range(n):
        t0 = time.perf_counter_ns(); it.invoke(); us.append((time.perf_counter_ns() - t0) // 1000)
    a = np.array(us)
    return (f"count={{len(a)}} first={{a[0]}} curr={{a[-1]}} min={{a.min()}} max={{a.max()}} avg={{a.mean():g}} "
            f"std={{int(a.std())}} p5={{int(np.percentile(a, 5))}} median={{int(np.median(a))}} "
            f"p95={{int(np.percentile(a, 95))}}")
print("INFO: STARTING!")
print("INFO: Graph: [" + opts["graph"] + "]")
print("INFO: Graph SHA-256 (stand-in only): " + hashlib.sha256(open(opts["graph"], "rb").read()).hexdigest())
print("INFO: Num threads: [" + opts["num_threads"] + "]")
print("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
print("INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.")
print("INFO: " + stats(max(int(opts["warmup_runs"]), 1)))
print()
print("INFO: Running benchmark for at least " + opts["num_runs"] + " iterations and at least 1 seconds but terminate if exceeding 150 seconds.")
print("INFO: " + stats(int(opts["num_runs"])))
'''


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tflite") / "pixel.zip"
    summary = make_bundle(load_space(NANO), path, fmt="tflite", calibration=2, progress=False, settings=SETTINGS)
    assert summary.entries == 4 and summary.calibration == 2
    return path


@pytest.fixture(scope="module")
def extracted(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return extract(bundle, tmp_path_factory.mktemp("extracted") / "pixel")


def extract(bundle: Path, folder: Path) -> Path:
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(folder)
        for info in zf.infolist():  # zipfile does not restore permissions
            if info.external_attr >> 16 & 0o111:
                os.chmod(folder / info.filename, 0o755)
    return folder


class Phone:
    """The stand-in adb and benchmark_model, and what adb was asked to do."""

    def __init__(self, root: Path) -> None:
        self.root = root
        bin_dir = root / "bin"
        bin_dir.mkdir(parents=True)
        for name, text in (("adb", FAKE_ADB), ("android_aarch64_benchmark_model", FAKE_BENCHMARK_MODEL)):
            (bin_dir / name).write_text(text.format(python=sys.executable))
            (bin_dir / name).chmod(0o755)
        self.binary = bin_dir / "android_aarch64_benchmark_model"
        self.log = root / "adb.log"
        (root / "phone" / "data" / "local" / "tmp").mkdir(parents=True)
        self.env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_PHONE": str(root / "phone"),
                    "FAKE_ADB_LOG": str(self.log)}

    def commands(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def benchmark_runs(self) -> list[str]:
        return [c[-1] for c in self.commands() if c[0] == "shell" and "benchmark_model --graph=" in c[-1]]

    def run(self, folder: Path, *args: Any, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(folder / "run_android.sh"), *map(str, args)], cwd=folder, text=True,
                              capture_output=True, env={**self.env, **env}, timeout=600)


@pytest.fixture(scope="module")
def phone_results(extracted: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Phone, Path]:
    """A run interrupted by --limit, then resumed to the end."""
    root = tmp_path_factory.mktemp("phone")
    phone = Phone(root)
    out = root / "results.json"
    args = ("--benchmark-model", phone.binary, "-o", out, "--cpu-mask", "1", "--runs", "7", "--warmup", "2")
    first = phone.run(extracted, *args, "--limit", "3")
    assert first.returncode == 3, first.stderr
    assert "stopped after 3 runs (--limit); re-run the same command to continue" in first.stderr
    assert len(phone.benchmark_runs()) == 3 and not out.exists()
    second = phone.run(extracted, *args)
    assert second.returncode == 0, second.stderr
    assert f"wrote {out}" in second.stderr
    return phone, out


# ---------------------------------------------------------------------------------- benchmark_model's output
def test_parses_litert_documentation_sample() -> None:
    text = FIXTURE.read_text()
    parsed = parse_benchmark_output(text)
    # the timed block (count=1054), not the warm-up block (count=526); microseconds to ms
    assert parsed == {"median": 0.942, "p10": 0.915, "p90": 0.991, "repeats": 1054, "statistic": "median",
                      "spread": "benchmark_model's p5/p95 as p10/p90", "warmup_runs": 526, "xnnpack": True}
    # older TensorFlow Lite binaries print no percentiles: the mean, with min/max as the spread, and said so
    older = parse_benchmark_output(re.sub(r" p5=\S+ median=\S+ p95=\S+", "", text))
    assert (older["median"], older["p10"], older["p90"], older["statistic"]) == (0.947132, 0.91, 1.102, "mean")
    # logcat lines of the Android benchmark app, scientific notation, all runs equal
    logcat = ("I tflite  : Running benchmark for at least 1 iterations and at least 0.5 seconds\n"
              "I tflite  : count=1 curr=3512391\n"
              "I tflite  : Running benchmark for at least 50 iterations and at least 1 seconds\n"
              "I tflite  : count=50 first=2990275 curr=2913402 min=2727568 max=3189954 avg=2.95034e+06 std=109798\n")
    assert parse_benchmark_output(logcat)["median"] == pytest.approx(2950.34)
    same = parse_benchmark_output("Running benchmark for at least 1 iterations\ncount=3 curr=40(all same)\n"
                                  "Running benchmark for at least 5 iterations\ncount=5 curr=41(all same)\n")
    assert (same["median"], same["p10"], same["p90"], same["repeats"]) == (0.041, 0.041, 0.041, 5)


def test_output_without_timed_runs_is_one_error() -> None:
    with pytest.raises(RunnerError, match=r"x.txt: no timed runs found .* its last lines: .*Failed to load model"):
        parse_benchmark_output("STARTING!\nGraph: [/data/local/tmp/m.tflite]\nFailed to load model\n", where="x.txt")


# ---------------------------------------------------------------------------------- the bundle
def test_bundle_layout(bundle: Path, extracted: Path) -> None:
    with zipfile.ZipFile(bundle) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
    assert {"manifest.json", "models.tsv", "run_android.sh", "run_python.py", "run_bundle.py", "__main__.py",
            "README.txt", "models/overhead.tflite"} <= names
    assert manifest["format"] == TFLITE_BUNDLE_FORMAT and manifest["model_format"] == "tflite"
    assert manifest["converter"].startswith("litert-torch ") and "opset" not in manifest
    assert all(e["file"].endswith(".tflite") for e in manifest["entries"])
    assert manifest["entries"][0]["input_shape"] == [1, 8, 8, 3]  # NHWC
    for name in names:
        if name.endswith(".tflite"):
            assert (extracted / name).read_bytes()[4:8] == b"TFL3"
    rows = [line.split("\t") for line in (extracted / "models.tsv").read_text().splitlines()]
    assert len(rows) == MODELS and rows[0] == [file_key("entry:" + manifest["entries"][0]["signature"]),
                                               manifest["entries"][0]["file"]]
    script = (extracted / "run_android.sh").read_text()
    assert "@" + "THREADS@" not in script and "WARMUP=2\nRUNS=5\nMIN_SECS=0\nPASSES=2" in script
    readme = (extracted / "README.txt").read_text()
    assert "run_android.sh --benchmark-model" in readme and "pip install numpy ai-edge-litert" in readme


def test_device_scripts_need_no_nas(extracted: Path) -> None:
    for name in ("run_python.py", "run_bundle.py"):
        tree = ast.parse((extracted / name).read_text())
        roots = {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        roots |= {a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        assert not roots & {"torch", "onnx", "litert_torch"}, (name, roots)
        assert "nas" not in roots or name == "run_python.py"  # run_python.py falls back to nas only inside nas


# ---------------------------------------------------------------------------------- the phone, over adb
def test_android_run_pushes_runs_resumes_and_collects(phone_results: tuple[Phone, Path], extracted: Path) -> None:
    phone, out = phone_results
    commands = phone.commands()
    pushes = [c for c in commands if c[0] == "push"]
    # pushed once (the resumed run did not push again): the models, the calibration networks, the binary
    assert [Path(c[1]).name for c in pushes] == ["models", "calibration", "android_aarch64_benchmark_model"]
    assert pushes[-1][2] == "/data/local/tmp/nas-bundle/benchmark_model"
    assert ["shell", "chmod", "755", "/data/local/tmp/nas-bundle/benchmark_model"] in commands
    runs = phone.benchmark_runs()
    assert len(runs) == MODELS * 2  # every model in both passes, none twice (the 3 of the first run kept)
    assert len(set(runs)) == MODELS  # each model's command is the same in both passes
    for command in runs:
        assert command.startswith("taskset 1 /data/local/tmp/nas-bundle/benchmark_model --graph=/data/local/tmp/")
        assert "--num_threads=1 --warmup_runs=2 --num_runs=7 --min_secs=0" in command
    models = [line.split("\t")[1] for line in (extracted / "models.tsv").read_text().splitlines()]
    assert [r.split("--graph=/data/local/tmp/nas-bundle/")[1].split()[0] for r in runs[:MODELS]] == models  # pass 1
    assert ["shell", "rm", "-rf", "/data/local/tmp/nas-bundle"] == commands[-1]  # cleaned up at the end
    results = json.loads(out.read_text())
    assert results["device"]["runtime"] == "litert" and results["device"]["provider"] == "XNNPACK"
    assert results["device"]["description"] == "Google Pixel 7 (GS201), Android 14, arm64-v8a"
    assert results["device"]["cpu_mask"] == "1" and results["device"]["litert"].startswith("benchmark_model")
    assert results["settings"]["statistic"] == "median" and results["settings"]["min_repeats"] == 7
    assert len(results["entries"]) == 4 and len(results["calibration"]) == 2
    for timing in results["entries"].values():
        assert 0 < timing["p10"] <= timing["median"] <= timing["p90"] and timing["repeats"] == 14  # 7 runs x 2 passes
    raw = Path(f"{out}.raw")
    assert sorted(p.name for p in raw.iterdir()) == ["device.txt", "pass1", "pass2", "run.txt",
                                                     "settings.txt"]


def test_android_results_import_as_a_litert_table(phone_results: tuple[Phone, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _, results = phone_results
    out = tmp_path / "pixel_latency.json"
    assert main(["lut", "import", str(results), "-o", str(out), "--device-name", "Pixel 7"]) == 0
    assert "entries measured on Pixel 7 (remote bundle) (litert, 1 thread(s), benchmark_model" in capsys.readouterr().out
    table = load_table(out)
    meta = table.metadata
    assert (meta["backend"], meta["execution_provider"], meta["cpu"]) == ("litert", "XNNPACK", "GS201")
    assert meta["measurement"]["model_format"] == "tflite" and meta["measurement"]["converter"].startswith("litert")
    assert "opset" not in meta["measurement"] and "p5/p95" in meta["measurement"]["spread"]
    assert meta["remote"]["device"]["runtime"] == "litert" and table.correction.fitted_on == 2
    space = load_space(NANO)
    estimator = TableEstimator(table, on_missing="error", save=False)  # not this machine's: nothing is measured
    assert estimator.on_missing == "error" and estimator.predict(random_arch(space, 0)).total_ms > 0
    assert TableEstimator(table, save=False).on_missing == "interpolate"  # auto: a remote device's table


def test_android_run_refusals(extracted: Path, tmp_path: Path) -> None:
    phone = Phone(tmp_path)
    out = tmp_path / "r.json"

    def refused(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
        assert result.returncode == 2, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        for fragment in fragments:
            assert fragment in lines[0], (fragment, lines[0])

    refused(phone.run(extracted, "-o", out), "--benchmark-model PATH is required", "android_aarch64")
    refused(phone.run(extracted, "--benchmark-model", tmp_path / "none", "-o", out), "no such file")
    refused(phone.run(extracted, "--benchmark-model", phone.binary, "-o", out, "--threads", "0"),
            "--threads: expected a positive integer, got '0'")
    refused(phone.run(extracted, "--benchmark-model", phone.binary, "-o", out, "--cpu-mask", "zz"),
            "--cpu-mask: expected a hexadecimal CPU mask")
    refused(phone.run(extracted, "--benchmark-model", phone.binary, "-o", out, FAKE_STATE="unauthorized"),
            "no phone ready for adb", "unauthorized")
    refused(phone.run(extracted, "--benchmark-model", phone.binary, "-o", out, PATH="/usr/bin:/bin"),
            "adb not found on PATH")
    out.write_text("{}")
    refused(phone.run(extracted, "--benchmark-model", phone.binary, "-o", out), "already exists")
    out.unlink()
    assert not [c for c in phone.commands() if c[0] in ("push", "shell")]  # nothing reached the phone
    # a run started with other settings is not mixed with these
    assert phone.run(extracted, "--benchmark-model", phone.binary, "-o", out, "--limit", "1").returncode == 3
    refused(phone.run(extracted, "--benchmark-model", phone.binary, "-o", out, "--runs", "9"),
            "was started with other settings")
    # another build of benchmark_model under the same name times differently: known by its content
    other_build = tmp_path / "other" / Path(phone.binary).name
    other_build.parent.mkdir()
    other_build.write_text(Path(phone.binary).read_text() + "\n# another build\n")
    other_build.chmod(0o755)
    refused(phone.run(extracted, "--benchmark-model", other_build, "-o", out), "was started with other settings")
    # another phone attached: its timings are not merged under the first one's name
    device = Path(f"{out}.raw") / "device.txt"
    device.write_text(device.read_text().replace("model=Pixel 7", "model=Pixel 8"))
    refused(phone.run(extracted, "--benchmark-model", phone.binary, "-o", out), "was started on another phone",
            "model=Pixel 8")


def test_collecting_an_unfinished_run_is_one_error(extracted: Path, tmp_path: Path) -> None:
    phone = Phone(tmp_path)
    out = tmp_path / "r.json"
    assert phone.run(extracted, "--benchmark-model", phone.binary, "-o", out, "--limit", "2").returncode == 3
    proc = subprocess.run([sys.executable, str(extracted / "run_python.py"), str(extracted), "--from-android",
                           f"{out}.raw", "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "missing; the phone's run is not finished: run run_android.sh again" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


def timed_sha256(raw: Path) -> dict[str, str]:
    """``pass/key`` -> the SHA-256 of the model the stand-in benchmark_model timed for it (from the kept outputs)."""
    found = {}
    for path in sorted(raw.glob("pass*/*.txt")):
        match = re.search(r"Graph SHA-256 \(stand-in only\): ([0-9a-f]{64})", path.read_text())
        assert match, path
        found[f"{path.parent.name}/{path.stem}"] = match[1]
    return found


def local_sha256(folder: Path) -> dict[str, str]:
    """models.tsv's key -> the SHA-256 of that model in the extracted bundle ``folder``."""
    rows = [line.split("\t") for line in (folder / "models.tsv").read_text().splitlines()]
    return {key: hashlib.sha256((folder / file).read_bytes()).hexdigest() for key, file in rows}


def test_android_resume_pushes_again_after_another_bundle(extracted: Path, tmp_path: Path) -> None:
    """Bundle A interrupted, bundle B run on the same phone folder, A resumed: the marker on the phone names B's
    push, so A pushes its models again and times its own models, not B's (which have the same file names)."""
    wide = tmp_path / "wide_space.yaml"  # another space: the same parts and file names, other weights and shapes
    wide.write_text(NANO.read_text().replace("name: nano_test", "name: nano_wide_test")
                    .replace("stem: {channels: 8,", "stem: {channels: 16,"))
    other = tmp_path / "other.zip"
    make_bundle(load_space(wide), other, fmt="tflite", calibration=2, progress=False, settings=SETTINGS)
    b_folder = extract(other, tmp_path / "other")
    a_sha, b_sha = local_sha256(extracted), local_sha256(b_folder)
    a_files = [line.split("\t")[1] for line in (extracted / "models.tsv").read_text().splitlines()]
    b_files = [line.split("\t")[1] for line in (b_folder / "models.tsv").read_text().splitlines()]
    assert a_files == b_files  # B's models land on A's paths on the phone: only the marker tells them apart
    differ = [file for file, a_key, b_key in zip(a_files, a_sha, b_sha) if a_sha[a_key] != b_sha[b_key]]
    assert "models/00000.tflite" in differ and len(differ) >= 4  # the stem, blocks, the calibration networks

    phone = Phone(tmp_path / "device")
    a_out, b_out = tmp_path / "a.json", tmp_path / "b.json"
    args = ("--benchmark-model", phone.binary, "--runs", "3", "--warmup", "1")
    assert phone.run(extracted, *args, "-o", a_out, "--limit", "2").returncode == 3
    assert phone.run(b_folder, *args, "-o", b_out, "--limit", "2").returncode == 3
    resumed = phone.run(extracted, *args, "-o", a_out)
    assert resumed.returncode == 0, resumed.stderr
    assert "pushing the bundle's models" in resumed.stderr

    pushed = [Path(c[1]) for c in phone.commands() if c[0] == "push" and Path(c[1]).name == "models"]
    assert pushed == [extracted / "models", b_folder / "models", extracted / "models"]  # A, B, A again
    a_timed, b_timed = timed_sha256(Path(f"{a_out}.raw")), timed_sha256(Path(f"{b_out}.raw"))
    assert len(a_timed) == MODELS * 2 and len(b_timed) == 2
    assert a_timed == {k: a_sha[k.split("/", 1)[1]] for k in a_timed}  # A's models
    assert b_timed == {k: b_sha[k.split("/", 1)[1]] for k in b_timed}  # and B timed B's
    results = json.loads(a_out.read_text())
    manifest = (extracted / "manifest.json").read_bytes()
    assert results["bundle"]["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()
    assert set(results["entries"]) == {e["signature"] for e in json.loads(manifest)["entries"]}


# ---------------------------------------------------------------------------------- a Linux board
def test_board_run_with_run_python(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "board.json"
    fast = ["--warmup", "1", "--repeats", "3", "--max-repeats", "3", "--min-seconds", "0", "--no-pin"]
    proc = subprocess.run([sys.executable, "-I", str(bundle), "-o", str(out), *fast, "--limit", "2"],
                          capture_output=True, text=True, timeout=300)  # -I: no PYTHONPATH, so no nas
    assert proc.returncode == 3, proc.stderr
    proc = subprocess.run([sys.executable, "-I", str(bundle), "-o", str(out), *fast], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "resuming: 2 passes already in" in proc.stderr
    results = json.loads(out.read_text())
    assert results["device"]["litert"].startswith("ai-edge-litert ") and results["device"]["provider"] == "XNNPACK"
    assert all(t["repeats"] == 6 for t in results["entries"].values())  # 3 runs x 2 passes
    table = import_results(out, tmp_path / "board_table.json", device_name="this box as a board")
    assert table.metadata["backend"] == "litert" and table.metadata["backend_version"].startswith("ai-edge-litert")
    # an ONNX runner refuses a LiteRT bundle, naming the runner to use
    with zipfile.ZipFile(bundle) as zf:
        (tmp_path / "run_bundle.py").write_bytes(zf.read("run_bundle.py"))
    proc = subprocess.run([sys.executable, "-I", str(tmp_path / "run_bundle.py"), str(bundle), "-o",
                           str(tmp_path / "x.json")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "run_python.py or run_android.sh" in proc.stderr


def test_results_of_an_unknown_runtime_are_refused(phone_results: tuple[Phone, Path], tmp_path: Path) -> None:
    _, results = phone_results
    data = json.loads(results.read_text())
    data["device"]["runtime"] = "tvm"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(LatencyTableError, match=r"device.runtime: expected 'onnxruntime' or 'litert', got 'tvm'"):
        import_results(bad, tmp_path / "t.json")
    del data["device"]["runtime"], data["device"]["litert"]  # read as onnxruntime results: its version is missing
    bad.write_text(json.dumps(data))
    with pytest.raises(LatencyTableError, match=r"device.*onnxruntime"):
        import_results(bad, tmp_path / "t.json")


def test_cli_bundle_tflite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.zip"
    assert main(["lut", "bundle", "--space", str(NANO), "--format", "tflite", "-o", str(out), "--calibration", "0",
                 "--quiet", "--passes", "1"]) == 0
    text = capsys.readouterr().out
    assert "4 LiteRT (.tflite) timing models" in text and "./run_android.sh --benchmark-model" in text
    with zipfile.ZipFile(out) as zf:
        assert json.loads(zf.read("manifest.json"))["settings"]["passes"] == 1
    shutil.rmtree(tmp_path, ignore_errors=True)
