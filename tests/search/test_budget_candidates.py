"""The budget helpers and the proposer's repair on spaces with candidate lists and skip blocks (synthetic tables)."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from nas.latency import TableEstimator, arch_parts
from nas.latency.build import space_parts
from nas.search import SearchConfig, check_budget, extreme_arch, run_search
from nas.search.budget import extreme_params
from nas.search._proposer import arch_from_params, repair
from nas.space import load_space
from nas.space.keys import arch_to_key, key_to_arch, params_to_key
from tests.conftest import REPO
from tests.latency.synthetic import all_networks, synthetic_table
from tests.search.conftest import FakeEvaluator

SKIP_SPACE = REPO / "tests" / "latency" / "skip_space.yaml"
MACRO = REPO / "search_spaces" / "nas_bench_macro.yaml"


def _estimator(space_path: Path) -> tuple[object, TableEstimator]:
    space = load_space(space_path)
    table = synthetic_table(space_parts(space, references=False))
    return space, TableEstimator(table, on_missing="error", save=False)


@pytest.mark.parametrize("path", [SKIP_SPACE, MACRO], ids=["skip_space", "nas_bench_macro"])
def test_the_extremes_are_the_fastest_and_slowest_networks_and_replay(path: Path) -> None:
    space, est = _estimator(path)
    networks = all_networks(space) if path == SKIP_SPACE else \
        [key_to_arch(space, "".join(key)) for key in itertools.product("012", repeat=8)]
    lats = [est.latency_ms(a) for a in networks]
    fast, slow = extreme_arch(space, est), extreme_arch(space, est, fastest=False)
    assert est.latency_ms(fast) <= min(lats) + 1e-12 and est.latency_ms(slow) >= max(lats) - 1e-12
    for arch, fastest in ((fast, True), (slow, False)):
        params = extreme_params(space, est, fastest=fastest)
        rebuilt, options = arch_from_params(space, params)  # replays through sample_arch with a recording chooser
        assert rebuilt == arch and set(options) == set(params)
    assert check_budget(est.latency_ms(fast) * 1.01, space, est) == fast


def test_the_fastest_network_of_nas_bench_macro_is_all_skips() -> None:
    space, est = _estimator(MACRO)
    fast = extreme_arch(space, est)
    assert arch_to_key(space, fast) == "00000000"
    assert params_to_key(space, extreme_params(space, est)) == "00000000"
    assert [p.name for p in arch_parts(fast)] == ["stem", "block0", "block2", "block5", "head"]  # 3 conv skips
    assert arch_to_key(space, extreme_arch(space, est, fastest=False)) == "22222222"


@pytest.mark.parametrize("path", [SKIP_SPACE, MACRO], ids=["skip_space", "nas_bench_macro"])
def test_repair_lowers_candidates_until_the_network_fits(path: Path) -> None:
    space, est = _estimator(path)
    slow = extreme_params(space, est, fastest=False)
    fastest_ms = est.latency_ms(extreme_arch(space, est))
    slowest_ms = est.latency_ms(arch_from_params(space, slow)[0])
    limit = fastest_ms + (slowest_ms - fastest_ms) * 0.3
    for seed in range(3):
        params, latency = repair(space, est, slow, limit, random.Random(seed))
        arch, options = arch_from_params(space, params)
        assert set(params) == set(options) and latency == pytest.approx(est.latency_ms(arch)) and latency <= limit
        assert all(isinstance(v, (str, int)) for v in params.values())  # Optuna-storable categorical values


@pytest.mark.parametrize("objective", ["reward", "pareto"])
def test_a_search_of_nas_bench_macro_stores_readable_parameters_and_keys(tmp_path: Path, objective: str) -> None:
    space, est = _estimator(MACRO)
    fastest_ms = est.latency_ms(extreme_arch(space, est))
    slowest_ms = est.latency_ms(extreme_arch(space, est, fastest=False))
    config = SearchConfig(n_trials=6, budget_ms=(fastest_ms + slowest_ms) / 2, run_dir=tmp_path, objective=objective,
                          seed=0)
    study = run_search(config, space, est, FakeEvaluator(), fingerprint={"x": 1}, warm_start=extreme_params(space, est))
    trials = study.get_trials()
    assert len(trials) == 6 and params_to_key(space, trials[0].params) == "00000000"  # the warm start
    for trial in trials:
        assert set(trial.params) == {f"s{i}.b{j}.op" for i, depth in enumerate((2, 3, 3)) for j in range(depth)}
        assert set(trial.params.values()) <= {"skip", "ir_e3_k3", "ir_e6_k5"}
        arch = arch_from_params(space, trial.params)[0]
        assert arch_to_key(space, arch) == params_to_key(space, trial.params)
        assert trial.user_attrs["latency_ms"] == pytest.approx(est.latency_ms(arch))
