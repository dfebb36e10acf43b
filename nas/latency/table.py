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

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nas._json import refuse_repeated_keys
from nas.atomic import atomic_write_json
from nas.errors import LatencyTableError
from nas.latency.signature import parse_signature

__all__ = ["SCHEMA_VERSION", "Entry", "Correction", "LatencyTable", "load_table", "save_table", "REQUIRED_METADATA",
           "ENTRY_SOURCES"]

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


def save_table(table: LatencyTable, path: str | os.PathLike | None = None) -> Path:
    """Write atomically (temp file + rename): an interrupted save never corrupts the table."""
    target = Path(path) if path is not None else table.path
    if target is None:
        raise ValueError("save_table needs a path")
    atomic_write_json(target, table.to_dict(), indent=1, sort_keys=False)
    table.path = target
    return target


# ----------------------------------------------------------------------------------- loading
def _positive(source: str, where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise LatencyTableError(f"{source}: {where}: expected a positive, finite number of milliseconds, got {value!r}")
    return float(value)


def _entry(source: str, signature: str, raw: Any) -> Entry:
    where = f"entries[{signature!r}]"
    if not isinstance(raw, dict):
        raise LatencyTableError(f"{source}: {where}: expected an object with median/p10/p90/repeats")
    unknown = sorted(set(raw) - {"median", "p10", "p90", "repeats", "source"})
    if unknown:
        raise LatencyTableError(f"{source}: {where}: unknown key(s) {unknown}")
    for key in ("median", "p10", "p90", "repeats"):
        if key not in raw:
            raise LatencyTableError(f"{source}: {where}: missing {key!r}")
    median = _positive(source, f"{where}.median", raw["median"])
    p10 = _positive(source, f"{where}.p10", raw["p10"])
    p90 = _positive(source, f"{where}.p90", raw["p90"])
    if not p10 <= median <= p90:
        raise LatencyTableError(f"{source}: {where}: expected p10 <= median <= p90, got {p10}, {median}, {p90}")
    repeats = raw["repeats"]
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise LatencyTableError(f"{source}: {where}.repeats: expected a positive integer, got {repeats!r}")
    src = raw.get("source", "measured")
    if src not in ENTRY_SOURCES:
        raise LatencyTableError(f"{source}: {where}.source: expected one of {list(ENTRY_SOURCES)}, got {src!r}")
    return Entry(median, p10, p90, repeats, src)


#: The correction of a table without whole-network calibration (published YAML tables are imported with it).
IDENTITY_CORRECTION = '{"scale": 1, "offset_ms": 0, "per_part_overhead_ms": 0}'
#: Correction fields every version-1 table has; ``boundary_ms_per_kelement`` came later and defaults to 0.
CORRECTION_REQUIRED: tuple[str, ...] = ("scale", "offset_ms", "per_part_overhead_ms")


def _correction(source: str, data: dict[str, Any]) -> Correction:
    """The table's correction; refused when absent (every writer records one, identity included)."""
    if "correction" not in data:
        raise LatencyTableError(
            f"{source}: correction: missing; every table written by 'nas lut build' or 'nas lut import' has one. "
            "Restore it from the original table, or, to predict plain sums of the parts, write "
            f"\"correction\": {IDENTITY_CORRECTION}")
    raw = data["correction"]
    if not isinstance(raw, dict):
        raise LatencyTableError(f"{source}: correction: expected an object such as {IDENTITY_CORRECTION}, "
                                f"got {raw!r}")
    unknown = sorted(set(raw) - {*CORRECTION_REQUIRED, "boundary_ms_per_kelement", "method", "fitted_on"})
    if unknown:
        raise LatencyTableError(f"{source}: correction: unknown key(s) {unknown}")
    values = {}
    for key in (*CORRECTION_REQUIRED, "boundary_ms_per_kelement"):
        if key not in raw and key in CORRECTION_REQUIRED:
            raise LatencyTableError(f"{source}: correction.{key}: missing; a correction needs "
                                    f"{list(CORRECTION_REQUIRED)} (the identity: {IDENTITY_CORRECTION})")
        v = raw.get(key, 0.0)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise LatencyTableError(f"{source}: correction.{key}: expected a finite number, got {v!r}")
        values[key] = float(v)
    if values["scale"] <= 0:
        raise LatencyTableError(f"{source}: correction.scale: expected > 0, got {values['scale']}")
    return Correction(**values, method=str(raw.get("method", "")), fitted_on=int(raw.get("fitted_on", 0)))


def parse_table(data: Any, *, source: str) -> LatencyTable:
    if not isinstance(data, dict):
        raise LatencyTableError(f"{source}: expected a JSON object at the top level")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise LatencyTableError(f"{source}: schema_version: this version of nas reads schema {SCHEMA_VERSION}, "
                                f"the file says {version!r}; rebuild the table with 'nas lut build'")
    unknown = sorted(set(data) - {"schema_version", "metadata", "entries", "correction"})
    if unknown:
        raise LatencyTableError(f"{source}: unknown top-level key(s) {unknown}")
    meta = data.get("metadata")
    if not isinstance(meta, dict):
        raise LatencyTableError(f"{source}: metadata: missing or not an object")
    for key in REQUIRED_METADATA:
        if key not in meta:
            raise LatencyTableError(f"{source}: metadata.{key}: missing; tables record how and where they were "
                                    "measured (see latency_tables/README.md)")
    if meta["units"] != "ms":
        raise LatencyTableError(f"{source}: metadata.units: expected 'ms', got {meta['units']!r}")
    for key in ("threads", "batch_size", "input_size", "in_ch", "num_classes"):
        v = meta[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise LatencyTableError(f"{source}: metadata.{key}: expected a positive integer, got {v!r}")
    space = meta["space"]
    if not isinstance(space, dict) or not {"name", "digest"} <= set(space):
        raise LatencyTableError(f"{source}: metadata.space: expected an object with 'name', 'file' and 'digest'")
    raw_entries = data.get("entries")
    if not isinstance(raw_entries, dict):
        raise LatencyTableError(f"{source}: entries: missing or not an object")
    entries: dict[str, Entry] = {}
    for signature, raw in raw_entries.items():
        try:
            part = parse_signature(signature)
        except LatencyTableError as exc:
            raise LatencyTableError(f"{source}: entries: {exc}") from None
        if part.name == "stem" and part.in_ch != meta["in_ch"]:
            raise LatencyTableError(f"{source}: entries[{signature!r}]: stem input has {part.in_ch} channels but the "
                                    f"table is for {meta['in_ch']}-channel inputs")
        if part.name == "stem" and part.resolution != meta["input_size"]:
            raise LatencyTableError(f"{source}: entries[{signature!r}]: stem input is {part.resolution}x"
                                    f"{part.resolution} but metadata.input_size is {meta['input_size']}")
        entries[signature] = _entry(source, signature, raw)
    return LatencyTable(metadata=meta, entries=entries, correction=_correction(source, data))


#: The shipped tables of a source checkout (absent when nas is installed from a wheel).
SHIPPED_TABLES = Path(__file__).resolve().parents[2] / "latency_tables"
_ZIP_MAGIC = b"PK\x03\x04"


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
    """The file's text; refuses a missing, unreadable, zip or otherwise binary file, naming it."""
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LatencyTableError(f"{source}: latency table not found; {tables_nearby(path)}. Build one with "
                                f"'nas lut build --space FILE -o {source}'") from None
    except OSError as exc:
        raise LatencyTableError(f"{source}: cannot read ({exc.strerror})") from None
    hint = "tables are JSON files written by 'nas lut build' or 'nas lut import'"
    if raw.startswith(_ZIP_MAGIC):
        raise LatencyTableError(f"{source}: not a JSON latency table: it is a zip archive (a device bundle from "
                                f"'nas lut bundle' runs on the device; import its results.json with 'nas lut "
                                f"import'); {hint}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LatencyTableError(f"{source}: not a JSON latency table: byte {exc.start} (0x{raw[exc.start]:02x}) is "
                                f"not UTF-8 text; {hint}") from None


def load_table(path: str | os.PathLike) -> LatencyTable:
    path = Path(path)
    source = str(path)
    text = _read_text(path)
    try:
        data = json.loads(text, object_pairs_hook=refuse_repeated_keys(
            lambda key: LatencyTableError(f"{source}: duplicate key {key!r}; each signature may appear only once")))
    except json.JSONDecodeError as exc:
        raise LatencyTableError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno}); tables are JSON "
                                "files written by 'nas lut build' or 'nas lut import'") from None
    except ValueError as exc:  # NaN/Infinity literals are rejected below; this catches other decoder errors
        raise LatencyTableError(f"{source}: {exc}") from None
    table = parse_table(data, source=source)
    table.path = path
    return table
