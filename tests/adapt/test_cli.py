"""``nas adapt`` through the CLI: resume after kill -9, and the refusals (exit codes and messages)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from nas.adapt import generate_proposals
from nas.arch import build_model, load_arch_file, parse_compact, to_compact
from nas.cli import main
from nas.latency import TableEstimator, load_table
from nas.train import save_weights

from .conftest import MICRO, REPO, TINY, make_table, nas_command

FAST = ["--data", "digits", "--subset", "200", "--steps", "2", "--batch-size", "32", "--device", "cpu"]


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["adapt", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _history(out: Path) -> list[dict[str, str]]:
    with open(out / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def _iteration(out: Path) -> int:
    try:
        return int(json.loads((out / "state.json").read_text())["iteration"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


@pytest.mark.slow  # a real process killed with SIGKILL: its start-up (torch import, data) is most of the time
def test_resume_after_kill_between_iterations(tmp_path: Path, trained: dict[str, Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    table = make_table(tmp_path / "table.json", [TINY])
    start_ms = TableEstimator(load_table(table)).latency_ms(TINY)
    out = tmp_path / "run"
    args = ["adapt", "--arch", to_compact(TINY), "--weights", str(trained["tiny"]), "--target", str(table),
            "--latency-ms", f"{0.7 * start_ms:.6f}", "--delta", "0.06", "--final-epochs", "0", "--out", str(out),
            *FAST]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(nas_command(args), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while _iteration(out) < 1 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    done = _iteration(out)
    assert done >= 1
    rows_before = [r for r in _history(out) if int(r["iteration"]) <= done]
    assert not (out / "arch.json").exists()  # killed before the end

    code, stdout, err = _cli(args[1:], capsys)  # the same command again (in this process, to save a start-up)
    assert code == 0, err
    assert f"resuming {out}: {done} iteration(s) already done" in stdout
    ran = [int(line.split(":")[0].split()[1]) for line in stdout.splitlines()
           if line.startswith("iteration ") and "proposals)" in line]
    assert ran and ran[0] == done + 1  # finished iterations were not redone
    rows_after = _history(out)
    assert rows_after[:len(rows_before)] == rows_before
    assert sorted({int(r["iteration"]) for r in rows_after}) == list(range(1, max(ran) + 1))
    final = load_arch_file(out / "arch.json")
    assert TableEstimator(load_table(table)).latency_ms(final) <= 0.7 * start_ms


def test_budget_already_met_writes_the_original_network(tmp_path: Path, trained: dict[str, Path],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    table = make_table(tmp_path / "table.json", [MICRO])
    start_ms = TableEstimator(load_table(table)).latency_ms(MICRO)
    out = tmp_path / "run"
    code, stdout, _ = _cli(["--arch", to_compact(MICRO), "--weights", str(trained["micro"]), "--target", str(table),
                            "--latency-ms", f"{2 * start_ms}", "--out", str(out), *FAST], capsys)
    assert code == 0
    assert "already meets the budget" in stdout and "already_met" in stdout
    assert load_arch_file(out / "arch.json") == MICRO
    original = torch.load(trained["micro"], weights_only=True)
    written = torch.load(out / "weights.pt", weights_only=True)
    assert original.keys() == written.keys()
    assert all(torch.equal(original[k], written[k]) for k in original)
    assert _history(out) == []


def test_unreachable_budget_stops_at_the_closest_network_and_says_why(tmp_path: Path, trained: dict[str, Path],
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    table = make_table(tmp_path / "table.json", [MICRO])
    start_ms = TableEstimator(load_table(table)).latency_ms(MICRO)
    out = tmp_path / "run"
    code, stdout, _ = _cli(["--arch", to_compact(MICRO), "--weights", str(trained["micro"]), "--target", str(table),
                            "--latency-ms", f"{start_ms / 1000}", "--delta", "0.3", "--steps", "1",
                            "--final-epochs", "0", "--out", str(out), *FAST], capsys)
    assert code == 3
    assert "warning: with every width at its minimum the network is predicted at" in stdout
    assert "not reached: no proposal lowers the predicted latency" in stdout
    assert "--allow-drop" in stdout and "raise --latency-ms" in stdout
    final = load_arch_file(out / "arch.json")
    state = json.loads((out / "state.json").read_text())
    assert state["status"] == "unreachable"
    assert TableEstimator(load_table(table)).latency_ms(final) == pytest.approx(state["latency_ms"])
    assert state["latency_ms"] < start_ms
    # It stopped because nothing lowers the latency any more, not for lack of trying.
    assert generate_proposals(final, TableEstimator(load_table(table)), goal_ms=state["latency_ms"] - 1e-6) == []
    assert final.head.width == 8 and min(final.stem.out_ch, final.blocks[0].mid_ch) == 8
    build_model(final).load_state_dict(torch.load(out / "weights.pt", weights_only=True))


def test_the_adapted_network_is_retrained_from_its_weights_and_exported(
        tmp_path: Path, trained: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """The README's route after NetAdapt: ``nas train --arch OUT/arch.json --init OUT/weights.pt``, then ``nas export``."""
    table = make_table(tmp_path / "table.json", [TINY])
    start_ms = TableEstimator(load_table(table)).latency_ms(TINY)
    out = tmp_path / "run"
    code, _, err = _cli(["--arch", to_compact(TINY), "--weights", str(trained["tiny"]), "--target", str(table),
                         "--latency-ms", f"{0.8 * start_ms:.6f}", "--delta", "0.3", "--final-epochs", "0",
                         "--out", str(out), *FAST], capsys)
    assert code == 0, err
    adapted = load_arch_file(out / "arch.json")
    assert adapted != TINY
    retrained = tmp_path / "retrained"
    # A learning rate of 1e-9: the weights stay where --init put them, so the test sees that they were used.
    code = main(["train", "--arch", str(out / "arch.json"), "--init", str(out / "weights.pt"), "--data", "digits",
                 "--subset", "200", "--epochs", "1", "--batch-size", "32", "--lr", "1e-9", "--device", "cpu",
                 "--out", str(retrained), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert load_arch_file(retrained / "arch.json") == adapted
    start = torch.load(out / "weights.pt", weights_only=True)
    model = build_model(adapted)
    model.load_state_dict(torch.load(retrained / "checkpoint.pt", weights_only=True)["model"])
    convs = [k for k, v in start.items() if k.endswith("weight") and v.dim() == 4]
    assert convs and all(torch.allclose(model.state_dict()[k], start[k], atol=1e-6) for k in convs)
    onnx = tmp_path / "adapted.onnx"
    code = main(["export", "--arch", str(retrained / "arch.json"), "--weights", str(retrained), "-o", str(onnx)])
    assert code == 0, capsys.readouterr().err
    assert onnx.stat().st_size > 0


def test_weights_that_do_not_fit_the_architecture(tmp_path: Path, trained: dict[str, Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    table = make_table(tmp_path / "table.json", [TINY])
    other = tmp_path / "other.pt"
    save_weights(build_model(parse_compact("in16x3-stem_k3_s1_c16_re-ir_e4_k3_s1_c16_re-ir_e4_k3_s2_c24_re-"
                                           "ir_e3_k3_s1_c24_re-head_c64_re-cls10")), other)
    code, stdout, err = _cli(["--arch", to_compact(TINY), "--weights", str(other), "--target", str(table),
                              "--latency-ms", "1", "--out", str(tmp_path / "run"), *FAST], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(other) in err
    assert "shape mismatch for key 'blocks.0.body.0.0.weight': expected (48, 16, 1, 1), got (64, 16, 1, 1)" in err
    assert not (tmp_path / "run").exists()


def test_out_that_is_a_file_is_a_user_error(tmp_path: Path, trained: dict[str, Path],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    table = make_table(tmp_path / "table.json", [MICRO])
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    code, _, err = _cli(["--arch", to_compact(MICRO), "--weights", str(trained["micro"]), "--target", str(table),
                         "--latency-ms", "1", "--out", str(taken), *FAST], capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: --out {taken}: is an existing file") and taken.read_text() == "keep me"


def test_tables_for_another_input_size_or_space_are_refused(tmp_path: Path, trained: dict[str, Path],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import TINY_SPACE

    big = make_table(tmp_path / "big.json", [parse_compact(to_compact(MICRO).replace("in16x3", "in32x3"))],
                     input_size=32)
    base = ["--arch", to_compact(MICRO), "--weights", str(trained["micro"]), "--latency-ms", "1",
            "--out", str(tmp_path / "run"), *FAST]
    code, _, err = _cli(["--target", str(big), *base], capsys)
    assert code == 2 and str(big) in err and "32x32x3 inputs" in err and "16x16x3 inputs" in err
    other_space = make_table(tmp_path / "other.json", [MICRO])
    code, _, err = _cli(["--target", str(other_space), "--space", str(TINY_SPACE), *base], capsys)
    assert code == 2 and str(other_space) in err and "was built for space 'handmade'" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("option", "value", "expected"), [
    ("--delta", "1.5", "--delta: expected a fraction in (0, 1)"),
    ("--rule", "accuracy", None),
    ("--steps", "0", "--steps: expected at least 1"),
])
def test_bad_options_are_user_errors(tmp_path: Path, trained: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                     option: str, value: str, expected: str | None) -> None:
    table = make_table(tmp_path / "table.json", [MICRO])
    start_ms = TableEstimator(load_table(table)).latency_ms(MICRO)
    code, stdout, err = _cli(["--arch", to_compact(MICRO), "--weights", str(trained["micro-checkpoint"]),
                              "--target", str(table), "--latency-ms", f"{2 * start_ms}",
                              "--out", str(tmp_path / "run"), *FAST, option, value], capsys)
    if expected is None:  # a valid option: the run goes through (here: the budget is already met)
        assert code == 0 and "already_met" in stdout
    else:
        assert code == 2 and expected in err


def test_help_explains_netadapt(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["adapt", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "NetAdapt" in text and "dAcc/|dLatency|" in text and "resumes" in text and "--allow-drop" in text
