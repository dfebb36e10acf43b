"""The search loop: one Optuna trial = a proposed architecture, its predicted latency, its evaluation.

The search depends on a :class:`~nas.latency.LatencyEstimator`, an
:class:`~nas.search.evaluator.AccuracyEvaluator` and an :class:`~nas.search.objective.Objective`
only. Per trial:

1. the proposer (:mod:`nas.search._proposer`) draws the architecture with the configured
   sampler on an in-memory copy of the study, redrawing (and finally repairing) candidates
   predicted over ``skip_over x budget``, so no stored trial is wasted on them;
2. the trial (:mod:`nas.search._trial`) records that network's parameters as drawn, then the
   table's prediction and everything needed to rebuild the trial (:mod:`nas.search.record`),
   and ``LAT - T`` as the trial's Optuna constraint (samplers prefer trials within the budget);
3. an identical architecture (same hash) evaluated before, or being evaluated by another worker,
   is not evaluated again: its result is reused;
4. the evaluation reports every epoch; the objective decides whether the trial stops early
   (Optuna's successive halving in ``reward`` mode, latency-band halving in ``pareto`` mode);
   after the last epoch nobody is stopped. Accuracy per epoch and wall time are stored.

The first trial of a new study is the fastest network of the space (the one architecture sure
to meet any accepted budget).
"""

from __future__ import annotations

import gc
import hashlib
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial

from nas.errors import SearchError
from nas.interrupt import check_interrupt
from nas.latency import LatencyEstimator
from nas.search._nsga2 import NSGAIIPerStudySpace
from nas.search._proposer import Proposer
from nas.search._storage import (GRACE_S, HEARTBEAT_S, check_storage_url, counts, fail_stale, make_storage,
                                 retried)
from nas.search._tpe import GroupedTPESampler
from nas.search._trial import TrialRunner
from nas.search._uniform import UniformSampler
from nas.search.evaluator import AccuracyEvaluator
from nas.search.evolution import RegularizedEvolutionSampler, default_sizes
from nas.search.objective import OBJECTIVES, Objective, get_objective
from nas.search.record import WARM_START_ATTRS
from nas.search.reward import RewardSpec
from nas.search.scoring import SUPERNET_VAL_IMAGES
from nas.space import SearchSpace

__all__ = ["SearchConfig", "run_search", "open_study", "OBJECTIVES", "SAMPLERS", "make_sampler"]

SAMPLERS = ("tpe", "nsga2", "evolution", "random")

#: TPE: unusable draws (repeating an evaluated network, or over the limit) after which the next one
#: is replaced by its nearest usable neighbour (see :mod:`nas.search._proposer`); 0: the first. Each
#: ask refits TPE's estimators over all trials; the other samplers' asks are cheap, and they keep asking.
TPE_ASKS_BEFORE_NEIGHBOURS = 0


@dataclass(frozen=True)
class SearchConfig:
    n_trials: int
    budget_ms: float
    run_dir: Path
    objective: str = "reward"
    reward: RewardSpec = field(default_factory=RewardSpec)
    sampler: str | None = None  # None: the objective's default (tpe for reward, nsga2 for pareto)
    seed: int = 0
    study_name: str = "search"
    storage_url: str | None = None
    skip_over: float = 1.0
    prune: bool = True
    heartbeat_s: int = HEARTBEAT_S
    grace_s: int = GRACE_S
    keep_rejected: int | None = None  # rejected candidates shown to the sampler later; None: per sampler
    tpe_neighbours: bool = True  # TPE: an unusable draw becomes its nearest usable neighbour; False: ask again

    def __post_init__(self) -> None:
        get_objective(self.objective)  # refuses an unknown name
        if self.sampler is not None and self.sampler not in SAMPLERS:
            raise SearchError(f"--sampler: expected one of {list(SAMPLERS)}, got {self.sampler!r}")
        if self.n_trials < 1:
            raise SearchError(f"--trials: expected at least 1, got {self.n_trials}")
        if not 1 <= self.heartbeat_s < self.grace_s:
            raise SearchError(f"--heartbeat/--grace: expected 1 <= heartbeat < grace seconds, got "
                              f"{self.heartbeat_s} and {self.grace_s}")
        if self.storage_url is not None:
            check_storage_url(self.storage_url)
        if self.keep_rejected is not None and self.keep_rejected < 0:
            raise SearchError(f"keep_rejected: expected a count >= 0, got {self.keep_rejected}")
        if not self.skip_over >= 1:
            raise SearchError(f"--skip-over: expected a factor of at least 1 (1: train only networks within the "
                              f"budget), got {self.skip_over}")

    @property
    def strategy(self) -> Objective:
        """The objective's strategy (what ``objective`` and ``reward`` name)."""
        return get_objective(self.objective, self.reward)

    @property
    def sampler_name(self) -> str:
        return self.sampler or self.strategy.default_sampler

    @property
    def where(self) -> str:
        """The study's storage, for messages (a PostgreSQL URL without its credentials)."""
        return self.storage_url.split("@")[-1] if self.storage_url else str(self.run_dir / "study.db")


