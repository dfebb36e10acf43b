"""The one training loop: proxy training during search, NetAdapt fine-tuning, full retraining.

Training knows nothing about the search. It reports each epoch to an ``on_epoch_end``
callback, which may ask to stop (return True) or raise; exceptions propagate unchanged, which
is how a search prunes a trial. The loop catches no broad exceptions.

Reproducibility: the run seeds the global torch RNG and its own CPU generator (shuffling and
augmentation) from ``config.seed``; the learning rate is a function of the global step; and a
checkpoint after every epoch holds every one of these states. So on the same CPU, software
and thread count, the same seed gives the same weights, and an interrupted run that is resumed ends
with exactly the weights of an uninterrupted one. (On CUDA, ``cudnn.benchmark`` picks kernels per run,
whose sums need not come out in the same order: there a resumed run is the same schedule and data order,
not the same bits.) (The model's initial weights are the
caller's: seed before building the model.) With an output folder, an epoch longer than
``checkpoint_every_s`` (:data:`CHECKPOINT_EVERY_S` by default) also saves its progress inside it (:data:`~nas.train.checkpoint.MID_EPOCH_NAME`) with the generator's
state at the epoch's start; a resume draws the epoch's batches again up to where it stopped (cheap
next to training them), so it too continues exactly, and a kill loses minutes, not an epoch.

Divergence: a non-finite training or validation loss ends the run with status ``diverged``
and a message naming the epoch and step, instead of an exception; the history so far is
kept. The check reads the loss back from the device, so on CUDA it runs every
:data:`CUDA_SYNC_EVERY` steps (a per-step read would stall the GPU pipeline); the message
then gives the step range. On the CPU it runs before every update, so the weights stay finite.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer
from tqdm.auto import tqdm

from nas.errors import CheckpointError, DataError
from nas.interrupt import check_interrupt
from nas.train.checkpoint import (CHECKPOINT_NAME, MID_EPOCH_NAME, EpochProgress, RunState, check_config,
                                  latest_checkpoint, restore_checkpoint, save_checkpoint)
from nas.train.config import EpochMetrics, TrainConfig, TrainResult, epochs_text
from nas.train.device import Precision, choose_precision, resolve_device
from nas.train.memory import keep_large_blocks_in_heap, memory_is_short, release_freed_memory
from nas.train.evaluate import eval_batches, evaluate_batches, recalibrate_batchnorm
from nas.train.optim import build_optimizer
from nas.train.protocols import BatchesFactory, SplitsLike, default_batches_factory
from nas.train.records import METRICS_JSON, append_metrics_csv, reset_metrics_csv, write_metrics_json
from nas.train.schedule import StepPlan, lr_at, plan_steps

__all__ = ["train_model", "EpochCallback", "LossFn", "CUDA_SYNC_EVERY", "CHECKPOINT_EVERY_S"]

EpochCallback = Callable[[EpochMetrics], bool | None]
#: ``(model, images, labels, global_step) -> iterator of (logits, loss)``: one training step's losses, best written
#: as a generator. The loop runs each item's forward pass inside autocast and backpropagates its loss as soon as
#: it is yielded, before the next one is computed, so one forward graph is held at a time; the step's loss is
#: their sum, and the first item's logits give the training accuracy (progress bar and ``metrics.csv``). The
#: default yields cross-entropy on ``model(images)``; a supernet's sandwich rule (:mod:`nas.supernet.train`)
#: yields one loss per sub-network (2 + N graphs at once would take 2 + N times the memory).
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, int], Iterator[tuple[torch.Tensor, torch.Tensor]]]

#: On CUDA, the loss is read back (divergence check, progress bar) every this many steps.
CUDA_SYNC_EVERY = 25
#: On the CPU, after a step, freed heap memory goes back to the system when memory is short
#: (:func:`~nas.train.memory.memory_is_short`), checked when this many seconds passed since the last check
#: (after every step of a long step; about 1 ms each, so not after every one of many tiny steps).
TRIM_EVERY_S = 1.0
#: With an output folder, an epoch saves its progress (:data:`~nas.train.checkpoint.MID_EPOCH_NAME`) when this many
#: seconds of it passed since the last save, so a kill loses at most about this much training.
CHECKPOINT_EVERY_S = 600.0

Batch = tuple[torch.Tensor, torch.Tensor]
#: ``(progress, global_step, generator state at the epoch's start)``: saves a mid-epoch checkpoint.
SaveProgress = Callable[[EpochProgress, int, torch.Tensor], None]


@dataclass(frozen=True)
class _EpochOutcome:
    loss: float
    acc: float
    lr: float
    images: int
    seconds: float
    global_step: int
    diverged: str | None  # the message, when a non-finite loss ended the epoch


@dataclass(frozen=True)
class _Run:
    """Everything one call of :func:`train_model` works with (internal)."""

    model: nn.Module
    splits: SplitsLike
    config: TrainConfig
    precision: Precision
    factory: BatchesFactory
    optimizer: Optimizer
    scaler: torch.amp.GradScaler | None
    generator: torch.Generator
    plan: StepPlan
    criterion: nn.Module
    progress: bool
    loss_fn: LossFn | None = None
    checkpoint_every_s: float = CHECKPOINT_EVERY_S


def _check_splits(splits: SplitsLike) -> None:
    for name in ("train", "val"):
        if len(getattr(splits, name)) == 0:
            raise DataError(f"the {name} split is empty: training needs at least one {name} image; "
                            f"check the dataset and its split settings")


def _train_passes(run: _Run) -> Iterator[Batch]:
    """Training batches, starting a fresh shuffled pass whenever one ends (see schedule.py)."""
    while True:
        empty = True
        for batch in run.factory(run.splits.train, mean=run.splits.mean, std=run.splits.std,
                                 batch_size=run.config.batch_size, device=run.precision.device,
                                 augment=run.config.augment, flip=run.config.flip, shuffle=True,
                                 drop_last=run.plan.drop_last, channels_last=run.precision.channels_last,
                                 generator=run.generator):
            empty = False
            yield batch
        if empty:
            raise DataError(f"the batch iterator yielded no batches for a training split of {len(run.splits.train)} "
                            f"images (batch size {run.config.batch_size})")


def _cross_entropy(run: _Run) -> LossFn:
    def loss_fn(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, step: int) -> Iterator[Batch]:
        logits = model(images)
        yield logits, run.criterion(logits.float(), labels)
    return loss_fn


def _forward_backward(run: _Run, images: torch.Tensor, labels: torch.Tensor, step: int) -> Batch:
    """Backpropagate each of the step's losses (:data:`LossFn`) as it comes; the first logits and the summed loss."""
    loss_fn = run.loss_fn if run.loss_fn is not None else _cross_entropy(run)
    with run.precision.autocast():  # a hook that returns a list computes it here
        result = loss_fn(run.model, images, labels, step)
    if isinstance(result, tuple):
        raise TypeError("a training step's loss function must yield (logits, loss) pairs (see nas.train.loop.LossFn), "
                        "not return one (logits, loss) tuple")
    parts = iter(result)
    first: torch.Tensor | None = None
    total: torch.Tensor | None = None
    while True:
        with run.precision.autocast():  # the forward pass only: backward runs outside autocast
            part = next(parts, None)
        if part is None:
            break
        logits, loss = part
        (run.scaler.scale(loss) if run.scaler is not None else loss).backward()
        first = logits.detach() if first is None else first
        total = loss.detach() if total is None else total + loss.detach()
    if first is None or total is None:
        raise TypeError("a training step's loss function yielded no loss")
    return first, total


