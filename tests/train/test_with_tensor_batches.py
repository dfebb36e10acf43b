"""The loop with its default batch iterator, ``nas.data.TensorBatches`` (imported lazily).

The rest of the suite uses a local fake; this checks the real iterator honours the contract the
loop relies on: all randomness (shuffle, crop, flip) from the run's CPU generator, so runs are
reproducible and an interrupted run resumes to the same weights.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nas.train import TrainConfig, train_model
from tests.train.fakes import Splits, make_model

pytest.importorskip("nas.data", reason="nas.data is not available")

CONFIG = TrainConfig(epochs=2, batch_size=32, lr=0.2, warmup_epochs=0.5, device="cpu")


def test_default_iterator_learns_and_resumes_exactly(splits: Splits, tmp_path: Path) -> None:
    reference = make_model(dropout=0.2)
    full = train_model(reference, splits, CONFIG, progress=False)
    assert full.status == "completed" and full.final_val_acc >= 0.6
    train_model(make_model(dropout=0.2), splits, CONFIG, out_dir=tmp_path, progress=False,
                on_epoch_end=lambda m: True)
    resumed = make_model(dropout=0.2)
    result = train_model(resumed, splits, CONFIG, out_dir=tmp_path, progress=False)
    assert [m.train_loss for m in result.history] == [m.train_loss for m in full.history]
    assert all(torch.equal(a, b) for a, b in zip(reference.state_dict().values(), resumed.state_dict().values()))
