"""benchmarks/sampler_surrogate.py: its synthetic surface and one short search through the real loop."""

from __future__ import annotations

from types import ModuleType

import pytest

from nas.arch import reference_arch, width_multiplier
from nas.latency import TableEstimator, load_table
from nas.latency.spaces import space_for_table
from nas.search.budget import extreme_params
from tests.conftest import REPO, load_benchmark

@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_benchmark("sampler_surrogate")


@pytest.fixture(scope="module")
def setup(bench: ModuleType):  # type: ignore[no-untyped-def]
    table = load_table(REPO / "latency_tables" / "ort-cpu-1t.json")
    space = space_for_table(table, None)
    est = TableEstimator(table, on_missing="interpolate", save=False)
    budget = 0.5 * est.latency_ms(reference_arch(bench.REFERENCE))
    return bench.Setup(space, est, budget, extreme_params(space, est))


def test_observations_are_reproducible_and_end_near_the_truth(bench: ModuleType, setup) -> None:  # type: ignore[no-untyped-def]
    arch = width_multiplier(reference_arch(bench.REFERENCE), 0.5)
    ev = bench.SurfaceEvaluator(setup.estimator, setup.budget_ms, noise=0.02, seed=3)
    seen: list[tuple[int, float]] = []
    first = ev.evaluate(arch, report=lambda e, a: seen.append((e, a)))
    assert first == ev.evaluate(arch)
    assert [e for e, _ in seen] == [1, 2, 3]
    assert first.accuracy == pytest.approx(ev.truth(arch), abs=0.1)
    noiseless = bench.SurfaceEvaluator(setup.estimator, setup.budget_ms, noise=0.0, seed=3).evaluate(arch)
    assert noiseless.acc_per_epoch[-1] == pytest.approx(ev.truth(arch))
    assert list(noiseless.acc_per_epoch) == sorted(noiseless.acc_per_epoch)
    # the surface rewards latency used: the full-width network beats the half-width one
    wide = width_multiplier(reference_arch(bench.REFERENCE), 1.0)
    assert ev.truth(wide) > ev.truth(arch)


def test_one_search_reports_its_winner_within_the_budget(bench: ModuleType, setup) -> None:  # type: ignore[no-untyped-def]
    out = bench.one_search(setup, "tpe", None, seed=0, trials=8, noise=0.0)
    assert set(out) == {"winner_truth", "confirmed_winner_truth", "mean_truth", "mean_latency_ms", "pruned", "epochs",
                        "confirm_epochs"}
    assert out["confirm_epochs"] == 3 * 3 * 2  # the top 3 observed again with 2 seeds, 3 epochs each
    assert out["epochs"] >= 8  # every trial trains at least one epoch
    # without noise a confirmation changes nothing
    assert out["confirmed_winner_truth"] == out["winner_truth"]
    assert 0.0 < out["mean_latency_ms"] <= setup.budget_ms
    # without noise the pruner stops the worse networks and the winner is the best trained one
    assert 0.2 < out["winner_truth"] < 0.6 and out["winner_truth"] > out["mean_truth"]


def test_the_variant_shown_earlier_refusals_searches_differently(bench: ModuleType, setup) -> None:  # type: ignore[no-untyped-def]
    as_run = bench.one_search(setup, "tpe", None, seed=0, trials=6, noise=0.02)
    shown = bench.one_search(setup, "tpe", 100, seed=0, trials=6, noise=0.02)
    assert as_run == bench.one_search(setup, "tpe", None, seed=0, trials=6, noise=0.02)  # reproducible
    assert shown != as_run  # keep_rejected reaches the search: with it TPE leaves its random start sooner


def test_confirmation_observes_again_with_other_noise(bench: ModuleType, setup) -> None:  # type: ignore[no-untyped-def]
    arch = width_multiplier(reference_arch(bench.REFERENCE), 0.5)
    ev = bench.SurfaceEvaluator(setup.estimator, setup.budget_ms, noise=0.02, seed=3)
    again = ev.reseeded(1)
    assert again.evaluate(arch) == ev.reseeded(1).evaluate(arch)
    assert again.evaluate(arch).accuracy != ev.evaluate(arch).accuracy
    assert again.truth(arch) == ev.truth(arch)
