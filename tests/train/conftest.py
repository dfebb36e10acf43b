"""Fixtures for the training tests: one tiny learnable dataset, shared read-only, and one thread.

The models here are tiny: with several intra-op threads on a shared, busy machine, torch spends
more time synchronising threads than computing, so these tests run single-threaded (the
previous setting is restored after the package). Package scope, so that module-scoped fixtures
(reference runs) use the same thread count as the tests comparing against them: a different
count changes the order of float reductions, and bitwise equality with it.
"""

from __future__ import annotations

import pytest

from tests.conftest import one_torch_thread
from tests.train.fakes import Splits, make_splits


@pytest.fixture(scope="session")
def splits() -> Splits:
    return make_splits()


_one_thread = pytest.fixture(scope="package", autouse=True)(one_torch_thread)
