"""benchmarks/search_regret.py: the regret of real searches on a synthetic ground truth, and its statistics."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from nas.space import load_space
from nas.space.keys import key_positions
from tests.conftest import REPO, load_benchmark

MACRO = REPO / "search_spaces" / "nas_bench_macro.yaml"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_benchmark("search_regret")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every key of the space with made-up accuracies: 80 % plus 1 point per '1' and 2 per '2' (3 seeds)."""
    import itertools

    n = len(key_positions(load_space(MACRO)))
    table = {}
    for digits in itertools.product("012", repeat=n):
        key = "".join(digits)
        acc = 80 + sum(int(d) for d in key) * 0.5
        table[key] = {"test_acc": [acc - 0.1, acc, acc + 0.1]}
    path = tmp_path_factory.mktemp("truth") / "synthetic.json"
    path.write_text(json.dumps(table))
    return path


@pytest.fixture(scope="module")
def setup(bench: ModuleType, synthetic: Path):  # type: ignore[no-untyped-def]
    return bench.make_setup(accuracies=synthetic)


def test_budgets_and_the_best_network_within_each(bench: ModuleType, setup) -> None:  # type: ignore[no-untyped-def]
    lat = sorted(setup.latency.values())
    for q in bench.QUANTILES:
        budget = setup.budgets[q]
        within_share = sum(ms <= budget for ms in lat) / len(lat)  # networks of equal latency tie at the quantile
        assert q <= within_share <= q + 0.01
        within = [k for k, ms in setup.latency.items() if ms <= budget]
        assert setup.best[q] == max(setup.truth[k] for k in within)  # brute force over every network
        assert setup.truth[max(within, key=setup.truth.get)] == pytest.approx(
            (80 + 0.5 * sum(map(int, max(within, key=setup.truth.get)))) / 100)


@pytest.mark.parametrize("sampler", ["random", "evolution", "nsga2", "tpe"])
def test_one_search_reports_its_winners_true_regret(bench: ModuleType, setup, sampler: str) -> None:  # type: ignore[no-untyped-def]
    row = bench.one_search(bench.Task(0.5, sampler, 24, "seed", 3), setup)
    winner = row["winner"]
    assert setup.latency[winner] <= setup.budgets[0.5]  # the winner meets the budget
    assert row["regret"] == pytest.approx(100 * (setup.best[0.5] - setup.truth[winner]))
    assert row["regret"] >= 0
    again = bench.one_search(bench.Task(0.5, sampler, 24, "seed", 3), setup)
    assert again["winner"] == winner  # reproducible from the seed


def test_more_trials_find_better_networks_on_an_easy_surface(bench: ModuleType, setup) -> None:  # type: ignore[no-untyped-def]
    few = [bench.one_search(bench.Task(0.75, "evolution", 24, "seed", s), setup)["regret"] for s in range(6)]
    many = [bench.one_search(bench.Task(0.75, "evolution", 100, "seed", s), setup)["regret"] for s in range(6)]
    assert sum(many) < sum(few)


def test_statistics(bench: ModuleType) -> None:
    cell = bench.cell_stats([0.0, 1.0, 2.0, 3.0])
    assert cell["mean"] == 1.5 and cell["median"] == 1.5 and cell["found_best"] == 0.25
    assert cell["ci_low"] < 1.5 < cell["ci_high"]
    better = [0.1 * i for i in range(30)]
    worse = [x + 0.5 + 0.01 * i for i, x in enumerate(better)]
    result = bench.paired(better, worse)
    assert result["p_less"] < 1e-6 and result["wins"] == 30 and result["losses"] == 0
    assert bench.paired(worse, better)["p_less"] > 0.99
    assert bench.paired(better, better)["p_less"] == 1.0


def test_the_grid_runs_gaussian_noise_only_where_asked(bench: ModuleType) -> None:
    tasks = bench.grid(2, [24, 100], ["random", "tpe"], ["random"], [100])
    seeded = [t for t in tasks if t.noise == "seed"]
    noisy = [t for t in tasks if t.noise != "seed"]
    assert len(seeded) == 3 * 2 * 2 * 2 and len(noisy) == 3 * 1 * 3 * 1 * 2
    assert {t.trials for t in noisy} == {100} and {t.sampler for t in noisy} == {"random"}
    assert len({t.key for t in tasks}) == len(tasks)


def test_tpe_takes_neighbours_instead_of_repeating_networks(bench: ModuleType, setup) -> None:  # type: ignore[no-untyped-def]
    """Late in a search of this small space TPE keeps drawing networks it has evaluated; asking it again
    lets trials repeat networks, the neighbours do not (same seed, same budget)."""
    task = bench.Task(0.5, "tpe", 100, "seed", 2)
    near = bench.one_search(task, setup)
    again = bench.one_search(task, setup, tpe_neighbours=False)
    assert near["networks"] >= 98 and near["networks"] > again["networks"]
    assert setup.latency[near["winner"]] <= setup.budgets[0.5]


def test_tpe_neighbours_pairs_the_two_policies_by_seed() -> None:
    import math

    from scipy import stats

    bench = load_benchmark("tpe_neighbours")
    diffs = [0.1, -0.3, 0.0, -0.2, -0.1]
    rows = []
    for seed, d in enumerate(diffs):
        old = {"quantile": 0.5, "trials": 100, "seed": seed, "regret": 0.5 + 0.1 * seed, "seconds": 4.0, "networks": 90}
        rows += [{**old, "neighbours": False}, {**old, "neighbours": True, "regret": old["regret"] + d,
                                                  "seconds": 1.0, "networks": 100}]
    rows.append({**rows[0], "seed": 99})  # only one policy ran seed 99: left out of the pairs
    [row] = bench.compare(rows)
    mean = sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
    half = stats.t.ppf(0.975, len(diffs) - 1) * sd / math.sqrt(len(diffs))
    assert row["n"] == 5 and row["diff_mean"] == pytest.approx(mean)
    assert row["diff_ci"] == pytest.approx([mean - half, mean + half])
    assert row["p"] == pytest.approx(stats.wilcoxon(diffs).pvalue)
    assert (row["seconds_new"], row["seconds_old"], row["networks_new"], row["networks_old"]) == (1.0, 4.0, 100, 90)
