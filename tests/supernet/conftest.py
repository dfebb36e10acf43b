"""A tiny supernet trained once per test session (tiny space, digits, 2 epochs, a few seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas.supernet import SupernetTrainJob, run_supernet_train
from tests.conftest import TINY_SPACE, one_torch_thread

_one_thread = pytest.fixture(scope="package", autouse=True)(one_torch_thread)


@pytest.fixture(scope="session")
def tiny_supernet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory of a supernet of ``tests/fixtures/tiny_space.yaml`` trained 2 epochs on 300 digits."""
    out = tmp_path_factory.mktemp("supernet") / "tiny"
    result = run_supernet_train(SupernetTrainJob(space=str(TINY_SPACE), data="digits", out=str(out), epochs=2,
                                                 subset=300, augment=False, batch_size=32),
                                progress=False, log=lambda _msg: None)
    assert result.status == "completed"
    return out
