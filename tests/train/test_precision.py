"""Precision selection, and the CUDA code paths (autocast, GradScaler, channels-last) exercised on the CPU.

The CI machine has no GPU, so the mixed-precision branches of the loop are run by substituting
the precision the loop chooses: CPU autocast supports both bfloat16 and float16 (with a CPU
GradScaler), which takes the loop through the same statements a CUDA run takes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import nas.train.loop as loop
from nas.train import TrainConfig, train_model
from nas.train.device import Precision, choose_precision
from nas.train.memory import release_freed_memory
from tests.train.fakes import FakeBatches, Splits, make_model

CONFIG = TrainConfig(epochs=2, batch_size=32, lr=0.2, device="cpu")


def test_cpu_runs_in_plain_float32_channels_last_as_asked() -> None:
    p = choose_precision(torch.device("cpu"), amp=True, channels_last=True)
    assert p.dtype is None and p.channels_last and p.make_scaler() is None
    assert not choose_precision(torch.device("cpu"), amp=True, channels_last=False).channels_last


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_uses_mixed_precision_and_channels_last() -> None:
    p = choose_precision(torch.device("cuda"), amp=True, channels_last=True)
    assert p.dtype in (torch.bfloat16, torch.float16) and p.channels_last
    assert (p.make_scaler() is not None) == (p.dtype == torch.float16)
    assert choose_precision(torch.device("cuda"), amp=False, channels_last=False).dtype is None


def _force(monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype, channels_last: bool) -> None:
    def forced(device: torch.device, **_: object) -> Precision:
        return Precision(device, dtype, channels_last)

    monkeypatch.setattr(loop, "choose_precision", forced)


def test_bfloat16_autocast_and_channels_last_path(splits: Splits, monkeypatch: pytest.MonkeyPatch) -> None:
    _force(monkeypatch, torch.bfloat16, True)
    model = make_model()
    result = train_model(model, splits, TrainConfig(epochs=1, batch_size=32, lr=0.2, device="cpu"),
                         progress=False, batches_factory=FakeBatches)
    assert result.status == "completed" and result.final_val_acc >= 0.6
    assert model.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert model.features[0].weight.dtype == torch.float32  # autocast: master weights stay float32


def test_float16_gradscaler_is_checkpointed_and_resumed(splits: Splits, monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    _force(monkeypatch, torch.float16, False)
    reference = make_model()
    train_model(reference, splits, CONFIG, progress=False, batches_factory=FakeBatches)
    train_model(make_model(), splits, CONFIG, out_dir=tmp_path, progress=False, batches_factory=FakeBatches,
                on_epoch_end=lambda m: True)
    scaler = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["scaler"]
    assert scaler is not None and scaler["scale"] > 0 and "_growth_tracker" in scaler
    resumed = make_model()
    result = train_model(resumed, splits, CONFIG, out_dir=tmp_path, progress=False, batches_factory=FakeBatches)
    assert result.status == "completed" and result.epochs_run == 2
    assert all(torch.equal(a, b) for a, b in zip(reference.state_dict().values(), resumed.state_dict().values()))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_memory_goes_back_to_the_system() -> None:
    """Small tensors freed behind one still alive stay in glibc's heap until it is trimmed."""
    def rss_mb() -> float:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024

    chunks = [torch.ones(16 * 1024) for _ in range(4096)]  # 64 KiB each (below the mmap threshold): 256 MiB
    keep = torch.ones(16 * 1024)  # allocated last: it pins the top of the heap
    before = rss_mb()
    del chunks
    assert release_freed_memory()
    assert before - rss_mb() > 128  # most of the 256 MiB went back
    assert keep.sum() == 16 * 1024


@pytest.mark.parametrize("flags, native", [("fpu sse avx2 avx512f", False), ("fpu avx512f avx512_bf16 avx512_vnni", True),
                                           ("fpu amx_bf16 amx_tile amx_int8", True), ("avx512_bf16x", False)])
def test_native_bfloat16_is_read_from_the_cpu_flags(tmp_path: Path, flags: str, native: bool) -> None:
    from nas.train.device import cpu_has_native_bf16

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    assert cpu_has_native_bf16(str(cpuinfo)) is native
    (tmp_path / "empty").write_text("processor\t: 0\n")
    assert cpu_has_native_bf16(str(tmp_path / "empty")) is False  # no flags line: not claimed


@pytest.mark.parametrize("native", [False, True])
def test_without_cpuinfo_pytorch_is_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    from nas.train.device import cpu_has_native_bf16

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    assert cpu_has_native_bf16(str(tmp_path / "no-such-file")) is native
