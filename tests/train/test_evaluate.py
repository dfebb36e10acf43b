"""evaluate(): loss and accuracy in eval mode, restoring the caller's mode; device resolution."""

from __future__ import annotations

import pytest
import torch

from nas.errors import NASError
from nas.train import TrainConfig, evaluate, resolve_device, train_model
from tests.train.fakes import FakeBatches, Splits, make_model


def test_evaluate_matches_training_validation_and_restores_mode(splits: Splits) -> None:
    model = make_model()
    result = train_model(model, splits, TrainConfig(epochs=1, batch_size=32, lr=0.2, device="cpu"), progress=False,
                         batches_factory=FakeBatches)
    model.train()
    loss, acc = evaluate(model, splits.val, mean=splits.mean, std=splits.std, device="cpu", batch_size=50,
                         batches_factory=FakeBatches)
    assert model.training  # mode restored
    assert acc == pytest.approx(result.final_val_acc) and loss == pytest.approx(result.history[-1].val_loss)


def test_untrained_model_is_near_chance(splits: Splits) -> None:
    loss, acc = evaluate(make_model(), splits.val, mean=splits.mean, std=splits.std, device="cpu",
                         batches_factory=FakeBatches)
    assert acc < 0.6 and loss > 1.0


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(NASError, match="not supported"):
        resolve_device("meta")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda_is_a_clear_error() -> None:
    with pytest.raises(NASError, match="CUDA is not available"):
        resolve_device("cuda")
