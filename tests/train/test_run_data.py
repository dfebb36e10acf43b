"""``nas train`` resumes a run directory only on the images it started on: an image folder's contents are
recorded in run.json (its content key) and compared on resume; run.json files without the key still resume."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nas.data import content_key
from nas.errors import CheckpointError
from nas.train.job import RUN_FILE, TrainJob, run_train_job

ARCH = "in16x3-stem_k3_s1_c8_re-ir_e2_k3_s2_c8_re-head_c16_re-cls3"


def _write(root: Path, split: str, cls: str, count: int, seed: int) -> None:
    folder = root / split / cls
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{seed}-{i}.png")


@pytest.fixture
def images(tmp_path: Path) -> Path:
    root = tmp_path / "imgs"
    for c in range(3):
        _write(root, "train", f"c{c}", 10, seed=c)
        _write(root, "test", f"c{c}", 2, seed=10 + c)
    return root


def _job(images: Path, out: Path, epochs: int) -> TrainJob:
    return TrainJob(arch=ARCH, data=str(images), out=str(out), epochs=epochs, batch_size=8, device="cpu",
                    cache_dir=str(out.parent / "cache"), threads=1)


def test_the_content_key_follows_the_images(images: Path) -> None:
    key = content_key(images, input_size=16)
    assert key is not None and content_key(str(images), input_size=16) == key
    assert content_key("digits", input_size=16) is None and content_key(images / "nope", input_size=16) is None
    _write(images, "train", "c0", 1, seed=99)
    assert content_key(images, input_size=16) != key


def test_a_run_is_not_resumed_after_the_images_changed(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_train_job(_job(images, out, 1), progress=False, log=lambda _: None)
    assert json.loads((out / RUN_FILE).read_text())["content"] == content_key(images, input_size=16)
    for path in (images / "train" / "c1").iterdir():  # the same path, other images
        path.unlink()
    _write(images, "train", "c1", 10, seed=42)
    before = (out / "metrics.csv").read_text()
    with pytest.raises(CheckpointError) as info:
        run_train_job(_job(images, out, 2), progress=False, log=lambda _: None)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{out / RUN_FILE}: {out} holds a run trained on other "
                                                      f"contents of --data {images}")
    assert "Restore the original images, or choose another --out" in message
    assert (out / "metrics.csv").read_text() == before


def test_a_run_json_without_the_key_still_resumes(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_train_job(_job(images, out, 1), progress=False, log=lambda _: None)
    run_file = out / RUN_FILE
    record = json.loads(run_file.read_text())
    del record["content"]  # as an earlier version wrote it
    run_file.write_text(json.dumps(record))
    logs: list[str] = []
    result = run_train_job(_job(images, out, 2), progress=False, log=logs.append)
    assert result["epochs_run"] == 2
    assert json.loads(run_file.read_text())["content"] == content_key(images, input_size=16)  # recorded from now on


def test_the_same_images_resume(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_train_job(_job(images, out, 1), progress=False, log=lambda _: None)
    os.utime(images / "train")  # a folder touched: no image changed
    result = run_train_job(_job(images, out, 2), progress=False, log=lambda _: None)
    assert result["epochs_run"] == 2
