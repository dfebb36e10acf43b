"""The training loop: it learns, is reproducible, diverges gracefully and obeys its callback."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import DataError
from nas.train import EpochMetrics, TrainConfig, train_model
from tests.train.fakes import Arrays, FakeBatches, Splits, TinyNet, make_model

FAST = {"batch_size": 32, "lr": 0.2, "device": "cpu"}


def _train(splits: Splits, model: nn.Module | None = None, **kwargs: object):  # noqa: ANN202
    config_keys = set(TrainConfig.field_names())
    config = TrainConfig(**{**FAST, **{k: v for k, v in kwargs.items() if k in config_keys}})  # type: ignore[arg-type]
    rest = {k: v for k, v in kwargs.items() if k not in config_keys}
    return train_model(model if model is not None else make_model(), splits, config, progress=False,
                       batches_factory=FakeBatches, **rest)  # type: ignore[arg-type]


def test_one_epoch_beats_chance_clearly(splits: Splits) -> None:
    result = _train(splits, epochs=1)
    assert result.status == "completed" and result.epochs_run == 1
    assert result.final_val_acc >= 0.6  # 4 classes: chance is 0.25
    m = result.history[0]
    assert m.epoch == 1 and m.images_per_second > 0 and m.seconds > 0 and m.train_acc > 0.25


def test_same_seed_same_weights_and_loss(splits: Splits) -> None:
    a, b = make_model(dropout=0.2), make_model(dropout=0.2)
    ra = _train(splits, a, epochs=2, warmup_epochs=0.5)
    rb = _train(splits, b, epochs=2, warmup_epochs=0.5)
    assert ra.history[-1].train_loss == rb.history[-1].train_loss
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    c = make_model(dropout=0.2)
    _train(splits, c, epochs=2, warmup_epochs=0.5, seed=1)  # another seed: another data order
    assert not torch.equal(a.head.weight, c.head.weight)


def test_steps_per_epoch_caps_or_extends_the_epoch(splits: Splits) -> None:
    seen: list[int] = []

    def counting(arrays: Arrays, **kw: object) -> FakeBatches:
        batches = FakeBatches(arrays, **kw)  # type: ignore[arg-type]
        if kw["shuffle"]:
            seen.append(1)
        return batches

    config = TrainConfig(epochs=1, steps_per_epoch=3, **FAST)  # type: ignore[arg-type]
    result = train_model(make_model(), splits, config, progress=False, batches_factory=counting)
    assert result.status == "completed" and seen == [1]  # 3 < 8 batches: one (partial) pass
    seen.clear()
    config = TrainConfig(epochs=1, steps_per_epoch=20, **FAST)  # type: ignore[arg-type]
    train_model(make_model(), splits, config, progress=False, batches_factory=counting)
    assert len(seen) == 3  # 20 steps of 8-batch passes: three passes


class NaNAfter(TinyNet):
    """Returns NaN logits from the ``bad_call``-th training forward pass on."""

    def __init__(self, bad_call: int) -> None:
        super().__init__()
        self.calls, self.bad_call = 0, bad_call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        if self.training:
            self.calls += 1
            if self.calls >= self.bad_call:
                return out * float("nan")
        return out


def test_a_step_of_several_losses_backpropagates_each_before_the_next(splits: Splits) -> None:
    """A loss hook that yields several losses (a supernet's sandwich step) holds one forward graph at a time,
    and its gradients are those of the summed loss."""
    def two_parts(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                  step: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        yield logits, loss
        # the loop has backpropagated the first loss, and so freed its graph, before asking for the second
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
        with pytest.raises(RuntimeError, match="backward through the graph a second time"):
            loss.backward()
        flipped = model(images.flip(3))
        yield flipped, F.cross_entropy(flipped, labels)

    def summed(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
               step: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        logits = model(images)
        yield logits, F.cross_entropy(logits, labels) + F.cross_entropy(model(images.flip(3)), labels)

    a, b = make_model(), make_model()
    ra = _train(splits, a, epochs=2, loss_fn=two_parts)
    rb = _train(splits, b, epochs=2, loss_fn=summed)
    assert ra.status == rb.status == "completed"
    assert ra.history[-1].train_loss == pytest.approx(rb.history[-1].train_loss, rel=1e-4)
    assert ra.history[-1].train_acc == rb.history[-1].train_acc  # both from the first part's logits
    assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    c = make_model()
    _train(splits, c, epochs=2)  # the first loss alone trains other weights: the second one counted
    assert not torch.allclose(a.head.weight, c.head.weight, atol=1e-3)


def test_a_loss_hook_that_yields_nothing_or_returns_one_pair_is_refused(splits: Splits) -> None:
    def nothing(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                step: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        yield from ()

    def one_pair(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                 step: int) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(images)
        return logits, F.cross_entropy(logits, labels)

    with pytest.raises(TypeError, match="yielded no loss"):
        _train(splits, epochs=1, loss_fn=nothing)
    with pytest.raises(TypeError, match="must yield .logits, loss. pairs"):
        _train(splits, epochs=1, loss_fn=one_pair)


def test_nan_loss_ends_the_run_as_diverged_and_keeps_history(splits: Splits, tmp_path) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    model = NaNAfter(bad_call=11)  # 8 steps per epoch: the 3rd step of epoch 2
    result = _train(splits, model, epochs=3, out_dir=tmp_path)
    assert result.status == "diverged" and result.epochs_run == 1 and len(result.history) == 1
    assert "epoch 2" in result.message and "step 11" in result.message and "nan" in result.message
    assert all(torch.isfinite(p).all() for p in model.parameters())  # on CPU the bad step is never applied
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["status"] == "diverged" and summary["epochs_run"] == 1 and "step 11" in summary["message"]


def test_huge_learning_rate_diverges_without_crashing(splits: Splits) -> None:
    result = _train(splits, epochs=2, lr=1e30, label_smoothing=0.0)
    assert result.status == "diverged"
    assert "lower the learning rate" in result.message


def test_callback_sees_every_epoch_and_can_stop(splits: Splits) -> None:
    seen: list[EpochMetrics] = []

    def stop_after_two(m: EpochMetrics) -> bool:
        seen.append(m)
        return m.epoch == 2

    result = _train(splits, epochs=4, on_epoch_end=stop_after_two)
    assert result.status == "stopped" and result.epochs_run == 2 and "after epoch 2/4" in result.message
    assert [m.epoch for m in seen] == [1, 2] and seen[-1] == result.history[-1]


def test_stop_request_on_the_last_epoch_is_just_completion(splits: Splits) -> None:
    result = _train(splits, epochs=1, on_epoch_end=lambda m: True)
    assert result.status == "completed"


class Pruned(Exception):
    pass


def test_callback_exception_propagates_unchanged(splits: Splits, tmp_path) -> None:  # noqa: ANN001
    def prune(m: EpochMetrics) -> None:
        raise Pruned(f"pruned at {m.epoch}")

    with pytest.raises(Pruned, match="pruned at 1"):
        _train(splits, epochs=3, on_epoch_end=prune, out_dir=tmp_path)
    assert (tmp_path / "checkpoint.pt").exists()  # saved before the callback ran
    assert not (tmp_path / "metrics.json").exists()  # the run did not end normally


def test_outputs_in_out_dir(splits: Splits, tmp_path) -> None:  # noqa: ANN001
    result = _train(splits, epochs=2, out_dir=tmp_path / "run")
    lines = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert lines[0].split(",") == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds",
                                   "images_per_second"]
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2"]
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 2
    assert summary["final_val_acc"] == result.final_val_acc and summary["best_val_acc"] == result.best_val_acc
    assert summary["wall_seconds"] > 0 and summary["config"]["epochs"] == 2
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint.pt", "metrics.csv", "metrics.json"]


def test_progress_bar_reports_epochs(splits: Splits, capsys: pytest.CaptureFixture[str]) -> None:
    config = TrainConfig(epochs=1, **FAST)  # type: ignore[arg-type]
    train_model(make_model(), splits, config, progress=True, batches_factory=FakeBatches)
    err = capsys.readouterr()
    text = err.err + err.out
    assert "epoch 1/1" in text and "val loss" in text
    train_model(make_model(), splits, config, progress=False, batches_factory=FakeBatches)
    quiet = capsys.readouterr()
    assert quiet.err == "" and quiet.out == ""


def test_progress_lines_name_the_evaluated_split_and_read_naturally(splits: Splits, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    config = TrainConfig(epochs=1, **FAST)  # type: ignore[arg-type]
    train_model(make_model(), splits, config, out_dir=tmp_path, progress=True, batches_factory=FakeBatches,
                val_label="monitor")
    captured = capsys.readouterr()
    lines = captured.out.splitlines()  # tqdm.write lines; the bars are on stderr
    epoch_line = next(line for line in lines if line.startswith("epoch 1/1: "))
    assert "| monitor loss " in epoch_line and "val loss" not in epoch_line
    assert any(re.search(r": 1 epoch x \d+ steps$", line) for line in lines), lines
    assert lines[-1] == "completed 1 epoch" and not any("1 epochs" in line for line in lines)


def test_empty_validation_split_is_a_data_error(splits: Splits) -> None:
    empty = Arrays(splits.val.images[:0], splits.val.labels[:0])
    broken = Splits(splits.train, empty, None, splits.mean, splits.std, splits.num_classes)
    with pytest.raises(DataError, match="val split is empty"):
        _train(broken, epochs=1)
