"""The selection rule on handmade accuracy/latency numbers."""

from __future__ import annotations

import pytest

from nas.adapt import select_proposal


def test_ratio_rule_prefers_least_accuracy_lost_per_ms() -> None:
    parent_acc, parent_lat = 0.80, 10.0
    results = [(0.78, 9.0),   # -0.02 / 1.0 = -0.020
               (0.75, 8.0),   # -0.05 / 2.0 = -0.025
               (0.79, 9.8)]   # -0.01 / 0.2 = -0.050
    assert select_proposal(parent_acc, parent_lat, results, "ratio") == 0
    assert select_proposal(parent_acc, parent_lat, results, "accuracy") == 2


def test_accuracy_gain_wins() -> None:
    results = [(0.79, 9.0), (0.81, 9.9), (0.80, 8.0)]  # the second gains accuracy: positive ratio
    assert select_proposal(0.80, 10.0, results, "ratio") == 1


def test_ties_go_to_the_larger_latency_cut_then_the_earlier_proposal() -> None:
    # Equal ratios (-0.25 per ms, exact in binary): the one that cuts 2 ms wins over the one cutting 1 ms.
    assert select_proposal(1.0, 10.0, [(0.75, 9.0), (0.5, 8.0)], "ratio") == 1
    # Exactly equal proposals: the earlier one.
    assert select_proposal(0.80, 10.0, [(0.79, 9.0), (0.79, 9.0)], "ratio") == 0
    assert select_proposal(0.80, 10.0, [(0.7, 9.0), (0.7, 8.0)], "accuracy") == 1


def test_empty_is_an_error() -> None:
    with pytest.raises(ValueError):
        select_proposal(0.5, 1.0, [], "ratio")


def test_among_gains_the_ratio_rule_prefers_the_gain_per_ms_and_the_accuracy_rule_the_gain() -> None:
    results = [(0.82, 9.9),   # +0.02 / 0.1 = +0.20
               (0.85, 8.0),   # +0.05 / 2.0 = +0.025
               (0.70, 5.0)]   # a loss
    assert select_proposal(0.80, 10.0, results, "ratio") == 0
    assert select_proposal(0.80, 10.0, results, "accuracy") == 1


def test_a_gain_beats_any_loss_however_large_its_cut() -> None:
    # -0.001 over 9 ms is the smallest loss per ms possible here, but +0.001 over 0.1 ms is a gain.
    assert select_proposal(0.5, 10.0, [(0.499, 1.0), (0.501, 9.9)], "ratio") == 1
