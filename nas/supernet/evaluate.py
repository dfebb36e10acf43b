"""Scoring a sub-network with the supernet's weights: no training, seconds a candidate.

For each architecture: extract it (:meth:`~nas.supernet.Supernet.extract`), re-estimate its BatchNorm
statistics on ``calibration_images`` training images (the supernet's own statistics are shared by every
sub-network and fit none of them; OFA and BigNAS do the same), then measure accuracy on the validation
split (or a fixed class-stratified sample of ``val_images`` of it). The calibration images are a fixed sample drawn with ``seed``, the
batches run in a fixed order, so an evaluation is deterministic on one machine; results are cached by
architecture, in memory and (``keep=True``, what searches use) in the supernet directory
(:mod:`nas.supernet.score_cache`), so a search for another device, or a resumed one, scores only
architectures not scored before. :meth:`SupernetEvaluator.reseeded` draws another calibration sample
(that is what a search's confirmation of its top candidates varies). Scoring on a sample of the
validation split, the evaluator ``rescores``: a confirmation (:meth:`SupernetEvaluator.confirmer`)
scores on the whole split, with the candidate's own calibration sample and others, and those scores
replace the candidate's (:mod:`nas.search.confirm`).

Speed on the CPU (``benchmarks/results/supernet_score_precision.md``): the validation pass runs on a copy
of the sub-network with its BatchNorms folded into the convolutions (:func:`~nas.arch.fold_batchnorm`; the
same outputs up to float rounding). ``cpu_bf16`` (opt-in, ``--cpu-bf16``) runs the BatchNorm re-estimation
and the validation pass under bfloat16 autocast, on CPUs that compute in bfloat16 natively only; its scores
differ slightly from float32 ones and are kept apart from them (``cpubf16`` in the evaluator's fingerprint,
so in the kept-score file's name too). On a GPU the forward passes use its autocast precision (``cpu_bf16``
is refused there).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch

from nas.arch import ArchSpec, Network, arch_hash, fold_batchnorm
from nas.errors import SupernetError
from nas.search.evaluator import AccuracyEvaluator, Evaluation, Report
from nas.supernet.score_cache import ScoreCache
from nas.supernet.store import LoadedSupernet
from nas.train.device import Precision, choose_precision, cpu_has_native_bf16, resolve_device
from nas.train.evaluate import eval_batches, recalibrate_batchnorm, score_batches
from nas.train.memory import keep_large_blocks_in_heap, memory_is_short, release_freed_memory
from nas.data.splits import stratified_subset
from nas.train.protocols import default_batches_factory

__all__ = ["SupernetScoring", "SupernetEvaluator", "calibrated_subnet", "check_scoring_device", "SCORES_DIR"]

#: The supernet directory's folder of kept scores (:mod:`nas.supernet.score_cache`).
SCORES_DIR = "scores"


@dataclass(frozen=True)
class SupernetScoring:
    calibration_images: int = 256
    val_images: int | None = None  # None: the whole validation split
    batch_size: int = 256
    seed: int = 0
    cpu_bf16: bool = False  # bfloat16 autocast on a CPU with native bfloat16 (refused elsewhere: see the module)

    def __post_init__(self) -> None:
        if not isinstance(self.cpu_bf16, bool):
            raise SupernetError(f"--cpu-bf16: expected true or false, got {self.cpu_bf16!r}")
        for name, value, low in (("--calibration-images", self.calibration_images, 1),
                                 ("--batch-size", self.batch_size, 1), ("--seed", self.seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SupernetError(f"{name}: expected an integer >= {low}, got {value!r}")
        if self.val_images is not None and (isinstance(self.val_images, bool) or not isinstance(self.val_images, int)
                                            or self.val_images < 1):
            raise SupernetError(f"--val-images: expected an integer >= 1, got {self.val_images!r}")


def _calibration_sample(splits: Any, scoring: SupernetScoring) -> Any:
    n = len(splits.train)
    order = np.random.default_rng(scoring.seed).permutation(n)[: min(scoring.calibration_images, n)]
    return splits.train.subset(np.sort(order))


#: Seeds the validation sample of ``val_images``: one sample for every score, whatever the scoring seed.
_VAL_SAMPLE_SEED = 0


def validation_sample(splits: Any, scoring: SupernetScoring) -> Any:
    """The validation images a score is computed on: the whole split, or ``val_images`` of it drawn once
    (seeded, class proportions kept). A split may be stored class by class (an image folder is), so its
    first images would be a few classes only: 1,000 of CIFAR-10's 5,000 were two classes of ten."""
    val = splits.val
    if scoring.val_images is None or scoring.val_images >= len(val):
        return val
    rng = np.random.default_rng(_VAL_SAMPLE_SEED)
    labels = np.asarray(val.labels)
    if scoring.val_images >= len(np.unique(labels)):
        order = stratified_subset(labels, scoring.val_images, rng)
    else:  # fewer images than classes: a plain random sample
        order = np.sort(rng.permutation(len(val))[:scoring.val_images])
    return val.subset(order)


