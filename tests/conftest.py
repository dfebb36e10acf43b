"""Shared fixtures: paths to the repository, the shared datasets and the default space."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CIFAR10 = SHARED / "datasets" / "cifar10"
DEFAULT_SPACE = REPO / "search_spaces" / "mobilenet_cse_cifar.yaml"
TINY_SPACE = REPO / "tests" / "fixtures" / "tiny_space.yaml"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def cifar10_root() -> Path:
    if not (CIFAR10 / "train").is_dir():
        pytest.fail(f"the shared CIFAR-10 folder is missing: expected {CIFAR10} (../shared beside the repo)")
    return CIFAR10
