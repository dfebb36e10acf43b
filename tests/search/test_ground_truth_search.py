"""``nas search --accuracy-table``: whole searches on NAS-Bench-Macro's ground truth (no training)."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from nas.arch import parse_compact
from nas.cli import main
from nas.search._trial import TrialRunner
from nas.search.evolution import PLAN_ATTR
from nas.search.ground_truth import TableEvaluator
from nas.space import load_space
from nas.space.keys import arch_to_key
from tests.conftest import REPO, SHARED
from tests.search.conftest import kill, nas_command, sqlite_states, start_worker, wait_until

MACRO = REPO / "search_spaces" / "nas_bench_macro.yaml"
TABLE = REPO / "latency_tables" / "ort-cpu-1t-macro.json"
BENCHMARK = SHARED / "benchmarks" / "nas-bench-macro" / "nas-bench-macro_cifar10.json"


def macro_args(out: Path, *extra: str, trials: int = 30) -> list[str]:
    return ["--target", str(TABLE), "--space", str(MACRO), "--accuracy-table", str(BENCHMARK), "--trials",
            str(trials), "--out", str(out), *extra]


def _run(args: list[str]) -> tuple[int, str]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["search", *args])
    return code, buffer.getvalue()


@pytest.mark.parametrize("extra", [["--sampler", "evolution"], ["--objective", "pareto"]])
def test_a_search_scored_by_the_table_trains_nothing_and_writes_its_outputs(tmp_path: Path, extra: list[str]) -> None:
    out = tmp_path / "run"
    code, log = _run(macro_args(out, *extra))
    assert code == 0, log
    assert "no training" in log and "baselines skipped" in log and "Results in" in log
    df = pd.read_csv(out / "trials.csv")
    assert len(df) == 30 and set(df["state"]) <= {"COMPLETE", "PRUNED"} and (df["wall_s"] < 1).all()
    space = load_space(MACRO)
    recorded = json.loads(BENCHMARK.read_text())
    for _, row in df[df["status"] == "trained"].iterrows():  # each score is one of the network's recorded seeds
        key = arch_to_key(space, parse_compact(row["compact"]))
        assert any(abs(row["val_acc"] - a / 100) < 1e-9 for a in recorded[key]["test_acc"])
    best = json.loads((out / "best_arch.json").read_text())
    assert best["latency_ms"] <= json.loads((out / "pareto.json").read_text())["budget_ms"]
    assert len(best["confirmed"]["accs"]) == 3  # its own seed and the two confirmations: the three recorded ones
    key = arch_to_key(space, parse_compact(best["compact"]))
    assert sorted(best["confirmed"]["accs"]) == pytest.approx(sorted(a / 100 for a in recorded[key]["test_acc"]))
    header = (out / "summary.md").read_text().split("## ")[0]
    assert f"- accuracy: accuracy table {BENCHMARK}" in header and "- proxy:" not in header


def test_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", *macro_args(tmp_path / "a", "--adapt")]) == 2
    assert "--adapt fine-tunes the winner's weights" in capsys.readouterr().err
    bad = macro_args(tmp_path / "b")
    bad[bad.index(str(BENCHMARK))] = str(tmp_path / "missing.json")
    assert main(["search", *bad]) == 2
    err = capsys.readouterr().err
    assert "missing.json: no such file" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_kill_9_then_rerun_resumes_an_evolution_search(tmp_path: Path, workers: list[subprocess.Popen[bytes]]) -> None:
    out = tmp_path / "run"
    args = macro_args(out, "--sampler", "evolution", "--heartbeat", "1", "--grace", "3", trials=200)
    first = start_worker(args, tmp_path / "first.log")
    workers.append(first)

    def some_done() -> bool:
        assert first.poll() is None, (tmp_path / "first.log").read_text()
        return sum(s in ("COMPLETE", "PRUNED") for s in sqlite_states(out / "study.db").values()) >= 60

    wait_until(some_done, 240, "60 finished trials", poll_s=0.05)
    kill(first)
    storage = f"sqlite:///{out / 'study.db'}"
    before = {t.number: t for t in optuna.load_study(study_name="search", storage=storage).get_trials()
              if t.state in (TrialState.COMPLETE, TrialState.PRUNED)}
    second = subprocess.run(nas_command(args), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout + second.stderr
    after = optuna.load_study(study_name="search", storage=storage).get_trials()
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in after) == 200
    for number, t in before.items():  # kept exactly
        assert (after[number].values, after[number].params, after[number].user_attrs) == (t.values, t.params,
                                                                                            t.user_attrs)
    resumed = [t for t in after if t.number > max(before) and t.state == TrialState.COMPLETE]
    plans = [t.user_attrs.get("sampler_attrs", {}).get(PLAN_ATTR) for t in resumed]
    assert sum(p is not None and p.get("parent") is not None for p in plans) > len(resumed) // 2  # children, not draws


def _stored(out: Path) -> list[tuple[object, ...]]:
    """Every trial as stored, without what differs between two runs of one command (worker, wall time)."""
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")
    return [(t.number, t.state, t.values, t.params, t.distributions, t.intermediate_values, t.system_attrs,
             {k: v for k, v in t.user_attrs.items() if k not in ("worker", "wall_s")}) for t in study.get_trials()]


@pytest.mark.parametrize("extra", [["--sampler", "evolution"], ["--objective", "pareto"]])
def test_alone_each_scored_trial_is_stored_finished_in_one_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   extra: list[str]) -> None:
    # 68 of the 6,561 networks are within 0.5 ms, so 80 trials repeat at least 12 of them: the duplicate path too.
    budget = ["--latency-ms", "0.5", *extra]
    # The trial-by-trial path (a running trial, then its attributes, its report and its result one write each):
    running = tmp_path / "running"
    with monkeypatch.context() as m:
        m.setattr(TrialRunner, "_run_unstored", lambda self, proposal, trials: pytest.fail("not at once"))
        m.setattr(TrialRunner, "_at_once", False)
        assert _run(macro_args(running, *budget, trials=80))[0] == 0
    writes: dict[str, list[int]] = {}
    for name in ("set_trial_user_attr", "set_trial_state_values", "set_trial_intermediate_value", "set_trial_param"):
        original = getattr(optuna.storages.RDBStorage, name)

        def counted(self: optuna.storages.RDBStorage, trial_id: int, *args: object, _name: str = name,
                    _original: object = original, **kwargs: object) -> object:
            writes.setdefault(_name, []).append(trial_id)
            return _original(self, trial_id, *args, **kwargs)  # type: ignore[operator]
        monkeypatch.setattr(optuna.storages.RDBStorage, name, counted)
    at_once = tmp_path / "at_once"
    assert _run(macro_args(at_once, *budget, trials=80))[0] == 0
    stored = _stored(at_once)
    assert stored == _stored(running)  # the same trials, attributes, reports and constraints
    statuses = {t[-1].get("status") for t in stored}
    assert {"trained", "duplicate"} <= statuses
    first = optuna.load_study(study_name="search", storage=f"sqlite:///{at_once / 'study.db'}").trials[0]
    assert first.user_attrs.get("warm_start")  # the enqueued warm start runs as a running trial ...
    assert {i for ids in writes.values() for i in ids} == {first._trial_id}  # ... every other trial is one write


def test_ctrl_c_while_scoring_leaves_nothing_half_stored_and_the_rerun_is_the_same_search(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = tmp_path / "whole"
    assert _run(macro_args(whole, "--sampler", "random", trials=40))[0] == 0
    calls = {"n": 0}
    original = TableEvaluator.evaluate

    def interrupted(self: TableEvaluator, arch: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 25:
            raise KeyboardInterrupt
        return original(self, arch, **kwargs)  # type: ignore[arg-type]

    out = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(TableEvaluator, "evaluate", interrupted)
        assert _run(macro_args(out, "--sampler", "random", trials=40))[0] == 130
    states = set(sqlite_states(out / "study.db").values())
    assert states <= {"COMPLETE", "PRUNED"} and 0 < len(sqlite_states(out / "study.db")) < 40
    assert _run(macro_args(out, "--sampler", "random", trials=40))[0] == 0
    assert _stored(out) == _stored(whole)


def _one_line_refusal(capsys: pytest.CaptureFixture[str], args: list[str], *fragments: str) -> str:
    capsys.readouterr()
    assert main(["search", *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def test_a_resume_with_other_latencies_or_another_seed_is_refused(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert _run(macro_args(out, "--latency-ms", "1.2", trials=5))[0] == 0
    # the same device and space, other latencies (re-measured, other threads): the trials' latencies would be stale
    data = json.loads(TABLE.read_text())
    first = sorted(data["entries"])[0]
    for field in ("p10", "median", "p90"):
        data["entries"][first][field] *= 1.01
    remeasured = tmp_path / TABLE.name
    remeasured.write_text(json.dumps(data))
    args = macro_args(out, "--latency-ms", "1.2", trials=5)
    args[args.index(str(TABLE))] = str(remeasured)
    _one_line_refusal(capsys, args, "latencies", "--target: another table, or this one re-measured")
    # the same table with an entry added for a part outside the space ('nas lut add', an on-demand measurement)
    # predicts every network of the space as before: the search resumes
    data = json.loads(TABLE.read_text())
    some = next(k for k in data["entries"] if k.startswith("ir_"))
    data["entries"][some.replace("_m", "_m1", 1)] = data["entries"][some]
    extended = tmp_path / "extended" / TABLE.name
    extended.parent.mkdir()
    extended.write_text(json.dumps(data))
    args = macro_args(out, "--latency-ms", "1.2", trials=6)
    args[args.index(str(TABLE))] = str(extended)
    assert _run(args)[0] == 0
    # another seed draws other recorded trainings: another search, not this one resumed
    _one_line_refusal(capsys, macro_args(out, "--latency-ms", "1.2", "--seed", "1", trials=5),
                      "accuracy_table_seed", "--seed")
    assert _run(macro_args(out, "--latency-ms", "1.2", trials=6))[0] == 0  # the original command still resumes
    # the same accuracy table under another name (moved, copied) resumes; another value is another search
    renamed = tmp_path / "renamed.json"
    renamed.write_bytes(BENCHMARK.read_bytes())
    args = macro_args(out, "--latency-ms", "1.2", trials=7)
    args[args.index(str(BENCHMARK))] = str(renamed)
    assert _run(args)[0] == 0
    _one_line_refusal(capsys, macro_args(out, "--latency-ms", "1.2", "--accuracy-table-value", "mean", trials=7),
                      "proxy", "--accuracy-table-value")


def test_several_targets_are_checked_before_any_search(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cse_table = REPO / "latency_tables" / "ort-cpu-1t.json"
    base = ["--accuracy-table", str(BENCHMARK), "--trials", "3"]
    _one_line_refusal(capsys, ["--target", str(TABLE), "--target", str(cse_table), *base, "--out", str(tmp_path / "a")],
                      "different search spaces", "'nas_bench_macro'", "'mobilenet_cse_cifar'")
    assert not (tmp_path / "a").exists()  # refused before any device's search
    budget = tmp_path / "budget.json"
    budget.write_bytes(TABLE.read_bytes())
    _one_line_refusal(capsys, ["--target", str(TABLE), "--target", str(budget), "--space", str(MACRO), *base,
                               "--out", str(tmp_path / "b")], "'budget_ms' column", "another name")
    _one_line_refusal(capsys, macro_args(tmp_path / ("x" * 300), trials=3), "--out", "not a usable directory path")
    # options that mean nothing here are refused, not ignored
    _one_line_refusal(capsys, macro_args(tmp_path / "c", "--data", str(tmp_path / "nowhere"), "--val-images", "10",
                                         trials=3), "--data, --val-images: nothing is trained or scored")
    _one_line_refusal(capsys, ["--target", str(TABLE), "--space", str(MACRO), "--calibration-images", "64",
                               "--trials", "1", "--out", str(tmp_path / "d")], "--calibration-images: only with --supernet")
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()


def test_proxy_training_options_are_refused_where_nothing_is_trained(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    _one_line_refusal(capsys, macro_args(tmp_path / "a", "--epochs", "5", "--subset", "0", trials=3),
                      "--subset, --epochs: proxy-training options", "with --accuracy-table", "drop them")
    _one_line_refusal(capsys, macro_args(tmp_path / "b", "--batch-size", "32", trials=3),
                      "--batch-size: proxy-training option,", "drop it")
    _one_line_refusal(capsys, ["--target", str(TABLE), "--supernet", str(tmp_path / "no-supernet"), "--epochs", "3",
                               "--out", str(tmp_path / "c")], "--epochs: proxy-training option", "with --supernet")
    assert not any((tmp_path / name).exists() for name in "abc")
    assert _run(macro_args(tmp_path / "e", "--latency-ms", "1.2", trials=3))[0] == 0  # not given: accepted


def test_a_default_run_directory_of_many_devices_is_shortened() -> None:
    from nas.search.job import SearchJob
    from nas.search.specialize import specialization_run_dir

    job = SearchJob(target=str(TABLE), accuracy_table=str(BENCHMARK))
    names = [f"device_number_{i}_with_a_rather_long_descriptive_file_name" for i in range(5)]
    long_dir = specialization_run_dir(job, names)
    assert len(long_dir.name) <= 120 and long_dir.name.startswith("nas-bench-macro_cifar10-device_number_0")
    assert specialization_run_dir(job, [*names[:4], names[4] + "x"]) != long_dir  # the digest keeps them apart
    assert specialization_run_dir(job, ["a", "b"]).name == "nas-bench-macro_cifar10-a+b-reward"