def _finite(model: nn.Module, loss_sum: torch.Tensor) -> bool:
    """Whether the epoch's losses and the weights are finite (a checkpoint never holds anything else)."""
    return math.isfinite(loss_sum.item()) and all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _skip_done_steps(run: _Run, done: EpochProgress | None) -> tuple[Iterator[Batch], int]:
    """The epoch's batches after the ``done.steps`` already trained, drawn again so the generator is where it was."""
    batches = _train_passes(run)
    if done is None:
        return batches, 0
    for _ in range(done.steps):
        next(batches)
    return batches, done.steps


def _train_epoch(run: _Run, epoch: int, global_step: int, done: EpochProgress | None,
                 save: SaveProgress | None) -> _EpochOutcome:
    """One epoch, or the rest of one whose first steps ``done`` describes; ``save`` keeps progress inside it."""
    config, plan, device = run.config, run.plan, run.precision.device
    sync_every = CUDA_SYNC_EVERY if device.type == "cuda" else 1
    model, optimizer, scaler = run.model, run.optimizer, run.scaler
    model.train()
    epoch_generator = run.generator.get_state()  # a mid-epoch checkpoint saves it; its resume replays the draws
    batches, first = _skip_done_steps(run, done)
    loss_sum = torch.full((), done.loss_sum if done else 0.0, dtype=torch.float64, device=device)
    correct = torch.full((), done.correct if done else 0, dtype=torch.int64, device=device)
    seen, lr, checked_step, memory_checked = (done.seen if done else 0), 0.0, global_step, 0.0
    start = time.perf_counter() - (done.seconds if done else 0.0)
    saved = time.perf_counter()
    with tqdm(total=plan.steps_per_epoch, initial=first, desc=f"epoch {epoch}/{config.epochs}", unit="step",
              disable=not run.progress, dynamic_ncols=True) as bar:
        for i, (images, labels) in zip(range(first, plan.steps_per_epoch), batches):
            check_interrupt()  # a Ctrl-C swallowed by a finalizer stops the run here
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            lr = lr_at(global_step, peak=config.lr, warmup=plan.warmup, total=plan.total)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            logits, loss = _forward_backward(run, images, labels, global_step)
            loss_sum += loss.detach().double() * labels.numel()
            correct += (logits.detach().argmax(dim=1) == labels).sum()
            seen += labels.numel()
            last = i + 1 == plan.steps_per_epoch
            if (i + 1) % sync_every == 0 or last:
                mean_loss = loss_sum.item() / seen
                if not math.isfinite(mean_loss):
                    where = (f"step {global_step + 1}" if global_step == checked_step else
                             f"steps {checked_step + 1}-{global_step + 1}")
                    return _EpochOutcome(mean_loss, 0.0, lr, seen, time.perf_counter() - start, global_step,
                                         f"training loss became {mean_loss} in epoch {epoch} at {where} "
                                         f"(global, 1-based) with lr {lr:.4g}; lower the learning rate or "
                                         f"lengthen the warm-up")
                checked_step = global_step + 1
                bar.set_postfix(loss=f"{mean_loss:.4f}", acc=f"{correct.item() / seen:.3f}", lr=f"{lr:.3g}",
                                refresh=False)
            if scaler is not None:  # a step with non-finite gradients is skipped by the scaler
                scaler.step(optimizer)
                scaler.update()
            else:  # on the CPU the check above ran first, so a non-finite loss never reaches the weights; on CUDA
                # without a scaler (bf16, fp32) it runs every CUDA_SYNC_EVERY steps
                optimizer.step()
            if device.type == "cpu" and time.perf_counter() - memory_checked >= TRIM_EVERY_S:
                if memory_is_short():  # glibc keeps the steps' freed activations, fragmented, growing
                    release_freed_memory()
                memory_checked = time.perf_counter()
            global_step += 1
            bar.update(1)
            if save is not None and i + 1 < plan.steps_per_epoch and \
                    time.perf_counter() - saved >= run.checkpoint_every_s and _finite(model, loss_sum):
                save(EpochProgress(epoch=epoch, steps=i + 1, loss_sum=loss_sum.item(), correct=int(correct.item()),
                                   seen=seen, seconds=time.perf_counter() - start), global_step, epoch_generator)
                saved = time.perf_counter()
    assert seen > 0
    return _EpochOutcome(loss_sum.item() / seen, correct.item() / seen, lr, seen, time.perf_counter() - start,
                         global_step, None)


