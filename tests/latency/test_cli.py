"""``nas lut``: the sub-commands are listed, and user errors end with status 2 and one message."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nas.arch import to_compact
from nas.cli import main
from nas.latency import load_table
from nas.space import load_space, random_arch
from tests.conftest import DEFAULT_SPACE, REPO, TINY_SPACE

ACTIONS = ("build", "predict", "add", "validate", "bundle", "import")
#: A network of the tiny space's shape whose block0 (40 middle channels, as NetAdapt proposes) no tiny table has.
MISSING_ARCH = "in16x3-stem_k3_s1_c8_re-ir_m40_k3_s1_c8_re-ir_e3_k5_s2_c16_hs-ir_e1_k3_s2_c24_re-head_c32_hs-cls10"
MISSING_SIG = "ir_i8_m40_o8_k3_s1_se0_relu_r16"


def test_help_lists_every_action(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["lut", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    listed = [m.group(1) for line in text.splitlines() if (m := re.match(r"    (\w+)", line))]
    assert tuple(listed) == ACTIONS
    for action in ACTIONS:
        with pytest.raises(SystemExit):
            main(["lut", action, "--help"])
        assert "usage: nas lut " + action in capsys.readouterr().out


def _arch() -> str:
    return to_compact(random_arch(load_space(TINY_SPACE), 1))


def _copy(tiny_table: Path, tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    data = json.loads(tiny_table.read_text())
    change(data)
    path = tmp_path / "changed.json"
    path.write_text(json.dumps(data))
    return path


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err  # one message, no traceback
    return lines[0]


def test_missing_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.json"
    for argv in (["lut", "predict", "--table", str(missing), _arch()],
                 ["lut", "validate", "--table", str(missing), "--samples", "1"],
                 ["lut", "add", "--table", str(missing), _arch()]):
        msg = _error(capsys, argv)
        assert f"{missing}: latency table not found" in msg and "nas lut build" in msg


def test_missing_table_lists_the_tables_beside_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("b.json", "a.json"):
        (tmp_path / name).write_text("{}")
    monkeypatch.chdir(tmp_path)  # folders are shown relative to the working directory
    msg = _error(capsys, ["lut", "predict", "--table", str(tmp_path / "a1.json"), _arch()])
    assert "a1.json: latency table not found; tables in ./: a.json, b.json. Build one with" in msg

    monkeypatch.chdir(REPO)  # a typo in a shipped table's name, and a folder that does not exist
    shipped = sorted(p.name for p in (REPO / "latency_tables").glob("*.json"))
    assert "ort-cpu-1t.json" in shipped
    for table, where in (("latency_tables/ort-cpu-1.json", ""), ("latency_table/ort-cpu-1t.json",
                                                                "latency_table/ does not exist; ")):
        msg = _error(capsys, ["lut", "predict", "--table", table, _arch()])
        assert f"{table}: latency table not found; {where}tables in latency_tables/: {', '.join(shipped)}." in msg


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "--table", "T", "--samples", "0"],
        ["validate", "--table", "T", "--samples", "-3"],
        ["validate", "--table", "T", "--passes", "0"],
        ["build", "--space", "S", "-o", "OUT", "--repeats", "0"],
        ["build", "--space", "S", "-o", "OUT", "--max-repeats", "0"],
        ["build", "--space", "S", "-o", "OUT", "--warmup", "-1"],
        ["build", "--space", "S", "-o", "OUT", "--min-seconds", "nan"],
        ["build", "--space", "S", "-o", "OUT", "--passes", "0"],
        ["build", "--space", "S", "-o", "OUT", "--threads", "0"],
        ["build", "--space", "S", "-o", "OUT", "--calibration", "-1"],
        ["bundle", "--space", "S", "-o", "OUT.zip", "--repeats", "0"],
        ["bundle", "--space", "S", "-o", "OUT.zip", "--calibration", "-2"],
    ],
)
def test_counts_below_their_minimum_are_refused(tiny_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                argv: list[str]) -> None:
    paths = {"T": str(tiny_table), "S": str(TINY_SPACE), "OUT": str(tmp_path / "out.json"),
             "OUT.zip": str(tmp_path / "out.zip")}
    option, value = argv[-2:]
    msg = _error(capsys, ["lut", *(paths.get(a, a) for a in argv)])
    assert msg.startswith(f"error: {option}: expected ") and msg.endswith(f", got {value}")
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_predict_says_what_it_measured_into_the_table(tiny_table: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = _copy(tiny_table, tmp_path, lambda d: None)  # this machine's table; it lacks MISSING_ARCH's block0
    assert MISSING_SIG not in load_table(path).entries

    assert main(["lut", "predict", "--table", str(path), MISSING_ARCH, "--on-missing", "interpolate"]) == 0
    out = capsys.readouterr().out
    assert "1 part(s) interpolated" in out and "measured on this machine" not in out
    assert MISSING_SIG not in load_table(path).entries

    assert main(["lut", "predict", "--table", str(path), MISSING_ARCH]) == 0  # --on-missing auto: measured and saved
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == (f"note: 1 part(s) missing from the table were measured on this machine and stored in {path} "
                       f"({MISSING_SIG}); '--on-missing interpolate' estimates them instead and leaves the table "
                       "unchanged")
    assert load_table(path).entries[MISSING_SIG].source == "measured"

    assert main(["lut", "predict", "--table", str(path), MISSING_ARCH]) == 0  # nothing missing now: no note
    assert "note:" not in capsys.readouterr().out


def test_predict_json_keeps_the_note_off_stdout(tiny_table: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = _copy(tiny_table, tmp_path, lambda d: None)
    assert main(["lut", "predict", "--table", str(path), MISSING_ARCH, "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["parts"][1] == {"name": "block0", "signature": MISSING_SIG, "source": "measured",
                                           "ms": load_table(path).entries[MISSING_SIG].median}
    assert err.startswith(f"note: 1 part(s) missing from the table were measured on this machine and stored in {path}")


def test_predict_refuses_a_network_for_another_input_size(tiny_table: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arch = _arch().replace("in16x3-", "in32x3-", 1)
    before = tiny_table.read_bytes()
    msg = _error(capsys, ["lut", "predict", "--table", str(tiny_table), arch])
    assert msg.startswith(f"error: {tiny_table}: metadata.input_size/in_ch/num_classes: the table was measured for "
                          f"16x16x3 inputs and 10 classes, but {arch} takes 32x32x3 inputs")
    assert tiny_table.read_bytes() == before  # nothing measured into the table for the wrong input


def test_a_zip_given_as_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "some.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("README.txt", "a bundle, say")
    msg = _error(capsys, ["lut", "predict", "--table", str(archive), _arch()])
    assert msg.startswith(f"error: {archive}: not a JSON latency table")


def test_help_texts_show_single_percent_signs_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    texts = {}
    for action in ACTIONS:
        with pytest.raises(SystemExit):
            main(["lut", action, "--help"])
        texts[action] = capsys.readouterr().out
        assert "%%" not in texts[action], action
        for option in re.split(r"\n  (?=-)", texts[action]):  # one block per option
            assert " ".join(option.split()).count("(default") <= 1, (action, option)
    assert "share within +-10 %)" in " ".join(texts["validate"].split())


def test_validation_plots_beside_shipped_tables_are_ignored_by_git() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")

    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO, check=False).returncode == 0

    assert ignored("latency_tables/ort-cpu-1t.validate.png")  # what 'nas lut validate' writes by default
    assert not ignored("latency_tables/ort-cpu-1t.json") and not ignored("latency_tables/README.md")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda d: d.update(schema_version=99), "schema_version: this version of nas reads schema 1"),
        (lambda d: d["metadata"].pop("threads"), "metadata.threads: missing"),
        (lambda d: d["entries"]["stem_i3_o8_k3_s1_relu_r16"].update(median=-1.0),
         "entries['stem_i3_o8_k3_s1_relu_r16'].median: expected a positive, finite number"),
        (lambda d: d["entries"].update({"conv_i3_o8_r16": d["entries"]["stem_i3_o8_k3_s1_relu_r16"]}),
         "unknown signature 'conv_i3_o8_r16'"),
        (lambda d: d["metadata"].update(device="Pixel \ud800"), "metadata.device"),  # a lone surrogate: unprintable
        (lambda d: d["entries"].update({"stem_i\u0663_o8_k3_s1_relu_r16": d["entries"]["stem_i3_o8_k3_s1_relu_r16"]}),
         "unknown signature"),  # another script's digit 3 is not the entry of 3 channels
        (lambda d: d["metadata"]["calibration"].update(fit_mape_percent="x"),
         "metadata.calibration.fit_mape_percent: expected a percentage >= 0"),
        (lambda d: d["metadata"]["calibration"].update(drift="x"), "metadata.calibration.drift: expected an object"),
        (lambda d: d["metadata"]["calibration"].update(drift={"parts": 3, "median": "1", "min": 1, "max": 1}),
         "metadata.calibration.drift.median: expected a ratio >= 0"),
    ],
)
def test_broken_table(tiny_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                      change: Callable[[dict[str, Any]], None], fragment: str) -> None:
    path = _copy(tiny_table, tmp_path, change)
    msg = _error(capsys, ["lut", "predict", "--table", str(path), _arch()])
    assert msg.startswith(f"error: {path}: ") and fragment in msg


def test_not_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.json"
    path.write_text('{"schema_version": 1, "entries": {')
    assert "t.json: not valid JSON" in _error(capsys, ["lut", "predict", "--table", str(path), _arch()])


def test_missing_entry_with_on_missing_error(tiny_table: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = tiny_table.read_bytes()
    msg = _error(capsys, ["lut", "predict", "--table", str(tiny_table), MISSING_ARCH, "--on-missing", "error"])
    assert f"no entry for {MISSING_SIG} (block0)" in msg
    assert f"nas lut add --table {tiny_table} ARCH" in msg
    assert tiny_table.read_bytes() == before  # nothing written


def test_table_for_another_space(tiny_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    msg = _error(capsys, ["lut", "validate", "--table", str(tiny_table), "--space", str(DEFAULT_SPACE),
                          "--samples", "1"])
    assert "metadata.input_size: the table was measured for 16x16x3 inputs" in msg and "nas lut build" in msg

    other = tmp_path / "other_space.yaml"  # same input size, other choices: another space
    other.write_text(TINY_SPACE.read_text().replace("kernel: [3, 5]", "kernel: [3]"))
    msg = _error(capsys, ["lut", "validate", "--table", str(tiny_table), "--space", str(other), "--samples", "1"])
    assert "metadata.space: the table was built for space 'tiny_test'" in msg


def test_add_refuses_a_table_of_another_device(tiny_table: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = _copy(tiny_table, tmp_path, lambda d: d["metadata"].update(cpu="Some phone SoC", device="a phone"))
    msg = _error(capsys, ["lut", "add", "--table", str(path), _arch()])
    assert "cannot measure missing entries here" in msg and "'a phone'" in msg


def test_entry_point_prints_one_line(tmp_path: Path) -> None:
    shutil.copy(TINY_SPACE, tmp_path / "space.yaml")
    proc = subprocess.run([sys.executable, "-m", "nas", "lut", "predict", "--table", str(tmp_path / "none.json"),
                           _arch()], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "none.json: latency table not found" in proc.stderr


def test_validate_says_first_when_it_compares_two_devices(tiny_table: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    xeon = "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"
    path = _copy(tiny_table, tmp_path, lambda d: d["metadata"].update(cpu=xeon, device="an Intel Xeon server"))
    argv = ["lut", "validate", "--table", str(path), "--space", str(TINY_SPACE), "--samples", "2", "--passes", "1",
            "--quiet", "--plot", str(tmp_path / "p.png")]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"note: {path} was measured on an Intel Xeon server (CPU {xeon}, ort-cpu "
                               "CPUExecutionProvider), not on this machine (")
    assert "the figures compare two devices" in lines[0]
    assert lines[0].endswith(f"To measure this machine: nas lut build --space {TINY_SPACE} -o THIS_MACHINE.json")
    assert lines[1].startswith("predictor") and any("another device's table" in line for line in lines)

    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["same_device"] is False and report["device_note"].startswith(f"{path} was measured on an Intel")

    assert main(["lut", "validate", "--table", str(tiny_table), "--space", str(TINY_SPACE), "--samples", "1",
                 "--passes", "1", "--quiet", "--json", "--plot", str(tmp_path / "q.png")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["same_device"] is True and report["device_note"] is None  # this machine's own table: no note


def test_validate_refuses_a_backend_this_machine_lacks(tiny_table: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = _copy(tiny_table, tmp_path, lambda d: d["metadata"].update(backend="ort-xnnpack", cpu="Cortex-A76"))
    msg = _error(capsys, ["lut", "validate", "--table", str(path), "--space", str(TINY_SPACE), "--samples", "1"])
    assert "metadata.backend 'ort-xnnpack': 'nas lut validate' times networks here" in msg


def test_add_refuses_a_network_of_another_input_size_before_measuring(tiny_table: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = _copy(tiny_table, tmp_path, lambda d: None)  # this machine's table
    before = path.read_bytes()
    arch = _arch().replace("in16x3-", "in8x3-", 1)
    msg = _error(capsys, ["lut", "add", "--table", str(path), MISSING_ARCH, arch])
    assert f"but {arch} takes 8x8x3 inputs" in msg
    assert path.read_bytes() == before  # nothing measured, not even the other network's missing part
    assert main(["lut", "predict", "--table", str(path), _arch()]) == 0  # the table still loads


def test_validate_checks_the_plot_path_first_and_prints_the_figures_when_the_plot_fails(
        tiny_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import nas.latency.validate as validate_module

    (tmp_path / "a_file").write_text("")
    argv = ["lut", "validate", "--table", str(tiny_table), "--space", str(TINY_SPACE), "--samples", "1",
            "--passes", "1", "--quiet"]
    timed: list[int] = []
    real_validate = validate_module.validate
    monkeypatch.setattr(validate_module, "validate", lambda *a, **k: timed.append(1) or real_validate(*a, **k))
    msg = _error(capsys, [*argv, "--plot", str(tmp_path / "a_file" / "p.png")])
    assert "is a file, not a folder; choose another --plot path" in msg and timed == []  # before any timing
    msg = _error(capsys, [*argv, "--plot", str(tmp_path / "p.xyz")])
    assert "--plot: expected a file name ending in one of" in msg and "'.xyz'" in msg and timed == []

    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(validate_module, "save_scatter", disk_full)
    assert main([*argv, "--plot", str(tmp_path / "p.png")]) == 2
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith("predictor") and "scatter plot" not in out  # the figures, no plot
    assert err.strip() == (f"error: {tmp_path / 'p.png'}: cannot write the plot (No space left on device); the "
                           "results are printed; choose another --plot path")
    assert main([*argv, "--json", "--plot", str(tmp_path / "p.png")]) == 2
    out, _ = capsys.readouterr()
    assert json.loads(out)["plot"] is None and "table" in json.loads(out)


def test_an_imported_table_is_never_this_machines(tiny_table: Path, tmp_path: Path) -> None:
    from nas.latency import TableEstimator
    from nas.latency.predict import is_local_table

    local = load_table(tiny_table)
    assert is_local_table(local)
    # a board whose CPU name is this machine's too (two aarch64 Linux machines both say 'aarch64')
    imported = load_table(_copy(tiny_table, tmp_path, lambda d: d["metadata"].update(remote={"device": "a board"})))
    assert not is_local_table(imported)
    assert TableEstimator(imported, save=False).on_missing == "interpolate"



def test_a_table_of_another_runtime_version_is_not_measured_into(tiny_table: Path, tmp_path: Path) -> None:
    """An onnxruntime upgraded since the table was built: new entries would be timed by another version than the
    one the table names, so missing parts are interpolated instead (and 'measure' is refused)."""
    from nas.errors import LatencyTableError
    from nas.latency import TableEstimator
    from nas.latency.predict import is_local_table

    older = load_table(_copy(tiny_table, tmp_path, lambda d: d["metadata"].update(backend_version="onnxruntime 1.0")))
    assert not is_local_table(older)
    assert TableEstimator(older, save=False).on_missing == "interpolate"
    with pytest.raises(LatencyTableError, match="cannot measure missing entries here"):
        TableEstimator(older, on_missing="measure", save=False)


def test_two_processes_measuring_into_one_table_keep_both_entries(tiny_table: Path, tmp_path: Path) -> None:
    from nas.arch import parse_compact
    from nas.latency import TableEstimator

    path = _copy(tiny_table, tmp_path, lambda d: None)  # this machine's table
    first, second = TableEstimator(load_table(path)), TableEstimator(load_table(path))  # both read it before either saves
    other_arch, other_sig = MISSING_ARCH.replace("ir_m40", "ir_m48"), MISSING_SIG.replace("_m40_", "_m48_")
    first.predict(parse_compact(MISSING_ARCH))
    second.predict(parse_compact(other_arch))
    entries = load_table(path).entries
    assert MISSING_SIG in entries and other_sig in entries  # the second save kept the first one's entry
    assert not (tmp_path / "changed.json.lock").exists()


def test_a_part_measured_while_a_build_holds_the_table_is_kept_for_the_run(
        tiny_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nas.arch import parse_compact
    from nas.latency import TableEstimator
    from nas.latency.output import table_lock

    path = _copy(tiny_table, tmp_path, lambda d: None)
    before = path.read_bytes()
    estimator = TableEstimator(load_table(path))
    with table_lock(path):  # as 'nas lut build' or 'nas lut add' holds it
        ms = estimator.latency_ms(parse_compact(MISSING_ARCH))
        estimator.latency_ms(parse_compact(MISSING_ARCH.replace("ir_m40", "ir_m48")))
    assert ms > 0 and MISSING_SIG in estimator.table.entries  # measured, used
    assert path.read_bytes() == before  # not written beside the other writer
    err = capsys.readouterr().err
    assert err.count("warning: parts measured here are kept for this run only") == 1, err  # said once
