"""Importing a device's ``results.json`` (written by a bundle's ``run_bundle.py``, or by a LiteRT bundle's
``run_python.py`` / ``run_android.sh``) as a table.

Results of an ONNX bundle become an ``ort-<provider>`` table; results of a LiteRT bundle (``device.runtime``
``litert``) a ``litert`` table with the ``XNNPACK`` execution provider, as ``nas lut build --backend litert``
writes, its ``backend_version`` saying what timed it (``ai-edge-litert 2.3.0`` on a board, ``benchmark_model``
on a phone).

The results are validated field by field (errors name the file and the field), then turned
into a :class:`~nas.latency.table.LatencyTable` with the metadata ``nas lut build`` writes
(device, backend, threads, space, measurement settings, calibration) and a correction fitted
exactly as :func:`nas.latency.build.calibrate` fits it, from the calibration networks the
device timed end to end. An existing table is never overwritten.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from nas.errors import LatencyTableError
from nas.latency.build import CALIBRATION_SEED, MAX_CALIBRATION, table_metadata
from nas.latency.correction import calibration_record, fit_correction
from nas.latency.measure import Backend, MeasureSettings, Timing
from nas.latency.bundle_runner import RESULTS_FORMAT
from nas.latency.fields import MAX_JSON_BYTES, Fields, decode_text, has_control, parse_json, read_bounded, shown
from nas.latency.output import check_output, writing
from nas.latency.signature import boundary_kelements, parse_signature
from nas.latency.table import Entry, LatencyTable, parse_table, save_table

__all__ = ["import_results", "read_results", "backend_name", "refuse_existing", "device_label", "IMPORT_FORMATS"]

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


#: What ``nas lut import`` reads, for messages about a file it cannot.
IMPORT_FORMATS = ("nas lut import reads (1) the results.json a bundle's run_bundle.py writes on a device (a JSON object "
                  f"with \"format\": \"{RESULTS_FORMAT}\"), and (2) a published Once-for-All / ProxylessNAS latency "
                  "table: a .yaml/.yml mapping of layer keys ('Conv-input:224x224x3-output:112x112x32', 'expanded_conv-"
                  "input:...-expand:6-kernel:5-stride:1-idskip:0', 'Conv_1-...', 'AvgPool2D-...', 'Conv_2-...', "
                  "'Logits-...') to {count, mean, var or std}")
_HINT = "expected the results.json that a bundle's run_bundle.py writes on the device"
_ZIP_HINT = ("this looks like the bundle itself: it runs on the device (python3 bundle.zip -o results.json); import "
             "the results.json it writes there")
_MISSING = "missing; is this a results file written by the bundle's run_bundle.py?"
_DEVICE_OPTIONAL_TEXT = ("platform", "system", "machine", "board", "python", "numpy", "cpu_mask")
_BUNDLE_INTS = {"input_size": 65_536, "in_ch": 65_536, "num_classes": 1_000_000}
#: ``device.runtime`` of LiteRT results (absent: onnxruntime)
LITERT = "litert"


def _provider(f: Fields, value: Any) -> str:
    provider = str(f.text(value, "device.provider", limit=100))
    if not provider.isidentifier():
        raise f.fail("device.provider", f"expected an onnxruntime provider name such as 'CPUExecutionProvider', got "
                                        f"{shown(provider)}")
    return provider


def _device(f: Fields, raw: Any) -> dict[str, Any]:
    """The device's description, only the fields the runner writes, each checked (nothing else is kept)."""
    raw = f.obj(raw, "device", ("description", "processor", "provider", "threads"), missing=_MISSING)
    runtime = raw.get("runtime", "onnxruntime")
    if runtime not in ("onnxruntime", LITERT):
        raise f.fail("device.runtime", f"expected 'onnxruntime' or '{LITERT}', got {shown(runtime)}")
    version_key = LITERT if runtime == LITERT else "onnxruntime"
    f.obj(raw, "device", (version_key,), missing=_MISSING)
    device: dict[str, Any] = {key: f.text(raw[key], f"device.{key}", limit=300)
                              for key in ("description", "provider", version_key)}
    device["runtime"] = runtime
    device["provider"] = _provider(f, raw["provider"])
    device["processor"] = f.text(raw["processor"], "device.processor", empty=True, limit=300)
    device["threads"] = f.integer(raw["threads"], "device.threads", maximum=4096)
    for key in _DEVICE_OPTIONAL_TEXT:
        if key in raw:
            device[key] = f.text(raw[key], f"device.{key}", optional=True, empty=True, limit=300)
    if "cpu_count" in raw:
        device["cpu_count"] = None if raw["cpu_count"] is None else f.integer(raw["cpu_count"], "device.cpu_count",
                                                                              maximum=1 << 20)
    pinned = raw.get("pinned_cpus")
    if pinned is not None and not (isinstance(pinned, list) and len(pinned) <= 4096
                                   and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 1 << 20
                                           for c in pinned)):
        raise f.fail("device.pinned_cpus", f"expected a list of CPU numbers or null, got {shown(pinned)}")
    device["pinned_cpus"] = pinned
    return device


