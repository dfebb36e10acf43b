"""``nas search --adapt``: NetAdapt as the search's last phase, as MobileNetV3 was finished.

The search proposes the block structure; NetAdapt then trims the widths of the winner until
its predicted latency meets the budget. With ``--adapt`` the search also trains candidates
predicted up to 1.25 x the budget (``--skip-over``), so the soft MnasNet reward can pick an
accurate network slightly over the budget, which NetAdapt then brings onto it.

The start network is the trained trial with the highest objective (reward mode) or the
highest accuracy (pareto mode), whatever its latency, on the mean over the seeds of the
confirmation (``--confirm-top``; with ``--adapt`` its candidates come from every latency). A
trial keeps no weights, so the start network is first trained on the proxy data for ``epochs`` epochs (checkpointed in
``RUN_DIR/adapt-start/``, resumable); NetAdapt then runs in ``RUN_DIR/adapt/`` (resumable,
see :mod:`nas.adapt.loop`) with the search's table estimator and data. A start network that
already meets the budget is written out unchanged (NetAdapt's ``already_met``).

``adapt-start/start.json`` names the start trial. When a later run starts from another network
(more ``--trials`` changed the winner), the two folders of the earlier start are kept, renamed
``adapt-start.trialN/`` and ``adapt.trialN/``, and the new start begins afresh: its training must
not resume from another network's checkpoint, whose tensors may even have the same shapes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch

from nas.adapt import AdaptJob, AdaptSettings, run_adapt_job
from nas.arch import ArchSpec, arch_hash, build_model
from nas.atomic import atomic_write_text
from nas.errors import SearchError
from nas.latency import LatencyEstimator
from nas.search.confirm import choose_winner
from nas.search.evaluator import ProxySettings
from nas.search.objective import Objective
from nas.search.outputs import candidate_trials
from nas.search.record import TrialRecord

__all__ = ["AdaptPhase", "adapt_pool", "adapt_start_trial", "run_adapt_phase", "ADAPT_SKIP_OVER"]

#: ``--skip-over`` when ``--adapt`` is given and ``--skip-over`` is not.
ADAPT_SKIP_OVER = 1.25


@dataclass(frozen=True)
class AdaptPhase:
    """NetAdapt settings of ``nas search --adapt`` (``nas adapt`` has the full set)."""

    delta: float = 0.02
    steps: int = 20
    epochs: int = 4  # training of the start network, and the final fine-tuning

    def __post_init__(self) -> None:
        if not 0 < self.delta < 1:
            raise SearchError(f"--adapt-delta: expected a fraction in (0, 1) of the start latency, got {self.delta}")
        if self.steps < 1:
            raise SearchError(f"--adapt-steps: expected at least 1 fine-tuning step per proposal, got {self.steps}")
        if self.epochs < 1:
            raise SearchError(f"--adapt-epochs: expected at least 1 epoch, got {self.epochs}")


def adapt_pool(study: optuna.Study, *, confirmed: bool = True) -> list[TrialRecord]:
    """The trials NetAdapt may start from: trained (not diverged), whatever their latency."""
    return candidate_trials(study, confirmed=confirmed)


def adapt_start_trial(study: optuna.Study, objective: str | Objective, *,
                      confirmed: bool = True) -> TrialRecord | None:
    """The trained trial NetAdapt starts from (see module doc), or None when nothing was trained.

    Chosen as the search's winner is (:func:`nas.search.confirm.choose_winner`: on the mean over
    the training seeds of the confirmation, which with ``--adapt`` covers this pool), but from
    every latency; ``confirmed=False`` (``--confirm-top 0``): the best single result.
    """
    return choose_winner(adapt_pool(study, confirmed=confirmed), objective)


def _train_start(arch: ArchSpec, splits: Any, proxy: ProxySettings, epochs: int, out: Path, device: str) -> Path:
    from nas.train import CHECKPOINT_NAME, TrainConfig, train_model

    torch.manual_seed(proxy.seed)
    model = build_model(arch)
    config = TrainConfig(epochs=epochs, batch_size=proxy.batch_size, lr=proxy.lr, warmup_epochs=proxy.warmup_epochs,
                         augment=proxy.augment, seed=proxy.seed, device=device,
                         bn_recalibration=proxy.bn_recalibration)
    result = train_model(model, splits, config, out_dir=out, progress=False)
    if result.status != "completed":
        raise SearchError(f"--adapt: training the start network in {out} ended '{result.status}': {result.message}")
    return out / CHECKPOINT_NAME


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _set_aside_other_start(run_dir: Path, trial: int, digest: str, log: Callable[[str], None]) -> None:
    """Rename the folders of an earlier start network (see the module doc); record this start."""
    start_dir, adapt_dir = run_dir / "adapt-start", run_dir / "adapt"
    marker = start_dir / "start.json"
    if start_dir.exists() or adapt_dir.exists():
        earlier = _read_json(marker)
        if not earlier:  # written by a version that kept no marker: NetAdapt's state names its start
            started = _read_json(adapt_dir / "state.json").get("start_arch")
            earlier = {"hash": started} if started else {}
        if earlier.get("hash") == digest:
            if not marker.exists():
                atomic_write_text(marker, json.dumps({"trial": trial, "hash": digest}) + "\n")
            return
        tag = f"trial{earlier['trial']}" if "trial" in earlier else "earlier"
        suffix, n = tag, 1
        while (run_dir / f"adapt-start.{suffix}").exists() or (run_dir / f"adapt.{suffix}").exists():
            n += 1
            suffix = f"{tag}-{n}"
        for folder in (start_dir, adapt_dir):
            if folder.exists():
                folder.rename(run_dir / f"{folder.name}.{suffix}")
        log(f"adapt: the winner is now trial {trial}; the earlier start's folders are kept as "
            f"adapt-start.{suffix}/ and adapt.{suffix}/")
    start_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(marker, json.dumps({"trial": trial, "hash": digest}) + "\n")


def run_adapt_phase(study: optuna.Study, *, phase: AdaptPhase, objective: str | Objective, budget_ms: float,
                    splits: Any, estimator: LatencyEstimator, target: str, proxy: ProxySettings, run_dir: Path,
                    device: str, confirmed: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the start network, run NetAdapt onto ``budget_ms``, and return what it did."""
    start = adapt_start_trial(study, objective, confirmed=confirmed)
    if start is None:
        raise SearchError("--adapt: no trial was trained, so there is no network to adapt; run more --trials")
    arch = start.arch
    _set_aside_other_start(run_dir, start.number, arch_hash(arch), log)
    log(f"adapt: start from trial {start.number} ({start.latency_ms:.3f} ms predicted, proxy val acc "
        f"{start.val_acc:.4f}); training it for {phase.epochs} epochs")
    weights = _train_start(arch, splits, proxy, phase.epochs, run_dir / "adapt-start", device)
    settings = AdaptSettings(budget_ms=budget_ms, delta=phase.delta, steps=phase.steps, lr=proxy.lr / 5,
                             batch_size=proxy.batch_size, final_epochs=phase.epochs, final_lr=proxy.lr,
                             seed=proxy.seed, device=device, bn_recalibration=proxy.bn_recalibration)
    job = AdaptJob(arch=arch, weights=weights, target=target, out=run_dir / "adapt", settings=settings)
    result = run_adapt_job(job, splits=splits, estimator=estimator, progress=False, log=log)
    return {"start_trial": start.number, **result.to_dict()}
