"""The ground-truth evaluator (``--accuracy-table``) on NAS-Bench-Macro's real file."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest

from nas.arch import reference_arch
from nas.errors import AccuracyTableError
from nas.search.ground_truth import TableEvaluator, load_accuracy_table
from nas.space import load_space
from nas.space.keys import key_to_arch
from tests.conftest import DEFAULT_SPACE, REPO, SHARED

MACRO = REPO / "search_spaces" / "nas_bench_macro.yaml"
BENCHMARK = SHARED / "benchmarks" / "nas-bench-macro" / "nas-bench-macro_cifar10.json"


@pytest.fixture(scope="module")
def macro() -> object:
    return load_space(MACRO)


@pytest.fixture(scope="module")
def table(macro):  # type: ignore[no-untyped-def]
    return load_accuracy_table(BENCHMARK, macro)


@pytest.fixture(scope="module")
def raw() -> dict[str, dict[str, object]]:
    return json.loads(BENCHMARK.read_text())


def test_the_benchmark_file_loads_with_every_network_in_fractions(table, raw) -> None:  # type: ignore[no-untyped-def]
    assert len(table.entries) == 3 ** 8 == len(raw)
    assert table.accuracies("02012100") == pytest.approx(tuple(a / 100 for a in raw["02012100"]["test_acc"]))
    assert table.mean("02012100") == pytest.approx(raw["02012100"]["mean_acc"] / 100)


def test_seed_mode_takes_the_recorded_seeds_in_turn_and_mean_mode_their_mean(macro, table, raw) -> None:  # type: ignore[no-untyped-def]
    for key in ("02012100", "11111221", "00000000", "22222222"):
        arch = key_to_arch(macro, key)
        recorded = sorted(a / 100 for a in raw[key]["test_acc"])
        for base in (0, 5):  # the search's own seed and its two confirmations take the three recorded seeds
            got = [TableEvaluator(table, macro, seed=base + k).evaluate(arch).accuracy for k in range(3)]
            assert sorted(got) == pytest.approx(recorded)
        again = TableEvaluator(table, macro, seed=5).evaluate(arch)
        assert again.accuracy == TableEvaluator(table, macro, seed=5).evaluate(arch).accuracy  # reproducible
        mean = TableEvaluator(table, macro, value="mean", seed=3).evaluate(arch)
        assert mean.accuracy == pytest.approx(statistics.fmean(recorded)) and mean.acc_per_epoch == (mean.accuracy,)


def test_gaussian_noise_is_reproducible_and_of_the_stated_size(macro, table) -> None:  # type: ignore[no-untyped-def]
    keys = list(table.entries)[:400]
    noisy = TableEvaluator(table, macro, noise=1.0, seed=2)
    errors = [noisy.score(k) - table.mean(k) for k in keys]
    assert errors == [TableEvaluator(table, macro, noise=1.0, seed=2).score(k) - table.mean(k) for k in keys]
    assert 0.009 < float(np.std(errors)) < 0.011 and abs(float(np.mean(errors))) < 0.002  # 1 point = 0.01
    assert errors != [noisy.reseeded(3).score(k) - table.mean(k) for k in keys]


def test_reports_one_epoch_and_names_its_protocol(macro, table) -> None:  # type: ignore[no-untyped-def]
    seen: list[tuple[int, float]] = []
    ev = TableEvaluator(table, macro).evaluate(key_to_arch(macro, "12121212"), report=lambda e, a: seen.append((e, a)))
    assert seen == [(1, ev.accuracy)] and ev.status == "completed"
    assert TableEvaluator(table, macro).fingerprint != TableEvaluator(table, macro, value="mean").fingerprint
    assert TableEvaluator(table, macro).epochs == 1


def test_a_network_the_file_lacks_is_one_clear_error(macro, tmp_path: Path, raw) -> None:  # type: ignore[no-untyped-def]
    part = tmp_path / "part.json"
    part.write_text(json.dumps({k: raw[k] for k in ("02012100", "11111221")}))
    evaluator = TableEvaluator(load_accuracy_table(part, macro), macro)
    assert evaluator.evaluate(key_to_arch(macro, "02012100")).accuracy > 0.8
    with pytest.raises(AccuracyTableError, match=r"part.json: no entry for network '00000000'; the table holds 2 "):
        evaluator.evaluate(key_to_arch(macro, "00000000"))
    with pytest.raises(AccuracyTableError, match="is not a network of space 'nas_bench_macro'"):
        evaluator.evaluate(reference_arch("mobilenetv2-cifar"))


@pytest.mark.parametrize(("content", "match"), [
    ("not json", "not valid JSON"),
    ("[1, 2]", "expected a non-empty JSON object"),
    ("{}", "expected a non-empty JSON object"),
    ('{"0201": {"test_acc": [90.0]}}', "expected a key of 8 digits .* another space"),
    ('{"02012100": {"acc": [90.0]}}', "expected an object with 'test_acc'"),
    ('{"02012100": {"test_acc": []}}', r"test_acc: expected a non-empty list"),
    ('{"02012100": {"test_acc": [90, "x"]}}', r"test_acc\[1\]: expected an accuracy in percent"),
    ('{"02012100": {"test_acc": [190.0]}}', r"test_acc\[0\]: expected an accuracy in percent"),
    ('{"02012100": {"test_acc": [90.0, 92.0], "mean_acc": 50}}', "mean_acc: 50 is not the mean of test_acc"),
    ('{"02012100": {"test_acc": [90.0]}, "02012100": {"test_acc": [91.0]}}', "'02012100' is given twice"),
    ("[" * 100000 + "]" * 100000, "not a usable accuracy table"),
])
def test_a_broken_file_is_refused_naming_the_file_and_field(macro, tmp_path: Path, content: str,  # type: ignore[no-untyped-def]
                                                            match: str) -> None:
    path = tmp_path / "acc.json"
    path.write_text(content)
    with pytest.raises(AccuracyTableError, match=match) as exc:
        load_accuracy_table(path, macro)
    assert str(path) in str(exc.value)


def test_other_refusals(macro, tmp_path: Path, table) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AccuracyTableError, match="no such file"):
        load_accuracy_table(tmp_path / "missing.json", macro)
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(AccuracyTableError, match="not UTF-8"):
        load_accuracy_table(tmp_path / "bin.json", macro)
    with pytest.raises(AccuracyTableError, match="needs a space whose networks have benchmark keys"):
        load_accuracy_table(BENCHMARK, load_space(DEFAULT_SPACE))  # a depth range: no keys
    with pytest.raises(AccuracyTableError, match="--accuracy-table-value: expected one of"):
        TableEvaluator(table, macro, value="median")