def _bundle(f: Fields, raw: Any) -> dict[str, Any]:
    raw = f.obj(raw, "bundle", ("space", *_BUNDLE_INTS), missing=_MISSING)
    space = f.obj(raw["space"], "bundle.space", ("name", "file", "digest"), missing=_MISSING)
    bundle: dict[str, Any] = {"space": {
        "name": f.text(space["name"], "bundle.space.name", limit=200),
        "file": f.text(space["file"], "bundle.space.file", optional=True, empty=True, limit=1000),  # a hint only
        "digest": f.text(space["digest"], "bundle.space.digest", limit=200)}}
    for key, maximum in _BUNDLE_INTS.items():
        bundle[key] = f.integer(raw[key], f"bundle.{key}", maximum=maximum)
    bundle["opset"] = None if raw.get("opset") is None else f.integer(raw["opset"], "bundle.opset", maximum=1000)
    for key in ("manifest_sha256", "created", "tool", "format", "model_format", "converter", "layout"):
        bundle[key] = f.text(raw.get(key), f"bundle.{key}", optional=True, limit=200)
    return bundle


def _settings(f: Fields, raw: Any) -> dict[str, Any]:
    raw = f.obj(raw, "settings", ("warmup", "min_repeats", "max_repeats", "min_seconds"), missing=_MISSING)
    return {"warmup": f.integer(raw["warmup"], "settings.warmup", minimum=0),
            "min_repeats": f.integer(raw["min_repeats"], "settings.min_repeats"),
            "max_repeats": f.integer(raw["max_repeats"], "settings.max_repeats"),
            "min_seconds": f.number(raw["min_seconds"], "settings.min_seconds", low=0.0, high=3600.0,
                                    what="a finite number >= 0 (seconds, at most 3600)"),
            "passes": f.integer(raw.get("passes", 1), "settings.passes", maximum=1000),
            "statistic": f.text(raw.get("statistic", "median"), "settings.statistic", limit=20),
            "spread": f.text(raw.get("spread"), "settings.spread", optional=True, limit=300)}


def _timing(f: Fields, raw: Any, where: str) -> Timing:
    raw = f.obj(raw, where, ("median", "p10", "p90", "repeats"))
    median, p10, p90 = (f.ms(raw[key], f"{where}.{key}") for key in ("median", "p10", "p90"))
    if not p10 <= median <= p90:
        raise f.fail(where, f"expected p10 <= median <= p90, got {p10}, {median}, {p90}")
    return Timing(median, p10, p90, f.integer(raw["repeats"], f"{where}.repeats"))


def _entries(f: Fields, raw_entries: Any, bundle: dict[str, Any]) -> dict[str, Timing]:
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
        entries[sig] = _timing(f, raw, where)
    return entries


