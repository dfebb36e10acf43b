"""Reference networks retrained beside a run's winners, and their cache.

The default set is MobileNetV2 for CIFAR at width multipliers 0.35, 0.5, 0.75 and 1.0 and
the CSE paper's mix model. A reference is used only when it fits the run: same input size
and channels as the winners and as many classes as the data; otherwise it is skipped with
the reason (e.g. the 32x32 references do not fit a 16x16 test space).

References do not depend on the run, so they are trained once per recipe, data and seed
and reused by every run: in ``<cache>/<name>/<key>/seed<k>/`` where ``<key>`` digests the
architecture, the recipe and the data identity. ``<cache>`` is ``--reference-cache``, else
``$NAS_CACHE_DIR/references``, else ``~/.cache/nas/references``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from nas.arch import ArchSpec, arch_hash, reference_arch
from nas.retrain.data import FinalSplits
from nas.retrain.recipe import Recipe

__all__ = ["DEFAULT_REFERENCES", "fit_problem", "default_reference_cache", "reference_folder"]

DEFAULT_REFERENCES: tuple[str, ...] = ("mobilenetv2-cifar@0.35", "mobilenetv2-cifar@0.5", "mobilenetv2-cifar@0.75",
                                       "mobilenetv2-cifar", "cse-mix-cifar")


def fit_problem(arch: ArchSpec, *, input_size: int, in_ch: int, num_classes: int) -> str | None:
    """Why ``arch`` cannot stand beside the winners, or None when it fits."""
    problems = []
    if (arch.input_size, arch.in_ch) != (input_size, in_ch):
        problems.append(f"it takes {arch.input_size}x{arch.input_size}x{arch.in_ch} inputs, the run "
                        f"{input_size}x{input_size}x{in_ch}")
    if arch.num_classes != num_classes:
        problems.append(f"it has {arch.num_classes} classes, the data {num_classes}")
    return "; ".join(problems) or None


def default_reference_cache() -> Path:
    env = os.environ.get("NAS_CACHE_DIR")
    return (Path(env).expanduser() if env else Path.home() / ".cache" / "nas") / "references"


def reference_folder(cache: Path, name: str, recipe: Recipe, splits: FinalSplits, seed: int) -> Path:
    arch = reference_arch(name)
    key = json.dumps({"arch": arch_hash(arch), "recipe": recipe.to_dict(), "data": splits.identity()}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache / re.sub(r"[^A-Za-z0-9._-]+", "_", name) / f"{recipe.tag}-{digest}" / f"seed{seed}"
