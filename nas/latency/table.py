"""The latency table: JSON format, validation on load, atomic save.

See ``latency_tables/README.md`` for the format. In short::

    {
      "schema_version": 1,
      "metadata": {...device, backend, threads, batch, input size, space, measurement...},
      "entries": {"<signature>": {"median": ms, "p10": ms, "p90": ms, "repeats": n, "source": "measured"}},
      "correction": {"scale": a, "offset_ms": b, "per_part_overhead_ms": o, "boundary_ms_per_kelement": e,
                     "method": "...", "fitted_on": n}
    }

A network's predicted latency is ``a * (sum of its parts' medians - (n_parts - 1) * o - e * K) + b``:
each isolated part was timed with one call overhead ``o`` while the whole network pays it
once; ``K`` is the thousands of tensor elements crossing the network's internal part
boundaries (:func:`~nas.latency.signature.boundary_kelements`), which isolated parts move
through the runtime's boundary and a whole network mostly does not; ``a, b`` (and ``e``
when it helps) are fitted on whole networks measured end to end (see
:mod:`nas.latency.build`). Tables without ``boundary_ms_per_kelement`` have ``e = 0``.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nas.atomic import atomic_write_json
from nas.errors import LatencyTableError
from nas.latency.fields import MAX_JSON_BYTES, MAX_MS, Fields, decode_text, parse_json, read_bounded, shown
from nas.latency.signature import parse_signature

__all__ = ["SCHEMA_VERSION", "Entry", "Correction", "LatencyTable", "load_table", "save_table", "REQUIRED_METADATA",
           "ENTRY_SOURCES", "parse_table", "correction_problem", "calibration_misses", "CALIBRATION_TOLERANCE", "CALIBRATION_SLACK_MS"]

SCHEMA_VERSION = 1
REQUIRED_METADATA: tuple[str, ...] = (
    "device", "backend", "backend_version", "execution_provider", "threads", "batch_size", "input_size",
    "in_ch", "num_classes", "space", "created", "units", "measurement",
)
ENTRY_SOURCES: tuple[str, ...] = ("measured", "interpolated", "imported")


@dataclass(frozen=True)
class Entry:
    median: float
    p10: float
    p90: float
    repeats: int
    source: str = "measured"

    def to_dict(self) -> dict[str, Any]:
        return {"median": round(self.median, 6), "p10": round(self.p10, 6), "p90": round(self.p90, 6),
                "repeats": self.repeats, "source": self.source}


@dataclass(frozen=True)
class Correction:
    """Maps a sum of isolated part latencies to a whole-network latency (see module doc)."""

    scale: float = 1.0
    offset_ms: float = 0.0
    per_part_overhead_ms: float = 0.0
    method: str = "none: plain sum of the parts"
    fitted_on: int = 0
    boundary_ms_per_kelement: float = 0.0

    def apply(self, part_sum_ms: float, n_parts: int, boundary_kelements: float = 0.0) -> float:
        inner = part_sum_ms - (n_parts - 1) * self.per_part_overhead_ms - boundary_kelements * self.boundary_ms_per_kelement
        return self.scale * inner + self.offset_ms

    def describe(self) -> str:
        """The formula with its numbers, for people."""
        boundary = (f" - {self.boundary_ms_per_kelement * 1000:.3f} us x boundary kelements"
                    if self.boundary_ms_per_kelement else "")
        return (f"latency = {self.scale:.4f} x (sum of parts - (n - 1) x {self.per_part_overhead_ms * 1000:.1f} us"
                f"{boundary}) + {self.offset_ms:.4f} ms")

    def to_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "offset_ms": self.offset_ms, "per_part_overhead_ms": self.per_part_overhead_ms,
                "boundary_ms_per_kelement": self.boundary_ms_per_kelement, "method": self.method,
                "fitted_on": self.fitted_on}


@dataclass
class LatencyTable:
    """A loaded table. ``entries`` may grow (on-demand measurement); save with :func:`save_table`."""

    metadata: dict[str, Any]
    entries: dict[str, Entry] = field(default_factory=dict)
    correction: Correction = field(default_factory=Correction)
    path: Path | None = None
    #: problems loading accepted with ``force`` (printed by the CLI as warnings); never saved
    warnings: list[str] = field(default_factory=list, compare=False)

    @property
    def name(self) -> str:
        return str(self.path) if self.path else "<latency table>"

    @property
    def space_file(self) -> str | None:
        return self.metadata.get("space", {}).get("file")

    @property
    def space_digest(self) -> str | None:
        return self.metadata.get("space", {}).get("digest")

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "metadata": self.metadata,
            "correction": self.correction.to_dict(),
            "entries": {k: self.entries[k].to_dict() for k in sorted(self.entries)},
        }

    def with_correction(self, correction: Correction) -> LatencyTable:
        return replace(self, correction=correction)

    def latencies_digest(self, signatures: Iterable[str] | None = None) -> str:
        """SHA-256 of what predictions read: the medians of ``signatures`` (default: every entry; ``None`` for one
        the table lacks) and the correction. Another table of the same device and space (other threads,
        re-measured, re-fitted) has another digest; entries added for other parts (``nas lut add``, on-demand
        measurements of widths a space does not list) do not change the digest of ``signatures``."""
        wanted = sorted(self.entries) if signatures is None else sorted(set(signatures))
        data = {"entries": {k: (self.entries[k].median if k in self.entries else None) for k in wanted},
                "correction": self.correction.to_dict()}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def save_table(table: LatencyTable, path: str | os.PathLike | None = None) -> Path:
    """Write atomically (temp file + rename): an interrupted save never corrupts the table."""
    target = Path(path) if path is not None else table.path
    if target is None:
        raise ValueError("save_table needs a path")
    atomic_write_json(target, table.to_dict(), indent=1, sort_keys=False)
    table.path = target
    return target


# ----------------------------------------------------------------------------------- loading
#: What the calibration check allows: a calibration network's prediction may be off its measurement by this share of
#: the measurement plus :data:`CALIBRATION_SLACK_MS` (see ``latency_tables/README.md``, *Correction*).
CALIBRATION_TOLERANCE = 0.25
CALIBRATION_SLACK_MS = 0.1
#: The correction of a table without whole-network calibration (published YAML tables are imported with it).
IDENTITY_CORRECTION = '{"scale": 1, "offset_ms": 0, "per_part_overhead_ms": 0}'
#: Correction fields every version-1 table has; ``boundary_ms_per_kelement`` came later and defaults to 0.
CORRECTION_REQUIRED: tuple[str, ...] = ("scale", "offset_ms", "per_part_overhead_ms")
_META_TEXT: tuple[str, ...] = ("device", "backend", "backend_version", "execution_provider", "created")
_META_OPTIONAL_TEXT: tuple[str, ...] = ("cpu", "gpu", "tool")
_META_INTS: dict[str, int] = {"threads": 4096, "batch_size": 4096, "input_size": 65_536, "in_ch": 65_536,
                              "num_classes": 1_000_000}
_ROW_MS: tuple[str, ...] = ("part_sum_ms", "measured_ms")


def _entry(f: Fields, signature: str, raw: Any) -> Entry:
    where = f"entries[{signature!r}]"
    if not isinstance(raw, dict):
        raise f.fail(where, "expected an object with median/p10/p90/repeats")
    unknown = sorted(set(raw) - {"median", "p10", "p90", "repeats", "source"})
    if unknown:
        raise f.fail(where, f"unknown key(s) {unknown}")
    for key in ("median", "p10", "p90", "repeats"):
        if key not in raw:
            raise f.fail(where, f"missing {key!r}")
    median, p10, p90 = (f.ms(raw[key], f"{where}.{key}") for key in ("median", "p10", "p90"))
    if not p10 <= median <= p90:
        raise f.fail(where, f"expected p10 <= median <= p90, got {p10}, {median}, {p90}")
    repeats = f.integer(raw["repeats"], f"{where}.repeats", what="a positive integer")
    src = raw.get("source", "measured")
    if src not in ENTRY_SOURCES:
        raise f.fail(f"{where}.source", f"expected one of {list(ENTRY_SOURCES)}, got {shown(src)}")
    return Entry(median, p10, p90, repeats, src)


def _correction(f: Fields, data: dict[str, Any]) -> Correction:
    """The table's correction, every field typed and in range; refused when absent (every writer records one)."""
    if "correction" not in data:
        raise f.fail("correction", "missing; every table written by 'nas lut build' or 'nas lut import' has one. "
                     "Restore it from the original table or refit it ('nas lut build --space SPACE --recalibrate -o "
                     "TABLE'); a table without metadata.calibration (plain sums of the parts) takes the identity, "
                     f"\"correction\": {IDENTITY_CORRECTION}")
    raw = data["correction"]
    if not isinstance(raw, dict):
        raise f.fail("correction", f"expected an object such as {IDENTITY_CORRECTION}, got {shown(raw)}")
    unknown = sorted(set(raw) - {*CORRECTION_REQUIRED, "boundary_ms_per_kelement", "method", "fitted_on"})
    if unknown:
        raise f.fail("correction", f"unknown key(s) {unknown}")
    for key in CORRECTION_REQUIRED:
        if key not in raw:
            raise f.fail(f"correction.{key}", f"missing; a correction needs {list(CORRECTION_REQUIRED)} (the "
                                              f"identity: {IDENTITY_CORRECTION})")
    scale = f.number(raw["scale"], "correction.scale", low=0.0, high=100.0, low_open=True,
                     what="a number > 0 and <= 100")
    offset = f.number(raw["offset_ms"], "correction.offset_ms", what=f"a number of ms within +-{MAX_MS:g}")
    overhead = f.number(raw["per_part_overhead_ms"], "correction.per_part_overhead_ms", low=0.0,
                        what=f"a number of ms >= 0 and <= {MAX_MS:g} (the time of one call)")
    boundary = f.number(raw.get("boundary_ms_per_kelement", 0.0), "correction.boundary_ms_per_kelement", low=0.0,
                        what=f"a number >= 0 and <= {MAX_MS:g}")
    method = raw.get("method", "")
    if not isinstance(method, str):
        raise f.fail("correction.method", f"expected a string, got {shown(method)}")
    fitted_on = f.integer(raw.get("fitted_on", 0), "correction.fitted_on", minimum=0,
                          what="an integer >= 0 (the number of calibration networks)")
    return Correction(scale=scale, offset_ms=offset, per_part_overhead_ms=overhead, method=method,
                      fitted_on=fitted_on, boundary_ms_per_kelement=boundary)