def _calibration(f: Fields, raw_rows: Any, entries: dict[str, Timing]) -> list[dict[str, Any]]:
    if not isinstance(raw_rows, list):
        raise f.fail("calibration", f"expected a list, got {type(raw_rows).__name__}")
    if len(raw_rows) > MAX_CALIBRATION:
        raise f.fail("calibration", f"expected at most {MAX_CALIBRATION} networks (a bundle holds at most that many), "
                                    f"got {len(raw_rows)}")
    rows = []
    for i, raw in enumerate(raw_rows):
        where = f"calibration[{i}]"
        raw = f.obj(raw, where, ("seed", "parts", "measured_ms"))
        seed = f.integer(raw["seed"], f"{where}.seed", minimum=0)
        parts = raw["parts"]
        if not isinstance(parts, list) or not parts or not all(isinstance(p, str) for p in parts):
            raise f.fail(f"{where}.parts", "expected a non-empty list of part signatures")
        for sig in parts:
            if sig not in entries:
                raise f.fail(f"{where}.parts", f"{shown(sig)} has no entry in 'entries'")
        rows.append({"seed": seed, "parts": len(parts), "part_sum_ms": sum(entries[s].median for s in parts),
                     "boundary_kelements": boundary_kelements([parse_signature(s) for s in parts]),
                     "measured_ms": f.ms(raw["measured_ms"], f"{where}.measured_ms")})
    return rows


def read_results(path: str | os.PathLike) -> dict[str, Any]:
    """Load and validate a results file: every field the import uses is checked and copied (nothing else is
    kept); ``entries`` become Timings and ``calibration_rows`` the correction's rows."""
    path = Path(path)
    source = str(path)
    raw = read_bounded(path, limit=MAX_JSON_BYTES, what="a results file",
                       missing="results file not found (it is written on the device by 'python run_bundle.py BUNDLE "
                               "-o results.json')")
    data = parse_json(decode_text(raw, source, hint=_HINT, zip_hint=_ZIP_HINT), source,
                      hint="was the file copied completely?")
    f = Fields(source)
    if not isinstance(data, dict) or "format" not in data:
        what = f"a JSON {type(data).__name__}" if not isinstance(data, dict) else "an object without \"format\""
        raise LatencyTableError(f"{source}: not a results file ({what}); {IMPORT_FORMATS}")
    f.obj(data, "", ("format", "bundle", "device", "settings", "entries", "overhead_ms", "calibration"),
          missing=_MISSING)
    if data["format"] != RESULTS_FORMAT:
        raise f.fail("format", f"expected {RESULTS_FORMAT!r}, got {shown(data['format'])}; this is not a results "
                               "file of a bundle made by this version of nas")
    bundle = _bundle(f, data["bundle"])
    entries = _entries(f, data["entries"], bundle)
    return {"bundle": bundle, "device": _device(f, data["device"]), "settings": _settings(f, data["settings"]),
            "entries": entries, "overhead_ms": f.ms(data["overhead_ms"], "overhead_ms"),
            "calibration_rows": _calibration(f, data["calibration"], entries),
            **{key: f.text(data.get(key), key, optional=True, limit=100)
               for key in ("runner_version", "started", "finished")}}


class _RemoteBackend(Backend):
    """Stands in for the device's backend so the table gets exactly ``table_metadata``'s fields."""

    def __init__(self, info: dict[str, Any], settings: MeasureSettings, bundle: dict[str, Any]) -> None:
        self._info, self._bundle = info, bundle
        self.name, self.threads, self.settings = info["backend"], info["threads"], settings

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def measurement_info(self) -> dict[str, Any]:
        b = self._bundle
        if b.get("model_format") == "tflite":
            return {k: b[k] for k in ("model_format", "converter", "layout") if b.get(k)}
        return {"opset": b["opset"]}

    def time_pass(self, model: bytes, input_shape: tuple[int, ...]) -> Timing:  # pragma: no cover
        raise LatencyTableError(f"{self._info['device']} is a remote device: measure it with a bundle "
                                "('nas lut bundle'), not from here")


