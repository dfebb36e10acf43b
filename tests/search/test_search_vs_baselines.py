"""benchmarks/search_vs_baselines.py's bookkeeping: the shared cache (benchmarks/_common.py) and ``--only``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPO, load_benchmark

SCRIPT = REPO / "benchmarks" / "search_vs_baselines.py"


@pytest.fixture(scope="module")
def svb() -> ModuleType:
    return load_benchmark("search_vs_baselines")


def test_two_caches_on_one_folder_keep_each_others_values(svb: ModuleType, tmp_path: Path) -> None:
    first, second = svb.Cache(tmp_path), svb.Cache(tmp_path)  # both opened before either writes
    assert first.get("a", lambda: 1) == 1
    assert second.get("b", lambda: 2) == 2
    stored = json.loads((tmp_path / "cache.json").read_text())
    assert stored.pop("_seconds").keys() == {"a", "b"}  # the seconds each value took
    assert stored == {"a": 1, "b": 2}
    assert svb.Cache(tmp_path).get("a", lambda: pytest.fail("a cached value was computed again")) == 1


def test_cache_writes_from_separate_processes_are_merged(tmp_path: Path) -> None:
    """Two processes open the cache, wait for each other, then write 20 values each."""
    worker = tmp_path / "worker.py"
    worker.write_text(
        "import importlib.util, sys, time\n"
        "from pathlib import Path\n"
        "sys.path.append(str(Path(sys.argv[1]).parent))  # the helpers beside the script, as when it runs\n"
        "spec = importlib.util.spec_from_file_location('svb', sys.argv[1])\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['svb'] = m; spec.loader.exec_module(m)\n"
        "root, tag = Path(sys.argv[2]), sys.argv[3]\n"
        "cache = m.Cache(root)\n"
        "(root / f'ready-{tag}').touch()\n"
        "while len(list(root.glob('ready-*'))) < 2: time.sleep(0.01)\n"
        "for i in range(20): cache.get(f'{tag}{i}', lambda i=i: i)\n")
    cache_dir = tmp_path / "work"
    cache_dir.mkdir()
    procs = [subprocess.Popen([sys.executable, str(worker), str(SCRIPT), str(cache_dir), tag], cwd=REPO)
             for tag in ("x", "y")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    data = json.loads((cache_dir / "cache.json").read_text())
    assert data.pop("_seconds").keys() == {f"{tag}{i}" for tag in ("x", "y") for i in range(20)}
    assert data == {f"{tag}{i}": i for tag in ("x", "y") for i in range(20)}


def test_caches_written_before_the_shared_cache_are_read(svb: ModuleType, tmp_path: Path) -> None:
    """search_vs_baselines' ``cache.json`` (no seconds) and netadapt_vs_width's ``results.json`` (with them)."""
    (tmp_path / "cache.json").write_text(json.dumps({"latency/x": 1.5}, indent=2, sort_keys=True))
    (tmp_path / "results.json").write_text(json.dumps({"_seconds": {"test/start": 3.0}, "test/start": 0.25}, indent=1))
    assert svb.Cache(tmp_path).get("latency/x", lambda: pytest.fail("computed again")) == 1.5
    old = svb.Cache(tmp_path, "results.json")
    assert old.get("test/start", lambda: pytest.fail("computed again")) == 0.25
    assert old.get("alpha/0.5", lambda: 0.55) == 0.55
    assert old.seconds.keys() == {"test/start", "alpha/0.5"}
    assert json.loads((tmp_path / "results.json").read_text())["test/start"] == 0.25


def test_only_and_train_only_are_parsed_and_unknown_contenders_refused(svb: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert svb.parse([]).only == svb.CONTENDERS
    assert svb.parse([]).train_only is False
    assert svb.parse(["--train-only", "--only", "random"]).train_only is True
    assert svb.parse(["--only", "tpe", "width"]).only == ("tpe", "width")
    with pytest.raises(SystemExit) as exc:
        svb.parse(["--only", "bogus"])
    assert exc.value.code == 2
    assert "invalid choice: 'bogus'" in capsys.readouterr().err


def test_a_value_stored_meanwhile_by_another_invocation_is_not_computed_again(svb: ModuleType, tmp_path: Path) -> None:
    stale, other = svb.Cache(tmp_path), svb.Cache(tmp_path)
    assert other.get("retrain/x", lambda: {"acc": 0.5}) == {"acc": 0.5}
    assert stale.get("retrain/x", lambda: pytest.fail("computed again although stored")) == {"acc": 0.5}


def _row(network: str, accs: list[float], ms: float) -> dict[str, object]:
    return {"network": network, "test_acc": accs, "measured_ms": ms}


def test_verdict_compares_only_the_rows_present(svb: ModuleType) -> None:
    tpe = _row("search, tpe sampler", [0.60, 0.61, 0.62], 1.0)
    random = _row("search, random sampler", [0.55, 0.56, 0.57], 1.1)
    width = _row(f"{svb.REFERENCE} x width", [0.60, 0.61, 0.62], 0.9)
    lines = svb.verdict({"rows": [tpe, random, width]})
    assert any("random sampler: +5.00 points (spread 1.00)" in x and "beats it" in x for x in lines)
    assert any("x width: +0.00 points" in x and "goal NOT met" in x for x in lines)
    assert svb.verdict({"rows": [tpe]}) == []  # nothing to compare with: no empty "Goals" heading
    assert svb.verdict({"rows": [random, width]}) == []


def test_width_baselines_bracket_the_budget(svb: ModuleType) -> None:
    """The width row is the largest alpha within the budget, the width-over row the next alpha on the grid."""
    estimator = svb.TableEstimator(svb.load_table(REPO / "latency_tables" / "ort-cpu-1t.json"),
                                   on_missing="interpolate", save=False)
    budget = 0.5 * estimator.latency_ms(svb.reference_arch(svb.REFERENCE))
    under, under_arch, under_within = svb.width_baseline(estimator, budget)
    over, over_arch, over_within = svb.width_baseline(estimator, budget, over=True)
    assert under_within and not over_within
    assert round(over - under, 2) == 0.05
    assert estimator.latency_ms(under_arch) <= budget < estimator.latency_ms(over_arch)
    everything, _, within = svb.width_baseline(estimator, 1e9, over=True)  # no alpha is over: the largest
    assert (everything, within) == (1.0, True)


def test_verdict_on_the_width_multiplier_needs_a_width_row_at_least_as_slow(svb: ModuleType) -> None:
    tpe = _row("search, tpe sampler", [0.60, 0.61, 0.62], 1.2)
    under = _row(svb.WIDTH, [0.50, 0.51, 0.52], 1.0)
    over = _row(svb.WIDTH_OVER, [0.52, 0.53, 0.54], 1.3)
    lines = svb.verdict({"rows": [tpe, under, over]})
    assert any("x width: +10.00 points" in x and "goal NOT met (slower)" in x for x in lines)
    assert any("next alpha: +8.00 points" in x and "beats it" in x for x in lines)
    family = [x for x in lines if "width multiplier at its latency" in x]
    assert len(family) == 1 and "beats it" in family[0]
    close = _row(svb.WIDTH_OVER, [0.59, 0.60, 0.61], 1.3)  # as slow, but not behind by more than the spread
    family = [x for x in svb.verdict({"rows": [tpe, under, close]}) if "width multiplier at its latency" in x]
    assert len(family) == 1 and "goal NOT met" in family[0]
    assert not any("at its latency" in x for x in svb.verdict({"rows": [tpe, under]}))  # only with the width-over row


def test_width_matching_bisects_measured_latency_to_within_the_tolerance(svb: ModuleType) -> None:
    calls: list[float] = []

    def measure(alpha: float) -> float:  # latency grows with alpha: 0.3 ms + 2 ms x alpha^2
        calls.append(alpha)
        return 0.3 + 2 * alpha ** 2

    alpha, ms, within = svb.match_width(measure, target_ms=1.0, tolerance=0.03)
    assert within and abs(ms - 1.0) <= 0.03 and ms == measure(alpha)
    assert 0.57 <= alpha <= 0.61  # sqrt(0.35) = 0.5916; the first alpha within 3 % ends the bisection
    assert len(calls) <= 9  # bisection over 91 alphas, not a scan
    # out of reach: the closest alpha measured, flagged
    alpha, ms, within = svb.match_width(measure, target_ms=5.0, tolerance=0.03)
    assert (alpha, within) == (1.0, False) and ms == 2.3
    # a step in latency that the grid cannot resolve: the nearer side of the step, flagged
    alpha, ms, within = svb.match_width(lambda a: 1.0 if a < 0.5 else 2.0, target_ms=1.4, tolerance=0.03)
    assert (alpha, ms, within) == (0.49, 1.0, False)


def test_width_matching_scans_next_to_the_closest_when_latency_is_not_monotone(svb: ModuleType) -> None:
    # As measured on the Intel VM: 0.37 -> 0.91 ms, 0.43 -> 1.07 ms, 0.55 -> 0.83 ms against a target of 0.793;
    # here a dip at 0.52-0.53 that the bisection steps over, and a bump that sends it the wrong way.
    def measure(alpha: float) -> float:
        calls.append(alpha)
        bump = 0.3 if 0.40 <= alpha <= 0.50 else 0.0
        dip = -0.05 if alpha in (0.52, 0.53) else 0.0
        return 0.2 + 1.2 * alpha + bump + dip

    calls: list[float] = []
    alpha, ms, within = svb.match_width(measure, target_ms=0.793, tolerance=0.03)
    assert within and alpha in (0.52, 0.53) and abs(ms - 0.793) <= 0.03 * 0.793
    assert len(calls) <= 9 + 20 and len(set(calls)) == len(calls)  # never the same alpha twice
    calls.clear()
    none = svb.match_width(lambda a: calls.append(a) or (1.0 if a < 0.5 else 2.0), target_ms=1.4, tolerance=0.03,
                           scan=5)
    assert none == (0.49, 1.0, False) and len(calls) <= 9 + 5


def test_the_other_side_of_a_missed_match_brackets_the_target(svb: ModuleType) -> None:
    # As measured on the AMD EPYC VM: alpha 0.55 -> 0.780 ms, 0.56 -> 0.998 ms, the supernet winner 0.869 ms.
    def step(alpha: float) -> float:
        return 0.780 if alpha <= 0.55 else 0.998

    alpha, ms, within = svb.match_width(step, target_ms=0.869, tolerance=0.03)
    assert (alpha, within) == (0.55, False)
    assert svb.other_side(step, alpha, 0.869) == (0.56, 0.998)
    # from above: the next alpha down that measures at or under the target, past a plateau
    plateau = lambda a: 2.0 if a >= 0.60 else (1.5 if a >= 0.50 else 1.0)  # noqa: E731
    assert svb.other_side(plateau, 0.60, 1.2) == (0.49, 1.0)
    # no alpha on the other side within 0.10-1.00
    assert svb.other_side(lambda a: 1.0, 0.95, 2.0) is None
    assert svb.other_side(lambda a: 1.0, 0.12, 0.5) is None


def test_paired_difference_is_the_mean_per_seed_difference_with_a_t_interval(svb: ModuleType) -> None:
    res = svb.paired_difference([0.80, 0.82, 0.81], [0.78, 0.79, 0.80])
    assert res["n"] == 3 and res["mean"] == pytest.approx(0.02)
    # differences 0.02, 0.03, 0.01: sd 0.01, t(0.975, 2) = 4.303
    assert res["ci"] == pytest.approx([0.02 - 4.303 * 0.01 / 3 ** 0.5, 0.02 + 4.303 * 0.01 / 3 ** 0.5], abs=1e-4)
    one = svb.paired_difference([0.5], [0.4])
    assert one["mean"] == pytest.approx(0.1) and one["n"] == 1 and all(x != x for x in one["ci"])  # nan
    with pytest.raises(ValueError, match="same seeds"):
        svb.paired_difference([0.5, 0.6], [0.4])


def test_supernet_rows_need_a_supernet_and_come_with_one(svb: ModuleType, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        svb.parse(["--only", "tpe", "supernet"])
    assert exc.value.code == 2 and "--only supernet needs --supernet DIR" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        svb.parse(["--supernet", str(tmp_path)])  # no supernet.json there
    assert f"--supernet {tmp_path}: no supernet.json there" in capsys.readouterr().err
    (tmp_path / "supernet.json").write_text("{}")
    assert svb.parse(["--supernet", str(tmp_path)]).only == svb.CONTENDERS + svb.SUPERNET_ROWS
    assert svb.parse(["--supernet", str(tmp_path), "--only", "width-matched"]).only == ("width-matched",)
    assert svb.parse([]).only == svb.CONTENDERS  # without a supernet: the rows as before


def test_latencies_are_kept_per_cpu_model(svb: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run resumed on another CPU measures again instead of mixing two CPUs' timings in one table."""
    from nas.arch import reference_arch

    timings = iter([1.0, 2.0])
    monkeypatch.setattr(svb, "measured_ms", lambda arch, seconds: next(timings))
    cfg, cache, arch = svb.Config(work=str(tmp_path)), svb.Cache(tmp_path), reference_arch("mobilenetv2-cifar")
    monkeypatch.setattr(svb, "cpu_identity", lambda: "AMD EPYC (AuthenticAMD/25/17/0)")
    assert svb.measured(cfg, cache, arch) == 1.0
    assert svb.measured(cfg, cache, arch) == 1.0  # kept
    monkeypatch.setattr(svb, "cpu_identity", lambda: "AMD EPYC (AuthenticAMD/23/49/0)")  # same name, older CPU
    assert svb.measured(cfg, cache, arch) == 2.0  # another CPU: measured again
    monkeypatch.setattr(svb, "cpu_identity", lambda: "AMD EPYC (AuthenticAMD/25/17/0)")
    assert svb.measured(cfg, svb.Cache(tmp_path), arch) == 1.0  # the first CPU's value is still there