def _space(f: Fields, raw: Any) -> None:
    if not isinstance(raw, dict) or not {"name", "digest"} <= set(raw):
        raise f.fail("metadata.space", "expected an object with 'name', 'file' and 'digest'")
    f.text(raw["name"], "metadata.space.name")
    f.text(raw["digest"], "metadata.space.digest")
    f.text(raw.get("file"), "metadata.space.file", optional=True, empty=True)


def _measurement(f: Fields, raw: Any) -> None:
    f.obj(raw, "metadata.measurement")
    for key in ("warmup", "min_repeats", "max_repeats", "passes"):
        if key in raw:
            f.integer(raw[key], f"metadata.measurement.{key}", minimum=0 if key == "warmup" else 1)
    if "min_seconds" in raw:
        f.number(raw["min_seconds"], "metadata.measurement.min_seconds", low=0.0, what="a number of seconds >= 0")
    if "clock" in raw and raw["clock"] not in ("wall", "thread"):
        raise f.fail("metadata.measurement.clock", f"expected 'wall' or 'thread', got {shown(raw['clock'])}")
    if "statistic" in raw:
        f.text(raw["statistic"], "metadata.measurement.statistic")


def _calibration(f: Fields, raw: Any) -> None:
    """``metadata.calibration``: the networks the correction was fitted on, as far as the checks use them."""
    f.obj(raw, "metadata.calibration")
    networks = raw.get("networks", [])
    if not isinstance(networks, list):
        raise f.fail("metadata.calibration.networks", f"expected a list, got {type(networks).__name__}")
    for i, row in enumerate(networks):
        where = f"metadata.calibration.networks[{i}]"
        f.obj(row, where, ("parts", *_ROW_MS))
        f.integer(row["parts"], f"{where}.parts")
        for key in _ROW_MS:
            f.ms(row[key], f"{where}.{key}")
        if "boundary_kelements" in row:
            f.number(row["boundary_kelements"], f"{where}.boundary_kelements", low=0.0, high=1e12,
                     what="a number >= 0")
        if "seed" in row:
            f.integer(row["seed"], f"{where}.seed", minimum=0)
    if raw.get("fit_mape_percent") is not None:
        f.number(raw["fit_mape_percent"], "metadata.calibration.fit_mape_percent", low=0.0, high=1e6,
                 what="a percentage >= 0")
    if raw.get("drift") is not None:
        drift = f.obj(raw["drift"], "metadata.calibration.drift", ("parts", "median", "min", "max"))
        f.integer(drift["parts"], "metadata.calibration.drift.parts", minimum=0)
        for key in ("median", "min", "max"):
            f.number(drift[key], f"metadata.calibration.drift.{key}", low=0.0, high=1e6, what="a ratio >= 0")


