"""``TrainConfig.flip``: random crops without horizontal flips (digits, text); old checkpoints still resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from nas.errors import CheckpointError
from nas.train import TrainConfig, train_model
from nas.train.checkpoint import check_config
from tests.train.fakes import FakeBatches, Splits, make_model


def test_the_loop_asks_the_batches_for_no_flips(splits: Splits) -> None:
    asked: list[tuple[bool, bool]] = []

    def recording(arrays: Any, **kw: Any) -> FakeBatches:
        asked.append((kw["augment"], kw["flip"]))
        return FakeBatches(arrays, **kw)

    train_model(make_model(), splits, TrainConfig(epochs=1, batch_size=64, device="cpu", flip=False), progress=False,
                batches_factory=recording)
    assert asked[0] == (True, False)  # the training pass: augmented, not flipped


def test_tensor_batches_without_flip_only_crop() -> None:
    from nas.data import ImageArrays, TensorBatches

    images = torch.arange(4 * 8 * 8 * 3, dtype=torch.int64).remainder(251).add(1).to(torch.uint8)
    arrays = ImageArrays(images=images.reshape(4, 8, 8, 3).numpy(), labels=torch.zeros(4, dtype=torch.int64).numpy())
    batches = TensorBatches(arrays, mean=(0.0,) * 3, std=(1 / 255,) * 3, batch_size=4, augment=True, pad=0,
                            flip=False, generator=torch.Generator().manual_seed(0))
    (x, _), = list(batches)
    assert torch.equal(x, torch.from_numpy(arrays.images).permute(0, 3, 1, 2).float())


def test_a_checkpoint_from_before_the_flip_setting_resumes_with_flips_only(tmp_path: Path) -> None:
    saved = {k: v for k, v in TrainConfig(epochs=2, device="cpu").to_dict().items() if k != "flip"}
    check_config(tmp_path / "checkpoint.pt", saved, TrainConfig(epochs=2, device="cpu"), 1)
    with pytest.raises(CheckpointError, match="'flip' differs"):
        check_config(tmp_path / "checkpoint.pt", saved, TrainConfig(epochs=2, device="cpu", flip=False), 1)
