"""Size limits of search-space files: refused at load time, naming the file, the key and the limit."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from nas.arch.spec import MAX_BLOCKS, MAX_CHANNELS, MAX_CLASSES, MAX_INPUT_SIZE
from nas.errors import SpaceError
from nas.space import load_space
from tests.conftest import DEFAULT_SPACE, write_space


def _depth(d: dict[str, Any], i: int, depth: object) -> None:
    d["stages"][i]["depth"] = depth


@pytest.mark.parametrize(("mutate", "fragment"), [
    (lambda d: _depth(d, 1, [1, 99999999]), f"stages[1].depth[1]: 99999999 is above the limit of {MAX_BLOCKS}"),
    (lambda d: _depth(d, 1, MAX_BLOCKS + 1), f"stages[1].depth[0]: {MAX_BLOCKS + 1} is above the limit"),
    (lambda d: [_depth(d, i, [1, MAX_BLOCKS // 2]) for i in range(3)], f"above the limit of {MAX_BLOCKS} blocks"),
    (lambda d: d["stages"][2].update(channels=100_000_000),
     f"stages[2].channels: 100000000 is above the limit of {MAX_CHANNELS}"),
    (lambda d: d["stem"].update(channels=MAX_CHANNELS + 1), "stem.channels"),
    (lambda d: d["head"].update(width=MAX_CHANNELS + 1), "head.width"),
    (lambda d: d["input"].update(size=MAX_INPUT_SIZE + 1), "input.size"),
    (lambda d: d["input"].update(channels=MAX_CHANNELS + 1), "input.channels"),
    (lambda d: d.update(classes=MAX_CLASSES + 1), "classes"),
    (lambda d: d["defaults"].update(cse_cap=[MAX_CHANNELS + 1]), "defaults.cse_cap[0]"),
    # the repeated blocks of stage 4 (96 channels) would have 96 x 200 = 19,200 hidden channels
    (lambda d: d["defaults"].update(expansion=[1, 200]), "stages[4].choices.expansion: 200 x 96 input channels"),
    # a CSE unit at 1024x1024 with reduction 1: 1,048,576 hidden units, 2^40 weights per FC layer
    (lambda d: [d["input"].update(size=1024), d["defaults"].update(cse_reduction=[1, 16])],
     "stages[0].choices.cse_reduction: a CSE block at 1024x1024 with cse_reduction 1 and cse_cap 16 has 1048576 "
     "hidden units"),
    # 2 types x 2,000 expansions x 3 kernels x 2 x 2 (se, activation), the CSE blocks x 1 x 1 more: 48,000
    (lambda d: d["defaults"].update(expansion=list(range(1, 2001))),
     "stages[0].choices: the stage offers 48000 block configurations, above the limit of 4096"),
    # at 256x256 the cap, not the reduction, sets 16,384 hidden units: 2^30 weights per FC layer
    (lambda d: [d["input"].update(size=256), d["defaults"].update(cse_cap=[MAX_CHANNELS])],
     "stages[0].choices.cse_cap: a CSE block at 256x256"),
])
def test_sizes_over_a_limit_are_refused_at_load_time(tmp_path: Path, mutate: Any, fragment: str) -> None:
    path = write_space(tmp_path, DEFAULT_SPACE, mutate)
    start = time.perf_counter()
    with pytest.raises(SpaceError) as err:
        load_space(path)
    assert time.perf_counter() - start < 2.0
    message = str(err.value)
    assert message.startswith(f"{path}: ") and fragment in message and "limit" in message, message
    assert "\n" not in message


def test_a_yaml_alias_bomb_is_one_short_line(tmp_path: Path) -> None:
    """Aliases are cheap to load but expand under repr: the rejected value is shown cut, never built whole."""
    levels = ["&a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]  # 10^9 items once expanded
    text = DEFAULT_SPACE.read_text()
    path = tmp_path / "bomb.yaml"
    path.write_text(text.replace("name:", f"name: [{', '.join(levels)}]\nold-name:", 1).replace("old-name:", "#"))
    start = time.perf_counter()
    with pytest.raises(SpaceError) as err:
        load_space(path)
    assert time.perf_counter() - start < 5.0
    message = str(err.value)
    assert len(message) < 400 and "\n" not in message and "..." in message, message