def _metadata(f: Fields, meta: Any) -> dict[str, Any]:
    if not isinstance(meta, dict):
        raise f.fail("metadata", "missing or not an object")
    for key in REQUIRED_METADATA:
        if key not in meta:
            raise f.fail(f"metadata.{key}", "missing; tables record how and where they were measured (see "
                                            "latency_tables/README.md)")
    if meta["units"] != "ms":
        raise f.fail("metadata.units", f"expected 'ms', got {shown(meta['units'])}")
    for key, maximum in _META_INTS.items():
        f.integer(meta[key], f"metadata.{key}", maximum=maximum, what=f"a positive integer (at most {maximum})")
    for key in _META_TEXT:
        f.text(meta[key], f"metadata.{key}")
    for key in _META_OPTIONAL_TEXT:
        f.text(meta.get(key), f"metadata.{key}", optional=True, empty=True)
    _space(f, meta["space"])
    _measurement(f, meta["measurement"])
    if "complete" in meta:
        f.boolean(meta["complete"], "metadata.complete")
    if "calibration" in meta:
        _calibration(f, meta["calibration"])
    for key in ("remote", "import"):
        if key in meta:
            f.obj(meta[key], f"metadata.{key}")
    return meta


def _entries(f: Fields, raw_entries: Any, meta: dict[str, Any]) -> dict[str, Entry]:
    if not isinstance(raw_entries, dict):
        raise f.fail("entries", "missing or not an object")
    entries: dict[str, Entry] = {}
    for signature, raw in raw_entries.items():
        try:
            part = parse_signature(signature)
        except LatencyTableError as exc:
            raise LatencyTableError(f"{f.source}: entries: {exc}") from None
        if part.name == "stem" and part.in_ch != meta["in_ch"]:
            raise f.fail(f"entries[{signature!r}]", f"stem input has {part.in_ch} channels but the table is for "
                                                    f"{meta['in_ch']}-channel inputs")
        if part.name == "stem" and part.resolution != meta["input_size"]:
            raise f.fail(f"entries[{signature!r}]", f"stem input is {part.resolution}x{part.resolution} but "
                                                    f"metadata.input_size is {meta['input_size']}")
        entries[signature] = _entry(f, signature, raw)
    return entries


