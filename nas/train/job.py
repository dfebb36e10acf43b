"""``nas train`` end to end: architecture + dataset -> trained run directory with test accuracy.

:func:`run_train_job` resolves the architecture, checks that it fits the data, loads the
dataset (resized to the architecture's input size), trains with :func:`~nas.train.train_model`
and evaluates the final weights on the test split. The run directory holds:

================  =====================================================================
``arch.json``     the architecture trained (canonical JSON; ``nas export --arch`` takes it)
``run.json``      what identifies the run besides the training config: architecture hash,
                  data source (and an image folder's content key), subset, validation
                  fraction, initial weights (checked when resuming)
``checkpoint.pt`` written after every epoch (:mod:`nas.train.checkpoint`; a long epoch also
                  saves its progress to ``checkpoint-mid-epoch.pt``)
``metrics.csv``   one row per epoch (:mod:`nas.train.records`)
``metrics.json``  the summary, plus ``test_acc``/``test_loss`` (``null`` without a test
                  split or after divergence), the architecture and the data sizes
================  =====================================================================

Re-running the same job continues from the last save (an epoch, or inside one); a larger ``epochs``
extends the run. A run directory is never reused for a different architecture or dataset:
that is a :class:`~nas.errors.CheckpointError` before anything is loaded or written. For an
image folder that includes its contents: images added, removed, renamed or rewritten under the
same path since the run started (:func:`nas.data.content_key`; run directories written before
the key was recorded resume without this check).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nas.arch import ArchSpec, arch_cost, arch_hash, build_model, resolve_arch, save_arch, to_compact
from nas.atomic import atomic_write_json, ensure_dir
from nas.errors import CheckpointError, DataError, NASError, SpecError
from nas.train.checkpoint import CHECKPOINT_NAME, has_checkpoint, latest_checkpoint, sha256_file
from nas.train.config import TrainConfig, epochs_text
from nas.train.device import choose_precision, cpu_threads, resolve_device, use_cpu_threads
from nas.train.evaluate import evaluate
from nas.train.loop import train_model
from nas.train.records import METRICS_CSV, METRICS_JSON, write_metrics_json
from nas.train.weights import load_weights
from nas.write_errors import storing

__all__ = ["TrainJob", "run_train_job", "ARCH_FILE", "RUN_FILE"]

ARCH_FILE = "arch.json"
RUN_FILE = "run.json"


@dataclass(frozen=True)
class TrainJob:
    """One ``nas train`` invocation. ``arch``: anything :func:`nas.arch.resolve_arch` accepts;
    ``data``: ``"digits"``, an image-folder root or a CIFAR python batches folder."""

    arch: str
    data: str
    out: str
    epochs: int
    batch_size: int = 128
    lr: float = 0.05
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    warmup_epochs: float = 0.0
    augment: bool = True
    seed: int = 0
    subset: int | None = None
    val_fraction: float = 0.1
    device: str = "auto"
    amp: bool = True
    cache_dir: str | None = None
    flip: bool = True  # with augment: horizontal flips too (off for digits and text)
    threads: int = 0  # CPU training threads; 0: the cores left idle by other work (nas.train.device.cpu_threads)
    init: str | None = None  # initial weights: a weights file or checkpoint (or its run directory); None: random


def _config(job: TrainJob) -> TrainConfig:
    try:
        return TrainConfig(epochs=job.epochs, batch_size=job.batch_size, lr=job.lr, weight_decay=job.weight_decay,
                           label_smoothing=job.label_smoothing, warmup_epochs=job.warmup_epochs,
                           augment=job.augment, flip=job.flip, seed=job.seed, device=job.device, amp=job.amp)
    except ValueError as exc:
        raise NASError(f"training options: {exc}; fix the option(s) named above") from None


def _data_key(data: str) -> str:
    return data if data == "digits" else os.path.abspath(os.path.expanduser(data))


def _init_path(init: str) -> Path:
    path = Path(init).expanduser()
    if path.is_dir():  # a run directory of `nas train`
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"--init {init}: no such weights file; expected a file of 'nas supernet extract', "
                              f"a state_dict or a checkpoint.pt (or its run directory); check the path")
    return path


def _init_identity(init: str | None) -> dict[str, str] | None:
    """The initial weights as run.json records them: absolute path and content digest (None: random)."""
    if init is None:
        return None
    path = _init_path(init)
    return {"path": str(path.resolve()), "sha256": sha256_file(path)[:16]}


def _identity(job: TrainJob, arch: ArchSpec) -> dict[str, Any]:
    from nas.data import content_key

    return {"arch_hash": arch_hash(arch), "data": _data_key(job.data),
            "content": content_key(job.data, input_size=arch.input_size), "subset": job.subset,
            "val_fraction": job.val_fraction, "init": _init_identity(job.init)}


def _check_content(out: Path, saved: dict[str, Any], identity: dict[str, Any]) -> None:
    """The image folder holds the images the run started on (run.json of earlier versions records no key)."""
    if "content" in saved and saved["content"] != identity["content"]:
        raise CheckpointError(
            f"{out / RUN_FILE}: {out} holds a run trained on other contents of --data {identity['data']}: images "
            f"were added, removed, renamed, rewritten or touched (a new modification time) there since it started (content key "
            f"{str(saved['content'])[:12]}, now {str(identity['content'])[:12]}); resuming would mix two "
            f"trainings. Restore the original images, or choose another --out (or delete {out}) to start a new run")


def _check_run_dir(out: Path, identity: dict[str, Any]) -> None:
    """A run directory with a checkpoint must belong to the same architecture and data."""
    run_file = out / RUN_FILE
    if not has_checkpoint(out) or not run_file.is_file():
        return
    try:
        saved = json.loads(run_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{run_file}: unreadable ({exc}); delete {out} or choose another --out") from None
    names = {"arch_hash": "the architecture (hash)", "data": "--data", "subset": "--subset",
             "val_fraction": "--val-fraction", "init": "--init (initial weights)"}
    if not isinstance(saved, dict):
        raise CheckpointError(f"{run_file}: expected a JSON object; delete {out} or choose another --out")
    for key, what in names.items():
        if saved.get(key) != identity[key]:
            raise CheckpointError(
                f"{run_file}: {out} holds a run trained with {what} = {saved.get(key)!r}, this command has "
                f"{identity[key]!r}; resuming would mix two trainings. Repeat the original options, or choose "
                f"another --out (or delete {out}) to start a new run")
    _check_content(out, saved, identity)


def _check_fit(arch: ArchSpec, classes: int, data: str) -> None:
    if arch.num_classes != classes:
        raise DataError(
            f"--data {data}: has {classes} classes but the architecture classifies {arch.num_classes}; use an "
            f"architecture with {classes} classes (compact string '...-cls{classes}', or \"num_classes\": "
            f"{classes} in the arch JSON)")


def run_train_job(job: TrainJob, *, progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train ``job.arch`` on ``job.data`` into ``job.out`` (resuming), evaluate on test; return metrics.json.

    Raises :class:`~nas.errors.NASError` subclasses for every user error (unknown
    architecture, data that is missing or does not fit, a run directory of another run).
    """
    from nas.data import load_dataset

    arch = resolve_arch(job.arch)
    if arch.in_ch != 3:
        raise SpecError(f"--arch {job.arch}: takes {arch.in_ch} input channels, but datasets are loaded as "
                        f"3-channel RGB (grayscale images are replicated); use an architecture with 'in_ch': 3 "
                        f"(compact string 'in{arch.input_size}x3-...')")
    config = _config(job)
    threads = cpu_threads(job.threads)
    out = Path(job.out)
    identity = _identity(job, arch)
    _check_run_dir(out, identity)
    if job.init is not None:  # a file that does not fit the architecture is refused before the data is loaded
        load_weights(build_model(arch), _init_path(job.init))

    splits = load_dataset(job.data, input_size=arch.input_size, val_fraction=job.val_fraction, seed=job.seed,
                          subset=job.subset, cache_dir=job.cache_dir, progress=progress)
    _check_fit(arch, splits.num_classes, job.data)
    cost = arch_cost(arch)
    log(f"arch {arch_hash(arch)}: {cost.params:,} parameters, {cost.macs / 1e6:.1f} M MACs, "
        f"input {arch.input_size}x{arch.input_size}")
    test_text = f"{len(splits.test)} test" if splits.test is not None else "no test split"
    log(f"data: {splits.source}: {len(splits.train)} train / {len(splits.val)} val / {test_text} images, "
        f"{splits.num_classes} classes, resized to {arch.input_size}x{arch.input_size}")
    if splits.conversion:
        log(f"note: {splits.conversion}")
    log(f"run directory: {out}; {threads} CPU thread(s)")

    ensure_dir(out, "--out")
    save_arch(arch, out / ARCH_FILE)
    with storing(out / RUN_FILE):
        atomic_write_json(out / RUN_FILE, {**identity, "arch": job.arch, "compact": to_compact(arch)})

    use_cpu_threads(threads)
    torch.manual_seed(job.seed)  # the initial weights (the loop seeds everything after)
    model = build_model(arch)
    # a resumed run has its weights; a mid-epoch save of another --epochs is not resumed, so that run starts from them
    if job.init is not None and latest_checkpoint(out, epochs=config.epochs) is None:
        load_weights(model, _init_path(job.init))
        log(f"initial weights: {job.init}")
    result = train_model(model, splits, config, out_dir=out, progress=progress)

    test_loss = test_acc = None
    if result.status != "diverged" and result.epochs_run > 0 and splits.test is not None:
        test_loss, test_acc = evaluate(model, splits.test, mean=splits.mean, std=splits.std, device=config.device,
                                       batch_size=config.eval_batch_size, amp=config.amp)
    precision = choose_precision(resolve_device(config.device), amp=config.amp, channels_last=config.channels_last)
    extra = {"test_acc": test_acc, "test_loss": test_loss, "arch_hash": arch_hash(arch),
             "params": cost.params, "macs": cost.macs, "data": splits.source,
             "images": {"train": len(splits.train), "val": len(splits.val),
                        "test": len(splits.test) if splits.test is not None else 0}}
    path = write_metrics_json(out, result, config, precision.describe(), extra)
    record: dict[str, Any] = json.loads(path.read_text())
    if test_acc is not None:
        test_text = f"test acc {test_acc:.4f}"
    else:
        test_text = "no test split" if splits.test is None else "not evaluated on test"
    log(f"{result.status} after {epochs_text(result.epochs_run)}: final val acc {result.final_val_acc:.4f} "
        f"(best {result.best_val_acc:.4f}), {test_text}")
    log(f"results in {out}/: {CHECKPOINT_NAME}, {METRICS_CSV}, {METRICS_JSON}, {ARCH_FILE}")
    return {**record, "out": str(out)}
