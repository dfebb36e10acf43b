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


def test_bn_recalibration_changes_evaluation_only(splits: Splits) -> None:
    runs = {}
    for images in (0, 64):
        torch.manual_seed(0)
        model = make_model()
        config = TrainConfig(epochs=2, batch_size=32, lr=0.2, device="cpu", bn_recalibration=images)
        runs[images] = (model, train_model(model, splits, config, progress=False, batches_factory=FakeBatches))
    plain, recal = runs[0][1], runs[64][1]
    # The optimisation is identical: same training losses and weights; only BN statistics differ.
    assert [m.train_loss for m in plain.history] == [m.train_loss for m in recal.history]
    weights = {k: v for k, v in runs[0][0].state_dict().items() if "running" not in k and "num_batches" not in k}
    assert all(torch.equal(v, runs[64][0].state_dict()[k]) for k, v in weights.items())
    tracked = [int(next(m for m in runs[k][0].modules() if isinstance(m, torch.nn.BatchNorm2d)).num_batches_tracked)
               for k in (0, 64)]
    assert tracked[0] > 2 and tracked[1] == 1  # re-estimated from one batch of 64 images, not accumulated


def test_recalibration_uses_the_current_batch_statistics() -> None:
    from nas.train.device import choose_precision
    from nas.train.evaluate import recalibrate_batchnorm

    model = torch.nn.Sequential(torch.nn.BatchNorm2d(3))
    model.eval()
    x = torch.randn(40, 3, 4, 4) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1) + 5.0
    batches = [(x[i:i + 10], torch.zeros(10, dtype=torch.long)) for i in range(0, 40, 10)]
    used = recalibrate_batchnorm(model, batches, choose_precision(torch.device("cpu"), amp=False, channels_last=False),
                                 images=30)
    assert used == 30 and not model.training and model[0].momentum == 0.1
    # The plain average of the 3 batch means (momentum None) is the mean of the first 30 images.
    assert torch.allclose(model[0].running_mean, x[:30].mean(dim=(0, 2, 3)), atol=1e-5)


def test_score_counts_the_predicted_classes(splits: Splits) -> None:
    from nas.train.evaluate import score

    model = make_model()
    with torch.no_grad():  # a classifier that says class 2 whatever the image
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([0.0, 0.0, 5.0, 0.0]))
    result = score(model, splits.val, mean=splits.mean, std=splits.std, device="cpu", batch_size=50,
                   batches_factory=FakeBatches)
    assert result.predicted == (0, 0, len(splits.val), 0)
    assert result.top_class == 2 and result.top_class_share == 1.0
    assert result.acc == pytest.approx(float((splits.val.labels == 2).mean()))
    assert (result.loss, result.acc) == evaluate(model, splits.val, mean=splits.mean, std=splits.std, device="cpu",
                                                 batch_size=50, batches_factory=FakeBatches)
