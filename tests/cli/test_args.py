"""The argument types shared by the commands, and every command's ``--seed`` refusing a negative seed."""

from __future__ import annotations

import argparse

import pytest

from nas.cli import main
from nas.cli._args import non_negative_float, non_negative_int, positive_float, positive_int


@pytest.mark.parametrize(("parse", "good", "bad"), [
    (positive_int, {"1": 1, "12": 12}, ["0", "-3", "1.5", "x", ""]),
    (non_negative_int, {"0": 0, "7": 7}, ["-1", "2.0", "seven"]),
    (positive_float, {"0.5": 0.5, "3": 3.0}, ["0", "-1e-9", "nan", "inf", "x"]),
    (non_negative_float, {"0": 0.0, "1e-3": 1e-3}, ["-0.1", "-inf", "nan"]),
])
def test_each_type_takes_its_range_and_refuses_the_rest(parse, good: dict[str, float], bad: list[str]) -> None:
    for text, value in good.items():
        assert parse(text) == value
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=f"expected .*got {text!r}"):
            parse(text)


@pytest.mark.parametrize("command", ["train", "search", "adapt", "export", "arch sample"])
def test_a_negative_seed_is_refused_before_any_work(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command.split(), "--seed", "-1"])
    assert exit_info.value.code == 2
    assert "argument --seed: expected an integer >= 0, got '-1'" in capsys.readouterr().err