def _precision(dev: torch.device, scoring: SupernetScoring) -> Precision:
    """How a score's forward passes run on ``dev``: float32 on the CPU, or bfloat16 autocast with
    ``cpu_bf16`` (refused on a CPU without native bfloat16, and on any other device); a GPU's autocast
    precision there."""
    if dev.type != "cpu":
        if scoring.cpu_bf16:
            raise SupernetError(f"--cpu-bf16: the scores run on {dev.type}, which uses its own autocast precision; "
                                "drop --cpu-bf16 (or score on the CPU with --device cpu)")
        return choose_precision(dev, amp=True, channels_last=True)
    if not scoring.cpu_bf16:
        return Precision(dev, None, True)
    if not cpu_has_native_bf16():
        raise SupernetError("--cpu-bf16: this CPU has no native bfloat16 (neither the avx512_bf16 nor the amx_bf16 "
                            "flag in /proc/cpuinfo), so bfloat16 would be emulated and slower than float32; leave "
                            "--cpu-bf16 out here")
    return Precision(dev, torch.bfloat16, True)


def check_scoring_device(scoring: SupernetScoring, device: str) -> None:
    """Raise SupernetError where ``scoring`` cannot run on ``device`` (``cpu_bf16`` off the CPU, or on a CPU
    without native bfloat16): callers check before loading the data, the evaluator checks again."""
    _precision(resolve_device(device), scoring)


def calibrated_subnet(loaded: LoadedSupernet, arch: ArchSpec, splits: Any, scoring: SupernetScoring, *,
                      device: str = "auto") -> tuple[Network, float, float]:
    """``(network, val loss, val accuracy)``: ``arch`` extracted, its BatchNorm re-estimated, then scored.

    Channels-last memory, also on the CPU: these forward passes (no training) run about twice as fast in it
    there (depthwise convolutions; measured on the 2-core development VM). On the CPU the large activation
    blocks come from glibc's heap (:func:`~nas.train.memory.keep_large_blocks_in_heap`), not fresh maps that
    are faulted in page by page: on 1,000 validation images that took a score from 2.73 to 1.50 s, and the
    system CPU time of a run of 63 scores from 204 to 0.6 s (``benchmarks/results/supernet_score_cost.md``); the heap is
    handed back when memory is short."""
    dev = resolve_device(device)
    precision = _precision(dev, scoring)
    if dev.type == "cpu":
        keep_large_blocks_in_heap()
    model = loaded.supernet.extract(arch).to(dev, memory_format=torch.channels_last)
    val = validation_sample(splits, scoring)
    calibration = _calibration_sample(splits, scoring)
    factory = default_batches_factory()
    batches = eval_batches(factory, calibration, mean=splits.mean, std=splits.std,
                           batch_size=min(scoring.batch_size, len(calibration)), precision=precision)
    recalibrate_batchnorm(model, batches, precision, images=len(calibration))
    scored = fold_batchnorm(model, channels_last=True)  # the same outputs, a pass less per layer; model kept
    result = score_batches(scored, eval_batches(factory, val, mean=splits.mean, std=splits.std,
                                               batch_size=scoring.batch_size, precision=precision), precision)
    if dev.type == "cpu" and memory_is_short():
        release_freed_memory()
    return model, result.loss, result.acc


