"""Results near chance level are flagged (results.csv, report.md); the final test re-estimates BatchNorm first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nas.retrain.chance import chance_accuracy, chance_flag, near_chance_margin


def test_chance_is_the_most_frequent_class_and_at_least_one_over_classes() -> None:
    assert chance_accuracy(np.array([0, 1, 2, 3] * 25), 4) == 0.25
    assert chance_accuracy(np.array([0] * 70 + [1] * 30), 2) == 0.7
    assert chance_accuracy(np.array([0, 1]), 10) == 0.5  # a class missing from the test split
    assert chance_accuracy(np.array([0, 1] * 50), 10) == 0.5
    assert chance_accuracy(np.arange(10).repeat(10), 10) == 0.1


def test_the_margin_is_5_points_or_3_binomial_sigmas_on_small_test_sets() -> None:
    assert near_chance_margin(0.1, 10_000) == 0.05
    assert near_chance_margin(0.1, 50) == pytest.approx(3 * (0.1 * 0.9 / 50) ** 0.5)  # 12.7 points


@pytest.mark.parametrize(("acc", "share", "flagged", "fragment"), [
    (0.115, 1.0, True, "one class ('7') for 100 % of the test images"),  # the MNIST networks
    (0.115, 0.2, True, "11.5 % is within 5.0 points of chance level (10.0 %)"),
    (0.40, 0.6, True, "one class ('7') for 60 % of the test images"),
    (0.40, 0.3, False, ""),
    (0.97, 0.11, False, ""),
])
def test_flags(acc: float, share: float, flagged: bool, fragment: str) -> None:
    flag = chance_flag(test_acc=acc, chance_acc=0.1, top_class_share=share, top_class="7", test_images=10_000)
    assert bool(flag) == flagged and fragment in flag


def test_two_balanced_classes_are_flagged_only_when_all_images_get_one_class() -> None:
    def flag(acc: float, share: float) -> str:
        return chance_flag(test_acc=acc, chance_acc=0.5, top_class_share=share, top_class="a", test_images=1000)

    assert flag(0.9, 0.55) == "" and flag(0.9, 0.9) == ""
    assert "100 %" in flag(0.5, 1.0) and "chance level (50.0 %)" in flag(0.52, 0.6)


def test_the_test_accuracy_is_measured_after_re_estimating_batchnorm(tmp_path: Path) -> None:
    """The saved weights are the tested ones, with BatchNorm statistics re-estimated on training images
    (re-estimating them again changes nothing), not the running averages of the last steps."""
    from nas.arch import build_model, parse_compact
    from nas.retrain import make_recipe
    from nas.retrain.data import final_splits
    from nas.retrain.model import train_and_export
    from nas.train import evaluate, load_weights

    splits = final_splits("digits", input_size=16, subset=200, test_subset=100, progress=False)
    arch = parse_compact("in16x3-stem_k3_s1_c8_re-ir_e2_k3_s2_c8_re-head_c16_re-cls10")
    recipe = make_recipe("short", epochs=1)
    record = train_and_export(arch, splits, recipe, seed=0, folder=tmp_path / "m", device="cpu", progress=False,
                              log=lambda _m: None)
    assert record["bn_recalibration"] == min(recipe.bn_recalibration, len(splits.train)) == 200
    model = build_model(arch)
    load_weights(model, tmp_path / "m" / "weights.pt")
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    _, acc = evaluate(model, splits.test, mean=splits.mean, std=splits.std, device="cpu",
                      recalibrate_on=splits.train, recalibrate_images=recipe.bn_recalibration)
    after = {k: v for k, v in model.state_dict().items() if "running" in k}
    assert all(torch.allclose(before[k], after[k], atol=1e-5) for k in before)
    assert acc == pytest.approx(record["test_acc"])
    assert record["chance_acc"] == pytest.approx(0.1) and 0 < record["top_class_share"] <= 1
    assert record["top_class"] in splits.classes
