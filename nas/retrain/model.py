"""Training one architecture with one seed: train (resumable), test, save weights, export ONNX.

A model folder holds ``arch.json``, ``checkpoint.pt`` (after every epoch), ``metrics.csv``,
``metrics.json``, then ``weights.pt`` (the final state_dict), ``model.onnx`` (written only if
onnxruntime agrees with PyTorch, see :func:`nas.export.export_onnx`) and last ``trained.json``,
the record that marks the model as finished. Re-running continues from the checkpoint; a
folder with ``trained.json`` is not trained again. A folder is never reused for another
architecture, recipe, seed, dataset or initial weights (:class:`~nas.errors.CheckpointError`): ``started.json``,
written before the first epoch, records them all for the resume check (folders of earlier versions have none
and are checked by architecture and start only); a winner that starts from a supernet's weights
(:mod:`nas.retrain.init`) records them in ``init.json`` before training.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nas.arch import ArchSpec, arch_cost, arch_hash, build_model, save_arch, to_compact
from nas.atomic import atomic_write_json
from nas.errors import CheckpointError, ExportError
from nas.export import export_onnx
from nas.retrain.chance import chance_accuracy
from nas.retrain.data import CONTENTS_CHANGED, MONITOR_LABEL, FinalSplits, only_contents_differ, same_data
from nas.retrain.recipe import Recipe
from nas.train import METRICS_JSON, has_checkpoint, save_weights, train_model
from nas.train.checkpoint import latest_checkpoint
from nas.train.evaluate import score
from nas.write_errors import storing

if TYPE_CHECKING:
    from nas.retrain.init import StartWeights

__all__ = ["TRAINED_FILE", "ONNX_FILE", "STARTED_FILE", "train_and_export", "read_trained", "write_json"]

TRAINED_FILE = "trained.json"
ONNX_FILE = "model.onnx"
WEIGHTS_FILE = "weights.pt"
INIT_FILE = "init.json"
#: What an unfinished training in the folder is (:func:`_identity`), written before its first epoch.
STARTED_FILE = "started.json"
SCRATCH = "scratch"
_FORMAT = "nas.retrain.trained/1"
_IDENTITY = ("arch_hash", "recipe", "seed", "data")


def write_json(path: Path, record: dict[str, Any]) -> None:
    """Atomic JSON write (temporary file in the same folder, then rename); a full disk is one line."""
    with storing(path):
        atomic_write_json(path, record)


def read_trained(folder: Path) -> dict[str, Any] | None:
    path = folder / TRAINED_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # a torn or foreign file: the model is finished again from its checkpoint
    return record if isinstance(record, dict) and record.get("format") == _FORMAT else None


def _identity(arch: ArchSpec, recipe: Recipe, seed: int, splits: FinalSplits,
              init: StartWeights | None = None) -> dict[str, Any]:
    return {"arch_hash": arch_hash(arch), "recipe": recipe.to_dict(), "seed": seed, "data": splits.identity(),
            "init": SCRATCH if init is None else init.identity()}


def _check_init(folder: Path, init: Any) -> None:
    """An unfinished training in ``folder`` must have started from the same weights (``init.json``, or random
    when there is none) as this command's."""
    if not has_checkpoint(folder):
        return
    try:
        saved = json.loads((folder / INIT_FILE).read_text()).get("init") if (folder / INIT_FILE).is_file() else SCRATCH
    except (OSError, json.JSONDecodeError, AttributeError):
        saved = None
    if saved != init:
        raise CheckpointError(f"{folder}: holds an unfinished training that started from {saved!r}, this command "
                              f"starts from {init!r}; repeat the original --init/--supernet, or delete {folder} "
                              f"to train it from the new start")


