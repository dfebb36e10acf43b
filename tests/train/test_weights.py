"""load_weights/save_weights: both file kinds load; every mismatch names the file and the key."""

from __future__ import annotations

import datetime
import pickle
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from nas.errors import CheckpointError
from nas.train import TrainConfig, load_weights, save_weights, train_model
from nas.train.checkpoint import read_checkpoint
from nas.train.weights import read_torch_file
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
    assert message.count("shape mismatch for key") == 5  # the first five, in the model's order
    assert "shape mismatch for key 'features.0.weight': expected (4, 3, 3, 3), got (8, 3, 3, 3)" in message
    assert "; 1 more key(s) of another shape or type" in message  # head.weight
    assert torch.equal(model.head.weight, before)  # untouched on error


def test_many_shape_mismatches_are_summed_up(tmp_path: Path) -> None:
    model = make_model(width=4)
    state = {key: torch.zeros(*value.shape, 3) for key, value in model.state_dict().items()}  # every key wrong
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(CheckpointError) as info:
        load_weights(model, tmp_path / "w.pt")
    message = str(info.value)
    assert message.count("shape mismatch for key") == 5
    assert f"; {len(state) - 5} more key(s) of another shape or type" in message


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


def _zip_of_text(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "not a checkpoint")
    return path


@pytest.mark.parametrize("make", [
    lambda p: p.write_text('{"format": "nas.latency.table/1", "entries": {}}\n'),  # a latency table (JSON)
    lambda p: p.write_text("epoch,train_loss\n1,2.3\n"),  # a text file
    lambda p: p.write_bytes(b""),  # an empty file
    lambda p: _zip_of_text(p),  # a zip archive of something else
    lambda p: p.write_bytes(pickle.dumps({"a": 1}, protocol=4)),  # a plain pickle, not torch.save
], ids=["json", "text", "empty", "zip", "pickle"])
def test_files_that_are_not_pytorch_files_get_one_line(tmp_path: Path, make: Callable[[Path], object]) -> None:
    path = tmp_path / "weights.pt"
    make(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no PyTorch warning printed beside the refusal
        with pytest.raises(CheckpointError) as info:
            load_weights(make_model(), path)
    assert str(info.value) == f"{path}: not a PyTorch checkpoint/weights file written by nas train/retrain/adapt"


def test_objects_beyond_data_are_refused_without_unsafe_loading_advice(tmp_path: Path) -> None:
    torch.save({"when": datetime.date(2020, 1, 1)}, tmp_path / "w.pt")
    with pytest.raises(CheckpointError) as info:
        load_weights(make_model(), tmp_path / "w.pt")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'w.pt'}: holds Python objects") and "datetime.date" in message
    assert "\n" not in message and "weights_only=False" not in message and "add_safe_globals" not in message


def test_truncated_checkpoint_is_named_in_one_line(tmp_path: Path) -> None:
    path = save_weights(make_model(), tmp_path / "w.pt")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError) as info:
        load_weights(make_model(), path)
    assert str(info.value).startswith(f"{path}: unreadable or truncated weights file") and "\n" not in str(info.value)


def test_legacy_torch_format_still_loads(tmp_path: Path) -> None:
    source = make_model(seed=3)
    torch.save(source.state_dict(), tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    target = make_model(seed=4)
    load_weights(target, tmp_path / "old.pt")
    assert torch.equal(target.head.weight, source.head.weight)


def _checkpoint(splits: Splits, folder: Path) -> Path:
    train_model(make_model(), splits, TrainConfig(epochs=1, batch_size=32, device="cpu"), out_dir=folder,
                progress=False, batches_factory=FakeBatches)
    return folder / "checkpoint.pt"


def _flipped(data: bytes, pos: int, mask: int) -> bytes:
    damaged = bytearray(data)
    damaged[pos] ^= mask
    return bytes(damaged)


def test_a_damaged_member_name_in_the_zip_directory_is_one_line(splits: Splits, tmp_path: Path) -> None:
    path = _checkpoint(splits, tmp_path)
    with zipfile.ZipFile(path) as archive:
        name_at = archive.start_dir + 46 + 1  # the 2nd byte of the first member name (after the fixed header)
    path.write_bytes(_flipped(path.read_bytes(), name_at, 0xFF))  # no longer valid UTF-8: zipfile fails to list it
    for load in (lambda: read_checkpoint(path), lambda: load_weights(make_model(), path)):
        with pytest.raises(CheckpointError) as info:
            load()
        assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_a_flipped_byte_in_data_pkl_loads_or_is_one_line(splits: Splits, tmp_path: Path) -> None:
    """Flips in the pickled structure make the unpickler raise UnicodeDecodeError, KeyError, IndexError...:
    every one is a CheckpointError (a flip that still unpickles loads: the zip CRCs are not checked)."""
    path = _checkpoint(splits, tmp_path)
    data = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("/data.pkl"))
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    damaged = tmp_path / "damaged.pt"
    refused = 0
    for pos in range(start, start + info.compress_size, 7):
        for mask in (0xFF, 0x55):
            damaged.write_bytes(_flipped(data, pos, mask))
            try:
                read_torch_file(damaged, what="checkpoint")
            except CheckpointError as exc:
                assert "\n" not in str(exc)
                refused += 1
    assert refused > 0
