"""``nas retrain`` end to end: run directory -> winners (+ references) -> trained, tested, exported, reported.

Layout under the run directory::

    retrain/results.csv                                  one row per network and seed
    retrain/<tag>/recipe.json                            the recipe and data of this retraining
    retrain/<tag>/skipped.json                           references that do not fit, and why
    retrain/<tag>/winners/<hash12>/seed<k>/              the model folder (see nas.retrain.model)
                                         .../result.json the row: training record + latency
    retrain/<tag>/references/<name>/seed<k>/result.json  (the model folder is in the reference cache)
    report.md, report.png

``<tag>`` is the recipe tag (``short-5ep``, ``full-200ep``...) plus ``-sub<N>``/``-test<N>``
when a training or test subset is used, ``-supernet`` when the winners start from a supernet's
weights (``--init supernet``) and ``-init<weights digest>-<architecture digest>`` from a weights file (``--init FILE``, :mod:`nas.retrain.init`). Networks are done in order (winners by rank, then
references), seeds in order; each finished one is recorded before the next starts, and
re-running the same command skips finished ones and resumes the interrupted one from its
last checkpoint. A tag's folder holds one retraining: a re-run on other data, from another start or
with another table is refused before anything is trained or rewritten (:mod:`nas.retrain.stored`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.arch import ArchSpec, reference_arch
from nas.atomic import ensure_dir
from nas.errors import DataError, SpecError
from nas.latency import LatencyTable, check_table_for_arch, load_table
from nas.retrain.data import MONITOR_LABEL, FinalSplits, final_splits
from nas.retrain.init import StartWeights, start_weights
from nas.errors import RetrainError
from nas.retrain.latency import LatencyProbe
from nas.retrain.model import read_trained, train_and_export, write_json
from nas.retrain.recipe import Recipe, make_recipe
from nas.retrain.references import DEFAULT_REFERENCES, default_reference_cache, fit_problem, reference_folder
from nas.retrain.report import build_report
from nas.retrain.results import RESULT_FILE, near_chance, write_results
from nas.retrain.source import Candidate, SearchRun, load_search_run, select_winners
from nas.retrain.stored import IDENTITY_KEY, check_stored, retrain_identity, table_identity
from nas.train.device import cpu_threads, resolve_device, use_cpu_threads

__all__ = ["RetrainJob", "run_retrain", "data_tag"]


@dataclass(frozen=True)
class RetrainJob:
    run: str
    top: int = 3
    recipe: str = "short"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seeds: int = 1
    data: str | None = None
    table: str | None = None
    subset: int | None = None
    test_subset: int | None = None
    references: tuple[str, ...] | None = DEFAULT_REFERENCES  # None or () = no references
    reference_cache: str | None = None
    device: str = "auto"
    progress: bool = True
    threads: int = 0  # CPU training threads; 0: the cores left idle by other work (nas.train.device.cpu_threads)
    augment: str | None = None  # None: the recipe's (crop+flip)
    init: str = "scratch"  # "supernet": the supernet's weights (in ``supernet``); else a weights file's path
    supernet: str | None = None


@dataclass(frozen=True)
class _Model:
    kind: str  # winner | reference
    name: str
    arch: ArchSpec
    candidate: Candidate | None


def data_tag(recipe: Recipe, subset: int | None, test_subset: int | None) -> str:
    return recipe.tag + (f"-sub{subset}" if subset else "") + (f"-test{test_subset}" if test_subset else "")


def _why_predicted(table: LatencyTable) -> str:
    if table.metadata.get("backend") == "litert":
        return "prediction only: a LiteRT table, and the export is ONNX"
    return "prediction only: not this machine's table"


def _table_path(run: SearchRun, override: str | None) -> Path:
    if override is not None:
        path = Path(override)
        if not path.is_file():
            raise RetrainError(f"--table {override}: no such file; pass the latency table the search used")
        return path
    if not run.table:
        raise RetrainError(f"--run {run.path}: summary.md does not record the latency table; pass --table TABLE.json "
                           f"(the table the search used)")
    recorded = Path(run.table)
    for path in (recorded, run.path / recorded, run.path.parent / recorded):
        if path.is_file():
            return path
    raise RetrainError(f"--run {run.path}: the search's table {run.table} (from summary.md) is not found from "
                       f"{os.getcwd()} nor beside the run; pass --table TABLE.json")


def _data(run: SearchRun, override: str | None) -> str:
    if override is not None:
        return override
    if run.data is None:
        said = f"records '{run.data_recorded}'" if run.data_recorded else "has no '- data:' line"
        raise RetrainError(f"--run {run.path}: the search's dataset is not recorded in a loadable form (summary.md "
                           f"{said}); pass --data (digits, an image folder with train/ and test/, or a CIFAR-10 "
                           f"python-batches folder)")
    return run.data


def _check_seeds(seeds: int) -> None:
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise RetrainError(f"--seeds: expected an integer >= 1 (seeds 0..S-1 are trained), got {seeds!r}")


def _models(winners: list[Candidate], job: RetrainJob, splits: FinalSplits,
            log: Callable[[str], None]) -> tuple[list[_Model], dict[str, str]]:
    models = [_Model("winner", c.hash[:12], c.arch, c) for c in winners]
    skipped: dict[str, str] = {}
    first = winners[0].arch
    for name in job.references or ():
        arch = reference_arch(name)
        why = fit_problem(arch, input_size=first.input_size, in_ch=first.in_ch, num_classes=splits.num_classes)
        if why:
            skipped[name] = why
            log(f"reference {name} skipped: {why}")
        else:
            models.append(_Model("reference", name, arch, None))
    return models, skipped


def _relative(path: Path, run_dir: Path) -> str:
    try:
        return str(path.resolve().relative_to(run_dir.resolve()))
    except ValueError:
        return str(path.resolve())


#: What ``train_and_export`` records about the test beside its accuracy (absent from trainings stored before).
_TEST_FIGURES = ("classes", "chance_acc", "top_class", "top_class_share", "bn_recalibration")


def _result(model: _Model, trained: dict[str, Any], folder: Path, run_dir: Path, probe: LatencyProbe,
            tag: str, seed: int, splits: FinalSplits) -> dict[str, Any]:
    onnx = folder / trained["onnx"] if trained.get("onnx") else None
    c = model.candidate
    return {
        "recipe": tag, "kind": model.kind, "name": model.name, "trial": c.trial if c else None,
        "hash": trained["arch_hash"], "seed": seed, "status": trained["status"], "epochs": trained["epochs"],
        "epochs_run": trained["epochs_run"], "test_acc": trained["test_acc"], "test_loss": trained["test_loss"],
        "test_images": trained["test_images"], "train_images": trained["train_images"], "subset": splits.subset,
        "test_subset": splits.test_subset, "params": trained["params"], "macs": trained["macs"],
        **probe.predict(model.arch), **probe.measure(model.arch, onnx), "latency_backend": probe.backend_name,
        "onnx": _relative(onnx, run_dir) if onnx else None, "parity_max_abs_diff": trained["parity_max_abs_diff"],
        "parity_ok": trained["parity_ok"], "proxy_val_acc": c.proxy_val_acc if c else None,
        "search_latency_ms": c.search_latency_ms if c else None, "monitor_acc": trained["monitor_acc"],
        "wall_s": trained["wall_s"], "device": trained["device"], "model_dir": _relative(folder, run_dir),
        "compact": trained["compact"], **{k: trained.get(k) for k in _TEST_FIGURES},
        "augment": (trained.get("recipe") or {}).get("augment"),
    }


def _seed_folder(tag_dir: Path, model: _Model, seed: int) -> Path:
    sub = "winners" if model.kind == "winner" else "references"
    return tag_dir / sub / model.name.replace("@", "_at_") / f"seed{seed}"


def _identities(models: list[_Model], splits: FinalSplits, start: StartWeights | None, table: LatencyTable,
                table_path: Path) -> dict[str, dict[str, Any]]:
    """Each model's results' identity, by name: references always start from random weights, and the table counts
    by the latencies of that network's parts only (entries added for other networks change nothing)."""
    winner_init = "scratch" if start is None else start.identity()
    return {m.name: retrain_identity(splits.identity(), winner_init if m.kind == "winner" else "scratch",
                                     table_identity(table, table_path, m.arch)) for m in models}