# ------------------------------------------------------------------------ the correction check
def _refit_hint(table: LatencyTable, source: str) -> str:
    """How to get a trustworthy correction for ``table`` (read from ``source``)."""
    meta = table.metadata
    if "remote" in meta:
        return "measure the device again with its bundle and import the new results.json"
    if str(meta.get("backend", "")).startswith("imported"):
        return f"import the published table again (it gets the identity correction {IDENTITY_CORRECTION})"
    return (f"refit it on the table's device: nas lut build --space {table.space_file or 'SPACE.yaml'} --backend "
            f"{meta['backend']} --threads {meta['threads']} --recalibrate -o {source}")


def _uncalibrated_problem(table: LatencyTable) -> str | None:
    c = table.correction
    if (c.scale, c.offset_ms, c.boundary_ms_per_kelement) != (1.0, 0.0, 0.0):
        return (f"scale {c.scale:g}, offset_ms {c.offset_ms:g}, boundary_ms_per_kelement "
                f"{c.boundary_ms_per_kelement:g}, but metadata.calibration records no whole networks it was fitted "
                f"on; a table without calibration networks has the identity correction {IDENTITY_CORRECTION} (plus "
                "a measured per_part_overhead_ms)")
    if table.entries:
        typical = statistics.median(e.median for e in table.entries.values())
        if c.per_part_overhead_ms > typical:
            return (f"per_part_overhead_ms {c.per_part_overhead_ms:g} ms is more than a typical part takes (median "
                    f"entry {typical:.4g} ms); every part timed alone paid the call overhead once, so it cannot be "
                    "larger than the parts")
    return None


