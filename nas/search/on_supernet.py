"""``nas search --supernet DIR``: every trial scored by a trained weight-sharing supernet, nothing trained.

* The space is the supernet's: a ``--space`` file or a latency table of another space is refused
  before any data is loaded (one line each).
* The data is the supernet's own, split exactly as for its training (``supernet.json``: the
  ``--data`` it was trained with, validation fraction, seed and subset), so the validation images
  scored were never training images. ``--data`` may name the same data elsewhere; other data is
  refused (:func:`nas.supernet.store.supernet_splits`).
* A trial's score: the sub-network's BatchNorm statistics re-estimated on ``--calibration-images``
  training images, then its accuracy on a fixed class-stratified sample of ``--val-images`` validation
  images (default :data:`~nas.search.scoring.SUPERNET_VAL_IMAGES` when the split is larger; 0: the whole
  split); see
  :class:`nas.supernet.SupernetEvaluator`. Confirming the best candidates re-scores them with other
  calibration samples (its ``reseeded``); with a sample of ``--val-images``, on the whole split and
  with their own calibration sample too, and those scores alone choose the winner (its ``rescores``).
* Defaults: the evolution sampler and :data:`SUPERNET_TRIALS` trials (a score takes seconds:
  about 0.6 / 1.5 / 6 s at 150 / 1,000 / 5,000 validation images, 32x32, 2 CPU cores on the Intel Xeon VM;
  1.14 s at 1,000 on the AMD EPYC VM with BatchNorm folded, 0.71 s with --cpu-bf16; a kept one, nothing).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from nas.errors import DataError, SupernetError
from nas.latency import LatencyTable
from nas.latency.predict import check_table_for_space
from nas.search.scoring import SUPERNET_SAMPLER, SUPERNET_TRIALS, SUPERNET_VAL_IMAGES, Scoring
from nas.space import SearchSpace, load_space
from nas.supernet import (LoadedSupernet, SupernetEvaluator, SupernetScoring, check_same_space, check_scoring_device,
                          load_supernet)
from nas.supernet.store import INFO_NAME, check_table_space, supernet_splits

if TYPE_CHECKING:
    from nas.search.job import SearchJob

__all__ = ["SUPERNET_TRIALS", "SUPERNET_SAMPLER", "SUPERNET_VAL_IMAGES", "load_search_supernet", "supernet_space", "supernet_scoring"]


def load_search_supernet(job: SearchJob) -> LoadedSupernet:
    """The supernet of ``job`` (``--supernet``), after refusing options a supernet search cannot honour."""
    assert job.supernet is not None
    if job.accuracy_table is not None:
        raise SupernetError("--supernet and --accuracy-table: both score the trials; choose one")
    if job.adapt is not None:
        raise SupernetError("--adapt fine-tunes the winner with proxy training, which a --supernet search does "
                            "not do; drop --adapt and run 'nas adapt' on RUN_DIR/best_arch.json")
    loaded = load_supernet(job.supernet)
    if job.space is not None:
        check_same_space(loaded, load_space(job.space), what=f"--space {job.space}")
    return loaded


def supernet_space(table: LatencyTable, loaded: LoadedSupernet, target: str) -> SearchSpace:
    """The supernet's space, once the table ``target`` is known to be built for it."""
    check_table_space(table, loaded, target)
    check_table_for_space(table, loaded.space)
    return loaded.space


def _splits(job: SearchJob, loaded: LoadedSupernet) -> Any:
    """The supernet's data, split as for its training (:func:`nas.supernet.store.supernet_splits`)."""
    try:
        return supernet_splits(loaded, job.data)
    except DataError as exc:
        if job.data is not None:
            raise DataError(f"--data {job.data}: {exc}") from None
        raise DataError(f"{exc} (the supernet's training data, from {loaded.directory / INFO_NAME}; pass where it "
                        "is now with --data)") from None


def supernet_scoring(job: SearchJob, loaded: LoadedSupernet) -> Scoring:
    """The supernet evaluator of ``job`` and what the search's outputs say about it."""
    calibration = SupernetScoring().calibration_images if job.calibration_images is None else job.calibration_images
    if isinstance(job.val_images, int) and not isinstance(job.val_images, bool) and job.val_images < 0:
        raise SupernetError(f"--val-images: expected an integer >= 0 (0: the whole validation split), got "
                            f"{job.val_images}")
    if job.val_images == 0 and not isinstance(job.val_images, bool):
        val_images = None  # --val-images 0: the whole split
    else:  # refuses bad values before the data is loaded
        val_images = SupernetScoring(val_images=job.val_images).val_images
    scoring = SupernetScoring(calibration_images=calibration, val_images=val_images, seed=job.seed,
                              cpu_bf16=False if job.cpu_bf16 is None else job.cpu_bf16)
    check_scoring_device(scoring, job.device)  # before the data is loaded
    splits = _splits(job, loaded)
    if job.val_images is None and len(splits.val) > SUPERNET_VAL_IMAGES:
        scoring = replace(scoring, val_images=SUPERNET_VAL_IMAGES)
    evaluator = SupernetEvaluator(loaded, splits, scoring, device=job.device, keep=True)
    info = loaded.info["data"]
    n_val = len(splits.val) if scoring.val_images is None else min(scoring.val_images, len(splits.val))
    n_cal = min(scoring.calibration_images, len(splits.train))
    supernet = f"{loaded.directory} ({loaded.epochs} epoch{'' if loaded.epochs == 1 else 's'} trained, " \
               f"space '{loaded.space.name}')"
    how = f"BatchNorm re-estimated on {n_cal} training images, accuracy on {n_val} validation images" + \
        (" (bfloat16 on the CPU)" if scoring.cpu_bf16 else "")
    split = f"val fraction {info.get('val_fraction', 0.1):g}, seed {info.get('seed', 0)}, subset " \
            f"{info.get('subset') or 'none'}"
    return Scoring(
        evaluator,
        {"supernet": loaded.fingerprint, "supernet_scoring": evaluator.fingerprint,
         "supernet_device": evaluator.device_key},
        {"supernet": supernet, "data": f"{splits.source} (split as the supernet's training: {split})",
         "accuracy": f"supernet score: {how}; no training"},
        f"accuracy: supernet {supernet}: {how}; no training; data {splits.source} ({split})",
        splits, None, splits.conversion)