def _check_tag_dir(jobs: list[tuple[_Model, int]], identities: dict[str, dict[str, Any]], run_dir: Path,
                   tag_dir: Path) -> None:
    """Every stored result (or unfinished training) in ``tag_dir`` is of this command's identity, before any is
    trained, reused or described in recipe.json."""
    for model, seed in jobs:
        check_stored(_seed_folder(tag_dir, model, seed), identities[model.name], run_dir=run_dir, tag_dir=tag_dir)


def _check_folder_data(tag_dir: Path, identity: dict[str, Any]) -> None:
    """Results in ``tag_dir`` of networks this command does not retrain (a new winner after a resumed search) must
    be of its data and start too: the report describes a folder's results with one ``recipe.json``. Keys a stored
    ``recipe.json`` of an older version lacks are not compared."""
    try:
        stored = json.loads((tag_dir / "recipe.json").read_text()).get(IDENTITY_KEY)
    except (OSError, ValueError, AttributeError):
        return
    if not isinstance(stored, dict) or not any(tag_dir.rglob("result.json")):
        return
    data = stored.get("data") if isinstance(stored.get("data"), dict) else {}
    other = [k for k, v in data.items() if identity["data"].get(k) != v]
    if other or ("init" in stored and stored["init"] != identity["init"]):
        raise RetrainError(
            f"{tag_dir}: holds results trained on {data.get('source', '?')} from {stored.get('init', '?')!r} "
            f"(its recipe.json), this command trains on {identity['data'].get('source')} from {identity['init']!r}; "
            f"one folder's results are reported as one retraining: repeat the original --data (and --init), or move "
            f"{tag_dir} away first")


