"""``nas retrain --threads N`` and ``--augment {crop+flip,crop,none}`` (no flips for digits and text)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from nas.cli import main
from nas.errors import NASError
from nas.retrain import RetrainJob, make_recipe, reference_folder, run_retrain
from nas.retrain.data import final_splits


def test_augment_modes_reach_the_training_config_the_tag_and_the_cache_key() -> None:
    crop = make_recipe("short", augment="crop")
    assert (crop.train_config(seed=0).augment, crop.train_config(seed=0).flip) == (True, False)
    none = make_recipe("short", augment="none").train_config(seed=0)
    assert not none.augment
    both = make_recipe("short")
    assert both.augment == "crop+flip" and (both.train_config(seed=0).augment, both.train_config(seed=0).flip) == \
        (True, True)
    assert both.tag == "short-5ep" and crop.tag == "short-5ep-crop" and make_recipe("short", augment="none").tag == \
        "short-5ep-noaug"
    assert "random crop (pad 4), no flip" in crop.describe()
    splits = final_splits("digits", input_size=16, subset=50, progress=False)
    cache = Path("/cache")
    assert reference_folder(cache, "cse-mix-cifar", crop, splits, 0) != reference_folder(cache, "cse-mix-cifar", both,
                                                                                        splits, 0)
    with pytest.raises(NASError, match=r"--augment: expected one of crop\+flip, crop, none, got 'flip'"):
        make_recipe("short", augment="flip")


def test_threads_and_augment_are_used_and_recorded(tiny_run: Path, copy_run: Callable[[Path], Path],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import nas.retrain.job as job_module

    run = copy_run(tiny_run)
    seen: list[tuple[int, Any]] = []
    original = job_module.train_and_export

    def recording(arch: Any, splits: Any, recipe: Any, **kw: Any) -> Any:
        seen.append((torch.get_num_threads(), recipe.train_config(seed=0).flip))
        return original(arch, splits, recipe, **kw)

    monkeypatch.setattr(job_module, "train_and_export", recording)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        logs: list[str] = []
        run_retrain(RetrainJob(run=str(run), top=1, epochs=1, subset=100, references=(), threads=1, augment="crop",
                               progress=False), log=logs.append)
    finally:
        torch.set_num_threads(before)
    assert seen == [(1, False)]
    assert any("1 CPU thread(s)" in line for line in logs)
    frame = pd.read_csv(run / "retrain" / "results.csv")
    assert list(frame["augment"]) == ["crop"] and list(frame["recipe"]) == ["short-1ep-crop-sub100"]


def test_bad_threads_and_augment_are_one_line_errors(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["retrain", "--run", str(tiny_run), "--threads", "-1", "--no-references"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --threads:") and "\n" not in err
    with pytest.raises(SystemExit) as exc:
        main(["retrain", "--run", str(tiny_run), "--augment", "mirror"])
    assert exc.value.code == 2 and "invalid choice: 'mirror'" in capsys.readouterr().err
