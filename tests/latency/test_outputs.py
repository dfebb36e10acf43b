"""Importing results and writing tables and bundles when things go wrong: the wrong file given (the bundle zip,
UTF-16, a device, JSON nested deep), hostile fields, an -o path under a file or on a full disk, two builds on one
table. Each ends with one message, exit status 2, and earlier files intact."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from nas.arch import parse_compact
from nas.cli import main
from nas.errors import LatencyTableError, MissingLatencyEntryError
from nas.latency import TableEstimator, load_table
from nas.latency.bundle import BUNDLE_FORMAT, make_bundle
from nas.latency.bundle_runner import RESULTS_FORMAT
from nas.latency.importer import import_results
from nas.latency.output import lock_path, table_lock
from nas.latency.spaces import space_for_table
from nas.space import load_space
from tests.conftest import REPO, TINY_SPACE
from tests.latency.test_table import handmade

#: ARCH of test_table.py with another first block (expansion 2 instead of 3): a part the results do not have
ARCH_OTHER = "in16x3-stem_k3_s1_c8_re-ir_e2_k3_s1_c8_re-cse_e1_k5_s2_c16_hs_rd4_cap8-head_c32_hs-cls10"


def results(measured: list[float] | None = None) -> dict[str, Any]:
    """A small, valid results file: the 4 parts of ``ARCH`` and calibration networks made of them."""
    entries = handmade()["entries"]
    sigs = list(entries)
    measured = measured or [1.0, 1.01, 0.99, 1.02, 0.98, 1.0]
    space = load_space(TINY_SPACE)
    return {
        "format": RESULTS_FORMAT, "runner_version": "1", "started": "2026-01-01T00:00:00+00:00",
        "finished": "2026-01-01T01:00:00+00:00",
        "bundle": {"format": BUNDLE_FORMAT, "created": "2026-01-01T00:00:00+00:00", "tool": "nas test",
                   "space": {"name": space.name, "file": "tiny_space.yaml", "digest": space.digest},
                   "input_size": 16, "in_ch": 3, "num_classes": 10, "batch_size": 1, "opset": 17,
                   "manifest_sha256": "0" * 64},
        "device": {"description": "Test board, 4 logical CPUs, Linux aarch64", "platform": "Linux", "system": "Linux",
                   "machine": "aarch64", "processor": "Cortex-A72", "board": None, "cpu_count": 4, "python": "3.11",
                   "numpy": "2.0", "onnxruntime": "1.20.0", "provider": "CPUExecutionProvider", "threads": 1,
                   "pinned_cpus": [3]},
        "settings": {"warmup": 2, "min_repeats": 10, "max_repeats": 10, "min_seconds": 0, "passes": 2,
                     "statistic": "median"},
        "entries": entries,
        "overhead_ms": 0.01,
        "calibration": [{"seed": 10_000 + i, "parts": sigs, "measured_ms": m} for i, m in enumerate(measured)],
    }


def _write(tmp_path: Path, data: dict[str, Any] | str | bytes, name: str = "results.json") -> Path:
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _refused(path: Path, out: Path, **kwargs: Any) -> str:
    with pytest.raises(LatencyTableError) as info:
        import_results(path, out, **kwargs)
    assert not out.exists() and "\n" not in str(info.value)
    return str(info.value)


def test_a_good_results_file_imports(tmp_path: Path) -> None:
    table = import_results(_write(tmp_path, results()), tmp_path / "t.json", device_name="Board")
    assert table.warnings == [] and load_table(tmp_path / "t.json").metadata["device"] == "Board (remote bundle)"


# -------------------------------------------------------------------------- the wrong file
def test_the_bundle_zip_given_as_results(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.zip"
    with zipfile.ZipFile(bundle, "w") as zf:
        zf.writestr("manifest.json", json.dumps({"format": BUNDLE_FORMAT}))
    message = _refused(bundle, tmp_path / "t.json")
    assert message.startswith(f"{bundle}: it is a zip archive, not text; this looks like the bundle itself")
    assert "import the results.json it writes there" in message


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (json.dumps(results()).encode("utf-16"), "it is UTF-16 text; save it as UTF-8"),
        (json.dumps(results()).encode("utf-16-le"), "it holds NUL bytes (the first at byte 1)"),
        (b'{"format": "' + b"\xff" * 4 + b'"}', "byte 12 (0xff) is not UTF-8 text"),
        (b"[" * 200_000 + b"]" * 200_000, "JSON nested too deeply to read"),
        (json.dumps(results()).replace('"seed": 10000', '"seed": ' + "7" * 5000).encode(),
         "holds an integer of 5000 digits"),
    ],
)
def test_files_that_are_not_results(tmp_path: Path, content: bytes, fragment: str) -> None:
    assert fragment in _refused(_write(tmp_path, content), tmp_path / "t.json")


def test_devices_folders_and_huge_files_are_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _refused(Path("/dev/zero"), tmp_path / "t.json").startswith("/dev/zero: is a character device, not a file")
    assert "is a directory, not a file" in _refused(tmp_path, tmp_path / "t.json")
    path = _write(tmp_path, results())
    monkeypatch.setattr("nas.latency.importer.MAX_JSON_BYTES", 2000)
    assert "is larger than a results file can be (at most 2 KiB); refused unread" in _refused(path, tmp_path / "t.json")


# -------------------------------------------------------------------------- hostile fields
def _set(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = path.split("/")
    target = data
    for key in parents:
        target = target[key]
    target[last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        ("bundle/space/file", {"a": 1}, "bundle.space.file: expected a string or null, got {'a': 1}"),
        ("bundle/space/name", "x\ny", "bundle.space.name: holds control characters ('x\\ny')"),
        ("device/description", "Pi \x1b[31mred", "device.description: holds control characters"),
        ("device/processor", ["cpu"], "device.processor: expected a string, got ['cpu']"),
        ("device/provider", "CPU; rm -rf", "device.provider: expected an onnxruntime provider name"),
        ("device/pinned_cpus", "all", "device.pinned_cpus: expected a list of CPU numbers or null"),
        ("device/threads", 10**12, "device.threads: expected an integer >= 1 and <= 4096"),
        ("bundle/input_size", 1e400, "bundle.input_size: expected an integer >= 1"),
        ("settings/min_seconds", 1e300, "settings.min_seconds: expected a finite number >= 0 (seconds, at most 3600)"),
        ("overhead_ms", 1e300, "overhead_ms: 1e+300 ms is more than a minute"),
        ("started", {"deep": [1]}, "started: expected a non-empty string or null"),
        ("calibration", [{"seed": 0, "parts": ["x"], "measured_ms": 1.0}] * 1001,
         "calibration: expected at most 1000 networks (a bundle holds at most that many), got 1001"),
    ],
)
def test_every_imported_field_is_checked(tmp_path: Path, path: str, value: Any, fragment: str) -> None:
    message = _refused(_write(tmp_path, _set(results(), path, value)), tmp_path / "t.json")
    assert message.startswith(f"{tmp_path / 'results.json'}: ") and fragment in message


def test_a_space_path_is_stored_as_a_hint_only(tmp_path: Path) -> None:
    data = _set(results(), "bundle/space/file", "/etc/shadow")
    table = import_results(_write(tmp_path, data), tmp_path / "t.json")
    assert table.metadata["space"]["file"] == "/etc/shadow"
    with pytest.raises(LatencyTableError, match="names no .yaml search-space file; pass the table's space with --space"):
        space_for_table(load_table(tmp_path / "t.json"))


def test_a_device_without_a_processor_name_imports(tmp_path: Path) -> None:
    table = import_results(_write(tmp_path, _set(results(), "device/processor", "")), tmp_path / "t.json")
    assert load_table(tmp_path / "t.json").metadata["cpu"] == "" == table.metadata["cpu"]


def test_only_the_runners_device_fields_are_kept(tmp_path: Path) -> None:
    data = results()
    data["device"]["extra"] = {"nested": [[[1]]]}
    table = import_results(_write(tmp_path, data), tmp_path / "t.json")
    assert "extra" not in table.metadata["remote"]["device"]
    assert table.metadata["remote"]["device"]["pinned_cpus"] == [3]


@pytest.mark.parametrize("name", ["Pixel\n7", "Pi \x1b]0;title\x07", "\u202eevil", "x" * 201, "  "])
def test_device_names_with_control_characters_are_refused(tmp_path: Path, name: str) -> None:
    message = _refused(_write(tmp_path, results()), tmp_path / "t.json", device_name=name)
    assert message.startswith("--device-name: expected a device name of 1 to 200 characters")


def test_a_calibration_that_does_not_fit_is_refused_or_forced(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, results([0.001, 50.0, 0.001, 50.0, 0.001, 50.0]))  # the same parts, 50,000x apart
    message = _refused(path, tmp_path / "t.json")
    assert re.search(r"\(as a table\): correction: predicts \d of the 6 calibration networks", message)
    assert "Measure the device again with its bundle" in message and "--force" in message
    out = tmp_path / "forced.json"
    assert main(["lut", "import", str(path), "-o", str(out), "--force"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: ") and "used anyway (--force)" in err
    assert load_table(out, force=True).warnings  # written, and still flagged when loaded


# -------------------------------------------------------------------------- unwritable outputs
def test_import_to_a_path_under_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "tables"
    blocker.write_text("a file where a folder should be")
    path = _write(tmp_path, results())
    assert main(["lut", "import", str(path), "-o", str(blocker / "t.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {blocker / 't.json'}: cannot write the table there: "
                                                   f"{blocker} is a file, not a folder")
    assert blocker.read_text() == "a file where a folder should be"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_import_into_a_read_only_folder(tmp_path: Path) -> None:  # pragma: no cover - not as root
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        assert "is not writable" in _refused(_write(tmp_path, results()), folder / "t.json")
    finally:
        folder.chmod(0o755)


def test_import_on_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("nas.latency.importer.save_table", full)
    message = _refused(_write(tmp_path, results()), tmp_path / "t.json")
    assert message == (f"{tmp_path / 't.json'}: cannot write the table (No space left on device); nothing was written "
                       "there and any earlier file is as it was: free some space or choose another -o path")


def _earlier_bundle(path: Path) -> bytes:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", json.dumps({"format": BUNDLE_FORMAT}))
    return path.read_bytes()


def test_bundle_to_a_path_under_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("x")
    assert main(["lut", "bundle", "--space", str(TINY_SPACE), "-o", str(blocker / "b.zip"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{blocker} is a file, not a folder" in err and "Traceback" not in err


def test_bundle_on_a_full_disk_keeps_the_earlier_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "b.zip"
    before = _earlier_bundle(out)
    calls = []

    def writestr(self: zipfile.ZipFile, *args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(zipfile.ZipFile, "writestr", writestr)
    assert main(["lut", "bundle", "--space", str(TINY_SPACE), "-o", str(out), "--quiet", "--no-references"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {out}: cannot write the bundle (No space left on device); nothing was written there and "
                   "any earlier file is as it was: free some space or choose another -o path\n")
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["b.zip"]  # no temp file


def test_bundle_where_the_folder_vanishes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The temporary zip cannot even be created (the folder became a file after the check): one error, not two."""
    out = tmp_path / "sub" / "b.zip"
    monkeypatch.setattr("nas.latency.bundle.check_output", lambda *a, **k: None)
    (tmp_path / "sub").write_text("now a file")
    with pytest.raises(LatencyTableError) as info:
        make_bundle(load_space(TINY_SPACE), out, references=False, calibration=0, progress=False)
    assert str(info.value).startswith(f"{out}: cannot write the bundle (")
    # the CLI shows this one line; the OSError behind it did not happen while handling another one
    assert info.value.__suppress_context__ and info.value.__context__.__context__ is None