def make_sampler(config: SearchConfig, seed: int) -> optuna.samplers.BaseSampler:
    """The configured sampler, seeded.

    Every trial sets a latency constraint (see :mod:`nas.search._trial`), so networks rejected
    untrained still teach the sampler which choices are too slow: samplers rank infeasible
    trials by how far over the limit they are.
    """
    name = config.sampler_name
    if name == "random":
        return UniformSampler(seed=seed)
    if name == "nsga2":
        population = max(4, min(50, config.n_trials // 3))
        return NSGAIIPerStudySpace(seed=seed, population_size=population)
    if name == "evolution":
        population, sample = default_sizes(config.n_trials)
        return RegularizedEvolutionSampler(population_size=population, sample_size=sample, seed=seed)
    return GroupedTPESampler(seed=seed, n_startup_trials=max(4, min(10, config.n_trials // 4)))


def _keep_rejected(config: SearchConfig) -> int:
    """How many untrained, over-budget candidates the proposer shows the sampler in later proposals: none.

    Only TPE reads them (NSGA-II builds its populations from completed trials only, evolution
    likewise, random sampling reads nothing), and TPE is better without them. It splits *all*
    the trials it is shown into its best ``ceil(10 %)`` and the rest, so a hundred rejected
    candidates raise the "best" group from 2-3 trained networks to nearly every trained one, and
    its density ratio then learns feasibility instead of accuracy: its trials sit further under
    the budget than random sampling's. On a synthetic accuracy surface
    (``benchmarks/sampler_surrogate.py``) they lowered the mean true accuracy of TPE's trials
    below random sampling's (the winner's was unchanged). Candidates rejected while proposing the
    current trial are still shown (that is how a redraw differs from the last).
    ``config.keep_rejected`` overrides the choice (the benchmark compares both).
    """
    return config.keep_rejected if config.keep_rejected is not None else 0


def _trial_seed(config: SearchConfig, n_existing: int, worker: str) -> int:
    """A seed per trial: reproducible for one worker, different after a resume and between workers.

    Re-seeding with ``--seed`` alone would make a resumed run (or a second worker) draw the
    architectures the first one already drew.
    """
    key = f"{config.seed}:{n_existing}" + (f":{worker}" if config.storage_url else "")
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")


#: The options behind each stored setting, for the message that refuses a resume with other settings.
_OPTIONS = {"space": "--space", "table": "--target", "device": "--target",
            "latencies": "--target: another table, or this one re-measured or re-fitted", "budget_ms": "--latency-ms",
            "objective": "--objective", "reward": "--w/--constraint", "proxy_recipe": "--epochs/--batch-size/--seed",
            "proxy_images": "--subset", "proxy": "--data/--subset (or --accuracy-table: its content, --accuracy-table-value)", "accuracy_table_seed": "--seed",
            "sampler": "--sampler", "skip_over": "--skip-over, whose default is 1.25 with --adapt",
            "supernet": "--supernet (its weights: the same directory, trained as many epochs)",
            "supernet_scoring": "--calibration-images/--val-images/--seed/--cpu-bf16",
            "supernet_device": "--device: scores on another kind of device differ by rounding; resume, and run every "
                               "worker, on the kind the study began on"}


def _check_settings(study: optuna.Study, config: SearchConfig, fingerprint: dict[str, Any]) -> None:
    stored = study.user_attrs.get("settings")
    for _ in range(20):  # a worker that has just created the study stores its settings right after
        if stored is not None:
            break
        time.sleep(0.5)
        stored = study.user_attrs.get("settings")
    if stored is None:
        study.set_user_attr("settings", fingerprint)
        return
    for key, value in fingerprint.items():
        if key in stored and stored[key] != value:  # a setting older versions did not store is not checked
            raise SearchError(
                f"study '{config.study_name}' in {config.where} was created with {key}={stored.get(key)!r}, this command "
                f"has {key}={value!r} (set by {_OPTIONS.get(key, key)}); {_resume_fix(key, stored[key], value)}, or "
                "use another --study / --out")


def _resume_fix(key: str, stored: Any, current: Any) -> str:
    """How to resume: repeat the original settings; a supernet search begun on the whole validation split before
    the default became a sample (2026-12-05) resumes with ``--val-images 0``."""
    if key == "supernet_scoring" and isinstance(stored, str) and isinstance(current, str) and \
            stored.replace("-vall-", f"-vs{SUPERNET_VAL_IMAGES}-") == current:
        return ("it scored on the whole validation split, the default before 2026-12-05: add --val-images 0 to "
                "resume it")
    return "re-run with the original settings to resume it"


def open_study(config: SearchConfig, fingerprint: dict[str, Any], warm_start: dict[str, Any] | None = None,
               storage: BaseStorage | None = None) -> optuna.Study:
    """Create the study, or load it and check it was made by the same search settings.

    ``warm_start``: parameters enqueued as the first trial when this call creates the study
    (exactly one of several workers starting together does: creation is atomic in the database).
    """
    if storage is None:
        storage = make_storage(config.storage_url, config.run_dir, heartbeat_s=config.heartbeat_s,
                               grace_s=config.grace_s)
    strategy = config.strategy
    directions = list(strategy.directions)
    # The study's own sampler never draws (the proposer does, on a copy): it only sees ask and tell.
    kwargs = {"storage": storage, "study_name": config.study_name,
              "sampler": optuna.samplers.RandomSampler(seed=config.seed), "pruner": strategy.pruner(config.prune)}
    try:
        study = optuna.create_study(directions=directions, load_if_exists=False, **kwargs)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(**kwargs)
        if [d.name.lower() for d in study.directions] != directions:
            raise SearchError(f"study '{config.study_name}' in {config.where} optimises {len(study.directions)} "
                              f"objective(s), not the {len(directions)} of --objective {config.objective}; use the "
                              "study's own --objective, or another --study / --out") from None
        _check_settings(study, config, fingerprint)
        return study
    study.set_user_attr("settings", fingerprint)
    if warm_start is not None:
        study.enqueue_trial(warm_start, user_attrs=dict(WARM_START_ATTRS))
    return study



class _Freeze:
    """Who froze the heap: the outermost search of this process that found it unfrozen (a caller's own freeze,
    e.g. a pre-fork server's, is left alone; searches in threads or nested share the first one's)."""

    lock = threading.Lock()
    depth = 0
    ours = False


@contextmanager
def _heap_frozen(active: bool) -> Iterator[None]:
    """While trials train, the loop runs a full garbage collection after each (the trained network's tensors).
    With everything alive before the search frozen (``gc.freeze``: left out of collections, not freed), such a
    collection looks only at the objects made since (each took 0.14 s in a benchmark's process holding torch,
    more with more objects alive). Unfrozen when the last search running ends, also on errors and Ctrl-C."""
    if not active:
        yield
        return
    entered = False
    try:
        with _Freeze.lock:
            _Freeze.depth += 1
            entered = True
            if _Freeze.depth == 1 and gc.get_freeze_count() == 0:
                gc.collect()
                gc.freeze()
                _Freeze.ours = True
        yield
    finally:
        with _Freeze.lock:
            _Freeze.depth -= entered
            if _Freeze.depth == 0 and _Freeze.ours:
                gc.unfreeze()
                _Freeze.ours = False


def run_search(config: SearchConfig, space: SearchSpace, estimator: LatencyEstimator, evaluator: AccuracyEvaluator,
               *, fingerprint: dict[str, Any], on_trial: Callable[[optuna.Study, FrozenTrial], None] | None = None,
               warm_start: dict[str, Any] | None = None, poll_s: float = 3.0,
               log: Callable[[str], None] = lambda line: None, storage: BaseStorage | None = None) -> optuna.Study:
    """Run trials until ``config.n_trials`` have finished in the study (across all its workers).

    ``warm_start``: sampling parameters of the first trial of a new study (the job passes the
    fastest network of the space, the one architecture sure to meet any accepted budget).
    ``on_trial``: called with every trial this worker finished (as told to the study).
    ``log``: a line when this worker waits for others, or loses a trial to a retry elsewhere.
    ``storage``: another Optuna storage than ``config``'s (benchmarks run thousands of short
    searches in ``optuna.storages.InMemoryStorage``: one process, nothing kept).
    """
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if storage is None:
        storage = make_storage(config.storage_url, config.run_dir, heartbeat_s=config.heartbeat_s,
                               grace_s=config.grace_s)
    study = open_study(config, fingerprint, warm_start, storage)
    strategy = config.strategy
    worker = f"{socket.gethostname()}:{os.getpid()}"
    shared = config.storage_url is not None
    runner = TrialRunner(study, storage, config, space, estimator, evaluator, strategy, worker)
    proposer = Proposer(space, estimator, lambda seed: make_sampler(config, seed), list(strategy.directions),
                        limit_ms=config.skip_over * config.budget_ms, budget_ms=config.budget_ms, fastest=warm_start,
                        keep_rejected=_keep_rejected(config), show_refusals=config.sampler_name == "tpe",
                        asks_before_neighbours=TPE_ASKS_BEFORE_NEIGHBOURS
                        if config.sampler_name == "tpe" and config.tpe_neighbours else None)
    waiting_said = False
    others = True  # whether other workers may be using the study (unknown before the first look)
    with _heap_frozen(evaluator.trains):  # collections after each trial look at new objects only
        while True:
            check_interrupt()  # a Ctrl-C swallowed by a finalizer (after the trial's own) stops the search here
            if others:  # a worker may die at any time; with none but this one, no trial goes stale
                fail_stale(study, storage, grace_s=config.grace_s, shared=shared)
            trials = study.get_trials(deepcopy=False)
            c = counts(trials)
            others = shared or c["running"] > 0
            if c["done"] >= config.n_trials:
                break
            if c["done"] + c["running"] >= config.n_trials and c["waiting"] == 0:
                if not waiting_said:
                    log(f"waiting for {c['running']} trial(s) running elsewhere; a trial of a stopped or killed worker "
                        f"is retried once it has had no heartbeat for --grace {config.grace_s} s")
                    waiting_said = True
                time.sleep(poll_s)  # the remaining trials are running elsewhere (or are stale and will be retried)
                continue
            waiting_said = False
            # A waiting trial (a retry, the warm start) keeps its own network; a retry of a trial killed
            # while its parameters were being written takes the rest from the proposal.
            runner.index.update(trials)
            proposal = proposer.propose(trials, _trial_seed(config, c["total"], worker), taken=runner.index.taken())
            outcome = runner.run(proposal, trials, alone=not others, waiting=c["waiting"])
            if evaluator.trains:
                gc.collect()  # the trained network's tensors, before the next one
            if outcome.trial is None:
                state = "and queued its retry" if retried(study, outcome.number) else "(its retries are used up)"
                log(f"trial {outcome.number}: another worker declared this one stale (no heartbeat for --grace "
                    f"{config.grace_s} s: was it suspended?) {state}; this worker's result is dropped")
                continue
            if on_trial is not None:
                on_trial(study, outcome.trial)
    return study
