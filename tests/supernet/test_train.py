"""``nas supernet train``'s warning of a run that is not learning (:func:`nas.supernet.train.not_learning_warning`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas.cli import main
from nas.supernet import SandwichSettings
from nas.supernet.train import not_learning_warning
from nas.train import EpochMetrics
from tests.supernet.test_cli import TINY


def _epoch(epoch: int, train_loss: float, val_acc: float) -> EpochMetrics:
    return EpochMetrics(epoch=epoch, train_loss=train_loss, train_acc=0.1, val_loss=2.3, val_acc=val_acc, lr=0.05,
                        seconds=1.0, images_per_second=5.0)


def test_a_rising_loss_at_chance_warns_once_and_a_learning_run_never() -> None:
    warnings: list[str] = []
    check = not_learning_warning(10, SandwichSettings(random_subnets=2), warnings.append)
    # a healthy first epoch, and a high loss of a network that is learning: no warning
    assert not check(_epoch(1, 7.9, 0.14)) and not check(_epoch(1, 12.0, 0.31)) and not warnings
    # the figures of a real CSE supernet run at lr 0.05, batch 64 (2,000 CIFAR-10 images): 4 x ln 10 = 9.21
    assert not check(_epoch(1, 12.62, 0.100))  # a warning, never a stop
    assert not check(_epoch(2, 14.90, 0.106))
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("warning: epoch 1: the sandwich loss 12.62 is above that of guessing uniformly "
                                  "(4 sub-networks x ln 10 = 9.21)")
    assert "lower --lr or a longer --warmup-epochs" in warnings[0]


def test_the_command_warns_on_stderr_even_when_quiet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # thresholds any epoch crosses: the wiring is tested here, the rule above
    monkeypatch.setattr("nas.supernet.train.NOT_LEARNING_LOSS", 0.0)
    monkeypatch.setattr("nas.supernet.train.CHANCE_MARGIN", 100.0)
    capsys.readouterr()
    assert main(["supernet", "train", *TINY, "--out", str(tmp_path / "sn"), "--epochs", "2", "--quiet"]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("warning: epoch 1: the sandwich loss"), captured.err
    assert (tmp_path / "sn" / "metrics.json").is_file()  # the run went on to the end
