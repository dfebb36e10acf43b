"""The one training loop (proxy training, NetAdapt fine-tuning, full retraining), evaluation,
checkpoints and weights files. Knows nothing about the search: it reports epochs to a callback.
"""

from __future__ import annotations

from nas.train.checkpoint import CHECKPOINT_NAME, MID_EPOCH_NAME, MUST_MATCH, has_checkpoint
from nas.train.config import STATUSES, EpochMetrics, TrainConfig, TrainResult
from nas.train.device import resolve_device
from nas.train.evaluate import evaluate
from nas.train.loop import EpochCallback, train_model
from nas.train.optim import param_groups
from nas.train.protocols import BatchesFactory, ImageArraysLike, SplitsLike
from nas.train.records import METRICS_CSV, METRICS_JSON
from nas.train.schedule import lr_at
from nas.train.weights import load_weights, save_weights

__all__ = [
    "TrainConfig", "EpochMetrics", "TrainResult", "STATUSES",
    "train_model", "evaluate", "resolve_device", "EpochCallback",
    "load_weights", "save_weights",
    "SplitsLike", "ImageArraysLike", "BatchesFactory",
    "lr_at", "param_groups",
    "CHECKPOINT_NAME", "MID_EPOCH_NAME", "METRICS_CSV", "METRICS_JSON", "MUST_MATCH", "has_checkpoint",
]
