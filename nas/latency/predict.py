"""Predicting a network's latency from a table.

:class:`LatencyEstimator` is the small interface the search and NetAdapt depend on.
:class:`TableEstimator` answers from a :class:`~nas.latency.table.LatencyTable`. A part
whose signature is missing (NetAdapt proposes widths no space enumerates) is handled by
``on_missing``:

* ``"measure"``: time it now with the table's own backend and settings, store the entry and
  save the table. Only allowed when this machine is the table's device (same CPU model and,
  for GPU tables, a GPU) and its backend is installed, in the version (and with the opset or
  converter) that built the table. The protocol is the table's (the
  minimum over its ``passes`` of each pass's median), but one part measured on its own cannot
  interleave its passes with other parts': they run back to back (~``passes`` x 0.1 s), so
  they may all fall in one slow stretch of a shared host, and such an entry is noisier than
  the built ones. ``nas lut add`` measures all the parts it is given together, interleaved.
* ``"interpolate"``: estimate it from measured entries of the same kind (type, kernel, stride,
  SE, activation, CSE settings, resolution), piecewise-linearly in the part's multiply-adds
  between the nearest measured neighbours (linear extrapolation beyond them). The result is
  marked ``interpolated`` and cached in memory (not written into the table).
* ``"auto"``: ``measure`` when the table's device is this machine, else ``interpolate``.
* ``"error"``: raise :class:`~nas.errors.MissingLatencyEntryError` naming the signature and
  the command that adds it.

Identity skip blocks are no parts (:mod:`nas.latency.signature`): they add no latency, and the
correction neither counts them among the parts nor charges them a per-part overhead.

The predicted total is the table's correction applied to the parts (see
:class:`~nas.latency.table.Correction`), but never less than the slowest single part: a
network runs every one of its parts, so a fitted offset or boundary term can never make it
faster than that (without the floor, a correction fitted on large networks can extrapolate
to a negative latency for the smallest ones).
"""

from __future__ import annotations

import bisect
import sys
from contextlib import ExitStack
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from nas.arch import ArchSpec, BlockSpec, HeadSpec, StemSpec
from nas.arch.cost import block_cost, head_cost, stem_cost
from nas.errors import LatencyTableError, MissingLatencyEntryError
from nas.latency.signature import Part, arch_parts, boundary_kelements, parse_signature
from nas.latency.table import Correction, Entry, LatencyTable, load_table, save_table

__all__ = ["part_macs", "PartLatency", "Prediction", "LatencyEstimator", "TableEstimator", "ON_MISSING",
           "is_local_table", "check_table_for_space", "check_table_for_arch"]

ON_MISSING: tuple[str, ...] = ("auto", "measure", "interpolate", "error")


@dataclass(frozen=True)
class PartLatency:
    name: str
    signature: str
    ms: float
    source: str  # measured | imported | interpolated | identity (an identity skip block: 0 ms, no entry)


@dataclass(frozen=True)
class Prediction:
    total_ms: float
    part_sum_ms: float
    parts: tuple[PartLatency, ...]
    correction: Correction
    boundary_kelements: float = 0.0  # see nas.latency.signature.boundary_kelements

    @property
    def interpolated(self) -> tuple[str, ...]:
        return tuple(p.signature for p in self.parts if p.source == "interpolated")

    def to_dict(self) -> dict[str, Any]:
        return {"total_ms": self.total_ms, "part_sum_ms": self.part_sum_ms,
                "boundary_kelements": self.boundary_kelements, "correction": self.correction.to_dict(),
                "parts": [{"name": p.name, "signature": p.signature, "ms": p.ms, "source": p.source}
                          for p in self.parts]}


class LatencyEstimator(ABC):
    """Predicts the latency of a network (milliseconds) on one device."""

    @abstractmethod
    def predict(self, arch: ArchSpec) -> Prediction: ...

    def latency_ms(self, arch: ArchSpec) -> float:
        return self.predict(arch).total_ms


def part_macs(part: Part) -> int:
    """The multiply-adds of one part (stem, block or head) at its resolution."""
    spec = part.spec
    if isinstance(spec, StemSpec):
        return stem_cost(spec, in_ch=part.in_ch, input_size=part.resolution).macs
    if isinstance(spec, BlockSpec):
        return block_cost(spec, resolution=part.resolution).macs
    assert isinstance(spec, HeadSpec)
    return head_cost(spec, in_ch=part.in_ch, resolution=part.resolution, num_classes=part.num_classes).macs


