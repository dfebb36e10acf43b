"""Building a table: enumerate, measure (resumably, in interleaved passes), calibrate.

Every part a space can produce (its stem, every distinct block at its resolution, its head;
identity skip blocks are no parts), plus the parts of the reference networks that fit the
space's input (so baselines such as ``mobilenetv2-cifar@0.5`` can be predicted), is exported
once to the backend's model format (ONNX, or LiteRT's .tflite: :mod:`nas.latency.formats`) and timed in
``settings.passes`` interleaved passes (:func:`nas.latency.passes.time_interleaved`): pass 1
over every part, then pass 2, ... An entry's latency is the minimum over its passes of the
per-pass median (see :mod:`nas.latency.measure`).

Crash safety: each pass of each part is appended to ``<table>.journal`` (``{"signature",
"pass", "timing"}``) and flushed to disk before the next one starts, so a crash, ``kill -9``
or Ctrl-C loses at most the pass in progress. An entry enters the table once all its passes
are measured; the table is rewritten atomically every few seconds and at the end. Re-running
with ``--only-missing`` merges the table and the journal, keeps every finished pass and
measures only the passes still missing; without it an existing table or journal is never
overwritten.

Converted models are kept in memory for the calibration (whose parts are the space's) and, for
backends whose conversion is slow (LiteRT), also in ``<table>.models/`` until the build finishes,
so a build interrupted while converting converts only what is left when it is re-run.

Calibration: after the entries, ``calibration`` networks of the space (seeds 10000, 10001,
..., leaning from its cheapest networks to its costliest: :func:`calibration_archs`), their
parts and the per-call overhead model (one ReLU) are timed with the same protocol (interleaved
passes over all of them), and the correction is fitted on them (:mod:`nas.latency.correction`; see
:class:`~nas.latency.table.Correction` for the formula).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Iterable
from contextlib import nullcontext, suppress
from pathlib import Path
from typing import Any

from nas import __version__
from nas.arch import REFERENCE_NAMES, ArchSpec, conv_out_size, parse_compact, reference_arch, to_compact
from nas.errors import LatencyTableError
from nas.latency.correction import calibration_record, fit_correction
from nas.latency.formats import cache_folder, convert_ahead
from nas.latency.measure import Backend, Timing
from nas.latency.output import check_output, table_lock, writing
from nas.latency.passes import TimingJob, time_interleaved
from nas.latency.predict import TableEstimator, check_table_for_arch
from nas.latency.signature import Part, arch_parts, block_signature, head_signature, stem_signature
from nas.latency.table import Correction, Entry, LatencyTable, load_table, save_table
from nas.space import SearchSpace, enumerate_blocks, leaning_arch, random_arch, space_skeleton

__all__ = ["check_same_measurements", "space_parts", "reference_archs", "build_table", "calibrate", "calibration_archs", "calibration_lean",
           "calibration_network",
           "DEFAULT_CALIBRATION", "add_entries", "CALIBRATION_SEED",
           "journal_path", "table_metadata", "measure_overhead", "fit_correction", "calibration_record"]

CALIBRATION_SEED = 10_000
DEFAULT_CALIBRATION = 30  # calibration networks
#: The most calibration networks a build, a bundle or an imported results file may hold (the correction's
#: leave-one-out fit costs the square of their number).
MAX_CALIBRATION = 1000
REFERENCE_ALPHAS = (0.35, 0.5, 0.75, 1.0)


def reference_archs(space: SearchSpace) -> list[tuple[str, ArchSpec]]:
    """Reference networks (and MobileNetV2 width variants) whose input and classes fit ``space``."""
    names = [f"mobilenetv2-cifar@{a:g}" for a in REFERENCE_ALPHAS] + [n for n in REFERENCE_NAMES if n != "mobilenetv2-cifar"]
    out = []
    for name in names:
        arch = reference_arch(name)
        if (arch.input_size, arch.in_ch, arch.num_classes) == (space.input_size, space.in_ch, space.num_classes):
            out.append((name, arch))
    return out


def space_parts(space: SearchSpace, *, references: bool = True) -> list[Part]:
    """Every distinct part the space (and, optionally, the fitting reference networks) contains."""
    stem, head = space_skeleton(space)
    parts: dict[str, Part] = {}
    sig = stem_signature(stem, in_ch=space.in_ch, resolution=space.input_size)
    parts[sig] = Part("stem", sig, stem, space.in_ch, space.input_size)
    for block, res in enumerate_blocks(space):
        if block.is_identity:  # no operation, no part (nas.latency.signature)
            continue
        sig = block_signature(block, resolution=res)
        parts.setdefault(sig, Part("block", sig, block, block.in_ch, res))
    final_res = conv_out_size(space.stage_resolutions()[-1], space.stages[-1].stride)
    last = space.stages[-1].channels
    sig = head_signature(head, in_ch=last, num_classes=space.num_classes, resolution=final_res)
    parts[sig] = Part("head", sig, head, last, final_res, space.num_classes)
    if references:
        for _, arch in reference_archs(space):
            for part in arch_parts(arch):
                parts.setdefault(part.signature, part)
    return list(parts.values())


def journal_path(table_path: Path) -> Path:
    return table_path.with_name(table_path.name + ".journal")


def table_metadata(space: SearchSpace, backend: Backend) -> dict[str, Any]:
    return {
        **backend.info(),
        "batch_size": 1, "input_size": space.input_size, "in_ch": space.in_ch, "num_classes": space.num_classes,
        "space": {"name": space.name, "file": space.source, "digest": space.digest},
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "units": "ms",
        "measurement": {**backend.settings.to_dict(), "protocol": backend.settings.protocol(),
                        **backend.measurement_info(),
                        "weights": "deterministic (1/fan-in), BN at identity", "input": "batch 1, float32 N(0,1)"},
        "tool": f"nas {__version__}",
        "complete": False,
    }


_MUST_MATCH = ("backend", "threads", "cpu", "gpu", "execution_provider", "input_size", "in_ch", "num_classes",
               "remote")  # remote: imported from a device (a local build never resumes into it)
#: Timing settings a resumed table must share, with the option that sets each.
_SETTINGS_MUST_MATCH = (("warmup", "--warmup"), ("min_repeats", "--repeats"), ("max_repeats", "--max-repeats"),
                        ("min_seconds", "--min-seconds"))
#: What ``metadata.measurement`` says about the models timed (ONNX opset; LiteRT format and converter).
_MODEL_INFO = ("opset", "model_format", "converter")


def check_same_measurements(path: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Refuse (:class:`LatencyTableError`, naming the field) to mix entries measured under table metadata ``new``
    into the table at ``path`` measured under ``old``: another device, runtime, version, timing or space."""
    for key in _MUST_MATCH:
        if old.get(key) != new.get(key):
            raise LatencyTableError(
                f"{path}: metadata.{key}: the existing table was measured with {key}={old.get(key)!r}, this run has "
                f"{new.get(key)!r}; entries from different settings cannot be mixed: use another -o path")
    for key, default, what in (("clock", "wall", "clocks"), ("passes", 1, "numbers of passes")):
        old_value, new_value = (m.get("measurement", {}).get(key, default) for m in (old, new))
        if old_value != new_value:
            raise LatencyTableError(
                f"{path}: metadata.measurement.{key}: the existing table was timed with --{key} {old_value}, this run "
                f"has --{key} {new_value}; entries from different {what} cannot be mixed: use --{key} {old_value} "
                "or another -o path")
    old_m, new_m = old.get("measurement", {}), new.get("measurement", {})
    for key, option in _SETTINGS_MUST_MATCH:
        if key in old_m and old_m[key] != new_m.get(key):  # journals of older versions lack some: not checked
            raise LatencyTableError(
                f"{path}: metadata.measurement.{key}: the existing table was timed with {option} {old_m[key]}, this "
                f"run has {option} {new_m.get(key)}; entries timed differently cannot be mixed: use {option} "
                f"{old_m[key]} or another -o path")
    versions = [("metadata.backend_version", old.get("backend_version"), new.get("backend_version"))]
    versions += [(f"metadata.measurement.{k}", old_m.get(k), new_m.get(k)) for k in _MODEL_INFO]
    for what, old_v, new_v in versions:
        if old_v is not None and old_v != new_v:
            raise LatencyTableError(
                f"{path}: {what}: the existing table was measured with {old_v!r}, this run has {new_v!r} (another "
                "runtime or converter version); entries measured differently cannot be mixed: install the version "
                "it was measured with, or use another -o path")
    if old.get("space", {}).get("digest") != new["space"]["digest"]:
        raise LatencyTableError(f"{path}: metadata.space: the existing table is for space "
                                f"'{old.get('space', {}).get('name')}', not {new['space']['file']}; use another -o path")


