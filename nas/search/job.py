"""``nas search`` end to end: table -> space -> budget -> data -> trials -> outputs."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.atomic import atomic_write_text, ensure_dir
from nas.errors import DataError, SearchError
from nas.latency import TableEstimator, load_table
from nas.latency.spaces import space_for_table
from nas.space import SearchSpace
from nas.search.adapt_phase import ADAPT_SKIP_OVER, AdaptPhase, adapt_pool, run_adapt_phase
from nas.search._baselines import evaluate_baselines
from nas.search.budget import check_budget, default_budget, extreme_params
from nas.search.confirm import Confirmation, run_confirmation
from nas.search.evaluator import AccuracyEvaluator, ProxyEvaluator, ProxySettings
from nas.search.ground_truth import TableEvaluator, load_accuracy_table
from nas.search.objective import Objective
from nas.search.outputs import best_trial, feasible_trials, write_outputs, write_trials_csv
from nas.search.record import TrialRecord, read_records
from nas.search.reward import RewardSpec
from nas.search.runner import SearchConfig, run_search
from nas.train.device import cpu_threads, use_cpu_threads
from nas.write_errors import storing

__all__ = ["SearchJob", "run_search_job", "default_run_dir"]


@dataclass(frozen=True)
class SearchJob:
    target: str
    space: str | None = None
    latency_ms: float | None = None
    data: str = "digits"
    trials: int = 20
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
    else:
        data = "digits" if job.data == "digits" else Path(job.data).name or "data"
    name = f"{Path(job.target).stem}-{job.objective}-{budget_ms:.3g}ms-{data}"
    return Path("runs") / re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _progress_line(study: optuna.Study, trial: FrozenTrial, n_trials: int, budget_ms: float, objective: Objective,
                   confirmed: bool) -> str:
    t = TrialRecord.from_trial(trial)
    if t.surplus:
        return f"trial {t.number}: not run (the study already has its {n_trials} trials)"
    parts = [f"trial {t.number:3d}", f"lat {t.latency_ms:7.3f} ms" if t.latency_ms is not None else "",
             t.status or t.state.name.lower()]
    if t.repaired:
        parts.append("repaired")
    if t.val_acc is not None:
        parts.append(f"acc {t.val_acc:.4f}")
    if t.state == TrialState.COMPLETE:
        parts.append(objective.progress(t))
    if t.wall_s:
        parts.append(f"{t.wall_s:.0f}s")
    best = best_trial(study, budget_ms, objective, confirmed=confirmed)
    if best is not None:
        parts.append(f"| best: trial {best.number} acc {best.val_acc:.4f} at {best.latency_ms:.3f} ms")
    done = sum(1 for x in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    return f"[{done}/{n_trials}] " + "  ".join(p for p in parts if p)


def _repair_note(t: TrialRecord) -> str:
    """Said once, at the first repaired trial of a run."""
    return (f"note: trial {t.number} was repaired: none of the {t.proposal_attempts} networks drawn for it fitted "
            f"the budget, so the least slow one was trimmed onto it (a count follows after the trials)")


def _repair_summary(study: optuna.Study, limit_ms: float, fastest_ms: float) -> str | None:
    """How many trials needed repair, and what to do about it; None when none did."""
    described = [t for t in read_records(study, confirmed=False) if t.latency_ms is not None]
    repaired = [t for t in described if t.repaired]
    if not repaired:
        return None
    attempts = max(t.proposal_attempts or 0 for t in repaired)
    return (f"{len(repaired)} of {len(described)} trials needed repair: none of the {attempts} networks the sampler "
            f"drew for each was predicted within --skip-over x the budget ({limit_ms:.3f} ms), so the least slow was "
            f"trimmed onto it choice by choice; such trials explore little of the space. Raise --latency-ms (the "
            f"space's fastest network: {fastest_ms:.3f} ms)")


def _config(job: SearchJob, budget_ms: float, run_dir: Path) -> SearchConfig:
    return SearchConfig(n_trials=job.trials, budget_ms=budget_ms, run_dir=run_dir, objective=job.objective,
                        reward=job.reward, sampler=job.sampler, seed=job.seed, study_name=job.study,
                        storage_url=job.storage, skip_over=job.skip_over_factor, prune=job.prune,
                        heartbeat_s=job.heartbeat_s, grace_s=job.grace_s)


@dataclass(frozen=True)
class _Scoring:
    """How the trials are scored: proxy training on data, or an accuracy table."""

    evaluator: AccuracyEvaluator
    fingerprint: dict[str, Any]  # what a resumed study must share
    header: dict[str, str]  # for summary.md
    line: str  # for the console
    splits: Any = None  # the proxy data (proxy training only)
    proxy: ProxySettings | None = None
    note: str | None = None  # how the images are converted for the network (nas.data.formats), for the console


def _scoring(job: SearchJob, space: SearchSpace, threads: int) -> _Scoring:
    if job.accuracy_table is not None:
        if job.adapt is not None:
            raise SearchError("--adapt fine-tunes the winner's weights, which an --accuracy-table search has none of; "
                              "drop --adapt, or search with proxy training (--data)")
        evaluator = TableEvaluator(load_accuracy_table(job.accuracy_table, space), space,
                                   value=job.accuracy_table_value, seed=job.seed)
        return _Scoring(evaluator, {"accuracy_table": [Path(job.accuracy_table).name, job.accuracy_table_value]},
                        {"data": "none: accuracies from the table", "accuracy": evaluator.describe()},
                        f"accuracy: {evaluator.describe()}; no training")
    from nas.data import load_dataset

    settings = ProxySettings(epochs=job.epochs, batch_size=job.batch_size, seed=job.seed)
    try:
        splits = load_dataset(job.data, input_size=space.input_size, seed=job.seed, subset=job.subset)
    except DataError as exc:
        raise DataError(f"--data {job.data}: {exc}") from None
    if splits.num_classes != space.num_classes:
        raise DataError(f"{job.data}: has {splits.num_classes} classes but space '{space.name}' ({space.source}) "
                        f"builds {space.num_classes}-way classifiers; set 'classes: {splits.num_classes}' in a copy "
                        "of the space and build a latency table for it (nas lut build)")
    use_cpu_threads(threads)
    images = f"{len(splits.train)} train / {len(splits.val)} val images"
    return _Scoring(ProxyEvaluator(splits, settings, device=job.device),
                    {"proxy_recipe": settings.to_dict(), "proxy_images": [len(splits.train), len(splits.val)]},
                    {"data": splits.source, "proxy": f"{_epochs(job.epochs)}, batch {job.batch_size}, {images}"},
                    f"data: {splits.source}: {images}, {splits.num_classes} classes; proxy {_epochs(job.epochs)}, "
                    f"batch {job.batch_size}, {threads} CPU thread(s)", splits, settings, splits.conversion)


def run_search_job(job: SearchJob, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """``nas search``: check everything that can be checked before training, then search and write outputs."""
    table = load_table(job.target)
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
    if run_dir.exists() and not run_dir.is_dir():  # refused before the data is loaded; created below
        ensure_dir(run_dir, "--out")
    _config(job, budget_ms, run_dir)  # refuses bad options before the data is loaded
    if job.subset is not None and (isinstance(job.subset, bool) or job.subset < 1):
        raise SearchError(f"--subset: expected a positive number of training images (or 0 for all), got {job.subset}")
    threads = cpu_threads(job.threads)
    scoring = _scoring(job, space, threads)
    evaluator = scoring.evaluator
    config = _config(job, budget_ms, run_dir)
    fingerprint = {"space": space.digest, "table": table.space_digest, "device": table.metadata.get("device"),
                   "budget_ms": round(budget_ms, 6), "objective": job.objective,
                   # readable first, so a refused resume names the setting; "proxy" covers the data too
                   **scoring.fingerprint, "proxy": evaluator.fingerprint, "sampler": config.sampler_name,
                   "skip_over": job.skip_over_factor, **config.strategy.fingerprint()}
    fastest_ms = estimator.latency_ms(fastest)
    header = {"table": str(job.target), "device": table.metadata.get("device"), "space": space.source,
              **scoring.header, "objective": config.strategy.describe(), "budget rule": rule,
              "fastest network in the space": f"{fastest_ms:.3f} ms",
              "sampler": config.sampler_name,
              "trained": f"networks predicted up to {job.skip_over_factor:g} x the budget",
              "winner": (f"best mean over {1 + job.confirm.seeds} training seeds among the top {job.confirm.top}"
                         if job.confirm.enabled else "best single proxy result")}
    log(f"search: space '{space.name}', table {job.target} ({table.metadata.get('device')})")
    log(f"budget {budget_ms:.3f} ms ({rule}); fastest network in the space {fastest_ms:.3f} ms")
    log(scoring.line)
    if scoring.note:
        log(f"note: {scoring.note}")
    log(f"{job.trials} trials ({config.sampler_name}, {job.objective}) in "
        f"{job.storage.split('@')[-1] if job.storage else run_dir / 'study.db'}, study '{job.study}'; "
        f"results in {run_dir}")
    ensure_dir(run_dir, "--out")
    start = time.perf_counter()
    repair_said: list[int] = []

    def on_trial(study: optuna.Study, t: FrozenTrial) -> None:
        log(_progress_line(study, t, job.trials, budget_ms, config.strategy, job.confirm.enabled))
        record = TrialRecord.from_trial(t)
        if record.repaired and not repair_said:
            repair_said.append(record.number)
            log(_repair_note(record))
        write_trials_csv(study, run_dir, confirmed=job.confirm.enabled)

    study = run_search(config, space, estimator, evaluator, fingerprint=fingerprint, on_trial=on_trial,
                       warm_start=extreme_params(space, estimator), log=log)
    repairs = _repair_summary(study, budget_ms * job.skip_over_factor, fastest_ms)
    if repairs:
        log(repairs)
    if job.confirm.enabled:
        where = "of any latency (NetAdapt starts from the winner)" if job.adapt else "within the budget"
        log(f"choosing the winner: the top {job.confirm.top} networks {where}, trained again with "
            f"{job.confirm.seeds} more seed(s) each (--confirm-top/--confirm-seeds)")
        pool = adapt_pool(study) if job.adapt else feasible_trials(study, budget_ms)
        rows = run_confirmation(study, pool, evaluator, objective=config.strategy,
                                confirmation=job.confirm, base_seed=job.seed,
                                worker=f"{os.uname().nodename}:{os.getpid()}" if job.storage else "", log=log)
        for r in rows:
            log(f"  trial {r['trial']:3d}  {r['latency_ms']:.3f} ms  acc per seed "
                f"{' '.join(f'{a:.4f}' for a in r['accs'])}  mean {r['mean_acc']:.4f}")
    if job.baselines and job.accuracy_table:
        log("baselines skipped: the accuracy table scores only the networks of its own space")
    baselines = evaluate_baselines(space, estimator, evaluator, run_dir, log=log) \
        if job.baselines and not job.accuracy_table else []
    result = write_outputs(study, run_dir, budget_ms=budget_ms, objective=config.strategy, baselines=baselines,
                           header=header, confirmed=job.confirm.enabled)
    if job.adapt is not None:
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