def calibration_misses(correction: Correction, rows: Sequence[dict[str, Any]]) -> list[tuple[float, Any, float, float]]:
    """The calibration ``rows`` that ``correction`` predicts implausibly: not positive, or off by more than
    :data:`CALIBRATION_TOLERANCE` of the measurement plus :data:`CALIBRATION_SLACK_MS`; each as (relative
    error, seed, predicted ms, measured ms)."""
    bad = []
    for row in rows:
        predicted = correction.apply(row["part_sum_ms"], row["parts"], row.get("boundary_kelements", 0.0))
        measured = row["measured_ms"]
        error = predicted - measured
        if not (predicted > 0 and abs(error) <= CALIBRATION_TOLERANCE * measured + CALIBRATION_SLACK_MS):
            bad.append((abs(error) / measured, row.get("seed", "?"), predicted, measured))
    return bad


def _calibration_problem(table: LatencyTable, rows: list[dict[str, Any]]) -> str | None:
    bad = calibration_misses(table.correction, rows)
    if not bad:
        return None
    share, seed, predicted, measured = max(bad)
    return (f"predicts {len(bad)} of the {len(rows)} calibration networks it was fitted on outside +-"
            f"{CALIBRATION_TOLERANCE * 100:g} % + {CALIBRATION_SLACK_MS:g} ms of their measurement (worst: network "
            f"seed {seed}, {predicted:.4g} ms predicted, {measured:.4g} ms measured, {share * 100:.0f} % off): it "
            "does not describe this table's networks and every prediction would be wrong")


def correction_problem(table: LatencyTable) -> str | None:
    """Why ``table``'s correction makes its predictions implausible (a sentence), or None.

    With calibration networks (``metadata.calibration.networks``): the correction, applied to each network's
    parts as timed for the fit, must predict it positive and within :data:`CALIBRATION_TOLERANCE` of its
    measurement plus :data:`CALIBRATION_SLACK_MS`. Without: it must be the identity, with a per-part overhead
    no larger than the median entry."""
    rows = table.metadata.get("calibration", {}).get("networks", [])
    return _calibration_problem(table, rows) if rows else _uncalibrated_problem(table)


