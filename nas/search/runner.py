"""The search loop: one Optuna trial = a proposed architecture, its predicted latency, its proxy training.

The search depends on a :class:`~nas.latency.LatencyEstimator` and an
:class:`~nas.search.evaluator.AccuracyEvaluator` only. Per trial:

1. the :class:`~nas.search.proposer.Proposer` draws the architecture with the configured
   sampler on an in-memory copy of the study, redrawing (and finally repairing) candidates
   predicted over ``skip_over x budget``, so no stored trial is wasted on them; the trial then
   samples exactly those choices define-by-run (conditional on depth and block type);
2. the table's prediction and everything needed to rebuild the trial are stored as user
   attributes (arch JSON, compact string, hash, latency breakdown, params, MACs), and
   ``LAT - T`` as the trial's Optuna constraint (samplers prefer trials within the budget);
3. an identical architecture (same hash) trained before, or being trained by another worker,
   is not trained again: its result is reused;
4. proxy training reports every epoch, to Optuna's successive-halving pruner in ``reward``
   mode and to :class:`~nas.search.early_stop.LatencyBandHalving` in ``pareto`` mode; after
   the last epoch nobody is stopped. Accuracy per epoch and wall time are stored.

The first trial of a new study is the fastest network of the space (the one architecture sure
to meet any accepted budget). Objective values: ``reward`` maximises MnasNet's
``ACC * (LAT / T) ** w``; ``pareto`` maximises accuracy and minimises latency.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from nas.arch import arch_cost, arch_hash, to_compact
from nas.errors import SearchError
from nas.interrupt import check_interrupt
from nas.latency import LatencyEstimator
from nas.search.chooser import TrialChooser
from nas.search.early_stop import LatencyBandHalving, MinPeersPruner
from nas.search.evaluator import AccuracyEvaluator
from nas.search.proposer import SAMPLER_ATTRS, FixedSampler, Proposal, Proposer
from nas.search.reward import RewardSpec, mnasnet_reward
from nas.search.storage import (GRACE_S, HEARTBEAT_S, check_storage_url, counts, enqueue_retry, fail_stale,
                                is_surplus, make_storage)
from nas.space import SearchSpace, sample_arch

__all__ = ["SearchConfig", "run_search", "open_study", "OBJECTIVES", "SAMPLERS", "trial_accuracy"]

OBJECTIVES = ("reward", "pareto")
SAMPLERS = ("tpe", "nsga2", "random")


@dataclass(frozen=True)
class SearchConfig:
    n_trials: int
    budget_ms: float
    run_dir: Path
    objective: str = "reward"
    reward: RewardSpec = field(default_factory=RewardSpec)
    sampler: str | None = None  # None: tpe for reward, nsga2 for pareto
    seed: int = 0
    study_name: str = "search"
    storage_url: str | None = None
    skip_over: float = 1.0
    prune: bool = True
    heartbeat_s: int = HEARTBEAT_S
    grace_s: int = GRACE_S
    keep_rejected: int | None = None  # rejected candidates shown to the sampler later; None: per sampler

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise SearchError(f"--objective: expected one of {list(OBJECTIVES)}, got {self.objective!r}")
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
    def sampler_name(self) -> str:
        return self.sampler or ("nsga2" if self.objective == "pareto" else "tpe")


class _Surplus(Exception):
    """This trial would exceed --trials (another worker got there first)."""


class _TakenOver(Exception):
    """Another worker failed this trial as stale (no heartbeat for --grace seconds) and queued its retry."""


def _sampler(config: SearchConfig, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler for the next trial.

    Every trial sets a latency constraint (see :class:`_Objective`), so networks rejected
    untrained still teach the sampler which choices are too slow: samplers rank infeasible
    trials by how far over the limit they are.
    """
    name = config.sampler_name
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        population = max(4, min(50, config.n_trials // 3))
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                      n_startup_trials=max(4, min(10, config.n_trials // 4)))


def _keep_rejected(config: SearchConfig) -> int:
    """How many untrained, over-budget candidates the proposer shows the sampler in later proposals.

    TPE gets none. It splits *all* the trials it is shown into its best ``ceil(10 %)`` and the
    rest, so a hundred rejected candidates raise the "best" group from 2-3 trained networks to
    nearly every trained one, and its density ratio then learns feasibility instead of accuracy:
    its trials sit further under the budget than random sampling's. On a synthetic accuracy
    surface (``benchmarks/sampler_surrogate.py``) they lowered the mean true accuracy of TPE's
    trials below random sampling's (the winner's was unchanged); without them TPE's trials are as
    close to the budget as random's, though many through the repair step. Candidates rejected
    while proposing the current trial are still shown (that is how a redraw differs from the last).
    NSGA-II keeps them: its constrained domination ranks them by how far over the budget they are.
    ``config.keep_rejected`` overrides the choice (the benchmark compares both).
    """
    if config.keep_rejected is not None:
        return config.keep_rejected
    return 0 if config.sampler_name == "tpe" else 100


def _trial_seed(config: SearchConfig, n_existing: int, worker: str) -> int:
    """A seed per trial: reproducible for one worker, different after a resume and between workers.

    Re-seeding with ``--seed`` alone would make a resumed run (or a second worker) draw the
    architectures the first one already drew.
    """
    key = f"{config.seed}:{n_existing}" + (f":{worker}" if config.storage_url else "")
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")


def _directions(config: SearchConfig) -> list[str]:
    return ["maximize"] if config.objective == "reward" else ["maximize", "minimize"]


def _pruner(config: SearchConfig) -> optuna.pruners.BasePruner:
    if config.objective == "reward" and config.prune:
        return MinPeersPruner(optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3))
    return optuna.pruners.NopPruner()


#: The options behind each stored setting, for the message that refuses a resume with other settings.
_OPTIONS = {"space": "--space", "table": "--target", "device": "--target", "budget_ms": "--latency-ms",
            "objective": "--objective", "reward": "--w/--constraint", "proxy_recipe": "--epochs/--batch-size/--seed",
            "proxy_images": "--subset", "proxy": "--data/--subset",
            "sampler": "--sampler", "skip_over": "--skip-over, whose default is 1.25 with --adapt"}


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
            where = config.storage_url.split("@")[-1] if config.storage_url else config.run_dir / "study.db"
            raise SearchError(
                f"study '{config.study_name}' in {where} was created with {key}={stored.get(key)!r}, this command "
                f"has {key}={value!r} (set by {_OPTIONS.get(key, key)}); re-run with the original settings to resume "
                "it, or use another --study / --out")


def open_study(config: SearchConfig, fingerprint: dict[str, Any], warm_start: dict[str, Any] | None = None,
               storage: RDBStorage | None = None) -> optuna.Study:
    """Create the study, or load it and check it was made by the same search settings.

    ``warm_start``: parameters enqueued as the first trial when this call creates the study
    (exactly one of several workers starting together does: creation is atomic in the database).
    """
    if storage is None:
        storage = make_storage(config.storage_url, config.run_dir, heartbeat_s=config.heartbeat_s,
                               grace_s=config.grace_s)
    directions = _directions(config)
    kwargs = {"storage": storage, "study_name": config.study_name, "sampler": _sampler(config, config.seed),
              "pruner": _pruner(config)}
    try:
        study = optuna.create_study(directions=directions, load_if_exists=False, **kwargs)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(**kwargs)
        if [d.name.lower() for d in study.directions] != directions:
            where = config.storage_url.split("@")[-1] if config.storage_url else config.run_dir / "study.db"
            raise SearchError(f"study '{config.study_name}' in {where} optimises {len(study.directions)} "
                              f"objective(s), not the {len(directions)} of --objective {config.objective}; use the "
                              "study's own --objective, or another --study / --out") from None
        _check_settings(study, config, fingerprint)
        return study
    study.set_user_attr("settings", fingerprint)
    if warm_start is not None:
        study.enqueue_trial(warm_start, user_attrs={"warm_start": True})
    return study


def trial_accuracy(trial: FrozenTrial) -> float | None:
    acc = trial.user_attrs.get("val_acc")
    return None if acc is None else float(acc)


class _Objective:
    def __init__(self, study: optuna.Study, config: SearchConfig, space: SearchSpace, estimator: LatencyEstimator,
                 evaluator: AccuracyEvaluator, storage: RDBStorage) -> None:
        self.study, self.config, self.space, self.storage = study, config, space, storage
        self.estimator, self.evaluator = estimator, evaluator
        self.halving = LatencyBandHalving()
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.current: int | None = None
        self.taken_over: int | None = None  # the trial another worker declared stale while this one ran it
        self.pending: Proposal | None = None  # what the proposer chose for the next new trial

    def _values(self, accuracy: float, latency: float) -> float | tuple[float, float]:
        if self.config.objective == "reward":
            return mnasnet_reward(accuracy, latency, self.config.budget_ms, self.config.reward)
        return accuracy, latency

    def _same_arch(self, digest: str, number: int) -> list[FrozenTrial]:
        return [t for t in self.study.get_trials(deepcopy=False)
                if t.number != number and t.user_attrs.get("hash") == digest
                and t.user_attrs.get("status") != "over_budget"]

    def _wait_for_twin(self, digest: str, number: int, timeout_s: float = 3600) -> FrozenTrial | None:
        """A finished trial of the same architecture, waiting while another worker trains it."""
        deadline = time.monotonic() + timeout_s
        while True:
            twins = self._same_arch(digest, number)
            done = [t for t in twins if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and
                    t.user_attrs.get("acc_per_epoch")]
            if done:
                return min(done, key=lambda t: t.number)
            running = [t for t in twins if t.state == TrialState.RUNNING and t.number < number]
            if not running or time.monotonic() > deadline:
                return None
            time.sleep(2.0)
            self.fail_stale()

    def fail_stale(self) -> None:
        fail_stale(self.study, self.storage, grace_s=self.config.grace_s, shared=self.config.storage_url is not None)

    def _check_alive(self, trial: optuna.Trial) -> None:
        """Stop a trial that other workers declared stale: this worker was stopped or suspended past --grace.

        Its retry is queued, so finishing it would train the same network twice, and Optuna refuses
        to record a result for a failed trial.
        """
        if self.storage.get_trial(trial._trial_id).state != TrialState.RUNNING:
            self.taken_over = trial.number
            raise _TakenOver(f"trial {trial.number} was declared stale by another worker and is retried")

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        self.current = trial.number
        if is_surplus(self.study, trial.number, self.config.n_trials):
            trial.set_user_attr("surplus", True)
            raise _Surplus(f"trial {trial.number} is beyond --trials {self.config.n_trials}")
        config = self.config
        arch = sample_arch(self.space, TrialChooser(trial))
        digest = arch_hash(arch)
        pred = self.estimator.predict(arch)
        latency = pred.total_ms
        cost = arch_cost(arch)
        attrs: dict[str, Any] = {
            "hash": digest, "arch": arch.to_dict(), "compact": to_compact(arch), "latency_ms": latency,
            "latency_parts": [[p.name, round(p.ms, 6), p.source] for p in pred.parts],
            "latency_interpolated": len(pred.interpolated), "params": cost.params, "macs": cost.macs,
            "blocks": len(arch.blocks), "budget_ms": config.budget_ms, "worker": self.worker,
        }
        proposal, self.pending = self.pending, None
        if proposal is not None and proposal.params == trial.params:
            attrs["proposal"] = {"attempts": proposal.attempts, "repaired": proposal.repaired}
            attrs[SAMPLER_ATTRS] = proposal.sampler_attrs
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        with warnings.catch_warnings():  # a retried trial inherits the (same) constraint: Optuna warns
            warnings.simplefilter("ignore")
            trial.set_constraint("latency", latency - config.budget_ms)

        if latency > config.skip_over * config.budget_ms:
            trial.set_user_attr("status", "over_budget")
            raise optuna.TrialPruned(f"{latency:.3f} ms is over {config.skip_over:g} x the budget: not trained")

        twin = self._wait_for_twin(digest, trial.number)
        if twin is not None:
            return self._reuse(trial, twin, latency)

        accs: list[float] = []

        def report(epoch: int, acc: float) -> None:
            self._check_alive(trial)
            accs.append(acc)
            trial.set_user_attr("acc_per_epoch", accs)
            trial.set_user_attr("val_acc", acc)
            if config.objective == "reward":
                trial.report(mnasnet_reward(acc, latency, config.budget_ms, config.reward), epoch)
            if epoch == self.evaluator.epochs:  # fully trained: stopping now would only discard the result
                return
            if config.objective == "reward":
                if config.prune and trial.should_prune():
                    trial.set_user_attr("status", "pruned")
                    raise optuna.TrialPruned(f"pruned after epoch {epoch}")
            elif config.prune and self.halving.should_stop(self.study.get_trials(deepcopy=False),
                                                           trial_number=trial.number, latency_ms=latency,
                                                           epoch=epoch, accuracy=acc):
                trial.set_user_attr("status", "pruned")
                raise optuna.TrialPruned(f"stopped after epoch {epoch}: not in the top third of its latency band")

        start = time.perf_counter()
        try:
            ev = self.evaluator.evaluate(arch, report=report)
        finally:
            trial.set_user_attr("wall_s", round(time.perf_counter() - start, 3))
        trial.set_user_attr("status", "trained" if ev.status == "completed" else ev.status)
        if ev.message:
            trial.set_user_attr("message", ev.message)
        trial.set_user_attr("val_acc", ev.accuracy)
        trial.set_user_attr("acc_per_epoch", list(ev.acc_per_epoch))
        self._check_alive(trial)
        return self._values(ev.accuracy, latency)

    def _reuse(self, trial: optuna.Trial, twin: FrozenTrial, latency: float) -> float | tuple[float, float]:
        accs = list(twin.user_attrs["acc_per_epoch"])
        trial.set_user_attr("duplicate_of", twin.number)
        trial.set_user_attr("acc_per_epoch", accs)
        trial.set_user_attr("val_acc", accs[-1])
        trial.set_user_attr("wall_s", 0.0)
        if twin.user_attrs.get("status") == "diverged":  # its accuracy is an earlier epoch's: never a winner
            trial.set_user_attr("status", "duplicate_diverged")
            return self._values(accs[-1], latency)
        if twin.state == TrialState.PRUNED:
            trial.set_user_attr("status", "duplicate_pruned")
            if self.config.objective == "reward":
                for epoch, acc in enumerate(accs, 1):
                    trial.report(mnasnet_reward(acc, latency, self.config.budget_ms, self.config.reward), epoch)
            raise optuna.TrialPruned(f"same architecture as trial {twin.number}, which was stopped early")
        trial.set_user_attr("status", "duplicate")
        return self._values(accs[-1], latency)


def _taken(trials: list[FrozenTrial]) -> set[str]:
    """Hashes of the architectures already trained, being trained or queued for training."""
    return {t.user_attrs["hash"] for t in trials if "hash" in t.user_attrs and t.user_attrs.get("status") != "over_budget"
            and t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)}


def _finished_badly(study: optuna.Study, number: int | None) -> FrozenTrial | None:
    """The trial ``number`` if Optuna recorded it as failed without an exception (a NaN objective value)."""
    if number is None:
        return None
    trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    return trial if trial.state == TrialState.FAIL and not trial.user_attrs.get("surplus") else None


def _retried(study: optuna.Study, number: int) -> bool:
    """Whether a retry of trial ``number`` was queued (by a worker that found it stale)."""
    return any(number in t.system_attrs.get("retry_history", ()) for t in study.get_trials(deepcopy=False))


def run_search(config: SearchConfig, space: SearchSpace, estimator: LatencyEstimator, evaluator: AccuracyEvaluator,
               *, fingerprint: dict[str, Any], on_trial: Callable[[optuna.Study, FrozenTrial], None] | None = None,
               warm_start: dict[str, Any] | None = None, poll_s: float = 3.0,
               log: Callable[[str], None] = lambda line: None) -> optuna.Study:
    """Run trials until ``config.n_trials`` have finished in the study (across all its workers).

    ``warm_start``: sampling parameters of the first trial of a new study (the job passes the
    fastest network of the space, the one architecture sure to meet any accepted budget).
    ``log``: a line when this worker waits for others, or loses a trial to a retry elsewhere.
    """
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    storage = make_storage(config.storage_url, config.run_dir, heartbeat_s=config.heartbeat_s, grace_s=config.grace_s)
    study = open_study(config, fingerprint, warm_start, storage)
    objective = _Objective(study, config, space, estimator, evaluator, storage)
    proposer = Proposer(space, estimator, lambda seed: _sampler(config, seed), _directions(config),
                        limit_ms=config.skip_over * config.budget_ms, budget_ms=config.budget_ms, fastest=warm_start,
                        keep_rejected=_keep_rejected(config))
    callbacks = [(lambda s, t: on_trial(s, t))] if on_trial else []
    waiting_said = False
    while True:
        check_interrupt()  # a Ctrl-C swallowed by a finalizer (after the trial's own) stops the search here
        objective.fail_stale()
        trials = study.get_trials(deepcopy=False)
        c = counts(trials)
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
        seed = _trial_seed(config, c["total"], objective.worker)
        # A waiting trial (a retry, the warm start) keeps its own parameters; a retry of a trial
        # killed while it was being sampled takes the rest from the proposal.
        objective.pending = proposer.propose(trials, seed, taken=_taken(trials))
        study.sampler = FixedSampler(objective.pending.params, optuna.samplers.RandomSampler(seed=seed))
        objective.current = None
        try:
            study.optimize(objective, n_trials=1, catch=(_Surplus,), callbacks=callbacks, gc_after_trial=True)
        except Exception:
            number = objective.current
            if number is None or not (objective.taken_over == number or _retried(study, number)):
                raise
            retried = "and queued its retry" if _retried(study, number) else "(its retries are used up)"
            log(f"trial {number}: another worker declared this one stale (no heartbeat for --grace "
                f"{config.grace_s} s: was it suspended?) {retried}; this worker's result is dropped")
            continue
        except KeyboardInterrupt:
            if objective.current is not None:
                frozen = next((t for t in study.get_trials(deepcopy=False) if t.number == objective.current), None)
                if frozen is not None and frozen.state == TrialState.FAIL and not frozen.user_attrs.get("surplus") \
                        and not _retried(study, frozen.number):  # another worker may have queued it already
                    enqueue_retry(study, frozen)
            raise
        bad = _finished_badly(study, objective.current)
        if bad is not None:
            raise SearchError(f"trial {bad.number}: the objective is not a number (accuracy {bad.user_attrs.get('val_acc')}"
                              f", latency {bad.user_attrs.get('latency_ms')} ms); check --w and --latency-ms")
    return study
