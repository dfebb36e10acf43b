"""A Ctrl-C swallowed by a finalizer during training stops the run at the next step."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas.interrupt import handling_ctrl_c
from nas.train import EpochMetrics, TrainConfig, train_model
from tests.conftest import CtrlCWhileFreed
from tests.train.fakes import FakeBatches, Splits, make_model


def test_training_stops_after_a_swallowed_ctrl_c(splits: Splits, tmp_path: Path,
                                                 swallowed: list[type[BaseException]]) -> None:
    epochs: list[int] = []

    def ctrl_c_while_freeing(metrics: EpochMetrics) -> None:  # the interrupt lands in a finalizer, as it can under gc
        epochs.append(metrics.epoch)
        CtrlCWhileFreed()

    with handling_ctrl_c(), pytest.raises(KeyboardInterrupt):
        train_model(make_model(), splits, TrainConfig(epochs=3, batch_size=32, device="cpu"), out_dir=tmp_path,
                    progress=False, batches_factory=FakeBatches, on_epoch_end=ctrl_c_while_freeing)
    assert swallowed == [KeyboardInterrupt]  # Python itself dropped the interrupt
    assert epochs == [1]  # before the fix, all 3 epochs ran
    assert (tmp_path / "checkpoint.pt").exists()  # epoch 1 is kept for the resume