def _read_journal(path: Path) -> tuple[dict[str, Any] | None, dict[str, Entry], dict[str, list[Timing]]]:
    """The journal's metadata, its finished entries (journals written before passes existed) and its passes."""
    meta: dict[str, Any] | None = None
    entries: dict[str, Entry] = {}
    passes: dict[str, dict[int, Timing]] = {}
    if not path.exists():
        return meta, entries, {}
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # the line being written when the process died
        if "metadata" in rec:
            meta = rec["metadata"]
        elif "signature" in rec and "pass" in rec:
            passes.setdefault(rec["signature"], {})[int(rec["pass"])] = Timing.from_dict(rec["timing"])
        elif "signature" in rec:
            e = rec["entry"]
            entries[rec["signature"]] = Entry(e["median"], e["p10"], e["p90"], e["repeats"], e.get("source", "measured"))
    return meta, entries, {sig: [by_number[k] for k in sorted(by_number)] for sig, by_number in passes.items()}


def _ends_unfinished(path: Path) -> bool:
    """Whether the file at ``path`` ends inside a line (a write cut off by a kill)."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return False
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


class _Journal:
    def __init__(self, path: Path, metadata: dict[str, Any]) -> None:
        self.path = path
        # a journal whose settings line was never finished (a kill right after it was created) gets one now,
        # so that every later resume is checked against these settings
        new = not path.exists() or _read_journal(path)[0] is None
        torn = path.exists() and _ends_unfinished(path)
        self.f = open(path, "a")  # noqa: SIM115 - closed in close()
        if torn:
            self.f.write("\n")  # end the line a kill cut off (skipped when read), so the next line is not glued on
        if new:
            self._write({"metadata": metadata})

    def _write(self, record: dict[str, Any]) -> None:
        self.f.write(json.dumps(record) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def add_pass(self, signature: str, number: int, timing: Timing) -> None:
        self._write({"signature": signature, "pass": number, "timing": timing.to_dict()})

    def close(self) -> None:
        self.f.close()


def measure_overhead(backend: Backend, input_shape: tuple[int, ...]) -> float:
    """Per-call overhead (ms): the latency of a one-operator model on an input of this shape."""
    return backend.time_model(backend.overhead_model(input_shape), input_shape).median


def calibration_lean(i: int, networks: int) -> float:
    """Calibration network ``i`` of ``networks`` leans from the cheapest networks (+1) to the costliest (-1)."""
    return 0.0 if networks < 2 else round(1.0 - 2.0 * i / (networks - 1), 6)


def calibration_archs(space: SearchSpace, networks: int) -> list[tuple[int, float, ArchSpec]]:
    """The calibration networks ``(seed, lean, arch)``: seeds ``CALIBRATION_SEED + i`` drawn by
    :func:`nas.space.leaning_arch`, spanning the space from its cheapest networks by MACs (the fastest
    end) to its costliest."""
    seeds_leans = [(CALIBRATION_SEED + i, calibration_lean(i, networks)) for i in range(networks)]
    return [(seed, lean, leaning_arch(space, seed, lean)) for seed, lean in seeds_leans]


def calibration_network(space: SearchSpace, row: dict[str, Any]) -> ArchSpec:
    """The network of one ``metadata.calibration.networks`` row: its ``arch`` (compact form) where recorded,
    else drawn again from its ``seed`` and ``lean``; rows without a lean are from tables calibrated on
    uniformly random networks (:func:`nas.space.random_arch`)."""
    if "arch" in row:
        return parse_compact(row["arch"])
    if "lean" in row:
        return leaning_arch(space, int(row["seed"]), float(row["lean"]))
    return random_arch(space, int(row["seed"]))


def calibrate(table: LatencyTable, space: SearchSpace, backend: Backend, *, networks: int = DEFAULT_CALIBRATION,
              progress: bool = True) -> Correction:
    """Measure ``networks`` whole networks end to end and fit the table's correction.

    The networks (:func:`calibration_archs`), every part they consist of and the one-ReLU overhead
    model are timed together, in ``backend.settings.passes`` interleaved passes. The correction is
    fitted on the parts timed *here*, next to the networks, so that it describes how a network
    differs from its parts and not how the machine drifted since the entries were measured; that
    drift (the parts now vs their entries) is recorded as ``metadata.calibration.drift``."""
    estimator = TableEstimator(table, on_missing="error", save=False)
    shape = (1, space.in_ch, space.input_size, space.input_size)
    archs = calibration_archs(space, networks)
    parts: dict[str, Part] = {p.signature: p for _, _, arch in archs for p in arch_parts(arch)}
    jobs = [TimingJob("overhead", shape, lambda: backend.overhead_model(shape))]
    jobs += [TimingJob(f"network {seed}", shape, lambda a=arch: backend.network_model(a)) for seed, _, arch in archs]
    jobs += [TimingJob(f"part {sig}", p.input_shape, lambda p=p: backend.part_model(p)) for sig, p in parts.items()]
    timings = time_interleaved(backend, jobs, progress=progress, desc="calibrating")
    overhead = Timing.best_of(timings["overhead"]).median
    now = {sig: Timing.best_of(timings[f"part {sig}"]).median for sig in parts}
    rows = []
    for seed, lean, arch in archs:
        pred = estimator.predict(arch)
        measured = Timing.best_of(timings[f"network {seed}"]).median
        rows.append({"seed": seed, "lean": lean, "arch": to_compact(arch), "parts": len(pred.parts),
                     "part_sum_ms": sum(now[p.signature] for p in pred.parts), "table_part_sum_ms": pred.part_sum_ms,
                     "boundary_kelements": pred.boundary_kelements, "measured_ms": measured})
    span = ", leaning from the space's cheapest networks by MACs to its costliest" if networks > 1 else ""
    correction = fit_correction(rows, overhead, source=f"seeds {CALIBRATION_SEED}...{CALIBRATION_SEED + networks - 1}"
                                                        f"{span}, with their parts timed alongside")
    ratios = sorted(now[sig] / table.entries[sig].median for sig in parts)
    record = calibration_record(rows, overhead, correction)
    table.metadata["calibration"] = {
        **record,
        "timed": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "measurement": backend.settings.to_dict(),
        "drift": {"parts": len(ratios), "median": ratios[len(ratios) // 2], "min": ratios[0], "max": ratios[-1]}
        if ratios else None}
    return correction


def _measure_parts(table: LatencyTable, parts: Iterable[Part], backend: Backend, journal: _Journal,
                   done: dict[str, list[Timing]], *, progress: bool, desc: str) -> int:
    """Time every part the table lacks in interleaved passes (keeping the passes in ``done``); returns how many."""
    todo = [p for p in parts if p.signature not in table.entries]
    last_save = time.monotonic()

    def finished(signature: str, timing: Timing) -> None:
        nonlocal last_save
        table.entries[signature] = Entry(timing.median, timing.p10, timing.p90, timing.repeats, "measured")
        if time.monotonic() - last_save > 10:
            save_table(table)
            last_save = time.monotonic()

    jobs = [TimingJob(p.signature, p.input_shape, lambda p=p: backend.part_model(p)) for p in todo]
    time_interleaved(backend, jobs, done=done, on_pass=journal.add_pass, on_done=finished, progress=progress,
                     desc=desc)
    return len(todo)


def _start(space: SearchSpace, backend: Backend, path: Path, *, only_missing: bool,
           recalibrate: bool) -> tuple[LatencyTable, dict[str, list[Timing]], dict[str, Any]]:
    """The table to continue (or a new one), the journal's finished passes and this run's metadata."""
    jpath = journal_path(path)
    metadata = table_metadata(space, backend)
    if not (path.exists() or jpath.exists()):
        return LatencyTable(metadata=metadata, path=path), {}, metadata
    if not only_missing:
        what = f"{path} already exists" if path.exists() else f"an interrupted build left {jpath}"
        raise LatencyTableError(f"{what}; add --only-missing to keep its measured entries and measure only what "
                                "is missing, or choose another -o path")
    # --recalibrate refits the correction, so a table whose correction fails the load check is fine here
    table = load_table(path, force=recalibrate) if path.exists() else LatencyTable(metadata=metadata, path=path)
    table.warnings.clear()
    j_meta, j_entries, done = _read_journal(jpath)
    check_same_measurements(path, table.metadata, metadata)
    if j_meta is not None:
        check_same_measurements(jpath, j_meta, metadata)
    for sig, entry in j_entries.items():
        table.entries.setdefault(sig, entry)
    table.path = path
    return table, done, metadata


def _convert_first(table: LatencyTable, space: SearchSpace, backend: Backend, parts: list[Part], *, calibration: int,
                   calibrating: bool, jobs: int, progress: bool) -> None:
    """The models this build will time, converted in ``jobs`` processes before any timing starts."""
    todo: list[Part | ArchSpec] = [p for p in parts if p.signature not in table.entries]
    if calibrating or todo:
        archs = [arch for _, _, arch in calibration_archs(space, calibration)]
        todo += archs + [p for a in archs for p in arch_parts(a)]
    convert_ahead(backend.format, todo, jobs, progress=progress, desc=f"converting for {table.path.name}"
                  if table.path is not None else "converting")


def _build(space: SearchSpace, backend: Backend, path: Path, *, only_missing: bool, calibration: int,
           references: bool, progress: bool, recalibrate: bool, jobs: int = 1) -> LatencyTable:
    table, done, metadata = _start(space, backend, path, only_missing=only_missing, recalibrate=recalibrate)
    jpath = journal_path(path)
    journal = _Journal(jpath, metadata)
    cache = backend.format.cache
    if backend.format.name != "onnx":  # slow conversions are kept on disk until the build is done
        cache.folder = cache_folder(path)
    try:
        parts = list(space_parts(space, references=references))
        if cache.folder is not None:
            _convert_first(table, space, backend, parts, calibration=calibration, jobs=jobs, progress=progress,
                           calibrating=recalibrate or "calibration" not in table.metadata)
        n = _measure_parts(table, parts, backend, journal, done, progress=progress, desc=f"measuring {path.name}")
        if n or recalibrate or "calibration" not in table.metadata:
            table.correction = calibrate(table, space, backend, networks=calibration, progress=progress)
        table.metadata["complete"] = True
        save_table(table)
    except BaseException:
        with suppress(OSError):  # a full disk: the journal still holds every finished pass
            save_table(table)  # everything measured so far, atomically; the journal stays for --only-missing
        raise
    finally:
        journal.close()
    jpath.unlink(missing_ok=True)
    cache.remove_folder()
    return table


def build_table(space: SearchSpace, backend: Backend, path: str | os.PathLike, *, only_missing: bool = False,
                calibration: int = DEFAULT_CALIBRATION, references: bool = True, progress: bool = True,
                recalibrate: bool = False, jobs: int = 1) -> LatencyTable:
    """Measure every part of ``space`` into the table at ``path`` and calibrate it (see the module doc).

    ``jobs``: processes that convert the models before any timing starts, for formats whose conversion
    is slow (LiteRT); ONNX exports are made as they are timed.

    ``only_missing`` continues an existing or interrupted table; ``recalibrate`` (which implies it)
    also re-times the calibration and refits the correction when no entry was missing. The table is locked
    (``TABLE.lock``, :func:`nas.latency.output.table_lock`) while the build runs: a second build (or ``nas lut
    add``) on it is refused."""
    path = Path(path)
    if not 0 <= calibration <= MAX_CALIBRATION:
        raise LatencyTableError(f"--calibration: expected 0 to {MAX_CALIBRATION} networks, got {calibration}")
    if recalibrate and not (path.exists() or journal_path(path).exists()):
        raise LatencyTableError(f"{path}: no table to recalibrate; build it first (without --recalibrate)")
    check_output(path, what="the table")
    after = (f"everything measured so far is in {path} and {journal_path(path).name}: free some space, then re-run "
             "with --only-missing")
    with writing(path, "the table", after=after):
        path.parent.mkdir(parents=True, exist_ok=True)
        with table_lock(path):
            return _build(space, backend, path, only_missing=only_missing or recalibrate, calibration=calibration,
                          references=references, progress=progress, recalibrate=recalibrate, jobs=jobs)


def add_entries(table: LatencyTable, archs: Iterable[ArchSpec], *, progress: bool = True,
                backend: Backend | None = None) -> int:
    """Measure (on this machine, which must be the table's device) every missing part of ``archs``.

    The missing parts are timed together with the table's protocol (its passes, interleaved
    over them) and each is saved into the table as soon as its last pass is done.
    """
    estimator = TableEstimator(table, on_missing="measure", save=True, backend=backend)  # refuses another device
    archs = list(archs)
    for i, arch in enumerate(archs):  # parts of another input size or class count would make the table unloadable
        check_table_for_arch(table, arch, arch_name=f"network {i + 1}")
    missing: dict[str, Part] = {}
    for arch in archs:
        for part in arch_parts(arch):
            if part.signature not in table.entries:
                missing.setdefault(part.signature, part)

    def finished(signature: str, timing: Timing) -> None:
        table.entries[signature] = Entry(timing.median, timing.p10, timing.p90, timing.repeats, "measured")
        if table.path is not None:
            save_table(table)

    measuring = estimator.measuring_backend()
    with table_lock(table.path) if table.path is not None else nullcontext():
        if table.path is not None:  # the file as it is now: what another process saved since it was read is kept
            fresh = load_table(table.path, force=True)
            check_same_measurements(table.path, fresh.metadata, table.metadata)
            table.metadata, table.correction, table.entries = fresh.metadata, fresh.correction, dict(fresh.entries)
            missing = {s: p for s, p in missing.items() if s not in table.entries}
        jobs = [TimingJob(p.signature, p.input_shape, lambda p=p: measuring.part_model(p)) for p in missing.values()]
        time_interleaved(measuring, jobs, on_done=finished, progress=progress,
                         desc="measuring missing parts")
    return len(missing)