def _resume(run: _Run, path: Path, checkpoint: dict[str, Any]) -> RunState:
    """Check that the checkpoint at ``path`` continues this run, then restore every state from it."""
    check_config(path, checkpoint["config"], run.config, int(checkpoint["epoch"]))
    partial, steps = checkpoint.get("partial"), run.plan.steps_per_epoch
    if isinstance(partial, Mapping) and isinstance(partial.get("steps"), int) and partial["steps"] >= steps:
        raise CheckpointError(f"{path}: saved at step {partial['steps']} of epoch {partial.get('epoch')}, but an epoch "
                              f"here has {steps} steps (other data or steps per epoch); use the original data, or "
                              f"delete {path} to resume after the last finished epoch")
    state = restore_checkpoint(path, checkpoint, model=run.model, optimizer=run.optimizer, scaler=run.scaler,
                               generator=run.generator)
    if run.progress and state.partial is not None:
        tqdm.write(f"resuming {path} at step {state.partial.steps}/{run.plan.steps_per_epoch} of epoch "
                   f"{state.partial.epoch}/{run.config.epochs}")
    elif run.progress and state.epoch < run.config.epochs:
        tqdm.write(f"resuming {path} after epoch {state.epoch}/{run.config.epochs}")
    return state


def _finish(run: _Run, out: Path | None, status: str, history: tuple[EpochMetrics, ...], message: str,
            wall_seconds: float) -> TrainResult:
    result = TrainResult.from_history(status, history, message=message, wall_seconds=wall_seconds)
    if out is not None:
        write_metrics_json(out, result, run.config, run.precision.describe())
    if run.progress:
        tqdm.write(message if message.startswith(status) else f"{status}: {message}")
    return result