def _kind_key(part: Part) -> tuple[Any, ...]:
    """Parts that differ only in channel counts share a key (and are interpolated together)."""
    spec = part.spec
    if isinstance(spec, StemSpec):
        return ("stem", spec.kernel, spec.stride, spec.act, part.resolution)
    if isinstance(spec, BlockSpec):
        return (spec.type, spec.kernel, spec.stride, spec.se, spec.act, spec.cse_reduction, spec.cse_cap,
                spec.has_expansion, part.resolution)
    assert isinstance(spec, HeadSpec)
    return ("head", spec.kind, spec.act, part.num_classes, part.resolution)


def is_local_table(table: LatencyTable) -> bool:
    """Whether this machine can measure entries for ``table``: not imported from a device bundle, the same CPU
    model name, and the table's backend (onnxruntime with its execution provider, or LiteRT with XNNPACK)
    installed here in the version that measured the table, its models made with the same opset or converter
    (an entry timed or converted otherwise would be mixed into a table that names one)."""
    from nas.latency.measure import BACKENDS, LITERT_BACKEND, backend_available, cpu_name, installed_version

    meta = table.metadata
    if "remote" in meta:  # imported from a device bundle: measured there, whatever its CPU name says
        return False
    if meta.get("backend") not in BACKENDS or meta.get("cpu") != cpu_name():
        return False
    if not backend_available(str(meta.get("backend")), meta.get("execution_provider")):
        return False
    if meta.get("backend_version") != installed_version(str(meta.get("backend"))):
        return False
    from nas.latency.formats import model_format

    recorded = meta.get("measurement", {})  # the models' opset or converter (not recorded by older tables)
    wanted = model_format("tflite" if meta.get("backend") == LITERT_BACKEND else "onnx").describe()
    return all(recorded.get(key) in (None, value) for key, value in wanted.items())


def check_table_for_space(table: LatencyTable, space: Any) -> None:
    """Refuse a table made for another space or input size (``space`` is a SearchSpace)."""
    meta = table.metadata
    if meta["input_size"] != space.input_size or meta["in_ch"] != space.in_ch:
        raise LatencyTableError(
            f"{table.name}: metadata.input_size: the table was measured for {meta['input_size']}x{meta['input_size']}"
            f"x{meta['in_ch']} inputs but the space {space.source} uses {space.input_size}x{space.input_size}"
            f"x{space.in_ch}; build a table for this space: nas lut build --space {space.source} -o NEW.json")
    if table.space_digest != space.digest:
        raise LatencyTableError(
            f"{table.name}: metadata.space: the table was built for space '{meta['space'].get('name')}' "
            f"({meta['space'].get('file')}, digest {str(table.space_digest)[:12]}) but this run uses "
            f"'{space.name}' ({space.source}, digest {space.digest[:12]}); pass the table's own space with --space, "
            f"or build a table for this one: nas lut build --space {space.source} -o NEW.json")


def check_table_for_arch(table: LatencyTable, arch: ArchSpec, *, arch_name: str = "the network") -> None:
    """Refuse a table measured for another input size, channel count or number of classes."""
    meta = table.metadata
    want = (arch.input_size, arch.in_ch, arch.num_classes)
    have = (meta["input_size"], meta["in_ch"], meta["num_classes"])
    if want != have:
        raise LatencyTableError(
            f"{table.name}: metadata.input_size/in_ch/num_classes: the table was measured for "
            f"{have[0]}x{have[0]}x{have[1]} inputs and {have[2]} classes, but {arch_name} takes "
            f"{want[0]}x{want[0]}x{want[1]} inputs and has {want[2]} classes; use a table built for this network's "
            "space (nas lut build --space SPACE.yaml -o NEW.json)")


#: Predictions a remembering estimator keeps before it starts again (NAS-Bench-Macro's whole space: 6,561).
_REMEMBERED = 65_536


