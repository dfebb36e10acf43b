"""``nas search`` end to end: table -> space -> budget -> data -> trials -> outputs.

Trials are scored by proxy training (the default), by an accuracy table (``--accuracy-table``,
:mod:`nas.search.ground_truth`) or by a trained supernet (``--supernet``, :mod:`nas.search.on_supernet`).
Several devices in one command: :mod:`nas.search.specialize`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.atomic import atomic_write_text, check_out_dir, ensure_dir
from nas.errors import DataError, SearchError
from nas.arch import ArchSpec
from nas.latency import LatencyTable, TableEstimator, load_table, space_parts
from nas.latency.spaces import space_for_table
from nas.space import SearchSpace
from nas.search.adapt_phase import ADAPT_SKIP_OVER, AdaptPhase, adapt_pool, run_adapt_phase
from nas.search._baselines import evaluate_baselines
from nas.search._progress import repair_summary, trial_logger
from nas.search.budget import check_budget, default_budget, extreme_params
from nas.search.confirm import Confirmation, run_confirmation
from nas.search.evaluator import ProxyEvaluator, ProxySettings
from nas.search.ground_truth import TableEvaluator, load_accuracy_table
from nas.search.outputs import feasible_trials, write_outputs
from nas.search.reward import RewardSpec
from nas.search.runner import SearchConfig, run_search
from nas.search.scoring import DEFAULT_TRIALS, SUPERNET_SAMPLER, SUPERNET_TRIALS, Scoring
from nas.train.device import cpu_threads, use_cpu_threads
from nas.write_errors import storing

__all__ = ["SearchJob", "SearchPlan", "plan_search", "run_search_job", "default_run_dir"]



@dataclass(frozen=True)
class SearchJob:
    target: str
    space: str | None = None
    latency_ms: float | None = None
    data: str | None = None  # None: "digits" (proxy training), the supernet's own data (--supernet)
    trials: int | None = None  # None: DEFAULT_TRIALS, or SUPERNET_TRIALS with a supernet
    objective: str = "reward"
    reward: RewardSpec = field(default_factory=RewardSpec)
    sampler: str | None = None
    epochs: int = 2
    subset: int | None = 500
    batch_size: int = 32
    storage: str | None = None
    study: str = "search"
    out: str | None = None
    seed: int = 0
    baselines: bool = True
    skip_over: float | None = None  # None: 1.0, or ADAPT_SKIP_OVER with adapt
    prune: bool = True
    device: str = "auto"
    heartbeat_s: int = 5
    grace_s: int = 20
    threads: int = 0  # torch CPU threads for training; 0: the cores not busy with other work (see cpu_threads)
    adapt: AdaptPhase | None = None  # NetAdapt the winner onto the budget after the search
    confirm: Confirmation = field(default_factory=Confirmation)  # the best candidates trained again, more seeds
    accuracy_table: str | None = None  # score trials from this file of measured accuracies instead of training
    accuracy_table_value: str = "seed"  # seed | mean (see nas.search.ground_truth)
    supernet: str | None = None  # score trials with this trained supernet's directory (nas.search.on_supernet)
    calibration_images: int | None = None  # supernet: BatchNorm images per score (None: SupernetScoring's)
    val_images: int | None = None  # supernet: validation images per score (None: the whole validation split)
    cpu_bf16: bool | None = None  # supernet: bfloat16 scores on a CPU with native bfloat16 (None: float32)

    @property
    def n_trials(self) -> int:
        if self.trials is not None:
            return self.trials
        return SUPERNET_TRIALS if self.supernet is not None else DEFAULT_TRIALS

    @property
    def sampler_choice(self) -> str | None:
        """``--sampler``, or evolution with a supernet (None: the objective's default)."""
        return self.sampler or (SUPERNET_SAMPLER if self.supernet is not None else None)

    @property
    def skip_over_factor(self) -> float:
        if self.skip_over is not None:
            return self.skip_over
        return ADAPT_SKIP_OVER if self.adapt is not None else 1.0


def _epochs(n: int) -> str:
    return f"{n} epoch{'' if n == 1 else 's'}"


def default_run_dir(job: SearchJob, budget_ms: float) -> Path:
    if job.accuracy_table is not None:
        data = Path(job.accuracy_table).stem
    elif job.supernet is not None:
        data = f"supernet-{Path(job.supernet).resolve().name}"
    else:
        data = "digits" if job.data in (None, "digits") else Path(job.data).name or "data"
    name = f"{Path(job.target).stem}-{job.objective}-{budget_ms:.3g}ms-{data}"
    return Path("runs") / re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _config(job: SearchJob, budget_ms: float, run_dir: Path) -> SearchConfig:
    # A supernet's score is final at once (it reports one "epoch"): nothing to stop early.
    return SearchConfig(n_trials=job.n_trials, budget_ms=budget_ms, run_dir=run_dir, objective=job.objective,
                        reward=job.reward, sampler=job.sampler_choice, seed=job.seed, study_name=job.study,
                        storage_url=job.storage, skip_over=job.skip_over_factor,
                        prune=job.prune and job.supernet is None,
                        heartbeat_s=job.heartbeat_s, grace_s=job.grace_s)


@dataclass(frozen=True)
class SearchPlan:
    """A search on one table with every check that needs no data done: space, budget, run directory."""

    table: LatencyTable
    space: SearchSpace
    estimator: TableEstimator
    budget_ms: float
    rule: str  # how the budget was set
    fastest: ArchSpec  # the space's fastest network on the table
    run_dir: Path
    config: SearchConfig


def plan_search(job: SearchJob, supernet: Any = None) -> SearchPlan:
    """Load ``job``'s table and space (``supernet``: a LoadedSupernet, whose space it is), set the budget and
    run directory, and refuse bad options: all before any data is loaded."""
    table = load_table(job.target)
    if supernet is not None:
        from nas.search.on_supernet import supernet_space

        space = supernet_space(table, supernet, job.target)
    else:
        space = space_for_table(table, job.space)
    # Parts missing from the table are interpolated, not measured: measuring would perturb the
    # training beside it and write to a table other workers read.
    estimator = TableEstimator(table, on_missing="interpolate", save=False)
    if job.latency_ms is None:
        budget = default_budget(space, estimator)
        budget_ms, rule = budget.ms, budget.rule
    else:
        budget_ms, rule = job.latency_ms, "given with --latency-ms"
    fastest = check_budget(budget_ms, space, estimator)
    run_dir = Path(job.out) if job.out else default_run_dir(job, budget_ms)
    check_out_dir(run_dir, "--out")  # refused before the data is loaded; created later
    config = _config(job, budget_ms, run_dir)  # refuses bad options before the data is loaded
    if job.subset is not None and (isinstance(job.subset, bool) or job.subset < 1):
        raise SearchError(f"--subset: expected a positive number of training images (or 0 for all), got {job.subset}")
    return SearchPlan(table, space, estimator, budget_ms, rule, fastest, run_dir, config)


def load_job_supernet(job: SearchJob) -> Any:
    """``job``'s LoadedSupernet (None without ``--supernet``)."""
    if job.supernet is None:
        return None
    from nas.search.on_supernet import load_search_supernet

    return load_search_supernet(job)


def _refuse_unused(job: SearchJob, fields: tuple[str, ...], why: str) -> None:
    given = ["--" + f.replace("_", "-") for f in fields  # a flag left off is None or False (not 0)
             if getattr(job, f) is not None and getattr(job, f) is not False]
    if given:
        raise SearchError(f"{', '.join(given)}: {why}; drop {'them' if len(given) > 1 else 'it'}")


def make_scoring(job: SearchJob, space: SearchSpace, threads: int, supernet: Any = None) -> Scoring:
    """The search's evaluator: an accuracy table, ``supernet`` (a LoadedSupernet) or proxy training."""
    if job.accuracy_table is None and supernet is None:
        _refuse_unused(job, ("calibration_images", "val_images", "cpu_bf16"),
                       "only with --supernet DIR (supernet scores)")
    if job.accuracy_table is not None:
        _refuse_unused(job, ("data", "calibration_images", "val_images", "cpu_bf16"),
                       "nothing is trained or scored with --accuracy-table (the table gives every accuracy)")
        if job.adapt is not None:
            raise SearchError("--adapt fine-tunes the winner's weights, which an --accuracy-table search has none of; "
                              "drop --adapt, or search with proxy training (--data)")
        evaluator = TableEvaluator(load_accuracy_table(job.accuracy_table, space), space,
                                   value=job.accuracy_table_value, seed=job.seed)
        # the seed picks each network's recorded training run: a search of another seed is another search; the
        # table's content and value are in the evaluator's fingerprint ("proxy"), so a renamed copy resumes
        return Scoring(evaluator, {"accuracy_table_seed": job.seed},
                        {"data": "none: accuracies from the table", "accuracy": evaluator.describe()},
                        f"accuracy: {evaluator.describe()}; no training")
    if supernet is not None:
        from nas.search.on_supernet import supernet_scoring

        use_cpu_threads(threads)
        return supernet_scoring(job, supernet)
    from nas.data import load_dataset

    data = job.data or "digits"
    settings = ProxySettings(epochs=job.epochs, batch_size=job.batch_size, seed=job.seed)
    try:
        splits = load_dataset(data, input_size=space.input_size, seed=job.seed, subset=job.subset)
    except DataError as exc:
        raise DataError(f"--data {data}: {exc}") from None
    if splits.num_classes != space.num_classes:
        raise DataError(f"{data}: has {splits.num_classes} classes but space '{space.name}' ({space.source}) "
                        f"builds {space.num_classes}-way classifiers; set 'classes: {splits.num_classes}' in a copy "
                        "of the space and build a latency table for it (nas lut build)")
    use_cpu_threads(threads)
    images = f"{len(splits.train)} train / {len(splits.val)} val images"
    return Scoring(ProxyEvaluator(splits, settings, device=job.device),
                    {"proxy_recipe": settings.to_dict(), "proxy_images": [len(splits.train), len(splits.val)]},
                    {"data": splits.source, "proxy": f"{_epochs(job.epochs)}, batch {job.batch_size}, {images}"},
                    f"data: {splits.source}: {images}, {splits.num_classes} classes; proxy {_epochs(job.epochs)}, "
                    f"batch {job.batch_size}, {threads} CPU thread(s)", splits, settings, splits.conversion)


def _header(job: SearchJob, plan: SearchPlan, scoring: Scoring, fastest_ms: float) -> dict[str, Any]:
    """The summary's header: what was searched, how trials were scored, how the winner was chosen."""
    config, trains = plan.config, scoring.evaluator.trains
    if not job.confirm.enabled:
        winner = "best single proxy result" if trains else "best single score"
    elif scoring.evaluator.rescores:
        winner = (f"best mean over {1 + job.confirm.seeds} scores on the whole validation split (the search's "
                  f"calibration sample and {job.confirm.seeds} others; its sample scores left out) among the top "
                  f"{job.confirm.top}")
    else:
        repeats = "calibration samples (BatchNorm re-estimated on other training images)" \
            if job.supernet is not None else "training seeds"
        winner = f"best mean over {1 + job.confirm.seeds} {repeats} among the top {job.confirm.top}"
    return {"table": str(job.target), "device": plan.table.metadata.get("device"), "space": plan.space.source,
            **scoring.header, "objective": config.strategy.describe(), "budget rule": plan.rule,
            "fastest network in the space": f"{fastest_ms:.3f} ms", "sampler": config.sampler_name,
            "trained" if trains else "scored": f"networks predicted up to {job.skip_over_factor:g} x the budget",
            "winner": winner}


def run_search_job(job: SearchJob, *, log: Callable[[str], None] = print, supernet: Any = None,
                   plan: SearchPlan | None = None, scoring: Scoring | None = None) -> dict[str, Any]:
    """``nas search``: check everything that can be checked before training, then search and write outputs.

    ``supernet`` (the LoadedSupernet of ``job.supernet``), ``plan`` (:func:`plan_search`) and ``scoring``
    (:func:`make_scoring`): made here when not given; searches of several devices share them
    (:mod:`nas.search.specialize`), so one evaluator (and its cache) serves every device.
    """
    if supernet is None:
        supernet = load_job_supernet(job)
    plan = plan or plan_search(job, supernet)
    threads = cpu_threads(job.threads)
    scoring = scoring or make_scoring(job, plan.space, threads, supernet)
    evaluator, config, run_dir, budget_ms = scoring.evaluator, plan.config, plan.run_dir, plan.budget_ms
    space, table, estimator = plan.space, plan.table, plan.estimator
    fingerprint = {"space": space.digest, "table": table.space_digest, "device": table.metadata.get("device"),
                   "latencies": table.latencies_digest(p.signature for p in space_parts(space))[:16],
                   "budget_ms": round(budget_ms, 6), "objective": job.objective,
                   # readable first, so a refused resume names the setting; "proxy" covers the data too
                   **scoring.fingerprint, "proxy": evaluator.fingerprint, "sampler": config.sampler_name,
                   "skip_over": job.skip_over_factor, **config.strategy.fingerprint()}
    fastest_ms = estimator.latency_ms(plan.fastest)
    header = _header(job, plan, scoring, fastest_ms)
    log(f"search: space '{space.name}', table {job.target} ({table.metadata.get('device')})")
    log(f"budget {budget_ms:.3f} ms ({plan.rule}); fastest network in the space {fastest_ms:.3f} ms")
    log(scoring.line)
    if scoring.note:
        log(f"note: {scoring.note}")
    log(f"{job.n_trials} trials ({config.sampler_name}, {job.objective}) in {config.where}, study '{job.study}'; "
        f"results in {run_dir}")
    ensure_dir(run_dir, "--out")
    start = time.perf_counter()
    on_trial = trial_logger(run_dir, job.n_trials, budget_ms, config.strategy, confirmed=job.confirm.enabled,
                            quiet=not evaluator.trains, log=log)
    study = run_search(config, space, estimator, evaluator, fingerprint=fingerprint, on_trial=on_trial,
                       warm_start=extreme_params(space, estimator), log=log)
    repairs = repair_summary(study, budget_ms * job.skip_over_factor, fastest_ms)
    if repairs:
        log(repairs)
    if job.confirm.enabled:
        where = "of any latency (NetAdapt starts from the winner)" if job.adapt else "within the budget"
        again = f"trained again with {job.confirm.seeds} more seed(s)"
        if evaluator.rescores:
            again = f"scored again on the whole validation split with its calibration sample and {job.confirm.seeds} other(s)"
        elif supernet is not None:
            again = f"scored again with {job.confirm.seeds} other calibration sample(s)"
        log(f"choosing the winner: the top {job.confirm.top} networks {where}, {again} each "
            "(--confirm-top/--confirm-seeds)")
        pool = adapt_pool(study) if job.adapt else feasible_trials(study, budget_ms)
        rows = run_confirmation(study, pool, evaluator, objective=config.strategy,
                                confirmation=job.confirm, base_seed=job.seed,
                                worker=f"{os.uname().nodename}:{os.getpid()}" if job.storage else "", log=log)
        reward = config.strategy.name == "reward"  # ranked by the reward of the mean, not the mean alone
        for r in rows:
            log(f"  trial {r['trial']:3d}  {r['latency_ms']:.3f} ms  acc per seed "
                f"{' '.join(f'{a:.4f}' for a in r['accs'])}  mean {r['mean_acc']:.4f}"
                + (f"  reward of the mean {r['score']:.4f}" if reward else ""))
    foreign = "the accuracy table" if job.accuracy_table else "the supernet" if supernet is not None else None
    if job.baselines and foreign:
        log(f"baselines skipped: {foreign} scores only the networks of its own space")
    baselines = evaluate_baselines(space, estimator, evaluator, run_dir, log=log) \
        if job.baselines and not foreign else []
    result = write_outputs(study, run_dir, budget_ms=budget_ms, objective=config.strategy, baselines=baselines,
                           header=header, confirmed=job.confirm.enabled)
    if job.adapt is not None:
        assert scoring.proxy is not None  # --adapt is refused with an accuracy table or a supernet
        result["adapt"] = run_adapt_phase(study, phase=job.adapt, objective=config.strategy, budget_ms=budget_ms,
                                          splits=scoring.splits, estimator=estimator, target=job.target,
                                          proxy=scoring.proxy,
                                          run_dir=run_dir, device=job.device, confirmed=job.confirm.enabled,
                                          log=log)
        _append_adapt_summary(run_dir, result["adapt"])
    log(f"done in {time.perf_counter() - start:.0f} s. Results in {run_dir}/: summary.md, trials.csv, "
        f"{'best_arch.json, ' if result['best'] else ''}pareto.json, pareto.png"
        f"{', adapt/ (NetAdapt: arch.json, weights.pt, history.csv, adapt.png)' if job.adapt else ''}")
    if result["best"] is None:
        log("no trained network is within the budget; run more --trials or raise --latency-ms")
    else:
        b = result["best"]
        mean = f" (mean over {len(b['confirmed']['accs'])} seeds {b['confirmed']['mean_acc']:.4f})" \
            if "confirmed" in b else ""
        log(f"best within budget: trial {b['trial']}, {b['latency_ms']:.3f} ms, val acc {b['val_acc']:.4f}{mean}: "
            f"{run_dir / 'best_arch.json'}")
    return {"run_dir": str(run_dir), "budget_ms": budget_ms, **result}


def _append_adapt_summary(run_dir: Path, adapt: dict[str, Any]) -> None:
    lines = ["", "## NetAdapt (--adapt)", "",
             f"- start: trial {adapt['start_trial']}, {adapt['start_latency_ms']:.3f} ms predicted, val acc "
             f"{adapt['start_accuracy']:.4f} after training it (adapt-start/)",
             f"- result: {adapt['status']}: {adapt['latency_ms']:.3f} ms predicted, val acc {adapt['accuracy']:.4f} "
             f"after {adapt['iterations']} iteration(s) and the final fine-tuning",
             f"- {adapt['message']}", "", f"    {adapt['arch']}", "",
             "Files: adapt/arch.json, adapt/weights.pt, adapt/history.csv, adapt/adapt.png, adapt/summary.md", ""]
    path = run_dir / "summary.md"
    with storing(path):  # the whole file again, atomically: a full disk cannot leave half a section
        atomic_write_text(path, path.read_text() + "\n".join(lines))
