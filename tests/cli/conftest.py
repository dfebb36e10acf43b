"""Fixtures for the CLI tests: run ``nas`` in-process, one thread, caches kept in tmp folders.

The networks here are tiny, and on a shared 2-core machine several intra-op threads spend more
time synchronising than computing, so the package runs single-threaded (restored afterwards).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from nas.cli import main
from tests.conftest import one_torch_thread

#: A tiny 16x16 network that learns the digits within a few dozen steps.
TINY_ARCH = "in16x3-stem_k3_s1_c16_re-ir_e3_k3_s2_c24_re-head_c64_re-cls10"
#: Training options of the tiny runs: ~25 steps per epoch on 400 digits.
TINY_TRAIN = ["--data", "digits", "--subset", "400", "--batch-size", "16", "--lr", "0.1", "--no-augment"]


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


Runner = Callable[..., Result]


_one_thread = pytest.fixture(scope="package", autouse=True)(one_torch_thread)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "nas-cache"))


@pytest.fixture
def nas(capsys: pytest.CaptureFixture[str]) -> Runner:
    """``nas(*args)``: run the CLI in this process; returns exit code, stdout and stderr."""

    def run(*args: str | Path) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def assert_user_error(result: Result, *fragments: str) -> None:
    """Exit status 2, one line on stderr starting with 'error:', naming every fragment, no traceback."""
    assert result.code == 2, (result.code, result.out, result.err)
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert "Traceback" not in result.err + result.out
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