def _device_key(device: str, scoring: SupernetScoring) -> str:
    """The kind of device in a kept-score file's name: ``cpu``, or ``cuda-bf16`` / ``cuda-fp16`` (the
    autocast precision differs between GPU generations, and so do the scores); ``cpu_bf16`` is in the
    evaluator's fingerprint. Raises SupernetError where ``cpu_bf16`` is refused (:func:`_precision`)."""
    dev = resolve_device(device)
    dtype = _precision(dev, scoring).dtype
    if dev.type != "cuda":
        return dev.type
    return f"cuda-{'bf16' if dtype == torch.bfloat16 else 'fp16'}"


class SupernetEvaluator(AccuracyEvaluator):
    """An :class:`~nas.search.AccuracyEvaluator` that scores with a trained supernet (see the module docstring)."""

    def __init__(self, loaded: LoadedSupernet, splits: Any, scoring: SupernetScoring = SupernetScoring(), *,
                 device: str = "auto", keep: bool = False) -> None:
        if splits.input_size != loaded.space.input_size:
            raise SupernetError(f"the data is {splits.input_size}x{splits.input_size}, the supernet in "
                                f"{loaded.directory} takes {loaded.space.input_size}x{loaded.space.input_size}")
        self.loaded = loaded
        self.splits = splits
        self.scoring = scoring
        self.device = device
        self.keep = keep
        self._cache: dict[str, Evaluation] = {}
        #: the kind of device and its precision (``cpu``, ``cuda-bf16``, ``cuda-fp16``): scores differ between
        #: them by rounding, so kept scores, searches and NetAdapt runs are kept apart by it too
        self.device_key = _device_key(device, scoring)  # also refuses --cpu-bf16 where it would be emulated
        self.kept = ScoreCache(loaded.directory / SCORES_DIR / f"{self.fingerprint}-{self.device_key}.jsonl"
                               ) if keep else None

    @property
    def trains(self) -> bool:
        return False

    @property
    def epochs(self) -> int | None:
        """One report per evaluation: nothing to stop early."""
        return 1

    @property
    def fingerprint(self) -> str:
        s = self.scoring
        # "vs": a stratified sample (scores kept as "v<N>" were computed on the split's first N images)
        val = "vall" if s.val_images is None else f"vs{s.val_images}"
        # BatchNorm is re-estimated batch by batch, so the batch size moves the score; the default's scores
        # were kept before the batch size was in the name, and keep their name
        batch = "" if s.batch_size == SupernetScoring.batch_size else f"-b{s.batch_size}"
        precision = "-cpubf16" if s.cpu_bf16 else ""  # a search resumed in the other precision is refused
        return f"supernet-{self.loaded.fingerprint}-k{s.calibration_images}{batch}-{val}-s{s.seed}{precision}"

    def settings(self) -> dict[str, Any]:
        return {"supernet": str(self.loaded.directory), "epochs_trained": self.loaded.epochs, **asdict(self.scoring)}

    def reseeded(self, seed: int) -> SupernetEvaluator:
        return SupernetEvaluator(self.loaded, self.splits, replace(self.scoring, seed=seed), device=self.device,
                                 keep=self.keep)

    @property
    def rescores(self) -> bool:
        """Scores on a sample of the validation split: a confirmation scores on the whole split."""
        n = self.scoring.val_images
        return n is not None and n < len(self.splits.val)

    def confirmer(self, seed: int) -> SupernetEvaluator:
        if not self.rescores:
            return self.reseeded(seed)
        return SupernetEvaluator(self.loaded, self.splits, replace(self.scoring, seed=seed, val_images=None),
                                 device=self.device, keep=self.keep)

    def evaluate(self, arch: ArchSpec, *, report: Report | None = None) -> Evaluation:
        key = arch_hash(arch)
        if key not in self._cache:
            self.loaded.supernet.place(arch)  # one clear error for a network outside the supernet
            kept = self.kept.get(key) if self.kept is not None else None
            if kept is not None:
                acc, seconds = kept
            else:
                start = time.perf_counter()
                with torch.no_grad():
                    _, _, acc = calibrated_subnet(self.loaded, arch, self.splits, self.scoring, device=self.device)
                seconds = time.perf_counter() - start
                if self.kept is not None:
                    self.kept.put(key, acc, seconds)
            self._cache[key] = Evaluation(acc, (acc,), "completed", seconds)
        result = self._cache[key]
        if report is not None:
            report(1, result.accuracy)
        return result