def _chance_warning(result: dict[str, Any]) -> str:
    flag = near_chance(result)
    return f"; AT CHANCE LEVEL: {flag}" if flag else ""


def run_retrain(job: RetrainJob, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Retrain the winners of ``job.run`` (and the fitting references); write results and the report."""
    run = load_search_run(job.run)
    winners = select_winners(run, job.top)
    if len(winners) < job.top:
        log(f"the run offers {len(winners)} architecture(s) to retrain (--top {job.top}): "
            + ("its Pareto front has no more members" if run.objective == "pareto" else
               "no more distinct trained architectures within budget"))
    _check_seeds(job.seeds)
    recipe = make_recipe(job.recipe, epochs=job.epochs, batch_size=job.batch_size, lr=job.lr, augment=job.augment)
    threads = cpu_threads(job.threads)
    for name in job.references or ():
        try:  # an unknown name fails here, before any data is loaded
            reference_arch(name)
        except SpecError as exc:
            raise RetrainError(f"--references: {exc}") from None
    table_path = _table_path(run, job.table)
    table = load_table(table_path)
    for winner in winners if job.table is not None else ():  # a --table given for other inputs predicts nothing
        check_table_for_arch(table, winner.arch, arch_name=f"the winner {winner.label}")
    start, chosen = start_weights(job.init, job.supernet, table, winners)
    if len(chosen) < len(winners):
        log(f"--init {job.init}: retraining the winner(s) of its architecture only "
            f"({', '.join(c.label for c in chosen)}); retrain the others with --init scratch or supernet")
        winners = chosen
    data = _data(run, job.data)
    sizes = {(c.arch.input_size, c.arch.in_ch) for c in winners}
    if len(sizes) != 1:
        raise RetrainError(f"--run {run.path}: the winners take different input sizes {sorted(sizes)}; retrain them "
                           f"in separate runs")
    arch0 = winners[0].arch
    splits = final_splits(data, input_size=arch0.input_size, subset=job.subset, test_subset=job.test_subset,
                          progress=job.progress)
    if splits.num_classes != arch0.num_classes:
        raise DataError(f"--data {data}: has {splits.num_classes} classes, the run's networks classify "
                        f"{arch0.num_classes}; pass the dataset the search used")
    cache = Path(job.reference_cache) if job.reference_cache else default_reference_cache()
    if job.references:
        ensure_dir(cache, "--reference-cache")
    tag = data_tag(recipe, job.subset, job.test_subset) + ("" if start is None else start.tag)
    tag_dir = ensure_dir(run.path / "retrain" / tag, "--run")
    models, skipped = _models(winners, job, splits, log)
    jobs = [(m, seed) for m in models for seed in range(job.seeds)]
    identities = _identities(models, splits, start, table, table_path)
    _check_tag_dir(jobs, identities, run.path, tag_dir)
    _check_folder_data(tag_dir, {"data": splits.identity(), "init": "scratch" if start is None else start.identity()})
    write_json(tag_dir / "recipe.json", {"recipe": recipe.to_dict(), "tag": tag, "description": recipe.describe(),
                                         "data": splits.identity(), "seeds": job.seeds, "table": str(table_path),
                                         "init": "scratch" if start is None else start.identity(),
                                         IDENTITY_KEY: {"data": splits.identity(),
                                                        "init": "scratch" if start is None else start.identity()}})
    write_json(tag_dir / "skipped.json", skipped)
    probe = LatencyProbe(table)
    if recipe.name == "full" and resolve_device(job.device).type == "cpu":
        log("note: the full recipe on a CPU takes hours per network on CIFAR-size data; '--recipe short' checks the "
            "pipeline, a CUDA machine runs the full recipe")
    use_cpu_threads(threads)
    log(f"retrain: {len(winners)} winner(s) of {run.path} ({run.objective} run), {len(models) - len(winners)} "
        f"reference(s), seeds 0..{job.seeds - 1}; recipe {recipe.describe()}; {threads} CPU thread(s)")
    if start is not None:
        log(f"the winners start from {start.describe()}; the references from random weights")
    log(f"data: {splits.source}: {len(splits.train)} training images (train + validation), {len(splits.test)} test "
        f"images; table {table_path} ({'measured here too' if probe.local else _why_predicted(table)})")
    if splits.conversion:
        log(f"note: {splits.conversion}")
    log(f"per-epoch '{MONITOR_LABEL}' loss/acc: {len(splits.val)} of the training images (not held out, a check of "
        f"the fit); the test split is used only for the final test acc")
    for i, (model, seed) in enumerate(jobs, 1):
        folder = _seed_folder(tag_dir, model, seed)
        label = model.candidate.label if model.candidate else model.name
        if (folder / RESULT_FILE).is_file():
            log(f"[{i}/{len(jobs)}] {label} seed {seed}: already done")
            continue
        train_folder = folder if model.kind == "winner" else reference_folder(cache, model.name, recipe, splits, seed)
        cached = model.kind == "reference" and read_trained(train_folder) is not None
        log(f"[{i}/{len(jobs)}] {label} seed {seed}: " + ("trained before (reference cache)" if cached else
                                                          f"training in {train_folder}"))
        trained = train_and_export(model.arch, splits, recipe, seed=seed, folder=train_folder, device=job.device,
                                   progress=job.progress, log=log, init=start if model.kind == "winner" else None)
        result = {**_result(model, trained, train_folder, run.path, probe, tag, seed, splits),
                  IDENTITY_KEY: identities[model.name]}
        write_json(folder / RESULT_FILE, result)
        write_results(run.path)
        acc = "-" if result["test_acc"] is None else f"{result['test_acc']:.4f}"
        meas = "" if result["measured_ms"] is None else f", measured {result['measured_ms']:.3f} ms"
        pred = "-" if result["predicted_ms"] is None else f"{result['predicted_ms']:.3f}"
        log(f"[{i}/{len(jobs)}] {label} seed {seed}: test acc {acc}, {result['params']:,} params, predicted "
            f"{pred} ms{meas}{_chance_warning(result)}")
    results = write_results(run.path)
    md, png = build_report(run.path)
    log(f"results: {results}; report: {md}, {png}")
    return {"run_dir": str(run.path), "recipe": tag, "results": str(results), "report": str(md),
            "winners": [c.trial for c in winners], "references": [m.name for m in models if m.kind == "reference"],
            "skipped": skipped}
