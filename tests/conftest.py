"""Shared fixtures: paths to the repository, the shared datasets and the default space; Ctrl-C in a finalizer."""

from __future__ import annotations

import importlib.util
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CIFAR10 = SHARED / "datasets" / "cifar10"
DEFAULT_SPACE = REPO / "search_spaces" / "mobilenet_cse_cifar.yaml"
TINY_SPACE = REPO / "tests" / "fixtures" / "tiny_space.yaml"


def load_benchmark(name: str) -> ModuleType:
    """The script ``benchmarks/NAME.py`` as a module (the scripts are not part of the package).

    Its folder goes on ``sys.path`` as when the script is run, for the helpers beside it.
    """
    if str(REPO / "benchmarks") not in sys.path:
        sys.path.append(str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def one_torch_thread() -> Iterator[None]:
    """Torch on one thread while a test package or module runs (use: ``pytest.fixture(...)(one_torch_thread)``).

    Tracing, onnxruntime and training on small graphs are several times faster single-threaded on a busy machine.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_space(tmp_path: Path, source: Path, mutate: Callable[[dict[str, Any]], object]) -> Path:
    """A copy of the space file ``source`` changed by ``mutate`` (which edits the parsed YAML in place)."""
    import yaml

    data = yaml.safe_load(source.read_text())
    mutate(data)
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def spy_on_start(monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> list[dict[str, Any]]:
    """The weights every ``module.train_model(model, ...)`` call starts from (copies), in call order."""
    started: list[dict[str, Any]] = []
    real = module.train_model

    def spy(model: Any, *args: Any, **kwargs: Any) -> Any:
        started.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return real(model, *args, **kwargs)

    monkeypatch.setattr(module, "train_model", spy)
    return started


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def cifar10_root() -> Path:
    if not (CIFAR10 / "train").is_dir():
        pytest.fail(f"the shared CIFAR-10 folder is missing: expected {CIFAR10} (../shared beside the repo)")
    return CIFAR10


#: Fast timing settings for tables built by tests (figures are not the point there).
FAST_TIMING = {"warmup": 2, "min_repeats": 5, "max_repeats": 20, "min_seconds": 0.0}


@pytest.fixture(scope="session")
def tiny_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A latency table for ``tests/fixtures/tiny_space.yaml`` measured here, once per session.

    Tests that change a table copy this file first; it is shared by the whole session.
    """
    from nas.latency import MeasureSettings, build_table, get_backend
    from nas.space import load_space

    folder = tmp_path_factory.mktemp("tiny_table")
    path = folder / "tiny.json"
    # The space beside its table, where a search finds it from the table's metadata.space.file alone.
    space = folder / TINY_SPACE.name
    shutil.copyfile(TINY_SPACE, space)
    backend = get_backend("ort-cpu", threads=1, settings=MeasureSettings(**FAST_TIMING), pin=False)
    build_table(load_space(space), backend, path, calibration=6, progress=False)
    return path


class CtrlCWhileFreed:
    """Presses Ctrl-C while the garbage collector frees it: CPython cannot raise from there."""

    def __del__(self) -> None:
        signal.raise_signal(signal.SIGINT)


@pytest.fixture
def sigint_raises() -> Iterator[None]:
    """Python's own SIGINT handler for the test, also when the suite runs with SIGINT ignored (as a
    background job of a script does), where ``nas`` rightly leaves it ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def swallowed(monkeypatch: pytest.MonkeyPatch, sigint_raises: None) -> list[type[BaseException]]:
    """The exceptions CPython could not raise ("Exception ignored in ..."), recorded instead of printed."""
    seen: list[type[BaseException]] = []
    hook: Callable[[Any], None] = lambda unraisable: seen.append(unraisable.exc_type)
    monkeypatch.setattr(sys, "unraisablehook", hook)
    return seen
