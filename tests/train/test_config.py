"""TrainConfig validation and the result summary."""

from __future__ import annotations

import pytest

from nas.train import EpochMetrics, TrainConfig, TrainResult


def test_defaults_are_the_documented_recipe() -> None:
    c = TrainConfig(epochs=3)
    assert (c.batch_size, c.lr, c.momentum, c.weight_decay, c.label_smoothing) == (128, 0.05, 0.9, 4e-5, 0.1)
    assert c.to_dict()["epochs"] == 3


@pytest.mark.parametrize(("field", "value", "fragment"), [
    ("epochs", 0, "epochs must be an integer >= 1"),
    ("batch_size", 0, "batch_size"),
    ("lr", -0.1, "lr must be"),
    ("lr", float("nan"), "lr must be"),
    ("momentum", 0.0, "Nesterov"),
    ("weight_decay", -1.0, "weight_decay"),
    ("label_smoothing", 1.0, "label_smoothing"),
    ("warmup_epochs", 5.0, "cannot exceed epochs"),
    ("steps_per_epoch", 0, "steps_per_epoch"),
    ("seed", -1, "seed"),
    ("device", "tpu", "device must be"),
    ("eval_batch_size", 0, "eval_batch_size"),
])
def test_invalid_values_raise_value_error_naming_the_field(field: str, value: object, fragment: str) -> None:
    kwargs: dict[str, object] = {"epochs": 2, field: value}
    with pytest.raises(ValueError, match=fragment) as info:
        TrainConfig(**kwargs)  # type: ignore[arg-type]
    assert repr(value) in str(info.value) or str(value) in str(info.value)


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(ValueError) as info:
        TrainConfig(epochs=1, batch_size=0, lr=0.0)
    assert "batch_size" in str(info.value) and "lr" in str(info.value)


def test_result_from_history() -> None:
    rows = tuple(EpochMetrics(epoch=i, train_loss=1.0, train_acc=0.5, val_loss=1.0, val_acc=acc, lr=0.1,
                              seconds=1.0, images_per_second=10.0) for i, acc in enumerate([0.5, 0.8, 0.7], 1))
    r = TrainResult.from_history("completed", rows, message="ok", wall_seconds=3.0)
    assert (r.epochs_run, r.final_val_acc, r.best_val_acc) == (3, 0.7, 0.8)
    empty = TrainResult.from_history("diverged", (), message="nan", wall_seconds=0.1)
    assert (empty.epochs_run, empty.final_val_acc, empty.best_val_acc) == (0, 0.0, 0.0)