def device_label(device_name: str | None, where: str = "--device-name") -> str | None:
    """``--device-name`` checked: no control characters (they would reach terminals raw), at most 200 characters."""
    if device_name is None:
        return None
    name = device_name.strip()
    if not name or has_control(name) or len(name) > 200:
        raise LatencyTableError(f"{where}: expected a device name of 1 to 200 characters without control characters "
                                f"(newlines, terminal escapes), got {shown(device_name)}")
    return name


def _metadata(data: dict[str, Any], path: Path, device_name: str | None) -> dict[str, Any]:
    dev, bundle, s = data["device"], data["bundle"], data["settings"]
    provider = dev["provider"]
    litert = dev["runtime"] == LITERT
    info = {
        "device": f"{device_name or dev['description']} {REMOTE_SUFFIX}",
        "cpu": dev["processor"], "gpu": None, "backend": LITERT if litert else backend_name(provider),
        "backend_version": dev[LITERT] if litert else f"onnxruntime {dev['onnxruntime']}",
        "execution_provider": provider, "threads": dev["threads"],
    }
    settings = MeasureSettings(warmup=s["warmup"], min_repeats=s["min_repeats"], max_repeats=s["max_repeats"],
                               min_seconds=s["min_seconds"], statistic=s["statistic"], passes=s["passes"])
    space = SimpleNamespace(input_size=bundle["input_size"], in_ch=bundle["in_ch"],
                            num_classes=bundle["num_classes"], name=bundle["space"]["name"],
                            source=bundle["space"]["file"], digest=bundle["space"]["digest"])
    metadata = table_metadata(space, _RemoteBackend(info, settings, bundle))  # type: ignore[arg-type]
    if s["spread"]:
        metadata["measurement"]["spread"] = s["spread"]
    metadata["remote"] = {
        "results_file": str(path), "measured": data["finished"], "started": data["started"],
        "device": dev, "bundle_manifest_sha256": bundle["manifest_sha256"], "bundle_created": bundle["created"],
        "bundle_tool": bundle["tool"], "runner_version": data["runner_version"],
    }
    return metadata


def import_results(path: str | os.PathLike, out: str | os.PathLike, *, device_name: str | None = None,
                   force: bool = False) -> LatencyTable:
    """Turn a device's ``results.json`` into a latency table saved at ``out`` (never overwritten).

    A correction that misses the device's own calibration networks is refused (see
    :func:`nas.latency.table.correction_problem`); ``force`` writes the table anyway, with the problem in
    ``table.warnings``."""
    out = Path(out)
    device_name = device_label(device_name)
    refuse_existing(out)
    check_output(out, what="the table")
    data = read_results(path)
    metadata = _metadata(data, Path(path), device_name)
    entries = {sig: Entry(t.median, t.p10, t.p90, t.repeats, "measured") for sig, t in data["entries"].items()}
    rows = data["calibration_rows"]
    seeds = [r["seed"] for r in rows]
    source = (f"seeds {min(seeds)}...{max(seeds)} of the bundle" if seeds
              else f"no networks (seeds from {CALIBRATION_SEED})")
    correction = fit_correction(rows, data["overhead_ms"], source=f"{source}, timed on the device")
    metadata["calibration"] = calibration_record(rows, data["overhead_ms"], correction)
    metadata["complete"] = True
    # the same checks as load_table, on the table as it will be read back
    checked = parse_table(json.loads(json.dumps(LatencyTable(metadata, entries, correction).to_dict())),
                          source=f"{path} (as a table)", force=force)
    table = LatencyTable(metadata=metadata, entries=entries, correction=correction, path=out,
                         warnings=checked.warnings)
    refuse_existing(out)  # again: another process may have written it meanwhile
    with writing(out, "the table"):
        save_table(table, out)
    return table
