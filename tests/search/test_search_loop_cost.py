"""benchmarks/search_loop_cost.py: timed searches of this tree against another revision, in turn."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPO, load_benchmark

pytestmark = pytest.mark.skipif(not (REPO.parent / "shared" / "benchmarks" / "nas-bench-macro").exists(),
                                reason="needs ../shared/benchmarks/nas-bench-macro")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_benchmark("search_loop_cost")


def _worktrees() -> list[str]:
    return subprocess.run(["git", "worktree", "list"], cwd=REPO, capture_output=True, text=True).stdout.splitlines()


def test_a_pair_runs_both_trees_and_compares_their_winners(bench: ModuleType, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import _common

    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    before = _worktrees()
    assert bench.main(["--trials", "20", "--repeats", "1", "--against", "HEAD", "--name", "t"]) == 0
    res = json.loads((tmp_path / "search_loop_cost_t.json").read_text())
    (run,) = res["runs"]
    assert run["this"]["seconds"] > 0 and run["against"]["seconds"] > 0
    assert run["this"]["winner"] == run["against"]["winner"]  # HEAD's search and this tree's choose alike
    text = (tmp_path / "search_loop_cost_t.md").read_text()
    assert run["this"]["trials"] == run["against"]["trials"]  # trial for trial
    assert "| 1 |" in text and "| yes | yes |" in text and "--against HEAD" in text
    assert _worktrees() == before  # the temporary checkout is gone


def test_an_unknown_revision_is_one_clear_error(bench: ModuleType) -> None:
    with pytest.raises(SystemExit, match="--against 'no-such-rev': not a commit"):
        bench.main(["--trials", "20", "--against", "no-such-rev"])
