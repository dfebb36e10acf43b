"""``nas retrain --init supernet --supernet DIR``: the winners start from the supernet's weights (BatchNorm
re-estimated), results are kept apart, and a supernet that does not fit the run is refused in one line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from nas.cli import main
from nas.errors import CheckpointError
from nas.retrain import load_search_run, select_winners
from nas.retrain.model import INIT_FILE, _check_init
from nas.supernet import SupernetTrainJob, load_supernet, run_supernet_train
from nas.train import CHECKPOINT_NAME
from tests.conftest import TINY_SPACE, one_torch_thread, spy_on_start, write_space

_one_thread = pytest.fixture(scope="module", autouse=True)(one_torch_thread)

RETRAIN = ["--top", "1", "--epochs", "1", "--subset", "100", "--no-references", "--threads", "1"]


def _supernet(out: Path, space: Path = TINY_SPACE) -> Path:
    result = run_supernet_train(SupernetTrainJob(space=str(space), data="digits", out=str(out), epochs=1, subset=100,
                                                 batch_size=25, augment=False, threads=1),
                                progress=False, log=lambda _msg: None)
    assert result.status == "completed"
    return out


@pytest.fixture(scope="module")
def supernet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _supernet(tmp_path_factory.mktemp("retrain_supernet") / "sn")


def _cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line_error(code: int, err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_winners_start_from_the_supernet_weights_with_bn_re_estimated(
        tiny_run: Path, supernet: Path, copy_run: Callable[[Path], Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import nas.retrain.model

    started = spy_on_start(monkeypatch, nas.retrain.model)
    run = copy_run(tiny_run)
    code, stdout, err = _cli(capsys, "retrain", "--run", run, *RETRAIN, "--init", "supernet", "--supernet", supernet)
    assert code == 0, err
    assert "start from the weights of the supernet" in stdout and "before training" in stdout

    winner = select_winners(load_search_run(run), 1)[0]
    shared = load_supernet(supernet).supernet.sub_state(winner.arch)
    first = started[0]
    assert first.keys() == shared.keys()
    for key, value in first.items():
        if "running_" not in key and "num_batches_tracked" not in key:
            assert torch.equal(value, shared[key]), key  # every weight is the supernet's
    assert any(not torch.equal(first[k], shared[k]) for k in first if k.endswith("running_var"))  # re-estimated

    folder = run / "retrain" / "short-1ep-sub100-supernet" / "winners" / winner.hash[:12] / "seed0"
    trained = json.loads((folder / "trained.json").read_text())
    assert trained["init"]["kind"] == "supernet" and trained["init"]["supernet"] == str(supernet.resolve())
    assert 0.0 <= trained["init_monitor_acc"] <= 1.0 and trained["test_acc"] is not None
    assert json.loads((folder / INIT_FILE).read_text())["init"] == trained["init"]
    assert "short-1ep-sub100-supernet" in (run / "retrain" / "results.csv").read_text()
    assert f"The winners start from the supernet in {supernet.resolve()}" in (run / "report.md").read_text()

    # The default stays random initial weights, kept apart from the supernet-started results.
    code, _, err = _cli(capsys, "retrain", "--run", run, *RETRAIN)
    assert code == 0, err
    scratch = json.loads((run / "retrain" / "short-1ep-sub100" / "winners" / winner.hash[:12] / "seed0" /
                          "trained.json").read_text())
    assert scratch["init"] == "scratch" and scratch["init_monitor_acc"] is None
    assert not all(torch.equal(started[-1][k], shared[k]) for k in shared if "running_" not in k)


def test_a_supernet_of_another_space_is_refused(tiny_run: Path, copy_run: Callable[[Path], Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    def mutate(data: dict[str, Any]) -> None:
        data["stages"][2]["depth"] = [1, 2]

    other = _supernet(tmp_path / "other", write_space(tmp_path, TINY_SPACE, mutate))
    run = copy_run(tiny_run)
    code, _, err = _cli(capsys, "retrain", "--run", run, *RETRAIN, "--init", "supernet", "--supernet", other)
    _one_line_error(code, err, f"--supernet {other}", "retrain with --init scratch")
    assert not (run / "retrain").exists()


@pytest.mark.parametrize(("extra", "expected"), [
    (["--init", "supernet"], "--init supernet: needs --supernet DIR"),
    (["--supernet", "somewhere"], "--supernet somewhere: only used with --init supernet"),
    (["--init", "supernet", "--supernet", "nowhere"], "nowhere: no such supernet directory"),
])
def test_option_refusals(extra: list[str], expected: str, tiny_run: Path, copy_run: Callable[[Path], Path],
                         capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(tiny_run)
    code, _, err = _cli(capsys, "retrain", "--run", run, *RETRAIN, *extra)
    _one_line_error(code, err, expected)
    assert not (run / "retrain").exists()


def test_an_unfinished_training_resumes_only_from_the_same_start(tmp_path: Path) -> None:
    start = {"kind": "supernet", "supernet": "/a", "weights": "x"}
    _check_init(tmp_path, start)  # nothing trained yet: any start
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"")
    _check_init(tmp_path, "scratch")  # a checkpoint without init.json started from random weights
    with pytest.raises(CheckpointError, match="started from 'scratch'"):
        _check_init(tmp_path, start)
    (tmp_path / INIT_FILE).write_text(json.dumps({"init": start}))
    _check_init(tmp_path, start)
    with pytest.raises(CheckpointError, match="repeat the original --init/--supernet"):
        _check_init(tmp_path, {**start, "weights": "y"})
