"""MobileNetV2 width-multiplier baselines, evaluated with the same proxy as the trials.

Accuracies are cached in ``RUN_DIR/baselines.json`` keyed by the evaluator's fingerprint, so a
resumed or repeated run does not retrain them; latencies are always the current table's (another study in
the run directory may search another table).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nas.arch import arch_hash, reference_arch
from nas.atomic import atomic_write_json
from nas.errors import SearchError
from nas.latency import LatencyEstimator
from nas.search.evaluator import AccuracyEvaluator
from nas.space import SearchSpace
from nas.write_errors import storing

__all__ = ["BASELINE_ALPHAS", "evaluate_baselines"]

BASELINE_ALPHAS = (0.35, 0.5, 0.75, 1.0)


def evaluate_baselines(space: SearchSpace, estimator: LatencyEstimator, evaluator: AccuracyEvaluator, run_dir: Path,
                       *, alphas: tuple[float, ...] = BASELINE_ALPHAS,
                       log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    ref = reference_arch("mobilenetv2-cifar")
    if (ref.input_size, ref.in_ch, ref.num_classes) != (space.input_size, space.in_ch, space.num_classes):
        log(f"baselines skipped: mobilenetv2-cifar is for {ref.input_size}x{ref.input_size} inputs and "
            f"{ref.num_classes} classes, the space for {space.input_size}x{space.input_size} and {space.num_classes}")
        return []
    path = run_dir / "baselines.json"
    cache = _read(path)
    out = []
    for alpha in alphas:
        name = f"mobilenetv2-cifar@{alpha:g}"
        arch = reference_arch(name)
        key = f"{evaluator.fingerprint}:{arch_hash(arch)}"
        if key not in cache:
            log(f"baseline {name}: proxy training ...")
            ev = evaluator.evaluate(arch)
            cache[key] = {"name": name, "alpha": alpha, "val_acc": ev.accuracy,
                          "acc_per_epoch": list(ev.acc_per_epoch), "seconds": ev.seconds}
            with storing(path):
                atomic_write_json(path, cache)
        out.append({**cache[key], "latency_ms": estimator.latency_ms(arch)})
    return out


def _read(path: Path) -> dict[str, Any]:
    try:
        cache = json.loads(path.read_bytes()) if path.exists() else {}
    except (OSError, ValueError, RecursionError) as exc:
        raise SearchError(f"{path}: not a readable baselines file ({type(exc).__name__}); delete it (its width "
                          "baselines are trained again) or choose another --out") from None
    if not isinstance(cache, dict) or not all(isinstance(v, dict) and "val_acc" in v for v in cache.values()):
        raise SearchError(f"{path}: not a baselines file (expected an object of results with 'val_acc'); delete "
                          "it (its width baselines are trained again) or choose another --out")
    return cache
