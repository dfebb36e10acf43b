"""The width-multiplier baselines of ``nas search`` (:mod:`nas.search._baselines`) and the winner file."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import optuna
import pytest

from nas.arch import ArchSpec
from nas.errors import NASError, SearchError
from nas.latency import TableEstimator, load_table
from nas.search._baselines import evaluate_baselines
from nas.search.outputs import write_outputs
from nas.space import load_space
from tests.conftest import REPO
from tests.search.conftest import FakeEvaluator

SPACE = REPO / "search_spaces" / "mobilenet_cse_cifar.yaml"
TABLE = REPO / "latency_tables" / "ort-cpu-1t.json"
ALPHAS = (0.35, 0.5)


class _Slower(TableEstimator):
    """The same table, as if re-measured on a device twice as slow."""

    def latency_ms(self, arch: ArchSpec) -> float:
        return 2 * super().latency_ms(arch)


def _estimators() -> tuple[TableEstimator, TableEstimator]:
    table = load_table(TABLE)
    return (TableEstimator(table, on_missing="interpolate", save=False),
            _Slower(table, on_missing="interpolate", save=False))


def test_kept_baselines_are_not_trained_again_and_take_the_current_tables_latency(tmp_path: Path) -> None:
    space, (table, slower), evaluator = load_space(SPACE), _estimators(), FakeEvaluator(epochs=1)
    first = evaluate_baselines(space, table, evaluator, tmp_path, alphas=ALPHAS, log=lambda _m: None)
    assert len(evaluator.trained) == 2
    again = evaluate_baselines(space, slower, evaluator, tmp_path, alphas=ALPHAS, log=lambda _m: None)
    assert len(evaluator.trained) == 2  # kept: nothing trained again
    assert [b["val_acc"] for b in again] == [b["val_acc"] for b in first]
    assert [b["latency_ms"] for b in again] == pytest.approx([2 * b["latency_ms"] for b in first])


@pytest.mark.parametrize("damage", [b"{\"a\": ", b"[1, 2]", b"{\"k\": {\"latency_ms\": 1}}"])
def test_a_damaged_baselines_file_is_one_clear_line(damage: bytes, tmp_path: Path) -> None:
    (tmp_path / "baselines.json").write_bytes(damage)
    with pytest.raises(SearchError) as err:
        evaluate_baselines(load_space(SPACE), _estimators()[0], FakeEvaluator(epochs=1), tmp_path, alphas=ALPHAS,
                           log=lambda _m: None)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / 'baselines.json'}: not a")
    assert "delete it" in message and (tmp_path / "baselines.json").read_bytes() == damage  # nothing overwritten


def test_a_full_disk_while_keeping_a_baseline_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*_args: Any, **_kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("nas.search._baselines.atomic_write_json", full)
    with pytest.raises(NASError) as err:
        evaluate_baselines(load_space(SPACE), _estimators()[0], FakeEvaluator(epochs=1), tmp_path, alphas=ALPHAS,
                           log=lambda _m: None)
    assert "\n" not in str(err.value) and "baselines.json: cannot write it (No space left on device" in str(err.value)


def test_a_study_without_a_winner_leaves_no_other_studys_winner_file(tmp_path: Path) -> None:
    (tmp_path / "best_arch.json").write_text("{\"compact\": \"another study's winner\"}\n")
    study = optuna.create_study(direction="maximize")  # nothing within the budget (no trial at all)
    result = write_outputs(study, tmp_path, budget_ms=1.0, objective="reward", baselines=[], header={})
    assert result["best"] is None and not (tmp_path / "best_arch.json").exists()
    assert "No trained architecture met the budget." in (tmp_path / "summary.md").read_text()
