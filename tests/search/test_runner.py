"""The search loop's memory handling: a collection after every training trial, with the older heap frozen."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from pathlib import Path

import pytest

from nas.arch import ArchSpec
from nas.errors import SearchError
from nas.latency import TableEstimator, load_table
from nas.search import Evaluation, SearchConfig, extreme_arch, run_search
from nas.search.budget import extreme_params
from nas.space import load_space
from tests.conftest import TINY_SPACE
from tests.search.conftest import FakeEvaluator


class _Node:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


class _Watching(FakeEvaluator):
    """Records, per evaluation, the frozen-object count and whether the previous trial's cycle was freed."""

    def __init__(self, trains: bool = True, fail_at: int | None = None,
                 interrupt_at: int | None = None) -> None:
        super().__init__(epochs=1)
        self._trains, self.fail_at, self.interrupt_at = trains, fail_at, interrupt_at
        self.frozen: list[int] = []
        self.freed: list[bool] = []
        self._garbage: weakref.ref[_Node] | None = None

    @property
    def trains(self) -> bool:
        return self._trains

    def evaluate(self, arch: ArchSpec, *, report: Callable[[int, float], None] | None = None) -> Evaluation:
        self.frozen.append(gc.get_freeze_count())
        if self._garbage is not None:
            self.freed.append(self._garbage() is None)
        self._garbage = weakref.ref(_Node())  # unreachable at once, but a cycle
        if self.interrupt_at is not None and len(self.frozen) == self.interrupt_at:
            raise KeyboardInterrupt
        if self.fail_at is not None and len(self.frozen) == self.fail_at:
            return Evaluation(float("nan"), (float("nan"),), "completed", 0.0)
        return super().evaluate(arch, report=report)


def _search(tmp_path: Path, search_table: Path, evaluator: _Watching) -> None:
    """A 4-trial search with Python's automatic collection off: only the loop's own collections free cycles."""
    space = load_space(TINY_SPACE)
    est = TableEstimator(load_table(search_table), on_missing="interpolate", save=False)
    budget = est.latency_ms(extreme_arch(space, est, fastest=False))
    config = SearchConfig(n_trials=4, budget_ms=budget, run_dir=tmp_path, sampler="random", seed=0)
    gc.disable()
    try:
        run_search(config, space, est, evaluator, fingerprint={}, warm_start=extreme_params(space, est))
    finally:
        gc.enable()


def test_training_trials_run_with_the_older_heap_frozen_and_each_ones_garbage_is_collected(
        tmp_path: Path, search_table: Path) -> None:
    assert gc.get_freeze_count() == 0
    evaluator = _Watching()
    _search(tmp_path, search_table, evaluator)
    assert len(evaluator.frozen) == 4 and all(n > 0 for n in evaluator.frozen)  # frozen during the search
    assert evaluator.freed == [True, True, True]  # the collection after each trial still frees its cycles
    assert gc.get_freeze_count() == 0  # and unfrozen after it


def test_a_search_that_trains_nothing_freezes_nothing_and_collects_nothing(tmp_path: Path,
                                                                             search_table: Path) -> None:
    evaluator = _Watching(trains=False)
    _search(tmp_path, search_table, evaluator)
    assert evaluator.frozen == [0, 0, 0, 0]
    assert evaluator.freed == [False, False, False]  # what the test above sees freed, the loop freed


def test_ctrl_c_unfreezes_the_heap(tmp_path: Path, search_table: Path) -> None:
    evaluator = _Watching(interrupt_at=2)
    with pytest.raises(KeyboardInterrupt):
        _search(tmp_path, search_table, evaluator)
    assert evaluator.frozen[-1] > 0 and gc.get_freeze_count() == 0


def test_a_callers_own_freeze_is_left_alone(tmp_path: Path, search_table: Path) -> None:
    gc.freeze()
    try:
        evaluator = _Watching()
        _search(tmp_path, search_table, evaluator)
        assert evaluator.freed == [True, True, True] and gc.get_freeze_count() > 0  # still the caller's freeze
    finally:
        gc.unfreeze()


def test_a_search_inside_a_search_keeps_the_outer_ones_freeze(tmp_path: Path, search_table: Path) -> None:
    inner_frozen: list[int] = []

    class _Nesting(_Watching):
        def evaluate(self, arch: ArchSpec, *, report: Callable[[int, float], None] | None = None) -> Evaluation:
            if len(self.frozen) == 1:  # the outer search's second trial runs a whole search of its own
                _search(tmp_path / "inner", search_table, _Watching())
                inner_frozen.append(gc.get_freeze_count())
            return super().evaluate(arch, report=report)

    outer = _Nesting()
    _search(tmp_path / "outer", search_table, outer)
    assert inner_frozen[0] > 0 and all(n > 0 for n in outer.frozen)  # the inner end did not unfreeze the outer
    assert gc.get_freeze_count() == 0


def test_a_search_stopped_by_an_error_unfreezes_the_heap(tmp_path: Path, search_table: Path) -> None:
    evaluator = _Watching(fail_at=2)
    with pytest.raises(SearchError, match="not a number"):
        _search(tmp_path, search_table, evaluator)
    assert evaluator.frozen[-1] > 0 and gc.get_freeze_count() == 0
