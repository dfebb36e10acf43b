"""``benchmarks/macro_space.py``: every NAS-Bench-Macro key agrees with the file; disagreements are reported."""

from __future__ import annotations

import json
from types import ModuleType

import pytest

from tests.conftest import SHARED, load_benchmark

BENCHMARK = SHARED / "benchmarks" / "nas-bench-macro" / "nas-bench-macro_cifar10.json"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_benchmark("macro_space")


def test_every_key_agrees_and_the_report_says_how_the_file_counts(script: ModuleType) -> None:
    data = json.loads(BENCHMARK.read_text())
    analysis = script.analyse(data)
    assert (analysis["keys"], analysis["params_equal"], analysis["flops_equal"]) == (6561, 6561, 6561)
    assert analysis["mismatches"] == [] and analysis["distinct_functions"] == 9 * 21 * 21
    text = script.report({"config": {"file": "f.json"}, "analysis": analysis, "machine": "test"})
    assert "| parameters: ours vs the file's `params` | 6,561 of 6,561 | 0 |" in text
    assert "`flops(key) = macs(key)` for all keys" in text and "registration order" in text


def test_a_disagreeing_file_is_reported(script: ModuleType) -> None:
    data = {key: dict(v) for key, v in list(json.loads(BENCHMARK.read_text()).items())[:20]}
    key = next(iter(data))
    data[key]["flops"] += 1
    analysis = script.analyse(data)
    assert analysis["flops_equal"] == 19 and analysis["params_equal"] == 20 and analysis["flops_max_abs_diff"] == 1
    text = script.report({"config": {"file": "f.json"}, "analysis": analysis, "machine": "test"})
    assert "1 of 20 keys disagree" in text and f"`{key}`" in text