def test_cpu_identity_adds_family_model_and_stepping_to_the_model_name(svb: ModuleType) -> None:
    from _common import cpu_identity
    from nas.latency.measure import cpu_name

    if not Path("/proc/cpuinfo").exists():
        pytest.skip("no /proc/cpuinfo on this system")
    identity = cpu_identity()
    if "?" in identity:
        pytest.skip(f"/proc/cpuinfo names no x86 family and model here: {identity}")
    assert identity.startswith(cpu_name() + " (") and identity.endswith(")")
    vendor, family, model, stepping = identity[len(cpu_name()) + 2:-1].split("/")
    assert vendor and family.isdigit() and model.isdigit() and stepping.isdigit(), identity


def test_the_tables_latencies_are_measured_together_once_per_cpu(svb: ModuleType, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Every row's latency comes from one invocation, kept as one entry: a re-run reuses them all, another CPU
    measures them all again, and the report says where and when they were measured."""
    from nas.arch import reference_arch, width_multiplier

    calls: list[str] = []

    def timing(arch: object, seconds: float) -> float:
        calls.append(str(arch))
        return float(len(calls))

    monkeypatch.setattr(svb, "measured_ms", timing)
    monkeypatch.setattr(svb, "cpu_identity", lambda: "CPU A (v/1/2/3)")
    cfg, ref = svb.Config(work=str(tmp_path)), reference_arch("mobilenetv2-cifar")
    archs = {"width-matched": width_multiplier(ref, 0.5), "reference": ref}
    first = svb.final_latencies(cfg, svb.Cache(tmp_path), archs)
    assert first["ms"] == {"width-matched": 1.0, "reference": 2.0} and first["cpu"] == "CPU A (v/1/2/3)"
    assert svb.final_latencies(cfg, svb.Cache(tmp_path), archs) == first and len(calls) == 2  # kept, all of them
    monkeypatch.setattr(svb, "cpu_identity", lambda: "CPU B (v/1/2/4)")
    assert svb.final_latencies(cfg, svb.Cache(tmp_path), archs)["ms"] == {"width-matched": 3.0, "reference": 4.0}
    note = svb._timed_note({"latencies": {k: v for k, v in first.items() if k != "ms"}})
    assert "one after the other on CPU A (v/1/2/3) at " in note and first["when"] in note
    assert svb._timed_note({}) == ""  # results written before the note


def test_the_supernet_search_scores_on_the_cpu_by_default(svb: ModuleType, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Its study stores the kind of device, and a run in pieces may move between machines: one kind for all."""
    jobs: list[object] = []
    monkeypatch.setattr(svb, "run_search_job", lambda job, log: jobs.append(job) or {"best": {"arch": {}}})
    (tmp_path / "supernet.json").write_text("{}")
    svb.search_on_supernet(svb.parse(["--supernet", str(tmp_path), "--work", str(tmp_path)]), 1.0)
    svb.search_on_supernet(svb.parse(["--supernet", str(tmp_path), "--supernet-device", "auto"]), 1.0)
    assert [job.device for job in jobs] == ["cpu", "auto"]  # type: ignore[attr-defined]