def _check_started(folder: Path, identity: dict[str, Any]) -> None:
    """An unfinished training in ``folder`` (a checkpoint) must be of ``identity``, as its ``started.json`` says."""
    if not has_checkpoint(folder):
        return
    try:
        saved = json.loads((folder / STARTED_FILE).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return  # a folder of an earlier version (or a damaged file): checked by architecture and start only
    if not isinstance(saved, dict):
        return
    for key in (*_IDENTITY, "init"):
        if not _same(key, saved.get(key), identity[key]):
            raise CheckpointError(
                f"{folder / STARTED_FILE}: this folder holds an unfinished training with {key} = {saved.get(key)!r}, "
                f"this command has {identity[key]!r}; resuming would mix two trainings: "
                f"{_fix(key, saved.get(key), identity[key], 'repeat the original options')}, "
                f"or delete {folder} to train it with the new settings")


def _check_folder(folder: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The finished record when ``folder`` already holds this training; error if it holds another."""
    record = read_trained(folder)
    if record is None:
        arch_file = folder / "arch.json"
        if arch_file.is_file():
            saved = json.loads(arch_file.read_text())
            if arch_hash(ArchSpec.from_dict(saved)) != identity["arch_hash"]:
                raise CheckpointError(f"{folder}: holds the training of another architecture; delete the folder "
                                      f"to train this one there")
        return None
    for key in (*_IDENTITY, "init"):
        stored = record.get(key, SCRATCH if key == "init" else None)
        if not _same(key, stored, identity[key]):
            fix = _fix(key, stored, identity[key], "")
            fix = f"{fix}, or " if fix else ""
            raise CheckpointError(
                f"{folder / TRAINED_FILE}: this folder holds a training with {key} = {record.get(key)!r}, this command "
                f"has {identity[key]!r}; {fix}delete {folder} to retrain it with the new settings")
    return record


def _same(key: str, stored: Any, current: Any) -> bool:
    """A stored identity field against the current one (data recorded before image contents were keyed: without)."""
    return same_data(stored, current) if key == "data" else bool(stored == current)


def _fix(key: str, stored: Any, current: Any, otherwise: str) -> str:
    return CONTENTS_CHANGED if key == "data" and only_contents_differ(stored, current) else otherwise


def _device_of(folder: Path) -> str | None:
    try:
        return json.loads((folder / METRICS_JSON).read_text()).get("device")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def _test(model: torch.nn.Module, splits: FinalSplits, recipe: Recipe, device: str,
          batch_size: int) -> dict[str, Any]:
    """The test figures, after re-estimating the BatchNorm statistics (recipe module doc); changes the model's
    BatchNorm buffers, so the weights saved and exported afterwards are the ones tested."""
    images = min(recipe.bn_recalibration, len(splits.train))
    result = score(model, splits.test, mean=splits.mean, std=splits.std, device=device, batch_size=batch_size,
                   recalibrate_on=splits.train, recalibrate_images=images)
    return {"test_acc": result.acc, "test_loss": result.loss, "bn_recalibration": images,
            "classes": splits.num_classes, "chance_acc": chance_accuracy(splits.test.labels, splits.num_classes),
            "top_class": splits.classes[result.top_class], "top_class_share": result.top_class_share}


def train_and_export(arch: ArchSpec, splits: FinalSplits, recipe: Recipe, *, seed: int, folder: Path,
                     device: str = "auto", progress: bool = True, log: Callable[[str], None] = print,
                     init: StartWeights | None = None) -> dict[str, Any]:
    """Train ``arch`` (or resume, or reuse a finished folder) and return its ``trained.json`` record; ``init``:
    start from a supernet's or a file's weights instead of random ones (:mod:`nas.retrain.init`)."""
    identity = _identity(arch, recipe, seed, splits, init)
    done = _check_folder(folder, identity)
    if done is not None:
        return done
    _check_started(folder, identity)
    _check_init(folder, identity["init"])
    with storing(folder):  # a reference cache that cannot be written (read-only, a full disk): one line
        folder.mkdir(parents=True, exist_ok=True)
    save_arch(arch, folder / "arch.json")
    if not has_checkpoint(folder):
        write_json(folder / STARTED_FILE, identity)
    config = recipe.train_config(seed=seed, device=device)
    torch.manual_seed(seed)
    model = build_model(arch)
    init_acc = None
    if init is not None and latest_checkpoint(folder, epochs=config.epochs) is None:  # a resumed training has its weights
        write_json(folder / INIT_FILE, {"init": identity["init"]})
        init_acc = init.apply(model, arch, splits, device=device)
        log(f"starting from {init.describe()}: {MONITOR_LABEL} acc {init_acc:.4f} before training")
    result = train_model(model, splits, config, out_dir=folder, resume=True, progress=progress,
                         val_label=MONITOR_LABEL)
    cost = arch_cost(arch)
    record: dict[str, Any] = {
        "format": _FORMAT, **identity, "recipe_tag": recipe.tag, "compact": to_compact(arch),
        "status": result.status, "message": result.message, "epochs": recipe.epochs, "epochs_run": result.epochs_run,
        "train_images": len(splits.train), "test_images": len(splits.test), "params": cost.params,
        "macs": cost.macs, "wall_s": round(result.wall_seconds, 3), "device": _device_of(folder),
        "monitor_acc": result.final_val_acc, "test_acc": None, "test_loss": None, "bn_recalibration": None,
        "classes": splits.num_classes, "chance_acc": None, "top_class": None, "top_class_share": None, "onnx": None,
        "parity_max_abs_diff": None, "parity_ok": False, "export_error": None, "init_monitor_acc": init_acc,
    }
    if result.status == "completed":
        record.update(_test(model, splits, recipe, config.device, config.eval_batch_size))
        save_weights(model, folder / WEIGHTS_FILE)
        try:
            report = export_onnx(model, folder / ONNX_FILE, input_shape=(1, arch.in_ch, arch.input_size,
                                                                        arch.input_size))
            record.update(onnx=ONNX_FILE, parity_max_abs_diff=report.max_abs_diff, parity_ok=True)
        except ExportError as exc:
            record.update(export_error=str(exc))
            log(f"warning: {folder}: ONNX export failed: {exc}")
    else:
        log(f"warning: {folder}: training {result.status}: {result.message}")
    write_json(folder / TRAINED_FILE, record)
    return record