# -------------------------------------------------------------------------- two builds
def test_a_second_build_on_the_same_table_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "t.json"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pathlib import Path\nfrom nas.latency.output import table_lock\n"
         "with table_lock(Path(sys.argv[1])):\n    print('locked', flush=True)\n    time.sleep(120)\n", str(table)],
        cwd=REPO, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert main(["lut", "build", "--space", str(TINY_SPACE), "-o", str(table), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: {table}: another nas process (pid {holder.pid}) is "
                                                       "writing this table")
        assert not table.exists()  # the refused build wrote nothing
    finally:
        holder.kill()
        holder.wait()
    with table_lock(table):  # released when its holder died (kill -9 included)
        assert lock_path(table).read_text().strip() == str(os.getpid())
    assert not lock_path(table).exists()  # removed when released


def test_a_devices_table_suggests_a_bundle_for_a_missing_part(tmp_path: Path) -> None:
    table = import_results(_write(tmp_path, results()), tmp_path / "t.json")
    with pytest.raises(MissingLatencyEntryError) as info:
        TableEstimator(table, on_missing="error").predict(parse_compact(ARCH_OTHER))
    assert "measured on a device with a bundle: bundle a space that holds this part" in str(info.value)
    assert "nas lut add" not in str(info.value)


def test_yaml_import_to_a_path_under_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "tables"
    blocker.write_text("x")
    fixture = REPO / "tests" / "fixtures" / "ofa" / "tiny_lut.yaml"
    assert main(["lut", "import", str(fixture), "--space", str(TINY_SPACE), "--device-name", "x",
                 "-o", str(blocker / "t.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{blocker} is a file, not a folder" in err