def train_model(model: nn.Module, splits: SplitsLike, config: TrainConfig, *,
                out_dir: str | os.PathLike | None = None, resume: bool = True,
                on_epoch_end: EpochCallback | None = None, progress: bool = True,
                batches_factory: BatchesFactory | None = None, val_label: str = "val",
                loss_fn: LossFn | None = None, checkpoint_every_s: float = CHECKPOINT_EVERY_S) -> TrainResult:
    """Train ``model`` in place on ``splits.train``, validating on ``splits.val`` after each epoch.

    The model is moved to the run's device (and channels-last memory on CUDA) and stays there.
    With ``out_dir``: ``metrics.csv``, ``checkpoint.pt`` after every epoch (and the epoch's progress
    every ``checkpoint_every_s`` seconds inside it) and ``metrics.json`` at the end (see
    :mod:`nas.train.checkpoint`, :mod:`nas.train.records`); with ``resume`` an existing checkpoint
    there is continued, or returned as is when it already finished; without, it is started over.
    ``on_epoch_end`` runs after the epoch's checkpoint is saved; returning True stops the run
    (status ``stopped``, unless that was the last epoch anyway). ``batches_factory`` defaults to
    ``nas.data.TensorBatches``. ``val_label`` names ``splits.val`` in progress lines and messages
    (e.g. ``"monitor"`` when those images are part of the training set). ``loss_fn`` replaces the
    step's loss (:data:`LossFn`); validation still runs ``model(images)``.
    """
    call_start = time.perf_counter()
    _check_splits(splits)
    device = resolve_device(config.device)
    precision = choose_precision(device, amp=config.amp, channels_last=config.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    else:
        keep_large_blocks_in_heap()
    model.to(device, memory_format=torch.channels_last if precision.channels_last else torch.preserve_format)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    run = _Run(model=model, splits=splits, config=config, precision=precision,
               factory=batches_factory if batches_factory is not None else default_batches_factory(),
               optimizer=build_optimizer(model, config), scaler=precision.make_scaler(), generator=generator,
               plan=plan_steps(len(splits.train), batch_size=config.batch_size, epochs=config.epochs,
                               warmup_epochs=config.warmup_epochs, steps_per_epoch=config.steps_per_epoch),
               criterion=nn.CrossEntropyLoss(label_smoothing=config.label_smoothing), progress=progress,
               loss_fn=loss_fn, checkpoint_every_s=checkpoint_every_s)

    state = RunState(epoch=0, global_step=0, history=(), wall_seconds=0.0)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if not resume:  # a kill before the first epoch's end would otherwise resume the old run
            for name in (MID_EPOCH_NAME, CHECKPOINT_NAME):
                (out / name).unlink(missing_ok=True)
        latest = latest_checkpoint(out, epochs=config.epochs) if resume else None
        if progress and (out / MID_EPOCH_NAME).exists() and (latest is None or latest[0].name != MID_EPOCH_NAME):
            tqdm.write(f"not resuming {out / MID_EPOCH_NAME}: a run of another number of epochs (another learning-rate "
                       f"schedule) saved it; {'resuming after the last finished epoch' if latest else 'starting over'}")
        if latest is not None:
            state = _resume(run, *latest)
            if state.epoch >= config.epochs:
                done = TrainResult.from_history("completed", state.history, wall_seconds=state.wall_seconds,
                                                message=f"already completed {epochs_text(state.epoch)} "
                                                        f"(checkpoint {out / CHECKPOINT_NAME})")
                # a kill (or a full disk) after the last checkpoint left its metrics row or metrics.json unwritten
                reset_metrics_csv(out, state.history)
                if not (out / METRICS_JSON).exists():  # the device the run trained on, from its checkpoint
                    write_metrics_json(out, done, config, str(latest[1].get("device", precision.describe())))
                return done
        reset_metrics_csv(out, state.history)
    if progress:
        steps = run.plan.steps_per_epoch
        tqdm.write(f"training on {precision.describe()}: {epochs_text(config.epochs)} x {steps} "
                   f"step{'' if steps == 1 else 's'}")

    history, global_step = state.history, state.global_step

    def wall() -> float:
        return state.wall_seconds + time.perf_counter() - call_start

    def save_progress(progress: EpochProgress, step: int, generator_state: torch.Tensor) -> None:
        assert out is not None
        save_checkpoint(out / MID_EPOCH_NAME, model=model, optimizer=run.optimizer, scaler=run.scaler,
                        generator_state=generator_state, config=config, device=precision.describe(),
                        state=RunState(epoch=progress.epoch - 1, global_step=step, history=history,
                                       wall_seconds=wall(), partial=progress))

    for epoch in range(state.epoch + 1, config.epochs + 1):
        done = state.partial if state.partial is not None and state.partial.epoch == epoch else None
        epoch_start = time.perf_counter() - (done.seconds if done else 0.0)
        outcome = _train_epoch(run, epoch, global_step, done, save_progress if out is not None else None)
        if outcome.diverged is not None:
            return _finish(run, out, "diverged", history, outcome.diverged, wall())
        global_step = outcome.global_step
        if config.bn_recalibration:
            recalibrate_batchnorm(model, eval_batches(run.factory, splits.train, mean=splits.mean, std=splits.std,
                                                      batch_size=min(config.eval_batch_size, config.bn_recalibration),
                                                      precision=precision),
                                  precision, images=config.bn_recalibration)
        val_loss, val_acc = evaluate_batches(model, eval_batches(run.factory, splits.val, mean=splits.mean,
                                                                 std=splits.std, batch_size=config.eval_batch_size,
                                                                 precision=precision), precision)
        if not math.isfinite(val_loss):
            return _finish(run, out, "diverged", history,
                           f"{val_label} loss became {val_loss} after epoch {epoch} (training loss "
                           f"{outcome.loss:.4g}); lower the learning rate or lengthen the warm-up", wall())
        metrics = EpochMetrics(epoch=epoch, train_loss=outcome.loss, train_acc=outcome.acc, val_loss=val_loss,
                               val_acc=val_acc, lr=outcome.lr, seconds=time.perf_counter() - epoch_start,
                               images_per_second=outcome.images / max(outcome.seconds, 1e-9))
        history = (*history, metrics)
        if out is not None:
            save_checkpoint(out / CHECKPOINT_NAME, model=model, optimizer=run.optimizer, scaler=run.scaler,
                            generator_state=generator.get_state(), config=config, device=precision.describe(),
                            state=RunState(epoch=epoch, global_step=global_step, history=history,
                                           wall_seconds=wall()))
            (out / MID_EPOCH_NAME).unlink(missing_ok=True)  # the epoch's checkpoint overtook it
            append_metrics_csv(out, metrics)
        if progress:
            tqdm.write(f"epoch {epoch}/{config.epochs}: train loss {metrics.train_loss:.4f} acc "
                       f"{metrics.train_acc:.4f} | {val_label} loss {val_loss:.4f} acc {val_acc:.4f} | "
                       f"{metrics.images_per_second:.0f} img/s")
        if on_epoch_end is not None and on_epoch_end(metrics) and epoch < config.epochs:
            return _finish(run, out, "stopped", history,
                           f"stopped by on_epoch_end after epoch {epoch}/{config.epochs}", wall())
    return _finish(run, out, "completed", history, f"completed {epochs_text(config.epochs)}", wall())