def _check_correction(table: LatencyTable, source: str, force: bool) -> None:
    problem = correction_problem(table)
    if problem is None:
        return
    hint = _refit_hint(table, source)
    message = f"{source}: correction: {problem}. {hint[0].upper()}{hint[1:]}"
    if not force:
        raise LatencyTableError(f"{message}; or pass --force to use it anyway with a warning ('nas lut predict', "
                                "'validate' and 'import' take it)")
    table.warnings.append(f"{message}; used anyway (--force): predictions from this table are not to be trusted")


def parse_table(data: Any, *, source: str, force: bool = False) -> LatencyTable:
    """A table from parsed JSON, every field checked (see the module doc); ``force`` turns an implausible
    correction (:func:`correction_problem`) from an error into a warning in ``table.warnings``."""
    f = Fields(source)
    if not isinstance(data, dict):
        raise f.fail("", "expected a JSON object at the top level")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise f.fail("schema_version", f"this version of nas reads schema {SCHEMA_VERSION}, the file says "
                                       f"{shown(version)}; rebuild the table with 'nas lut build'")
    unknown = sorted(set(data) - {"schema_version", "metadata", "entries", "correction"})
    if unknown:
        raise LatencyTableError(f"{source}: unknown top-level key(s) {unknown}")
    meta = _metadata(f, data.get("metadata"))
    entries = _entries(f, data.get("entries"), meta)
    table = LatencyTable(metadata=meta, entries=entries, correction=_correction(f, data))
    _check_correction(table, source, force)
    return table


#: The shipped tables of a source checkout (absent when nas is installed from a wheel).
SHIPPED_TABLES = Path(__file__).resolve().parents[2] / "latency_tables"
_HINT = "tables are JSON files written by 'nas lut build' or 'nas lut import'"
_ZIP_HINT = ("a device bundle from 'nas lut bundle' runs on the device; import its results.json with 'nas lut "
             f"import'; {_HINT}")


def _shown(folder: Path) -> str:
    """``folder`` as a user would type it: relative to the working directory where possible."""
    try:
        rel = folder.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return f"{folder}/"
    return "./" if rel == Path(".") else f"{rel}/"


def _json_files(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.glob("*.json") if p.is_file() and not p.name.startswith("."))


def _listing(folder: Path, names: list[str], limit: int = 8) -> str:
    more = f" (and {len(names) - limit} more)" if len(names) > limit else ""
    return f"tables in {_shown(folder)}: {', '.join(names[:limit])}{more}"


def tables_nearby(path: Path) -> str:
    """Which tables exist beside ``path`` (or, where there are none, the shipped ones), for a not-found message."""
    folder = path.parent
    names = _json_files(folder)
    if names:
        return _listing(folder, names)
    here = f"no .json files in {_shown(folder)}" if folder.is_dir() else f"{_shown(folder)} does not exist"
    shipped = _json_files(SHIPPED_TABLES)
    if shipped and not (folder.is_dir() and folder.resolve() == SHIPPED_TABLES):
        return f"{here}; {_listing(SHIPPED_TABLES, shipped)}"
    return here


def _read_text(path: Path) -> str:
    """The file's text; refuses a missing, unreadable, oversized, zip or otherwise binary file, naming it."""
    missing = (f"latency table not found; {tables_nearby(path)}. Build one with 'nas lut build --space FILE "
               f"-o {path}'")
    raw = read_bounded(path, limit=MAX_JSON_BYTES, missing=missing, what="a latency table")
    try:
        return decode_text(raw, str(path), hint=_HINT, zip_hint=_ZIP_HINT)
    except LatencyTableError as exc:
        raise LatencyTableError(str(exc).replace(f"{path}: ", f"{path}: not a JSON latency table: ", 1)) from None


def load_table(path: str | os.PathLike, *, force: bool = False) -> LatencyTable:
    """Read and check the table at ``path`` (see :func:`parse_table`; ``force``: an implausible correction warns)."""
    path = Path(path)
    data = parse_json(_read_text(path), str(path), hint=_HINT)
    table = parse_table(data, source=str(path), force=force)
    table.path = path
    return table
