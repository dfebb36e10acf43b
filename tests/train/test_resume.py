"""Checkpoints and resuming: an interrupted run, resumed, ends exactly where an uninterrupted one does."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from nas.errors import CheckpointError
from nas.train import EpochMetrics, TrainConfig, TrainResult, train_model
from tests.train.fakes import FakeBatches, Splits, make_model, same_weights

# Dropout (global RNG), augmentation and shuffling (the run's generator), warm-up and momentum
# all take part, so a resume that restored any state wrongly would change the final weights.
CONFIG = TrainConfig(epochs=3, batch_size=32, lr=0.2, warmup_epochs=0.5, device="cpu")


class Interrupt(Exception):
    pass


def _run(splits: Splits, out: Path | None, config: TrainConfig = CONFIG, model: nn.Module | None = None,
         **kwargs: object) -> tuple[nn.Module, TrainResult]:
    model = model if model is not None else make_model(dropout=0.3)
    result = train_model(model, splits, config, out_dir=out, progress=False, batches_factory=FakeBatches,
                         **kwargs)  # type: ignore[arg-type]
    return model, result


def _csv_epochs(out: Path) -> list[int]:
    with open(out / "metrics.csv", newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def uninterrupted(splits: Splits) -> tuple[nn.Module, TrainResult]:
    return _run(splits, None)


def test_stopped_then_resumed_equals_uninterrupted(splits: Splits, uninterrupted, tmp_path: Path) -> None:  # noqa: ANN001
    reference, ref_result = uninterrupted
    _, first = _run(splits, tmp_path, on_epoch_end=lambda m: m.epoch == 1)
    assert first.status == "stopped" and first.epochs_run == 1
    resumed_epochs: list[int] = []
    model, result = _run(splits, tmp_path, on_epoch_end=lambda m: resumed_epochs.append(m.epoch))
    assert resumed_epochs == [2, 3]  # starts at the saved epoch
    assert result.status == "completed" and [m.epoch for m in result.history] == [1, 2, 3]
    assert same_weights(model, reference)
    assert [m.train_loss for m in result.history] == [m.train_loss for m in ref_result.history]
    assert _csv_epochs(tmp_path) == [1, 2, 3]  # each epoch once


def test_crash_then_resume_equals_uninterrupted(splits: Splits, uninterrupted, tmp_path: Path) -> None:  # noqa: ANN001
    def crash(m: EpochMetrics) -> None:
        if m.epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        _run(splits, tmp_path, on_epoch_end=crash)
    assert _csv_epochs(tmp_path) == [1, 2]
    model, result = _run(splits, tmp_path)
    assert result.epochs_run == 3 and _csv_epochs(tmp_path) == [1, 2, 3]
    assert same_weights(model, uninterrupted[0])


def test_finished_run_is_returned_without_training(splits: Splits, tmp_path: Path) -> None:
    trained, done = _run(splits, tmp_path, config=TrainConfig(epochs=1, batch_size=32, device="cpu"))
    csv_before = (tmp_path / "metrics.csv").read_text()

    def no_batches(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished run must not train or evaluate again")

    fresh = make_model(dropout=0.3, seed=123)
    again = train_model(fresh, splits, TrainConfig(epochs=1, batch_size=32, device="cpu"), out_dir=tmp_path,
                        progress=False, batches_factory=no_batches)  # type: ignore[arg-type]
    assert again.status == "completed" and again.history == done.history
    assert again.final_val_acc == done.final_val_acc
    assert 0 < again.wall_seconds <= done.wall_seconds  # the time as of the last checkpoint
    assert same_weights(fresh, trained)  # the model holds the trained weights
    assert (tmp_path / "metrics.csv").read_text() == csv_before


def test_a_finished_run_repairs_the_metrics_a_kill_after_its_last_checkpoint_left_unwritten(
        splits: Splits, tmp_path: Path) -> None:
    config = TrainConfig(epochs=2, batch_size=32, device="cpu")
    _run(splits, tmp_path, config=config)
    csv_full = (tmp_path / "metrics.csv").read_text()
    first_rows = "".join(csv_full.splitlines(keepends=True)[:2])  # header and epoch 1: epoch 2's row never written
    (tmp_path / "metrics.csv").write_text(first_rows + csv_full.splitlines()[2][:7])  # and a torn start of it
    (tmp_path / "metrics.json").unlink()
    _, again = _run(splits, tmp_path, config=config)
    assert again.status == "completed" and (tmp_path / "metrics.csv").read_text() == csv_full
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "completed"


def test_epochs_may_grow(splits: Splits, tmp_path: Path) -> None:
    _run(splits, tmp_path, config=TrainConfig(epochs=1, batch_size=32, device="cpu"))
    _, result = _run(splits, tmp_path, config=TrainConfig(epochs=2, batch_size=32, device="cpu"))
    assert result.status == "completed" and [m.epoch for m in result.history] == [1, 2]
    assert _csv_epochs(tmp_path) == [1, 2]


def test_resume_false_starts_over(splits: Splits, tmp_path: Path) -> None:
    _run(splits, tmp_path, config=TrainConfig(epochs=2, batch_size=32, device="cpu"))
    _, result = _run(splits, tmp_path, config=TrainConfig(epochs=1, batch_size=64, device="cpu"), resume=False)
    assert result.epochs_run == 1 and _csv_epochs(tmp_path) == [1]
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["config"]["batch_size"] == 64


@pytest.mark.parametrize(("field", "value"), [("lr", 0.1), ("batch_size", 64), ("seed", 7)])
def test_config_mismatch_on_resume_names_file_and_field(splits: Splits, tmp_path: Path, field: str,
                                                        value: object) -> None:
    config = TrainConfig(epochs=2, batch_size=32, lr=0.2, device="cpu")
    _run(splits, tmp_path, config=config, on_epoch_end=lambda m: True)
    changed = TrainConfig(**{**config.to_dict(), field: value})
    with pytest.raises(CheckpointError) as info:
        _run(splits, tmp_path, config=changed)
    message = str(info.value)
    assert str(tmp_path / "checkpoint.pt") in message and repr(field) in message
    assert f"{field}={value!r}" in message and "delete" in message


def test_fewer_epochs_than_trained_is_a_mismatch(splits: Splits, tmp_path: Path) -> None:
    _run(splits, tmp_path, config=TrainConfig(epochs=2, batch_size=32, device="cpu"))
    with pytest.raises(CheckpointError, match="already trained 2 epochs"):
        _run(splits, tmp_path, config=TrainConfig(epochs=1, batch_size=32, device="cpu"))


def test_other_model_on_resume_names_the_file(splits: Splits, tmp_path: Path) -> None:
    config = TrainConfig(epochs=2, batch_size=32, device="cpu")
    _run(splits, tmp_path, config=config, on_epoch_end=lambda m: True)
    with pytest.raises(CheckpointError) as info:
        _run(splits, tmp_path, config=config, model=make_model(width=16))
    message = str(info.value)
    assert str(tmp_path / "checkpoint.pt") in message and "features.0.weight" in message
    assert "expected (16, 3, 3, 3), got (8, 3, 3, 3)" in message


def test_checkpoint_is_plain_data_and_written_atomically(splits: Splits, tmp_path: Path) -> None:
    model, _ = _run(splits, tmp_path, config=TrainConfig(epochs=2, batch_size=32, device="cpu"))
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert {"model", "optimizer", "epoch", "global_step", "generator", "torch_rng", "config", "history"} <= set(ckpt)
    assert ckpt["epoch"] == 2 and ckpt["global_step"] == 16  # 256 images / 32 = 8 steps per epoch
    assert ckpt["config"] == TrainConfig(epochs=2, batch_size=32, device="cpu").to_dict()
    assert [h["epoch"] for h in ckpt["history"]] == [1, 2]
    assert isinstance(ckpt["generator"], torch.Tensor) and isinstance(ckpt["torch_rng"], torch.Tensor)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in ckpt["model"].items())
    assert len(ckpt["optimizer"]["state"]) == len(list(model.parameters()))  # momentum buffers saved
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_corrupt_checkpoint_is_a_checkpoint_error(splits: Splits, tmp_path: Path) -> None:
    (tmp_path / "checkpoint.pt").write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="checkpoint.pt"):
        _run(splits, tmp_path)
