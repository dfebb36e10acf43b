"""Checkpoints inside an epoch: a run killed mid-epoch resumes at its last saved step, exactly."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from nas.errors import CheckpointError
from nas.train import (CHECKPOINT_NAME, MID_EPOCH_NAME, TrainConfig, TrainResult, has_checkpoint,
                       train_model)
from tests.train.fakes import FakeBatches, Splits, make_model, make_splits, same_weights

# As in test_resume: dropout, flips and shuffling (the generator), warm-up and momentum all take part.
# 256 images / 32 = 8 steps per epoch.
CONFIG = TrainConfig(epochs=3, batch_size=32, lr=0.2, warmup_epochs=0.5, device="cpu")


class Killed(Exception):
    pass


def _killed_at(batch: int) -> Any:
    """A batches factory that dies while drawing the ``batch``-th training batch of the run (1-based), as kill -9
    would (validation batches are not counted)."""
    drawn = 0

    def factory(*args: Any, **kwargs: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        nonlocal drawn
        for item in FakeBatches(*args, **kwargs):
            drawn += bool(kwargs["shuffle"])
            if drawn == batch and kwargs["shuffle"]:
                raise Killed
            yield item
    return factory


def _run(splits: Splits, out: Path | None, *, factory: Any = FakeBatches, every: float = 0.0,
         config: TrainConfig = CONFIG, **kwargs: Any) -> tuple[nn.Module, TrainResult]:
    model = make_model(dropout=0.3)
    result = train_model(model, splits, config, out_dir=out, progress=False, batches_factory=factory,
                         checkpoint_every_s=every, **kwargs)
    return model, result


@pytest.fixture(scope="module")
def uninterrupted(splits: Splits) -> tuple[nn.Module, TrainResult]:
    return _run(splits, None)


@pytest.mark.parametrize(("batch", "epoch", "steps"), [(6, 1, 5), (13, 2, 4)])
def test_killed_inside_an_epoch_resumes_at_its_step_exactly(splits: Splits, uninterrupted: Any, tmp_path: Path,
                                                            batch: int, epoch: int, steps: int) -> None:
    with pytest.raises(Killed):
        _run(splits, tmp_path, factory=_killed_at(batch))
    mid = torch.load(tmp_path / MID_EPOCH_NAME, weights_only=True)
    assert mid["partial"]["epoch"] == epoch and mid["partial"]["steps"] == steps
    assert mid["epoch"] == epoch - 1 and mid["global_step"] == batch - 1
    assert (tmp_path / CHECKPOINT_NAME).exists() == (epoch > 1)  # the epoch file still holds epoch 1's weights
    assert has_checkpoint(tmp_path)

    model, result = _run(splits, tmp_path)
    reference, ref_result = uninterrupted
    assert result.status == "completed" and same_weights(model, reference)
    # the epoch's running sums came back too: its training metrics equal the uninterrupted run's
    assert [(m.train_loss, m.train_acc, m.val_acc) for m in result.history] == \
        [(m.train_loss, m.train_acc, m.val_acc) for m in ref_result.history]
    assert not (tmp_path / MID_EPOCH_NAME).exists()  # the last epoch's checkpoint replaced it


def test_the_default_interval_saves_nothing_inside_a_short_epoch(splits: Splits, tmp_path: Path) -> None:
    with pytest.raises(Killed):
        _run(splits, tmp_path, factory=_killed_at(13), every=600.0)
    assert not (tmp_path / MID_EPOCH_NAME).exists()
    assert torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)["epoch"] == 1


def test_a_mid_epoch_file_overtaken_by_an_epoch_checkpoint_is_dropped(splits: Splits, uninterrupted: Any,
                                                                       tmp_path: Path) -> None:
    with pytest.raises(Killed):
        _run(splits, tmp_path, factory=_killed_at(13))
    stale = tmp_path / "stale.pt"
    shutil.copy(tmp_path / MID_EPOCH_NAME, stale)
    _run(splits, tmp_path)  # finishes all 3 epochs
    shutil.copy(stale, tmp_path / MID_EPOCH_NAME)  # as if killed between writing checkpoint.pt and removing it
    model, result = _run(splits, tmp_path, factory=_killed_at(1))  # must not train again
    assert result.status == "completed" and result.epochs_run == 3
    assert same_weights(model, uninterrupted[0]) and not (tmp_path / MID_EPOCH_NAME).exists()


def test_a_run_started_over_and_killed_resumes_itself_not_the_old_one(splits: Splits, uninterrupted: Any,
                                                                      tmp_path: Path) -> None:
    _run(splits, tmp_path, config=TrainConfig(**{**CONFIG.to_dict(), "lr": 0.1}))  # another training, finished
    with pytest.raises(Killed):  # started over (resume=False), killed inside its first epoch
        _run(splits, tmp_path, factory=_killed_at(6), resume=False)
    assert not (tmp_path / CHECKPOINT_NAME).exists()  # the old run's, which a resume must not mistake for this one's
    model, result = _run(splits, tmp_path)
    assert result.status == "completed" and same_weights(model, uninterrupted[0])


def test_a_mid_epoch_file_beyond_the_epoch_of_other_data_is_refused(splits: Splits, tmp_path: Path) -> None:
    with pytest.raises(Killed):
        _run(splits, tmp_path, factory=_killed_at(8))  # saved at step 7 of 8
    fewer = make_splits(train=160)  # 5 steps an epoch
    with pytest.raises(CheckpointError) as info:
        _run(fewer, tmp_path)
    message = str(info.value)
    assert str(tmp_path / MID_EPOCH_NAME) in message and "step 7 of epoch 1" in message and "5 steps" in message
    assert (tmp_path / MID_EPOCH_NAME).exists()  # nothing stored is lost by the refusal


@pytest.mark.parametrize("change", [{"steps": None}, {"loss_sum": "1.0"}, {"epoch": 2}, {"seen": True}, "fields"])
def test_a_malformed_progress_entry_is_a_checkpoint_error(splits: Splits, tmp_path: Path, change: Any) -> None:
    with pytest.raises(Killed):
        _run(splits, tmp_path, factory=_killed_at(4))
    mid = torch.load(tmp_path / MID_EPOCH_NAME, weights_only=True)
    mid["partial"] = {"epoch": 1} if change == "fields" else {**mid["partial"], **change}
    torch.save(mid, tmp_path / MID_EPOCH_NAME)
    with pytest.raises(CheckpointError, match="malformed mid-epoch progress"):
        _run(splits, tmp_path)


def test_fewer_epochs_than_the_one_in_progress_resume_from_the_last_finished(splits: Splits, tmp_path: Path) -> None:
    with pytest.raises(Killed):
        _run(splits, tmp_path, factory=_killed_at(13))  # inside epoch 2
    model, result = _run(splits, tmp_path, config=TrainConfig(**{**CONFIG.to_dict(), "epochs": 1}))
    assert result.status == "completed" and result.epochs_run == 1
    epoch_one = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)["model"]
    assert all(torch.equal(v, epoch_one[k]) for k, v in model.state_dict().items())  # not epoch 2's half
    assert (tmp_path / MID_EPOCH_NAME).exists()  # kept for a run that extends to epoch 2
