"""Fixtures for the training tests: one tiny learnable dataset, shared read-only, and one thread.

The models here are tiny: with several intra-op threads on a shared, busy machine, torch spends
more time synchronising threads than computing, so these tests run single-threaded (the
previous setting is restored after the package). Package scope, so that module-scoped fixtures
(reference runs) use the same thread count as the tests comparing against them: a different
count changes the order of float reductions, and bitwise equality with it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from tests.train.fakes import Splits, make_splits


@pytest.fixture(scope="session")
def splits() -> Splits:
    return make_splits()


@pytest.fixture(scope="package", autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
