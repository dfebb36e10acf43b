"""``nas adapt --supernet``: NetAdapt whose in-space proposals are scored by a supernet (no fine-tuning)."""

from __future__ import annotations

import csv
import errno
import json
import os
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from nas.adapt.space_proposals import SPACE_PROPOSAL_KINDS, pick_proposals, space_candidates
from nas.arch import ArchSpec, load_arch_file, parse_compact, to_compact
from nas.cli import main
from nas.data import load_dataset
from nas.latency import TableEstimator, load_table
from nas.search.budget import extreme_arch
from nas.supernet import LoadedSupernet, SupernetEvaluator, SupernetScoring, load_supernet
from tests.adapt.conftest import make_table
from tests.conftest import TINY_SPACE, one_torch_thread, write_space

_one_thread = pytest.fixture(scope="module", autouse=True)(one_torch_thread)

SCORING = ["--calibration-images", "64", "--device", "cpu"]


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["adapt", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _history(out: Path) -> list[dict[str, str]]:
    with open(out / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def loaded(tiny_supernet: Path) -> LoadedSupernet:
    return load_supernet(tiny_supernet)


@pytest.fixture(scope="module")
def estimator(tiny_table: Path) -> TableEstimator:
    return TableEstimator(load_table(tiny_table))


@pytest.fixture(scope="module")
def run(tiny_supernet: Path, tiny_table: Path, loaded: LoadedSupernet, estimator: TableEstimator,
        tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One adapt run from the largest network halfway down to the fastest, stopped after one iteration and
    resumed by the same command."""
    start = estimator.latency_ms(loaded.supernet.largest)
    fastest = estimator.latency_ms(extreme_arch(loaded.space, estimator))
    budget = start - 0.5 * (start - fastest)
    out = tmp_path_factory.mktemp("adapt") / "run"
    args = ["--supernet", str(tiny_supernet), "--target", str(tiny_table), "--latency-ms", f"{budget:.6f}",
            "--delta", "0.1", "--out", str(out), *SCORING]
    first = main(["adapt", *args, "--max-iterations", "1"])
    second = main(["adapt", *args])
    return {"out": out, "budget": budget, "start": start, "codes": (first, second),
            "state": json.loads((out / "state.json").read_text()), "rows": _history(out)}


def test_reaches_the_goal_with_in_space_proposals_only(run: dict[str, Any], loaded: LoadedSupernet,
                                                       estimator: TableEstimator) -> None:
    assert run["codes"] == (3, 0)  # stopped by --max-iterations 1, then resumed to the goal
    state = run["state"]
    assert state["status"] == "met" and state["iteration"] >= 2
    final = load_arch_file(run["out"] / "arch.json")
    assert estimator.latency_ms(final) <= run["budget"] < run["start"]
    loaded.supernet.place(final)
    assert {int(r["iteration"]) for r in run["rows"]} == set(range(1, state["iteration"] + 1))
    for row in run["rows"]:
        loaded.supernet.place(parse_compact(row["arch"]))  # raises for a network outside the space
        assert row["kind"] in SPACE_PROPOSAL_KINDS and float(row["d_latency_ms"]) < 0
    for name in ("history.csv", "adapt.png", "summary.md", "arch.json"):
        assert (run["out"] / name).stat().st_size > 0
    assert "scored by a supernet" in (run["out"] / "summary.md").read_text()


def test_each_pick_is_the_best_ratio_of_supernet_scores(run: dict[str, Any], loaded: LoadedSupernet) -> None:
    by_iteration: dict[int, list[dict[str, str]]] = defaultdict(list)
    for row in run["rows"]:
        by_iteration[int(row["iteration"])].append(row)
    parent_acc = run["state"]["start_accuracy"]
    splits = load_dataset("digits", input_size=16, val_fraction=0.1, seed=0, subset=300, progress=False)
    evaluator = SupernetEvaluator(loaded, splits, SupernetScoring(calibration_images=64), device="cpu")
    for _, rows in sorted(by_iteration.items()):
        chosen = [r for r in rows if r["chosen"] == "1"]
        assert len(chosen) == 1
        for r in rows:  # dAcc against the parent's score, and the ratio's sign follows it
            d_acc = float(r["d_accuracy"])
            assert d_acc == pytest.approx(float(r["accuracy"]) - parent_acc, abs=2e-6)
            assert (float(r["ratio"]) > 0) == (d_acc > 0)
        assert float(chosen[0]["ratio"]) == max(float(r["ratio"]) for r in rows)
        # the recorded score is the supernet's score of that network (deterministic on one machine)
        assert float(chosen[0]["accuracy"]) == round(evaluator.evaluate(parse_compact(chosen[0]["arch"])).accuracy, 6)
        parent_acc = float(chosen[0]["accuracy"])


def test_proposals_are_the_smallest_cheaper_in_space_change_per_kind(loaded: LoadedSupernet,
                                                                     estimator: TableEstimator) -> None:
    arch = loaded.supernet.largest
    current = estimator.latency_ms(arch)
    candidates = space_candidates(loaded.supernet, arch, estimator)
    kinds = {kind for kind, _, _ in candidates}
    assert {"expansion", "kernel", "se", "drop"} <= kinds
    for _kind, _target, options in candidates:
        latencies = [o.prediction.total_ms for o in options]
        assert latencies == sorted(latencies, reverse=True) and latencies[0] < current
        for option in options:
            loaded.supernet.place(option.arch)
    goal = current - 0.05 * current
    proposals = pick_proposals(candidates, goal)
    assert proposals
    for p in proposals:
        options = next(o for k, t, o in candidates if (k, t) == (p.kind, p.target))
        first = next(o for o in options if o.prediction.total_ms <= goal)
        assert p.arch == first.arch and p.latency_ms <= goal


def test_budget_already_met_writes_the_start_network(tiny_supernet: Path, tiny_table: Path, loaded: LoadedSupernet,
                                                     tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    start = loaded.supernet.smallest
    code, stdout, _ = _cli(["--supernet", str(tiny_supernet), "--target", str(tiny_table), "--latency-ms", "1000",
                            "--arch", to_compact(start), "--out", str(tmp_path / "run"), *SCORING], capsys)
    assert code == 0 and stdout.splitlines()[-1].startswith("already_met")
    assert load_arch_file(tmp_path / "run" / "arch.json") == start


def _outside(arch: ArchSpec) -> ArchSpec:
    """``arch`` with its first block's hidden width one the space does not list."""
    first = arch.blocks[0]
    return arch.replace_blocks((replace(first, mid_ch=first.in_ch * 2), *arch.blocks[1:]))


def _other_space(tmp_path: Path) -> Path:
    def mutate(data: dict[str, Any]) -> None:
        data["stages"][2]["depth"] = [1, 2]

    return write_space(tmp_path, TINY_SPACE, mutate)


@pytest.mark.parametrize(("case", "expected"), [
    ("arch", "error: --arch in16x3"),
    ("table", "was built for space 'handmade'"),
    ("space", "is not the space the supernet in"),
    ("weights", "error: --weights: only for the fine-tuning loop"),
    ("steps", "error: --steps: only for the fine-tuning loop"),
])
def test_refusals_are_one_line(case: str, expected: str, tiny_supernet: Path, tiny_table: Path,
                               loaded: LoadedSupernet, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = make_table(tmp_path / "t.json", [loaded.supernet.largest]) if case == "table" else tiny_table
    extra = {"arch": ["--arch", to_compact(_outside(loaded.supernet.largest))], "table": [],
             "space": ["--space", str(_other_space(tmp_path))], "weights": ["--weights", str(tmp_path / "w.pt")],
             "steps": ["--steps", "10"]}[case]
    code, _, err = _cli(["--supernet", str(tiny_supernet), "--target", str(target), "--latency-ms", "0.01",
                         "--out", str(tmp_path / "run"), *SCORING, *extra], capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert expected in err
    assert not (tmp_path / "run").exists()


def test_fine_tuning_mode_refuses_supernet_options_and_needs_arch(tiny_table: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--target", str(tiny_table), "--latency-ms", "0.01", "--out", str(tmp_path / "run")]
    code, _, err = _cli([*base, "--arch", "x", "--weights", "w", "--val-images", "10"], capsys)
    assert code == 2 and err.startswith("error: --val-images: only with --supernet") and err.count("\n") == 1
    code, _, err = _cli([*base, "--arch", "x", "--weights", "w", "--cpu-bf16"], capsys)
    assert code == 2 and err.startswith("error: --cpu-bf16: only with --supernet") and err.count("\n") == 1
    code, _, err = _cli(base, capsys)
    assert code == 2 and err.startswith("error: --arch and --weights: required") and err.count("\n") == 1


def test_the_scoring_batch_size_is_kept_and_a_resume_with_another_is_refused(
        tiny_supernet: Path, tiny_table: Path, loaded: LoadedSupernet, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--supernet", str(tiny_supernet), "--target", str(tiny_table), "--latency-ms", "1000",
            "--arch", to_compact(loaded.supernet.smallest), "--out", str(tmp_path / "run"), *SCORING]
    code, _, _ = _cli([*base, "--batch-size", "64"], capsys)  # 64 is the fine-tuning default: still taken as given
    assert code == 0
    assert "-b64-" in json.loads((tmp_path / "run" / "state.json").read_text())["settings"]["scoring"]
    code, _, err = _cli([*base, "--batch-size", "7"], capsys)  # BatchNorm re-estimated in other batches
    assert code == 2 and "started with other settings (scoring: --calibration-images" in err and err.count("\n") == 1


def test_cpu_bf16_reaches_the_scores_and_a_resume_in_the_other_precision_is_refused(
        tiny_supernet: Path, tiny_table: Path, loaded: LoadedSupernet, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    base = ["--supernet", str(tiny_supernet), "--target", str(tiny_table), "--latency-ms", "1000",
            "--arch", to_compact(loaded.supernet.smallest), "--out", str(tmp_path / "run"), *SCORING]
    monkeypatch.setattr("nas.supernet.evaluate.cpu_has_native_bf16", lambda: False)
    code, _, err = _cli([*base, "--cpu-bf16"], capsys)
    assert code == 2 and "this CPU has no native bfloat16" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()  # refused before anything was written
    monkeypatch.setattr("nas.supernet.evaluate.cpu_has_native_bf16", lambda: True)
    code, _, _ = _cli([*base, "--cpu-bf16"], capsys)
    assert code == 0
    assert json.loads((tmp_path / "run" / "state.json").read_text())["settings"]["scoring"].endswith("-cpubf16")
    code, _, err = _cli(base, capsys)  # float32 scores would be mixed with the run's bfloat16 ones
    assert code == 2 and "started with other settings (scoring: --calibration-images" in err and "--cpu-bf16" in err


def _slower_table(table: Path, out: Path) -> Path:
    """The same space's table as if measured on a device twice as slow."""
    data = json.loads(table.read_text())
    for entry in data["entries"].values():
        for field in ("median", "p10", "p90"):
            entry[field] *= 2
    data["metadata"]["device"] = "a slower test device"
    out.write_text(json.dumps(data))
    return out


def test_a_resume_with_another_table_or_kind_of_device_is_refused_and_an_older_state_resumes(
        tiny_supernet: Path, tiny_table: Path, loaded: LoadedSupernet, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    base = ["--supernet", str(tiny_supernet), "--latency-ms", "1000", "--arch", to_compact(loaded.supernet.smallest),
            "--out", str(out), *SCORING]
    code, _, err = _cli(["--target", str(tiny_table), *base], capsys)
    assert code == 0, err
    state = json.loads((out / "state.json").read_text())
    assert state["settings"]["scoring_device"] == "cpu"
    code, _, err = _cli(["--target", str(_slower_table(tiny_table, tmp_path / "slower.json")), *base], capsys)
    assert code == 2 and err.count("\n") == 1 and "--target predicts" in err, err
    assert f"the run recorded {state['start_latency_ms']:.4f} ms" in err
    with monkeypatch.context() as m:  # as if scored on a GPU: its autocast scores are not mixed with the CPU's
        m.setattr("nas.supernet.evaluate._device_key", lambda device, scoring: "cuda-bf16")
        code, _, err = _cli(["--target", str(tiny_table), *base], capsys)
    assert code == 2 and err.count("\n") == 1 and "(scoring_device: --device" in err, err
    del state["settings"]["scoring_device"]  # a run begun before the kind of device was stored resumes
    (out / "state.json").write_text(json.dumps(state))
    code, _, err = _cli(["--target", str(tiny_table), *base], capsys)
    assert code == 0, err


def test_failed_writes_are_one_clear_line(tiny_supernet: Path, tiny_table: Path, loaded: LoadedSupernet,
                                          tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def full(path: Any, *_args: Any, **_kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("nas.adapt.loop.atomic_write_text", full)  # summary.md
    code, _, err = _cli(["--supernet", str(tiny_supernet), "--target", str(tiny_table), "--latency-ms", "1000",
                         "--arch", to_compact(loaded.supernet.smallest), "--out", str(tmp_path / "run"), *SCORING],
                        capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "summary.md" in err and "No space left on device" in err
    class FullDisk(type(Path())):  # type: ignore[misc]
        mkdir = full

    monkeypatch.setattr("nas.supernet.extract.Path", FullDisk)  # the folder of nas supernet extract's output
    code = main(["supernet", "extract", "--supernet", str(tiny_supernet), "--arch",
                 to_compact(loaded.supernet.smallest), "-o", str(tmp_path / "new" / "model.pt"),
                 "--calibration-images", "64"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert str(tmp_path / "new") in err and "No space left on device" in err


@pytest.mark.parametrize("damage", [b'{"settings": {"mode": "sup', b"[1, 2]\n", b"\xff\xfe"])
def test_a_damaged_state_file_is_one_clear_line(damage: bytes, tiny_supernet: Path, tiny_table: Path,
                                                loaded: LoadedSupernet, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "state.json").write_bytes(damage)
    code, _, err = _cli(["--supernet", str(tiny_supernet), "--target", str(tiny_table), "--latency-ms", "1000",
                         "--arch", to_compact(loaded.supernet.smallest), "--out", str(out), *SCORING], capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{out / 'state.json'}: not a readable adapt state" in err
    assert (out / "state.json").read_bytes() == damage  # nothing overwritten
