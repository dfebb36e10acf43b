"""Deterministic stratified index selection: hold-out splits and class-balanced subsets.

Both functions work on a label vector and return sorted int64 index arrays, so the caller
decides which arrays to slice. Classes are visited in increasing label order and each one
draws from the given ``numpy.random.Generator``, so the result is a pure function of the
labels and the generator's seed. Labels that never occur are skipped.
"""

from __future__ import annotations

import numpy as np

__all__ = ["stratified_holdout", "stratified_subset", "allocate"]


def stratified_holdout(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into ``(kept, held_out)`` with ``fraction`` of every class held out.

    Per class of ``n`` samples, ``round(fraction * n)`` (half rounds up) are held out, but
    at least one and never all: every class keeps at least one sample on each side. Classes
    with a single sample cannot be split; the caller must reject them first (ValueError here).
    """
    kept: list[np.ndarray] = []
    held: list[np.ndarray] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        n = len(members)
        if n < 2:
            raise ValueError(f"class {label} has {n} sample(s); a stratified split needs at least 2")
        k = min(max(int(np.floor(fraction * n + 0.5)), 1), n - 1)
        chosen = rng.permutation(members)
        held.append(chosen[:k])
        kept.append(chosen[k:])
    return _sorted(kept), _sorted(held)


def stratified_subset(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` indices, class proportions preserved as closely as possible (see :func:`allocate`).

    Returns every index when ``size >= len(labels)``. Needs ``size >= number of classes
    present`` so every class keeps a sample (ValueError otherwise; the caller reports it).
    """
    if size >= len(labels):
        return np.arange(len(labels), dtype=np.int64)
    present = np.unique(labels)
    members = [np.flatnonzero(labels == label) for label in present]
    counts = np.array([len(m) for m in members], dtype=np.int64)
    quota = allocate(counts, size)
    return _sorted([rng.permutation(m)[:q] for m, q in zip(members, quota)])


def allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over classes proportionally to ``counts``: at least 1 and at most ``counts[i]`` each.

    Floors of the exact quotas, raised to 1, then corrected one unit at a time: surplus is
    taken from the class furthest above its exact quota, shortfall given to the class
    furthest below it (largest-remainder method). Ties go to the lower label.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if not len(counts) <= total <= int(counts.sum()):
        raise ValueError(f"cannot allocate {total} over {len(counts)} classes holding {int(counts.sum())} samples")
    exact = counts * (total / counts.sum())
    alloc = np.minimum(np.maximum(np.floor(exact).astype(np.int64), 1), counts)
    while alloc.sum() > total:
        excess = np.where(alloc > 1, alloc - exact, -np.inf)
        alloc[int(np.argmax(excess))] -= 1
    while alloc.sum() < total:
        deficit = np.where(alloc < counts, exact - alloc, -np.inf)
        alloc[int(np.argmax(deficit))] += 1
    return alloc


def _sorted(parts: list[np.ndarray]) -> np.ndarray:
    if not parts:
        return np.empty(0, dtype=np.int64)
    return np.sort(np.concatenate(parts)).astype(np.int64)
