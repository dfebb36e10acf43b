"""Timing backends: CPU pinning applies only while a model is timed, then the affinity is restored."""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch

from nas.errors import LatencyTableError
from nas.export import to_onnx_bytes
from nas.latency.measure import MeasureSettings, OrtBackend, pinned
from tests.conftest import DEFAULT_SPACE

needs_affinity = pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                                    reason="needs sched_setaffinity and at least 2 allowed CPUs")
SETTINGS = MeasureSettings(warmup=1, min_repeats=3, max_repeats=3, min_seconds=0)
SHAPE = (1, 3, 8, 8)


@needs_affinity
def test_pinned_restores_the_previous_affinity() -> None:
    before = os.sched_getaffinity(0)
    with pinned(1) as cpus:
        assert cpus is not None and len(cpus) == 1 and cpus <= before
        assert os.sched_getaffinity(0) == cpus
    assert os.sched_getaffinity(0) == before
    with pytest.raises(KeyboardInterrupt), pinned(1):  # restored on Ctrl-C too
        raise KeyboardInterrupt
    assert os.sched_getaffinity(0) == before
    with pinned(1, enabled=False) as cpus:
        assert cpus is None and os.sched_getaffinity(0) == before
    with pinned(len(before)) as cpus:  # as many threads as CPUs: nothing to pin
        assert cpus is None and os.sched_getaffinity(0) == before


@needs_affinity
def test_backend_pins_only_while_timing(monkeypatch: pytest.MonkeyPatch) -> None:
    before = os.sched_getaffinity(0)
    backend = OrtBackend("ort-cpu", threads=1, settings=SETTINGS)  # pin=True by default
    assert os.sched_getaffinity(0) == before  # creating a backend pins nothing

    seen: list[set[int]] = []
    make_session = backend.session

    class Spy:
        def __init__(self, sess: Any) -> None:
            self.sess = sess
            seen.append(os.sched_getaffinity(0))  # at session creation (its threads inherit this)

        def get_inputs(self) -> Any:
            return self.sess.get_inputs()

        def run(self, *args: Any) -> Any:
            seen.append(os.sched_getaffinity(0))
            return self.sess.run(*args)

    monkeypatch.setattr(backend, "session", lambda model: Spy(make_session(model)))
    timing = backend.time_onnx(to_onnx_bytes(torch.nn.ReLU(), SHAPE), SHAPE)
    assert timing.repeats == 3 and timing.median > 0
    assert len(seen) == 1 + 1 + 3 and all(len(s) == 1 and s <= before for s in seen)  # pinned throughout timing
    assert os.sched_getaffinity(0) == before  # ...and restored afterwards

    with pytest.raises(Exception):  # noqa: B017 - onnxruntime's own error for a model that is not ONNX
        backend.time_onnx(b"not an onnx model", SHAPE)
    assert os.sched_getaffinity(0) == before  # restored when timing fails


@needs_affinity
def test_no_pin_leaves_affinity_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    before = os.sched_getaffinity(0)
    backend = OrtBackend("ort-cpu", threads=1, settings=SETTINGS, pin=False)
    calls: list[Any] = []
    monkeypatch.setattr(os, "sched_setaffinity", lambda *a: calls.append(a))
    backend.time_onnx(to_onnx_bytes(torch.nn.ReLU(), SHAPE), SHAPE)
    assert calls == [] and os.sched_getaffinity(0) == before


def test_thread_clock() -> None:
    backend = OrtBackend("ort-cpu", threads=1, settings=MeasureSettings(warmup=1, min_repeats=3, max_repeats=3,
                                                                        min_seconds=0, clock="thread"), pin=False)
    timing = backend.time_onnx(to_onnx_bytes(torch.nn.ReLU(), SHAPE), SHAPE)
    assert timing.repeats == 3 and 0 < timing.median < 100
    with pytest.raises(LatencyTableError, match=r"--clock thread: .* valid only for --backend ort-cpu or litert with --threads 1"):
        OrtBackend("ort-cpu", threads=2, settings=MeasureSettings(clock="thread"))
    with pytest.raises(LatencyTableError, match=r"--clock: expected one of \['wall', 'thread'\], got 'cpu'"):
        MeasureSettings(clock="cpu")


@pytest.mark.skipif("CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers(),
                    reason="this onnxruntime has the CUDA provider: ort-cuda is usable here")
def test_cuda_backend_without_the_cuda_provider_is_refused_clearly(tmp_path: Any,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(LatencyTableError, match=r"backend 'ort-cuda' needs onnxruntime's CUDAExecutionProvider, "
                                                r"but this onnxruntime offers \[.*'CPUExecutionProvider'.*\]; install "
                                                r"onnxruntime-gpu on a CUDA machine, or use --backend ort-cpu"):
        OrtBackend("ort-cuda")
    from nas.cli import main

    out = tmp_path / "cuda.json"
    assert main(["lut", "build", "--space", str(DEFAULT_SPACE), "--backend", "ort-cuda",
                 "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "CUDAExecutionProvider" in err and "Traceback" not in err and not out.exists()


def test_litert_without_its_extra_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Every LiteRT entry point says how to install the [litert] extra, in one line, before doing any work."""
    import sys

    from nas.cli import main

    for name in ("litert_torch", "ai_edge_litert", "ai_edge_litert.interpreter"):
        monkeypatch.setitem(sys.modules, name, None)  # an import of it raises ImportError
    micro = str(DEFAULT_SPACE.parents[1] / "tests" / "latency" / "micro_space.yaml")
    commands = [["lut", "build", "--space", micro, "--backend", "litert", "-o", str(tmp_path / "t.json")],
                ["lut", "bundle", "--space", micro, "--format", "tflite", "-o", str(tmp_path / "b.zip")],
                ["export", "--arch", "mobilenetv2-cifar@0.35", "--format", "tflite", "-o", str(tmp_path / "m.tflite")]]
    for command in commands:
        capsys.readouterr()
        assert main(command) == 2, command
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert "needs the optional packages litert-torch and ai-edge-litert" in lines[0]
        assert 'pip install -e ".[litert]"' in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written
