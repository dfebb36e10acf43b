"""``--help`` of train, export, adapt and retrain: each option states its default once, required ones none."""

from __future__ import annotations

import re

import pytest

from nas.cli import main

REQUIRED = {"train": ["--arch", "--epochs", "--out"], "export": ["--arch", "-o"],
            "adapt": ["--arch", "--weights", "--target", "--latency-ms", "--out"], "retrain": ["--run"]}


def _help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def _option_blocks(text: str) -> dict[str, str]:
    """Each option's help, joined into one line, keyed by its first option string."""
    blocks: dict[str, str] = {}
    current = None
    for line in text.split("options:", 1)[1].splitlines():
        match = re.match(r"  (-{1,2}[\w-]+)", line)
        if match:
            current = match.group(1)
            blocks[current] = line.strip()
        elif current is not None and line.startswith("    "):
            blocks[current] += " " + line.strip()
        else:
            current = None
    return blocks


@pytest.mark.parametrize("command", sorted(REQUIRED))
def test_each_default_is_shown_once_and_required_options_show_none(command: str,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(command, capsys)
    assert "(default: None)" not in text and "(default: False)" not in text
    blocks = _option_blocks(text)
    assert set(REQUIRED[command]) <= set(blocks)
    for option, block in blocks.items():
        assert block.count("default") <= 1, block
        if option in REQUIRED[command]:
            assert "default" not in block, block


def test_stated_and_added_defaults_read_naturally(capsys: pytest.CaptureFixture[str]) -> None:
    adapt = _option_blocks(_help("adapt", capsys))
    assert adapt["--subset"].endswith("(default: all)") and adapt["--steps"].endswith("(default: 50)")
    retrain = _option_blocks(_help("retrain", capsys))
    assert retrain["--top"].endswith("(default: 3)") and "(default:" not in retrain["--epochs"]
