"""load_weights/save_weights: both file kinds load; every mismatch names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nas.errors import CheckpointError
from nas.train import TrainConfig, load_weights, save_weights, train_model
from tests.train.fakes import FakeBatches, Splits, make_model


def test_save_then_load_round_trip(tmp_path: Path) -> None:
    source, target = make_model(seed=1), make_model(seed=2)
    path = save_weights(source, tmp_path / "sub" / "w.pt")
    assert not torch.equal(source.head.weight, target.head.weight)
    load_weights(target, path)
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values()))
    assert [p.name for p in path.parent.iterdir()] == ["w.pt"]  # no temporary file left


def test_loads_the_model_from_a_training_checkpoint(splits: Splits, tmp_path: Path) -> None:
    trained = make_model()
    train_model(trained, splits, TrainConfig(epochs=1, batch_size=32, device="cpu"), out_dir=tmp_path,
                progress=False, batches_factory=FakeBatches)
    fresh = make_model(seed=5)
    load_weights(fresh, tmp_path / "checkpoint.pt")
    assert torch.equal(fresh.head.weight, trained.head.weight)
    assert torch.equal(fresh.features[1].running_mean, trained.features[1].running_mean)


def test_shape_mismatch_names_key_and_shapes(tmp_path: Path) -> None:
    path = save_weights(make_model(width=8), tmp_path / "w.pt")
    model = make_model(width=4)
    before = model.head.weight.clone()
    with pytest.raises(CheckpointError) as info:
        load_weights(model, path)
    message = str(info.value)
    assert str(path) in message
    assert "shape mismatch for key 'head.weight': expected (4, 4), got (4, 8)" in message
    assert torch.equal(model.head.weight, before)  # untouched on error


def test_missing_and_unexpected_keys_are_named(tmp_path: Path) -> None:
    state = make_model().state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["head.bias"]
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(CheckpointError) as info:
        load_weights(make_model(), tmp_path / "w.pt")
    assert "missing keys 'head.bias'" in str(info.value) and "unexpected keys 'extra.weight'" in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such weights file"):
        load_weights(make_model(), tmp_path / "nope.pt")


def test_code_carrying_or_foreign_files_are_refused(tmp_path: Path) -> None:
    torch.save({"weights": make_model()}, tmp_path / "pickled_module.pt")  # a whole pickled module
    with pytest.raises(CheckpointError, match="weights_only"):
        load_weights(make_model(), tmp_path / "pickled_module.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="got a list"):
        load_weights(make_model(), tmp_path / "list.pt")