class TableEstimator(LatencyEstimator):
    def __init__(self, table: LatencyTable, *, on_missing: str = "auto", save: bool = True,
                 backend: Any | None = None, remember: bool = False) -> None:
        """``remember``: keep every prediction (the search-regret grid predicts the same networks thousands of
        times over); only with ``on_missing="error"``, where nothing this estimator does changes its table,
        and only for a table that nobody else changes meanwhile."""
        if on_missing not in ON_MISSING:
            raise ValueError(f"on_missing must be one of {ON_MISSING}, got {on_missing!r}")
        if remember and on_missing != "error":
            raise ValueError(f"remember=True needs on_missing='error' (a table that does not change), got {on_missing!r}")
        self._remembered: dict[ArchSpec, Prediction] | None = {} if remember else None
        self.table = table
        self.save = save and table.path is not None
        local = is_local_table(table)
        if on_missing == "auto":
            on_missing = "measure" if local else "interpolate"
        if on_missing == "measure" and not local and backend is None:
            raise LatencyTableError(
                f"{table.name}: cannot measure missing entries here: the table was measured on "
                f"'{table.metadata.get('device')}' with {table.metadata.get('backend')} "
                f"({table.metadata.get('backend_version')}), not on this machine with the runtime and converter "
                "installed here; use --on-missing interpolate, or build a table here")
        self.on_missing = on_missing
        self._backend = backend
        #: signatures measured here because the table lacked them (saved into the table when ``save``)
        self.measured: list[str] = []
        self._unsaved_said = False  # the warning that the table could not be locked, once
        #: whether some part measured here could not be saved into the table (kept for this run only)
        self.unsaved = False
        self._interpolated: dict[str, float] = {}
        self._groups: dict[tuple[Any, ...], list[tuple[int, float]]] | None = None

    # ---------------------------------------------------------------- missing entries
    def measuring_backend(self) -> Any:
        """The backend that measures missing entries: the table's, with its measurement settings (passes too)."""
        if self._backend is None:
            from nas.latency.measure import MeasureSettings, get_backend

            meta = self.table.metadata
            settings = MeasureSettings.from_metadata(meta.get("measurement", {}))
            self._backend = get_backend(meta["backend"], threads=meta["threads"], settings=settings)
        return self._backend

    def _unsaved(self, why: object) -> None:
        """Keep what was measured for this run only, saying so once."""
        self.unsaved = True
        if not self._unsaved_said:
            self._unsaved_said = True
            print(f"warning: parts measured here are kept for this run only, not saved into the table: {why}",
                  file=sys.stderr)

    def _save(self) -> None:
        """Add the parts measured here to the table on disk, under its lock: the file as it is now (another
        process's entries, a correction re-fitted meanwhile) plus these. A table rebuilt meanwhile with other
        settings (another space, runtime, thread count ...) gets none of them: they are kept for this run."""
        from nas.latency.build import check_same_measurements
        from nas.latency.output import table_lock

        path = self.table.path
        assert path is not None
        held = ExitStack()
        try:
            held.enter_context(table_lock(path))
        except LatencyTableError as exc:  # a build or 'nas lut add' is writing it: keep the entry for this run
            self._unsaved(exc)
            return
        with held:
            try:
                on_disk = load_table(path, force=True)
            except LatencyTableError:
                on_disk = None  # gone or damaged meanwhile: this copy is written
            if on_disk is None:
                save_table(self.table)
                self.unsaved = False  # every part measured here is in the file now
                return
            try:
                check_same_measurements(path, on_disk.metadata, self.table.metadata)
            except LatencyTableError as exc:
                self.save = False
                self._unsaved(f"it was rebuilt meanwhile with other settings ({exc})")
                return
            for signature in self.measured:
                on_disk.entries.setdefault(signature, self.table.entries[signature])
            for signature, entry in on_disk.entries.items():
                self.table.entries.setdefault(signature, entry)
            save_table(on_disk)
            self.unsaved = False  # every part measured here is in the file now

    def _measure(self, part: Part) -> PartLatency:
        backend = self.measuring_backend()
        t = backend.time_model(backend.part_model(part), part.input_shape)
        self.table.entries[part.signature] = Entry(t.median, t.p10, t.p90, t.repeats, "measured")
        self.measured.append(part.signature)
        if self.save:
            self._save()
        return PartLatency(part.name, part.signature, t.median, "measured")

    def _interpolate(self, part: Part) -> PartLatency:
        if part.signature in self._interpolated:
            return PartLatency(part.name, part.signature, self._interpolated[part.signature], "interpolated")
        if self._groups is None:
            self._groups = {}
            for sig, entry in self.table.entries.items():
                if entry.source == "interpolated":
                    continue
                p = parse_signature(sig)
                self._groups.setdefault(_kind_key(p), []).append((part_macs(p), entry.median))
            for points in self._groups.values():
                points.sort()
        points = self._groups.get(_kind_key(part), [])
        if not points:
            raise self._missing(part, why="and no measured entry of the same kind to interpolate from")
        macs = part_macs(part)
        xs = [p[0] for p in points]
        i = bisect.bisect_left(xs, macs)
        if len(points) == 1 or points[0][0] == points[-1][0]:
            x0, y0 = points[min(i, len(points) - 1)]
            value = y0 * macs / x0 if x0 else y0
        else:
            lo = min(max(i - 1, 0), len(points) - 2)
            (x0, y0), (x1, y1) = points[lo], points[lo + 1]
            if x1 == x0:
                value = y0
            else:
                value = y0 + (y1 - y0) * (macs - x0) / (x1 - x0)
            smallest = min(y for _, y in points)
            value = max(value, 0.25 * smallest)
        self._interpolated[part.signature] = value
        return PartLatency(part.name, part.signature, value, "interpolated")

    def _fix(self) -> str:
        """How a missing entry gets into this table: measured on its device, a new bundle run, or not at all."""
        meta = self.table.metadata
        if "remote" in meta:
            return ("The table was measured on a device with a bundle: bundle a space that holds this part (nas lut "
                    "bundle --space FILE -o BUNDLE.zip), run it there and import the results, or estimate the part "
                    "here with --on-missing interpolate")
        from nas.latency.measure import BACKENDS

        if meta.get("backend") not in BACKENDS:
            return ("The table was imported from a published file that has no such layer: use networks of the "
                    "table's own space (see latency_tables/README.md, Published tables), or estimate the part with "
                    "--on-missing interpolate")
        space = self.table.space_file or "SPACE.yaml"
        return (f"Add it by measuring on the table's device: nas lut add --table {self.table.name} ARCH "
                f"(or rebuild: nas lut build --space {space} --backend {meta.get('backend')} "
                f"--threads {meta.get('threads')} --only-missing -o {self.table.name})")

    def _missing(self, part: Part, why: str = "") -> MissingLatencyEntryError:
        return MissingLatencyEntryError(
            f"{self.table.name}: no entry for {part.signature} ({part.name}){' ' + why if why else ''}. {self._fix()}")

    # ---------------------------------------------------------------- prediction
    def part_latency(self, part: Part) -> PartLatency:
        """The latency of one part; an identity skip block (which :func:`~nas.latency.signature.arch_parts` never
        returns, but a caller ranking a slot's options may ask about) takes 0 ms and no table entry."""
        if isinstance(part.spec, BlockSpec) and part.spec.is_identity:
            return PartLatency(part.name, part.signature, 0.0, "identity")
        entry = self.table.entries.get(part.signature)
        if entry is not None:
            return PartLatency(part.name, part.signature, entry.median, entry.source)
        if self.on_missing == "measure":
            return self._measure(part)
        if self.on_missing == "interpolate":
            return self._interpolate(part)
        raise self._missing(part)

    def predict(self, arch: ArchSpec) -> Prediction:
        if self._remembered is None:
            return self._predict(arch)
        pred = self._remembered.get(arch)
        if pred is None:
            if len(self._remembered) >= _REMEMBERED:
                self._remembered.clear()
            pred = self._remembered[arch] = self._predict(arch)
        return pred

    def _predict(self, arch: ArchSpec) -> Prediction:
        specs = arch_parts(arch)
        parts = tuple(self.part_latency(p) for p in specs)
        part_sum = sum(p.ms for p in parts)
        corr, kelements = self.table.correction, boundary_kelements(specs)
        total = max(corr.apply(part_sum, len(parts), kelements), max(p.ms for p in parts))
        return Prediction(total, part_sum, parts, corr, kelements)
