"""Timing a set of models in interleaved passes (the protocol of :mod:`nas.latency.measure`).

A latency is the minimum over ``passes`` passes of each pass's median. The CPU of a shared
host runs in speed regimes that last ~0.3 s to seconds, longer than one pass over one model
(~0.05 s), so the passes over a set of models are *interleaved*: pass 1 over every model,
then pass 2 over every model, and so on. The passes of one model are then minutes apart, and
one slow stretch of the host spoils at most one of them.

Each model is exported once, before the first pass, and kept zlib-compressed in memory (the
timing models' constant weights compress ~100x: the 1,496 parts of the default space take
~5 MB instead of ~620 MB), so later passes do not pay the export again.

Resuming: ``done`` holds passes measured earlier (e.g. read back from a build's journal);
a model gets only the passes it lacks, and in round ``r`` only the models that have fewer
than ``r`` passes are timed, so a resumed run interleaves too. ``on_pass`` sees every new
pass as soon as it is measured (a build journals it there), ``on_done`` every model whose
passes are all done.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from tqdm import tqdm

from nas.latency.measure import Backend, Timing

__all__ = ["TimingJob", "time_interleaved"]


@dataclass(frozen=True)
class TimingJob:
    """One model to time: ``key`` names it, ``export`` makes its ONNX bytes (called at most once)."""

    key: str
    input_shape: tuple[int, ...]
    export: Callable[[], bytes]


def time_interleaved(backend: Backend, jobs: Sequence[TimingJob], *, passes: int | None = None,
                     done: Mapping[str, Sequence[Timing]] | None = None,
                     on_pass: Callable[[str, int, Timing], None] | None = None,
                     on_done: Callable[[str, Timing], None] | None = None,
                     progress: bool = True, desc: str = "timing") -> dict[str, list[Timing]]:
    """Time every job in ``passes`` (default ``backend.settings.passes``) interleaved passes.

    Returns every job's passes (``done``'s first, then the new ones, ``passes`` in all);
    :meth:`Timing.best_of` of them is its latency. ``on_pass(key, number, timing)`` is called
    after each new pass (``number`` counts from 1), ``on_done(key, best)`` once a job has all its
    passes, also for a job whose passes were all in ``done``.
    """
    total = backend.settings.passes if passes is None else passes
    if total < 1:
        raise ValueError(f"passes must be >= 1, got {total}")
    keys = [job.key for job in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError("time_interleaved: job keys must be unique")
    have: dict[str, list[Timing]] = {job.key: list((done or {}).get(job.key, ()))[:total] for job in jobs}
    todo = [job for job in jobs if len(have[job.key]) < total]
    for job in jobs:
        if len(have[job.key]) >= total and on_done is not None:
            on_done(job.key, Timing.best_of(have[job.key]))
    models: dict[str, bytes] = {}
    for job in tqdm(todo, desc=f"exporting ({desc})", unit="model", disable=not progress or not todo,
                    smoothing=0.05):
        models[job.key] = zlib.compress(job.export(), 1)
    bar = tqdm(total=sum(total - len(have[job.key]) for job in todo), desc=desc, unit="run", disable=not progress,
               smoothing=0.05)
    with bar:
        for round_ in range(1, total + 1):
            bar.set_description(f"{desc}, pass {round_}/{total}")
            for job in todo:
                timings = have[job.key]
                if len(timings) >= round_:
                    continue
                timing = backend.time_pass(zlib.decompress(models[job.key]), job.input_shape)
                timings.append(timing)
                if on_pass is not None:
                    on_pass(job.key, len(timings), timing)
                if len(timings) == total and on_done is not None:
                    on_done(job.key, Timing.best_of(timings))
                bar.update()
    return have
