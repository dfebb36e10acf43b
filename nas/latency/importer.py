"""Importing a device's ``results.json`` (written by a bundle's ``run_bundle.py``) as a table.

The results are validated field by field (errors name the file and the field), then turned
into a :class:`~nas.latency.table.LatencyTable` with the metadata ``nas lut build`` writes
(device, backend, threads, space, measurement settings, calibration) and a correction fitted
exactly as :func:`nas.latency.build.calibrate` fits it, from the calibration networks the
device timed end to end. An existing table is never overwritten.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from nas.errors import LatencyTableError
from nas.latency.build import CALIBRATION_SEED, table_metadata
from nas.latency.correction import calibration_record, fit_correction
from nas.latency.measure import Backend, MeasureSettings, Timing
from nas.latency.bundle_runner import RESULTS_FORMAT
from nas.latency.signature import boundary_kelements, parse_signature
from nas.latency.table import Entry, LatencyTable, parse_table, save_table

__all__ = ["import_results", "read_results", "backend_name", "refuse_existing"]

REMOTE_SUFFIX = "(remote bundle)"


def backend_name(provider: str) -> str:
    """``CPUExecutionProvider`` -> ``ort-cpu``, ``CUDAExecutionProvider`` -> ``ort-cuda``, ``XnnpackExecutionProvider``
    -> ``ort-xnnpack``."""
    short = provider[: -len("ExecutionProvider")] if provider.endswith("ExecutionProvider") else provider
    return f"ort-{short.lower() or 'unknown'}"


def refuse_existing(out: Path) -> None:
    if out.exists():
        raise LatencyTableError(f"{out}: already exists; importing never overwrites a table (its measured entries "
                                "would be lost): choose another -o path, or move the old table away first")


class _Fields:
    """Typed access to the results JSON; every error names the file and the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, why: str) -> LatencyTableError:
        return LatencyTableError(f"{self.source}: {where or '(top level)'}: {why}")

    def obj(self, data: Any, where: str, keys: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(where, f"expected an object, got {type(data).__name__}")
        for key in keys:
            if key not in data:
                raise self.fail(f"{where}.{key}" if where else key,
                                "missing; is this a results file written by the bundle's run_bundle.py?")
        return data

    def number(self, value: Any, where: str, *, positive: bool = True) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or (positive and value <= 0) or value < 0:
            what = "a positive, finite number" if positive else "a finite number >= 0"
            raise self.fail(where, f"expected {what}, got {value!r}")
        return float(value)

    def integer(self, value: Any, where: str, minimum: int = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(where, f"expected an integer >= {minimum}, got {value!r}")
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(where, f"expected a non-empty string, got {value!r}")
        return value

    def timing(self, raw: Any, where: str) -> Timing:
        raw = self.obj(raw, where, ("median", "p10", "p90", "repeats"))
        median = self.number(raw["median"], f"{where}.median")
        p10 = self.number(raw["p10"], f"{where}.p10")
        p90 = self.number(raw["p90"], f"{where}.p90")
        if not p10 <= median <= p90:
            raise self.fail(where, f"expected p10 <= median <= p90, got {p10}, {median}, {p90}")
        return Timing(median, p10, p90, self.integer(raw["repeats"], f"{where}.repeats"))


def read_results(path: str | os.PathLike) -> dict[str, Any]:
    """Load and validate a results file; returns the parsed dict (with ``entries`` as Timings)."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise LatencyTableError(f"{source}: results file not found (it is written on the device by "
                                "'python run_bundle.py BUNDLE -o results.json')") from None
    except OSError as exc:
        raise LatencyTableError(f"{source}: cannot read ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise LatencyTableError(f"{source}: not valid JSON ({exc}); was the file copied completely?") from None
    f = _Fields(source)
    f.obj(data, "", ("format", "bundle", "device", "settings", "entries", "overhead_ms", "calibration"))
    if data["format"] != RESULTS_FORMAT:
        raise f.fail("format", f"expected {RESULTS_FORMAT!r}, got {data['format']!r}; this is not a results file of "
                               "a bundle made by this version of nas")
    bundle = f.obj(data["bundle"], "bundle", ("space", "input_size", "in_ch", "num_classes", "opset"))
    space = f.obj(bundle["space"], "bundle.space", ("name", "file", "digest"))
    for key in ("name", "digest"):
        f.text(space[key], f"bundle.space.{key}")
    for key in ("input_size", "in_ch", "num_classes", "opset"):
        f.integer(bundle[key], f"bundle.{key}")
    device = f.obj(data["device"], "device", ("description", "processor", "provider", "threads", "onnxruntime"))
    for key in ("description", "provider", "onnxruntime"):
        f.text(device[key], f"device.{key}")
    if not isinstance(device["processor"], str):
        raise f.fail("device.processor", f"expected a string, got {device['processor']!r}")
    f.integer(device["threads"], "device.threads")
    settings = f.obj(data["settings"], "settings", ("warmup", "min_repeats", "max_repeats", "min_seconds"))
    f.integer(settings["warmup"], "settings.warmup", minimum=0)
    f.integer(settings["min_repeats"], "settings.min_repeats")
    f.integer(settings["max_repeats"], "settings.max_repeats")
    f.number(settings["min_seconds"], "settings.min_seconds", positive=False)
    f.integer(settings.get("passes", 1), "settings.passes")

    raw_entries = data["entries"]
    if not isinstance(raw_entries, dict) or not raw_entries:
        raise f.fail("entries", "expected a non-empty object {signature: {median, p10, p90, repeats}}")
    entries: dict[str, Timing] = {}
    for sig, raw in raw_entries.items():
        where = f"entries[{sig!r}]"
        try:
            part = parse_signature(sig)
        except LatencyTableError as exc:
            raise f.fail(where, str(exc)) from None
        if part.name == "stem" and (part.in_ch, part.resolution) != (bundle["in_ch"], bundle["input_size"]):
            raise f.fail(where, f"a stem for {part.resolution}x{part.resolution}x{part.in_ch} inputs, but the bundle "
                                f"is for {bundle['input_size']}x{bundle['input_size']}x{bundle['in_ch']}")
        entries[sig] = f.timing(raw, where)
    overhead = f.number(data["overhead_ms"], "overhead_ms")
    if not isinstance(data["calibration"], list):
        raise f.fail("calibration", f"expected a list, got {type(data['calibration']).__name__}")
    rows = []
    for i, raw in enumerate(data["calibration"]):
        where = f"calibration[{i}]"
        raw = f.obj(raw, where, ("seed", "parts", "measured_ms"))
        seed = f.integer(raw["seed"], f"{where}.seed", minimum=0)
        parts = raw["parts"]
        if not isinstance(parts, list) or not parts or not all(isinstance(p, str) for p in parts):
            raise f.fail(f"{where}.parts", "expected a non-empty list of part signatures")
        for sig in parts:
            if sig not in entries:
                raise f.fail(f"{where}.parts", f"{sig!r} has no entry in 'entries'")
        rows.append({"seed": seed, "parts": len(parts), "part_sum_ms": sum(entries[s].median for s in parts),
                     "boundary_kelements": boundary_kelements([parse_signature(s) for s in parts]),
                     "measured_ms": f.number(raw["measured_ms"], f"{where}.measured_ms")})
    return {**data, "entries": entries, "overhead_ms": overhead, "calibration_rows": rows}


class _RemoteBackend(Backend):
    """Stands in for the device's backend so the table gets exactly ``table_metadata``'s fields."""

    def __init__(self, info: dict[str, Any], settings: MeasureSettings) -> None:
        self._info = info
        self.name, self.threads, self.settings = info["backend"], info["threads"], settings

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def time_pass(self, model: bytes, input_shape: tuple[int, ...]) -> Timing:  # pragma: no cover
        raise LatencyTableError(f"{self._info['device']} is a remote device: measure it with a bundle "
                                "('nas lut bundle'), not from here")


def import_results(path: str | os.PathLike, out: str | os.PathLike, *, device_name: str | None = None) -> LatencyTable:
    """Turn a device's ``results.json`` into a latency table saved at ``out`` (never overwritten)."""
    out = Path(out)
    refuse_existing(out)
    data = read_results(path)
    dev, bundle, s = data["device"], data["bundle"], data["settings"]
    provider = dev["provider"]
    info = {
        "device": f"{device_name or dev['description']} {REMOTE_SUFFIX}",
        "cpu": dev["processor"], "gpu": None, "backend": backend_name(provider),
        "backend_version": f"onnxruntime {dev['onnxruntime']}", "execution_provider": provider,
        "threads": dev["threads"],
    }
    settings = MeasureSettings(warmup=s["warmup"], min_repeats=s["min_repeats"], max_repeats=s["max_repeats"],
                               min_seconds=float(s["min_seconds"]), statistic=str(s.get("statistic", "median")),
                               passes=int(s.get("passes", 1)))
    space = SimpleNamespace(input_size=bundle["input_size"], in_ch=bundle["in_ch"],
                            num_classes=bundle["num_classes"], name=bundle["space"]["name"],
                            source=bundle["space"]["file"], digest=bundle["space"]["digest"])
    metadata = table_metadata(space, _RemoteBackend(info, settings))  # type: ignore[arg-type]
    metadata["measurement"]["opset"] = bundle["opset"]
    metadata["remote"] = {
        "results_file": str(path), "measured": data.get("finished"), "started": data.get("started"),
        "device": dev, "bundle_manifest_sha256": bundle.get("manifest_sha256"), "bundle_created": bundle.get("created"),
        "bundle_tool": bundle.get("tool"), "runner_version": data.get("runner_version"),
    }
    entries = {sig: Entry(t.median, t.p10, t.p90, t.repeats, "measured") for sig, t in data["entries"].items()}
    rows = data["calibration_rows"]
    seeds = [r["seed"] for r in rows]
    source = (f"seeds {min(seeds)}...{max(seeds)} of the bundle" if seeds
              else f"no networks (seeds from {CALIBRATION_SEED})")
    correction = fit_correction(rows, data["overhead_ms"], source=f"{source}, timed on the device")
    record = calibration_record(rows, data["overhead_ms"], correction)
    metadata["calibration"] = record
    metadata["complete"] = True
    table = LatencyTable(metadata=metadata, entries=entries, correction=correction, path=out)
    parse_table(json.loads(json.dumps(table.to_dict())), source=f"{path} (as a table)")  # same checks as load_table
    refuse_existing(out)  # again: another process may have written it meanwhile
    save_table(table, out)
    return table
