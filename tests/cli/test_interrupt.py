"""Ctrl-C: exit 130 and one line; only the commands that resume say how."""

from __future__ import annotations

import argparse

import pytest

import nas.cli.export
import nas.cli.lut
import nas.cli.train
from nas.cli import main


def _interrupted(args: argparse.Namespace) -> int:
    raise KeyboardInterrupt


@pytest.mark.parametrize(("module", "argv", "said"), [
    (nas.cli.train, ["train", "--arch", "x", "--epochs", "1", "--out", "r"],
     "interrupted: everything finished so far is saved; re-run the same command to resume."),
    (nas.cli.lut, ["lut", "build", "--space", "s.yaml", "-o", "t.json"],
     "interrupted: everything finished so far is saved; re-run it with --only-missing to measure the rest."),
    (nas.cli.export, ["export", "--arch", "x", "-o", "m.onnx"], "interrupted."),
])
def test_ctrl_c_says_how_to_resume_only_where_a_command_resumes(module: object, argv: list[str], said: str,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    name = "_build" if module is nas.cli.lut else "_run"
    monkeypatch.setattr(module, name, _interrupted)
    assert main(argv) == 130
    assert capsys.readouterr().err.strip().splitlines() == [said]
