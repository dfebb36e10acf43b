"""The supernet's validation sample (a fixed, class-stratified draw, never the split's first images), and
where a CPU score's memory comes from."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import nas.supernet.evaluate as supernet_evaluate
from nas.data import load_dataset
from nas.data.arrays import ImageArrays
from nas.space import random_arch
from nas.supernet import LoadedSupernet, SupernetEvaluator, SupernetScoring, load_supernet
from nas.supernet.evaluate import validation_sample


def class_sorted_split(classes: int = 10, per_class: int = 50) -> SimpleNamespace:
    """A validation split stored class by class, as an image folder's is (each image holds its own index)."""
    labels = np.repeat(np.arange(classes, dtype=np.int64), per_class)
    images = np.zeros((len(labels), 4, 4, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(len(labels)) % 256
    images[:, 0, 0, 1] = np.arange(len(labels)) // 256
    return SimpleNamespace(val=ImageArrays(images=images, labels=labels))


def positions(sample: ImageArrays) -> list[int]:
    return (sample.images[:, 0, 0, 0].astype(int) + 256 * sample.images[:, 0, 0, 1].astype(int)).tolist()


def test_a_sample_keeps_every_class_in_proportion_and_is_the_same_each_time() -> None:
    splits = class_sorted_split()
    for n in (10, 100, 137):
        sample = validation_sample(splits, SupernetScoring(val_images=n))
        counts = np.bincount(sample.labels, minlength=10)
        assert len(sample.labels) == n and counts.min() >= n // 10 and counts.max() <= -(-n // 10)
        assert positions(sample) != list(range(n))  # not the split's first n images (two classes of ten at n=100)
        again = validation_sample(splits, SupernetScoring(val_images=n, seed=5))  # the scoring seed moves only
        assert positions(again) == positions(sample)  # the calibration sample, not the validation one


@pytest.mark.parametrize("n, expected", [(None, 500), (500, 500), (900, 500), (4, 4)])
def test_the_whole_split_or_a_plain_sample_when_fewer_images_than_classes(n: int | None, expected: int) -> None:
    sample = validation_sample(class_sorted_split(), SupernetScoring(val_images=n))
    assert len(sample.labels) == expected and len(set(positions(sample))) == expected


def test_a_cpu_score_takes_large_blocks_from_the_heap_and_hands_memory_back_only_when_short(
        tiny_supernet: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = load_supernet(tiny_supernet)
    info = loaded.info["data"]
    splits = load_dataset("digits", input_size=16, val_fraction=info["val_fraction"], seed=info["seed"],
                          subset=info["subset"], progress=False)
    calls: list[str] = []
    short = {"now": False}
    monkeypatch.setattr(supernet_evaluate, "keep_large_blocks_in_heap", lambda: calls.append("heap") or True)
    monkeypatch.setattr(supernet_evaluate, "release_freed_memory", lambda: calls.append("trim") or True)
    monkeypatch.setattr(supernet_evaluate, "memory_is_short", lambda: short["now"])
    arch = random_arch(loaded.space, 1)
    first = SupernetEvaluator(loaded, splits, SupernetScoring(calibration_images=32), device="cpu").evaluate(arch)
    assert calls == ["heap"]  # before the forward passes; no trim while memory is plentiful
    short["now"] = True
    again = SupernetEvaluator(loaded, splits, SupernetScoring(calibration_images=32), device="cpu").evaluate(arch)
    assert calls == ["heap", "heap", "trim"]  # memory short: handed back after the score
    assert again.accuracy == first.accuracy  # a fresh evaluator, the same score


def _digits_splits(loaded: LoadedSupernet) -> Any:
    info = loaded.info["data"]
    return load_dataset("digits", input_size=16, val_fraction=info["val_fraction"], seed=info["seed"],
                        subset=info["subset"], progress=False)


def test_a_score_runs_on_a_folded_copy_and_returns_the_network_with_its_batchnorm(
        tiny_supernet: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from nas.train.device import Precision
    from nas.train.evaluate import eval_batches, score_batches
    from nas.train.protocols import default_batches_factory

    loaded = load_supernet(tiny_supernet)
    splits = _digits_splits(loaded)
    arch = random_arch(loaded.space, 3)
    scored: list[torch.nn.Module] = []
    original = supernet_evaluate.score_batches
    monkeypatch.setattr(supernet_evaluate, "score_batches", lambda m, *a: scored.append(m) or original(m, *a))
    with torch.no_grad():
        model, loss, acc = supernet_evaluate.calibrated_subnet(loaded, arch, splits, SupernetScoring(calibration_images=64),
                                                               device="cpu")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # still trainable, as extract saves it
    (folded,) = scored  # the validation pass ran on a copy without BatchNorm
    assert folded is not model and not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    precision = Precision(torch.device("cpu"), None, True)
    unfolded = score_batches(model, eval_batches(default_batches_factory(), splits.val, mean=splits.mean,
                                                 std=splits.std, batch_size=256, precision=precision), precision)
    assert loss == pytest.approx(unfolded.loss, rel=1e-4)
    assert abs(acc - unfolded.acc) <= 1 / len(splits.val)  # the same up to float rounding (a near tie at most)


def test_cpu_bf16_runs_both_passes_in_bfloat16_keeps_its_scores_apart_and_is_refused_where_emulated(
        tiny_supernet: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch

    from nas.errors import SupernetError

    loaded = load_supernet(tiny_supernet)
    splits = _digits_splits(loaded)
    bf16 = SupernetScoring(calibration_images=64, cpu_bf16=True)
    monkeypatch.setattr(supernet_evaluate, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(SupernetError, match=r"^--cpu-bf16: this CPU has no native bfloat16 .* leave --cpu-bf16 out"):
        SupernetEvaluator(loaded, splits, bf16, device="cpu")
    with pytest.raises(SupernetError, match=r"^--cpu-bf16: the scores run on meta"):
        supernet_evaluate._precision(torch.device("meta"), bf16)
    monkeypatch.setattr(supernet_evaluate, "cpu_has_native_bf16", lambda: True)  # autocast runs either way
    seen: list[tuple[str, object]] = []
    for name in ("recalibrate_batchnorm", "score_batches"):
        original = getattr(supernet_evaluate, name)
        monkeypatch.setattr(supernet_evaluate, name, lambda *a, _f=original, _n=name, **k:
                            seen.append((_n, a[2].dtype)) or _f(*a, **k))
    arch = random_arch(loaded.space, 2)
    plain = SupernetEvaluator(loaded, splits, SupernetScoring(calibration_images=64), device="cpu")
    fast = SupernetEvaluator(loaded, splits, bf16, device="cpu")
    plain.evaluate(arch)
    assert seen == [("recalibrate_batchnorm", None), ("score_batches", None)]
    result = fast.evaluate(arch)
    assert seen[2:] == [("recalibrate_batchnorm", torch.bfloat16), ("score_batches", torch.bfloat16)]
    assert 0.0 <= result.accuracy <= 1.0
    assert fast.fingerprint == plain.fingerprint + "-cpubf16"  # kept apart; a resume in the other is refused
    assert fast.reseeded(4).scoring.cpu_bf16 and fast.confirmer(4).scoring.cpu_bf16
    with pytest.raises(SupernetError, match="--cpu-bf16: expected true or false"):
        SupernetScoring(cpu_bf16="yes")  # type: ignore[arg-type]
