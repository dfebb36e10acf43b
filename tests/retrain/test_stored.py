"""A recipe tag's folder holds one retraining: other data, another start or another table is refused in one
line, never reused, resumed or averaged with the stored results (:mod:`nas.retrain.stored`)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nas.cli import main
from nas.errors import CheckpointError, RetrainError
from nas.retrain import RetrainJob, load_search_run, make_recipe, run_retrain, select_winners
from nas.retrain.data import final_splits
from nas.retrain.model import STARTED_FILE, train_and_export
from nas.train import CHECKPOINT_NAME, MID_EPOCH_NAME
from nas.retrain.stored import check_stored

TAG = "short-1ep-sub100"  # the recipe of the retrained_run fixture


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 classes of random 16x16 images: another dataset of the digits' class count."""
    root = tmp_path_factory.mktemp("images") / "imgs"
    rng = np.random.default_rng(0)
    for split, count in (("train", 12), ("test", 3)):
        for c in range(10):
            folder = root / split / f"c{c}"
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def _never_train(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a network was trained (or resumed) although the command should be refused")

    monkeypatch.setattr("nas.retrain.model.train_model", refuse)


def _job(run: Path, **options: object) -> RetrainJob:
    return RetrainJob(run=str(run), top=2, seeds=2, epochs=1, subset=100, progress=False, **options)  # type: ignore


def _winner_seed(run: Path, seed: int = 0) -> Path:
    winner = select_winners(load_search_run(run), 1)[0]
    return run / "retrain" / TAG / "winners" / winner.hash[:12] / f"seed{seed}"


def test_finished_results_of_other_data_are_not_reused(retrained_run: Path, copy_run: Callable[[Path], Path],
                                                       image_folder: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(retrained_run)
    recipe = (run / "retrain" / TAG / "recipe.json").read_text()
    _never_train(monkeypatch)
    assert main(["retrain", "--run", str(run), "--top", "2", "--seeds", "2", "--epochs", "1", "--subset", "100",
                 "--data", str(image_folder), "--threads", "1", "--json"]) == 2
    err = capsys.readouterr().err.strip()
    print(err)
    assert "\n" not in err and err.startswith(f"error: {_winner_seed(run)}: holds results")
    assert "trained on digits" in err and f"this command trains on image folder {image_folder}" in err
    assert "repeat the original --data" in err and f"delete {run / 'retrain' / TAG}" in err
    assert (run / "retrain" / TAG / "recipe.json").read_text() == recipe  # not rewritten for the other data


def test_results_stored_before_the_identity_was_recorded_are_checked_and_reused(
        retrained_run: Path, copy_run: Callable[[Path], Path], image_folder: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    run = copy_run(retrained_run)
    for path in (run / "retrain" / TAG).glob("winners/*/seed*/result.json"):  # as an earlier version wrote them
        record = json.loads(path.read_text())
        del record["identity"]
        path.write_text(json.dumps(record))
    _never_train(monkeypatch)
    with pytest.raises(RetrainError, match="trained on digits"):  # told by the trained.json it links to
        run_retrain(_job(run, data=str(image_folder)), log=lambda _: None)
    logs: list[str] = []
    run_retrain(_job(run), log=logs.append)  # the same data: reused
    assert sum("already done" in line for line in logs) == 4


def test_an_unfinished_training_is_not_resumed_on_other_data(retrained_run: Path, copy_run: Callable[[Path], Path],
                                                             image_folder: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    run = copy_run(retrained_run)
    seed0 = _winner_seed(run)
    for name in ("result.json", "trained.json"):  # killed after an epoch: a checkpoint, no result
        (seed0 / name).unlink()
    _never_train(monkeypatch)
    with pytest.raises(RetrainError, match=r"seed0: holds results trained on digits"):
        run_retrain(_job(run, data=str(image_folder)), log=lambda _: None)
    (seed0 / STARTED_FILE).unlink()  # a folder of an earlier version: recipe.json tells its data
    with pytest.raises(RetrainError, match=r"seed0: holds results trained on digits"):
        run_retrain(_job(run, data=str(image_folder)), log=lambda _: None)


def test_the_model_folder_refuses_to_resume_another_training(tmp_path: Path, image_folder: Path) -> None:
    from nas.arch import parse_compact

    arch = parse_compact("in16x3-stem_k3_s1_c8_re-ir_e2_k3_s2_c8_re-head_c16_re-cls10")
    digits = final_splits("digits", input_size=16, subset=40, test_subset=20, progress=False)
    recipe = make_recipe("short", epochs=1, batch_size=32)
    train_and_export(arch, digits, recipe, seed=0, folder=tmp_path, device="cpu", progress=False,
                     log=lambda _: None)
    (tmp_path / "trained.json").unlink()  # unfinished again
    images = final_splits(image_folder, input_size=16, subset=40, test_subset=20, progress=False)
    with pytest.raises(CheckpointError, match="holds an unfinished training with data = "):
        train_and_export(arch, images, recipe, seed=0, folder=tmp_path, device="cpu", progress=False,
                         log=lambda _: None)
    (tmp_path / "checkpoint.pt").rename(tmp_path / MID_EPOCH_NAME)  # stopped inside its first epoch
    with pytest.raises(CheckpointError, match="holds an unfinished training with data = "):
        train_and_export(arch, images, recipe, seed=0, folder=tmp_path, device="cpu", progress=False,
                         log=lambda _: None)


def _other_table(table: Path, out: Path) -> Path:
    raw = json.loads(table.read_text())
    raw["correction"]["offset_ms"] = raw["correction"].get("offset_ms", 0.0) + 0.01  # every prediction +0.01 ms
    out.write_text(json.dumps(raw))
    return out


def test_latencies_of_another_table_are_refused_and_a_copy_of_the_table_is_the_same(
        retrained_run: Path, copy_run: Callable[[Path], Path], tiny_table: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    run = copy_run(retrained_run)
    _never_train(monkeypatch)
    other = _other_table(tiny_table, tmp_path / "other.json")
    with pytest.raises(RetrainError, match=r"latencies predicted by the table .*tiny\.json.*repeat the original "
                                           r"--table"):
        run_retrain(_job(run, table=str(other)), log=lambda _: None)
    copy = Path(shutil.copyfile(tiny_table, tmp_path / "copy.json"))
    logs: list[str] = []
    run_retrain(_job(run, table=str(copy)), log=logs.append)
    assert sum("already done" in line for line in logs) == 4
    # the same table with an entry added for a network none of these has ('nas lut add'): the same latencies
    raw = json.loads(tiny_table.read_text())
    some = next(k for k in raw["entries"] if k.startswith("ir_"))
    extended = tmp_path / "extended.json"
    raw["entries"][some.replace("_m", "_m1", 1)] = raw["entries"][some]
    extended.write_text(json.dumps(raw))
    logs.clear()
    run_retrain(_job(run, table=str(extended)), log=logs.append)
    assert sum("already done" in line for line in logs) == 4


def test_another_start_is_refused(tmp_path: Path) -> None:
    seed = tmp_path / "retrain" / TAG / "winners" / "abc" / "seed0"
    seed.mkdir(parents=True)
    data = {"source": "digits", "input_size": 16, "train": 100, "test": 359, "subset": 100, "test_subset": None}
    table = {"latencies": "0123456789abcdef", "path": "t.json"}
    start = {"kind": "supernet", "supernet": "/runs/supernet-a", "weights": "aaaaaaaaaaaaaaaa"}
    (seed / "result.json").write_text(json.dumps({"identity": {"data": data, "init": start, "table": table}}))
    check_stored(seed, {"data": data, "init": start, "table": table}, run_dir=tmp_path, tag_dir=seed.parents[2])
    other = {**start, "supernet": "/runs/supernet-b", "weights": "bbbbbbbbbbbbbbbb"}
    with pytest.raises(RetrainError, match=r"started from the supernet in /runs/supernet-a .*; this command "
                                           r"starts from the supernet in /runs/supernet-b .*--init/--supernet"):
        check_stored(seed, {"data": data, "init": other, "table": table}, run_dir=tmp_path, tag_dir=seed.parents[2])
    with pytest.raises(RetrainError, match="this command starts from random weights"):
        check_stored(seed, {"data": data, "init": "scratch", "table": table}, run_dir=tmp_path,
                     tag_dir=seed.parents[2])


def test_rewritten_images_under_the_same_path_are_other_data(tmp_path: Path, image_folder: Path) -> None:
    from nas.retrain import make_recipe, reference_folder
    from nas.retrain.stored import IDENTITY_KEY, retrain_identity

    data = tmp_path / "imgs"
    shutil.copytree(image_folder, data)
    recipe = make_recipe("short")
    before = final_splits(data, input_size=16, progress=False)
    assert before.identity()["content"] and "content" not in final_splits("digits", input_size=16,
                                                                           progress=False).identity()
    image = data / "train" / "c0" / "0.png"
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(image)  # same name, count and path, new pixels
    after = final_splits(data, input_size=16, progress=False)
    assert {k: v for k, v in after.identity().items() if k != "content"} == \
        {k: v for k, v in before.identity().items() if k != "content"}
    # the shared reference cache trains the references again instead of reusing those of the old images
    assert reference_folder(tmp_path / "c", "cse-mix-cifar", recipe, after, 0) != \
        reference_folder(tmp_path / "c", "cse-mix-cifar", recipe, before, 0)
    # a run's stored results of the old images are refused; results recorded before contents were keyed are not
    table = {"latencies": "0" * 16, "path": "t.json"}
    seed = tmp_path / "run" / "retrain" / TAG / "winners" / "abc" / "seed0"
    seed.mkdir(parents=True)
    current = retrain_identity(after.identity(), "scratch", table)
    (seed / "result.json").write_text(json.dumps({IDENTITY_KEY: retrain_identity(before.identity(), "scratch", table)}))
    with pytest.raises(RetrainError, match=r"image contents [0-9a-f]{12}\); this command trains on .*image contents"
                                           r".*rewritten or touched .* since; restore them, or retrain a copy") as err:
        check_stored(seed, current, run_dir=tmp_path / "run", tag_dir=seed.parents[2])
    assert "repeat the original --data" not in str(err.value)  # it was repeated: the images changed
    old = {k: v for k, v in before.identity().items() if k != "content"}
    (seed / "result.json").write_text(json.dumps({IDENTITY_KEY: retrain_identity(old, "scratch", table)}))
    check_stored(seed, current, run_dir=tmp_path / "run", tag_dir=seed.parents[2])  # nothing to tell: accepted


def test_a_training_recorded_before_contents_were_keyed_resumes_and_one_of_other_images_does_not(
        tmp_path: Path, image_folder: Path) -> None:
    from nas.arch import parse_compact

    data = tmp_path / "imgs"
    shutil.copytree(image_folder, data)
    arch = parse_compact("in16x3-stem_k3_s1_c8_re-ir_e2_k3_s2_c8_re-head_c16_re-cls10")
    splits = final_splits(data, input_size=16, subset=40, test_subset=20, progress=False)
    recipe = make_recipe("short", epochs=1, batch_size=32)

    def train(folder: Path, on: object = splits) -> dict[str, object]:
        return train_and_export(arch, on, recipe, seed=0, folder=folder, device="cpu",  # type: ignore[arg-type]
                                progress=False, log=lambda _: None)

    keyed, old = tmp_path / "keyed", tmp_path / "old"
    train(keyed)
    train(old)
    for name in (STARTED_FILE, "trained.json"):  # as an earlier version wrote them: no content key
        record = json.loads((old / name).read_text())
        assert "content" in record["data"]
        del record["data"]["content"]
        (old / name).write_text(json.dumps(record))
    assert "content" not in train(old)["data"]  # finished: reused as it is
    (old / "trained.json").unlink()  # unfinished: resumed from its checkpoint, not refused
    assert (old / CHECKPOINT_NAME).exists() and train(old)["test_acc"] is not None
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(data / "train" / "c1" / "0.png")
    other = final_splits(data, input_size=16, subset=40, test_subset=20, progress=False)
    for unfinished in (False, True):  # records of the old images, keyed: refused, saying the images changed
        if unfinished:
            (keyed / "trained.json").unlink()
        with pytest.raises(CheckpointError, match="rewritten or touched .* since; restore them"):
            train(keyed, other)


def test_results_of_other_networks_on_other_data_are_not_mixed_into_one_report(
        retrained_run: Path, copy_run: Callable[[Path], Path], image_folder: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A winner not retrained yet (as after a resumed search), on other data than the folder's other results:
    refused before anything is trained or recipe.json is rewritten."""
    import shutil

    run = copy_run(retrained_run)
    shutil.rmtree(_winner_seed(run).parent)  # the first winner was never retrained; the second one was, on digits
    recipe = (run / "retrain" / TAG / "recipe.json").read_text()
    _never_train(monkeypatch)
    assert main(["retrain", "--run", str(run), "--top", "1", "--seeds", "1", "--epochs", "1", "--subset", "100",
                 "--data", str(image_folder), "--no-references", "--threads", "1", "--json"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"error: {run / 'retrain' / TAG}: holds results trained on digits")
    assert f"this command trains on image folder {image_folder}" in err and "repeat the original --data" in err
    assert (run / "retrain" / TAG / "recipe.json").read_text() == recipe
