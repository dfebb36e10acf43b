#!/usr/bin/env python3
"""Measure a latency bundle (made by ``nas lut bundle``) on this device.

This file is copied verbatim into every bundle as ``run_bundle.py``. It runs on the target
device, which may be a phone or a single-board computer that cannot install the ``nas``
package, so it needs only Python 3.8+, numpy and onnxruntime (``pip install numpy
onnxruntime``); everything else is the standard library. Do not import torch, onnx or nas
here: ``tests/latency/test_bundle.py`` checks the imports.

Usage on the device::

    python run_bundle.py [BUNDLE_ZIP_OR_FOLDER] -o results.json [--threads 1]
                         [--provider CPUExecutionProvider] [--warmup N --repeats N
                         --max-repeats N --min-seconds S --passes N] [--limit N] [--no-pin]
                         [--quiet]

    python bundle.zip -o results.json     # the zip runs itself (it holds a __main__.py)

The bundle defaults to the zip or folder this script lies in. Every model is timed with the
protocol ``nas lut build`` uses on a development machine (``nas.latency.measure``). One pass
over a model: a new onnxruntime session (``intra_op_num_threads = --threads``, one inter-op
thread, sequential execution, all graph optimisations), a float32 N(0, 1) input drawn from
``numpy.random.default_rng(0)``, ``warmup`` untimed runs, then runs timed with
``time.perf_counter_ns`` until both ``min_repeats`` runs and ``min_seconds`` have passed (at
most ``max_repeats``): their median and 10th/90th percentiles, in ms. Every model gets
``passes`` passes, interleaved (pass 1 over every model, then pass 2, ...), and its result is
the pass with the lowest median (its median, p10 and p90; ``repeats``: the timed runs of all
passes): a device that runs in slower and faster stretches (thermal throttling, other load)
spoils at most one pass of a model.

Resumable: each pass is appended to ``RESULTS.partial`` (one JSON object a line, flushed to
disk) as soon as it is measured, and a re-run with the same options skips what is there.
``RESULTS`` itself is written atomically when everything is measured; then the ``.partial``
file is removed. Send ``RESULTS`` back and import it with ``nas lut import RESULTS -o TABLE``.

Exit status: 0 done, 2 error (a message, not a traceback), 3 stopped early by ``--limit``
(re-run to continue), 130 interrupted (re-run to continue).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import math
import os
import platform
import sys
import time
import zipfile
from typing import Any

RUNNER_VERSION = "1"
BUNDLE_FORMAT = "nas-latency-bundle/1"
RESULTS_FORMAT = "nas-latency-results/1"
#: What ``--limit N`` does, in the runner's --help and the bundle's README.txt.
LIMIT_HELP = ("stop after N timing passes in this run, one pass of one model each; run the same command again "
              "to continue")
SETTING_KEYS = ("warmup", "min_repeats", "max_repeats", "min_seconds")
EXIT_ERROR, EXIT_LIMIT, EXIT_INTERRUPTED = 2, 3, 130


class RunnerError(Exception):
    """A problem the device owner can fix; printed as one message, without a traceback."""


# ------------------------------------------------------------------------------ the bundle
def _expect(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise RunnerError(f"{where}: {what}")


def _is_int(v: Any, minimum: int = 1) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= minimum


def _shape(where: str, value: Any) -> list[int]:
    _expect(isinstance(value, list) and len(value) == 4 and all(_is_int(v) for v in value), where,
            f"expected [batch, channels, height, width] (LiteRT: [batch, height, width, channels]) of positive "
            f"integers, got {value!r}")
    return value


class Bundle:
    """A bundle zip, or the folder it was extracted to; validates ``manifest.json`` (whose ``format`` must be
    ``expected``: an ONNX bundle's, or a LiteRT bundle's for ``run_python.py``)."""

    def __init__(self, location: str, expected: str = BUNDLE_FORMAT) -> None:
        self.location = location
        self.expected = expected
        self._zip: zipfile.ZipFile | None = None
        if os.path.isdir(location):
            raw = self._read_file("manifest.json")
        elif os.path.isfile(location):
            try:
                self._zip = zipfile.ZipFile(location)
            except (zipfile.BadZipFile, OSError) as exc:
                raise RunnerError(f"{location}: not a readable bundle zip ({exc}); copy the bundle again, or give "
                                  "the folder it was extracted to") from None
            raw = self.read("manifest.json")
        else:
            raise RunnerError(f"{location}: no such bundle (expected the .zip made by 'nas lut bundle' or the "
                              "folder it was extracted to)")
        self.manifest_sha256 = hashlib.sha256(raw).hexdigest()
        try:
            manifest = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise RunnerError(f"{location}: manifest.json is not valid JSON ({exc}); the bundle is damaged, "
                              "copy it again") from None
        self.manifest = self._validate(manifest)

    def _read_file(self, name: str) -> bytes:
        path = os.path.join(self.location, *name.split("/"))
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as exc:
            raise RunnerError(f"{self.location}: cannot read {name} ({exc.strerror}); is this a bundle folder made "
                              "by 'nas lut bundle'? Copy the bundle again") from None

    def read(self, name: str) -> bytes:
        if self._zip is None:
            return self._read_file(name)
        try:
            return self._zip.read(name)
        except KeyError:
            raise RunnerError(f"{self.location}: {name} is missing from the bundle; is this a zip made by "
                              "'nas lut bundle'? Copy the bundle again") from None
        except (zipfile.BadZipFile, OSError, EOFError) as exc:  # CRC mismatch, truncated file
            raise RunnerError(f"{self.location}: {name} is damaged ({exc}); copy the bundle again") from None

    def _validate(self, m: Any) -> dict[str, Any]:
        w = f"{self.location}: manifest.json"
        _expect(isinstance(m, dict), w, "expected a JSON object")
        _expect(m.get("format") == self.expected, f"{w}: format",
                f"expected {self.expected!r}, got {m.get('format')!r}; this runner is too old or too new for the "
                "bundle, or made for the other kind of bundle (ONNX: run_bundle.py; LiteRT: run_python.py or "
                "run_android.sh): use the runner inside the same bundle")
        for key in ("space", "input_size", "in_ch", "num_classes", "settings", "entries", "overhead", "calibration"):
            _expect(key in m, f"{w}: {key}", "missing; the bundle is damaged or incomplete")
        s = m["settings"]
        _expect(isinstance(s, dict), f"{w}: settings", "expected an object")
        for key in SETTING_KEYS:
            v = s.get(key)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
            _expect(ok, f"{w}: settings.{key}", f"expected a number >= 0, got {v!r}")
        _expect(_is_int(s.get("passes", 1)), f"{w}: settings.passes",
                f"expected an integer >= 1, got {s.get('passes')!r}")
        entries = m["entries"]
        _expect(isinstance(entries, list) and len(entries) > 0, f"{w}: entries", "expected a non-empty list")
        seen = set()
        for i, e in enumerate(entries):
            where = f"{w}: entries[{i}]"
            _expect(isinstance(e, dict) and isinstance(e.get("signature"), str) and isinstance(e.get("file"), str),
                    where, "expected an object with 'signature', 'file' and 'input_shape'")
            _expect(e["signature"] not in seen, where, f"duplicate signature {e['signature']!r}")
            seen.add(e["signature"])
            _shape(f"{where}.input_shape", e.get("input_shape"))
        o = m["overhead"]
        _expect(isinstance(o, dict) and isinstance(o.get("file"), str), f"{w}: overhead",
                "expected an object with 'file' and 'input_shape'")
        _shape(f"{w}: overhead.input_shape", o.get("input_shape"))
        _expect(isinstance(m["calibration"], list), f"{w}: calibration", "expected a list")
        for i, c in enumerate(m["calibration"]):
            where = f"{w}: calibration[{i}]"
            _expect(isinstance(c, dict) and _is_int(c.get("seed"), 0) and isinstance(c.get("file"), str)
                    and isinstance(c.get("parts"), list) and all(p in seen for p in c["parts"]), where,
                    "expected an object with 'seed', 'file', 'input_shape' and 'parts' (signatures of entries)")
            _shape(f"{where}.input_shape", c.get("input_shape"))
        return m

    def identity(self) -> dict[str, Any]:
        m = self.manifest
        keys = ("format", "created", "tool", "space", "input_size", "in_ch", "num_classes", "batch_size", "opset")
        extra = {k: m[k] for k in ("model_format", "converter", "layout") if k in m}  # LiteRT bundles
        return {**{k: m.get(k) for k in keys}, **extra, "manifest_sha256": self.manifest_sha256}


# ------------------------------------------------------------------------------ the device
def cpu_name() -> str:
    """The CPU's model name (``nas.latency.measure`` uses this one, so tables and bundles agree)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def board_model() -> str | None:
    """The board's name where the OS says it (Raspberry Pi and other device-tree boards)."""
    for path in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"):
        try:
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", "replace").strip("\x00 \n")
                if text:
                    return text
        except OSError:
            pass
    return None


def device_info(ort: Any, np: Any, provider: str, threads: int, pinned: list[int] | None) -> dict[str, Any]:
    cpu = cpu_name()
    model = board_model()
    name = f"{model} ({cpu})" if model and model not in cpu else cpu
    description = f"{name}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.machine()}"
    if provider != "CPUExecutionProvider":
        description += f", {provider}"
    return {
        "description": description, "platform": platform.platform(), "system": platform.system(),
        "machine": platform.machine(), "processor": cpu, "board": model, "cpu_count": os.cpu_count(),
        "python": platform.python_version(), "numpy": np.__version__, "onnxruntime": ort.__version__,
        "provider": provider, "threads": threads, "pinned_cpus": pinned,
    }


def pin(threads: int) -> list[int] | None:
    """Pin to ``threads`` CPUs (as ``OrtBackend`` does) so the scheduler does not migrate the run."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) > threads:
        allowed = allowed[-threads:]
        os.sched_setaffinity(0, set(allowed))
    return allowed


# ------------------------------------------------------------------------------ timing
class Timer:
    """``nas.latency.measure.OrtBackend.time_onnx``, without torch."""

    def __init__(self, ort: Any, np: Any, *, provider: str, threads: int, settings: dict[str, Any]) -> None:
        self.ort, self.np = ort, np
        self.provider, self.threads, self.settings = provider, threads, settings

    def session(self, model: bytes) -> Any:
        ort = self.ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        return ort.InferenceSession(model, so, providers=[self.provider])

    def time(self, model: bytes, input_shape: list[int]) -> dict[str, Any]:
        """One pass over ``model``."""
        np = self.np
        sess = self.session(model)
        name = sess.get_inputs()[0].name
        feed = {name: np.random.default_rng(0).standard_normal(tuple(input_shape)).astype(np.float32)}
        s = self.settings
        for _ in range(int(s["warmup"])):
            sess.run(None, feed)
        samples: list[int] = []
        start = time.perf_counter()
        while len(samples) < s["max_repeats"] and (len(samples) < s["min_repeats"]
                                                   or time.perf_counter() - start < s["min_seconds"]):
            t0 = time.perf_counter_ns()
            sess.run(None, feed)
            samples.append(time.perf_counter_ns() - t0)
        p10, median, p90 = np.percentile(np.asarray(samples, dtype=np.float64) / 1e6, [10, 50, 90])
        return {"median": float(median), "p10": float(p10), "p90": float(p90), "repeats": len(samples)}


def best_of(passes: list[dict[str, Any]]) -> dict[str, Any]:
    """``nas.latency.measure.Timing.best_of``: the pass with the lowest median, with the timed runs of all passes."""
    best = min(passes, key=lambda t: t["median"])
    return {"median": best["median"], "p10": best["p10"], "p90": best["p90"],
            "repeats": sum(int(t["repeats"]) for t in passes)}


# ------------------------------------------------------------------------------ resuming
def _has_a_line(path: str) -> bool:
    """Whether ``path`` exists and holds at least one complete line."""
    try:
        with open(path, "rb") as f:
            return b"\n" in f.read(1 << 16)
    except FileNotFoundError:
        return False


class Partial:
    """``RESULTS.partial``: a header line, then one line per measured pass of a model, each flushed to disk."""

    def __init__(self, path: str, header: dict[str, Any]) -> None:
        self.path = path
        self.done: dict[str, dict[int, dict[str, Any]]] = {}  # key -> pass number -> timing
        self.header = header
        self._torn = False
        fresh = not _has_a_line(path)  # none yet, or killed before its header line was complete
        if not fresh:
            self._load(header)
        self.f = open(path, "w" if fresh else "a")  # noqa: SIM115 - closed in close()
        if fresh:
            self._write({"kind": "header", **header})
        elif self._torn:
            self.f.write("\n")  # end the line cut off by the interruption; it is ignored when read

    def _load(self, header: dict[str, Any]) -> None:
        with open(self.path) as f:
            text = f.read()
        self._torn = bool(text) and not text.endswith("\n")
        lines = text.splitlines()
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # the line being written when the run was stopped
        if not records or records[0].get("kind") != "header":
            raise RunnerError(f"{self.path}: not a partial results file of this runner; move it away or delete it")
        old = self.header = records[0]
        # the runtime's version and pinning too: the results name one version, and pinning moves the timings
        for key in ("manifest_sha256", "provider", "threads", "settings", "machine", "processor", "runtime",
                    "pinned"):
            if old.get(key) != header[key]:
                raise RunnerError(
                    f"{self.path}: it was started with {key}={old.get(key)!r} but this run has {header[key]!r}; "
                    "results measured differently cannot be mixed: re-run with the same options, or delete "
                    f"{self.path} to start over")
        for rec in records[1:]:
            if isinstance(rec.get("key"), str) and isinstance(rec.get("timing"), dict):
                number = rec.get("pass", 1)
                if _is_int(number):
                    self.done.setdefault(rec["key"], {})[number] = rec["timing"]

    def _write(self, record: dict[str, Any]) -> None:
        self.f.write(json.dumps(record, allow_nan=False) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def add(self, key: str, number: int, timing: dict[str, Any]) -> None:
        self._write({"key": key, "pass": number, "timing": timing})
        self.done.setdefault(key, {})[number] = timing

    def passes(self, key: str) -> int:
        return len(self.done.get(key, {}))

    def result(self, key: str, passes: int) -> dict[str, Any]:
        timings = self.done[key]
        return best_of([timings[k] for k in sorted(timings)][:passes])

    def close(self) -> None:
        self.f.close()


class Progress:
    """Count, percentage and ETA on stderr (no tqdm): one updating line on a terminal."""

    def __init__(self, total: int, done: int, quiet: bool) -> None:
        self.total, self.done, self.quiet = total, done, quiet
        self.start_done, self.start = done, time.monotonic()
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def step(self, label: str) -> None:
        self.done += 1
        now = time.monotonic()
        if self.quiet or (now - self.last < (0.5 if self.tty else 15.0) and self.done < self.total):
            return
        self.last = now
        measured = self.done - self.start_done
        elapsed = now - self.start
        eta = elapsed / measured * (self.total - self.done) if measured else 0.0
        line = (f"[{self.done:>{len(str(self.total))}}/{self.total}] {100.0 * self.done / self.total:5.1f}%  "
                f"elapsed {_hms(elapsed)}  eta {_hms(eta)}  {label}")
        if self.tty:
            sys.stderr.write("\r" + line[:119].ljust(119) + ("\n" if self.done == self.total else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def finish(self) -> None:
        if self.tty and not self.quiet and self.done < self.total:
            sys.stderr.write("\n")


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


# ------------------------------------------------------------------------------ main
def import_runtime(module: str, package: str) -> tuple[Any, Any]:
    """``module`` (installed by pip as ``package``) and numpy, or one RunnerError naming what to install."""
    import importlib

    missing = []
    try:
        import numpy as np
    except ImportError:
        np, missing = None, ["numpy"]
    try:
        runtime = importlib.import_module(module)
    except ImportError:
        runtime = None
        missing.append(package)
    if missing:
        raise RunnerError(f"this script needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                          f"not installed for {sys.executable} (Python {platform.python_version()}); install with: "
                          f"{os.path.basename(sys.executable)} -m pip install {' '.join(missing)}")
    return runtime, np


def _default_bundle() -> str:
    """The zip or folder this script lies in (``python bundle.zip`` runs it from inside the zip)."""
    return os.path.dirname(os.path.abspath(__file__))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="run_bundle.py",
        description="Time every model of a latency bundle (made by 'nas lut bundle') with onnxruntime on this "
                    "device and write the results for 'nas lut import'. Needs only Python 3.8+, numpy and "
                    "onnxruntime. Resumable: re-run the same command after an interruption.",
        epilog="Exit status: 0 done, 2 error, 3 stopped by --limit, 130 interrupted (re-run to continue).")
    add_bundle_argument(p)
    p.add_argument("-o", "--output", default="results.json", metavar="RESULTS",
                   help="results JSON to write (default results.json); progress is kept in RESULTS.partial")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")
    p.add_argument("--provider", default="CPUExecutionProvider",
                   help="onnxruntime execution provider (default CPUExecutionProvider)")
    add_measurement_arguments(p)
    return p.parse_args(argv)


def add_bundle_argument(p: argparse.ArgumentParser) -> None:
    """The optional BUNDLE argument (this runner's and ``run_python.py``'s)."""
    p.add_argument("bundle", nargs="?", default=None, metavar="BUNDLE",
                   help="the bundle .zip or the folder it was extracted to (default: where this script lies)")


def add_measurement_arguments(p: argparse.ArgumentParser) -> None:
    """The measurement settings and ``--limit``, ``--no-pin``, ``--quiet`` (this runner's and ``run_python.py``'s)."""
    g = p.add_argument_group("measurement (defaults: the bundle's settings)")
    g.add_argument("--warmup", type=int, help="untimed runs before timing")
    g.add_argument("--repeats", type=int, help="minimum timed runs per model")
    g.add_argument("--max-repeats", type=int, help="maximum timed runs per model")
    g.add_argument("--min-seconds", type=float, help="keep timing a model until this much time has passed")
    g.add_argument("--passes", type=int, help="passes over all models; each result is the pass with the lowest median")
    p.add_argument("--limit", type=int, metavar="N", help=LIMIT_HELP + " (to split a long run)")
    p.add_argument("--no-pin", action="store_true", help="do not pin the process to --threads CPUs")
    p.add_argument("--quiet", action="store_true", help="no progress output")


#: Largest timing settings taken, as ``nas lut import`` reads them back (more is a typo; infinity is no JSON).
_MAX_SETTING = {"warmup": 10**6, "min_repeats": 10**6, "max_repeats": 10**6, "min_seconds": 3600, "passes": 1000}


def _settings(args: argparse.Namespace, manifest: dict[str, Any]) -> dict[str, Any]:
    s = {k: manifest["settings"][k] for k in SETTING_KEYS}
    s["passes"] = manifest["settings"].get("passes", 1)
    for key, arg in (("warmup", args.warmup), ("min_repeats", args.repeats), ("max_repeats", args.max_repeats),
                     ("min_seconds", args.min_seconds), ("passes", args.passes)):
        if arg is not None:
            low = 1 if key in ("min_repeats", "max_repeats", "passes") else 0
            if not low <= arg <= _MAX_SETTING[key]:  # NaN too
                raise RunnerError(f"--{key.replace('_', '-')}: expected a number from {low} to {_MAX_SETTING[key]}, "
                                  f"got {arg}")
            s[key] = arg
    s["max_repeats"] = max(s["max_repeats"], s["min_repeats"])
    s["statistic"] = "median"
    return s


def _write_atomic(path: str, data: dict[str, Any]) -> None:
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(data, indent=1, allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def run(args: argparse.Namespace) -> int:
    if args.threads < 1:
        raise RunnerError(f"--threads: expected >= 1, got {args.threads}")
    if args.limit is not None and args.limit < 1:
        raise RunnerError(f"--limit: expected >= 1, got {args.limit}")
    bundle = Bundle(args.bundle or _default_bundle())
    m = bundle.manifest
    settings = _settings(args, m)
    out = args.output
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise RunnerError(f"-o {out}: the folder {folder} does not exist")
    if os.path.exists(out):
        raise RunnerError(f"{out} already exists (a finished run); nothing was measured. Choose another -o path, "
                          "or move the old results away first")
    ort, np = import_runtime("onnxruntime", "onnxruntime")
    available = list(ort.get_available_providers())
    if args.provider not in available:
        raise RunnerError(f"--provider: onnxruntime {ort.__version__} here offers {available}, not "
                          f"{args.provider!r}; pick one of those (a GPU or NPU provider needs its own onnxruntime "
                          "build, e.g. onnxruntime-gpu)")
    pinned = None if args.no_pin else pin(args.threads)
    device = device_info(ort, np, args.provider, args.threads, pinned)
    header = {"results_format": RESULTS_FORMAT, "manifest_sha256": bundle.manifest_sha256,
              "provider": args.provider, "threads": args.threads, "settings": settings,
              "machine": device["machine"], "processor": device["processor"],
              "runtime": f"onnxruntime {ort.__version__}", "pinned": not args.no_pin, "started": _now()}

    # (key in the partial file, file in the bundle, input shape, label)
    work = [(f"entry:{e['signature']}", e["file"], e["input_shape"], e["signature"]) for e in m["entries"]]
    work.append(("overhead", m["overhead"]["file"], m["overhead"]["input_shape"], "overhead model"))
    work += [(f"calibration:{c['seed']}", c["file"], c["input_shape"], f"calibration network {c['seed']}")
             for c in m["calibration"]]

    partial = Partial(out + ".partial", header)
    timer = Timer(ort, np, provider=args.provider, threads=args.threads, settings=settings)
    passes = int(settings["passes"])
    total = len(work) * passes
    left = sum(max(passes - partial.passes(w[0]), 0) for w in work)
    if not args.quiet:
        resumed = total - left
        note = f" (resuming: {resumed} passes already in {partial.path})" if resumed else ""
        sys.stderr.write(f"{bundle.location}: timing {len(work)} models in {passes} interleaved pass(es) with "
                         f"onnxruntime {ort.__version__} {args.provider}, {args.threads} thread(s){note}\n")
    progress = Progress(total, total - left, args.quiet)
    measured = 0
    try:
        for number in range(1, passes + 1):  # pass 1 over every model, then pass 2, ...
            for key, name, shape, label in work:
                if partial.passes(key) >= number:
                    continue
                if args.limit is not None and measured >= args.limit:
                    progress.finish()
                    sys.stderr.write(f"stopped after {measured} timing passes (--limit); {total - left + measured} of "
                                     f"{total} are in {partial.path}; re-run the same command to continue\n")
                    return EXIT_LIMIT
                model = bundle.read(name)
                try:
                    timing = timer.time(model, shape)
                except Exception as exc:  # onnxruntime raises its own exception types
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    raise RunnerError(f"{bundle.location}: {name} ({label}): onnxruntime {ort.__version__} cannot run "
                                      f"it ({first}); the bundle needs ONNX opset {m.get('opset')} support: upgrade "
                                      "onnxruntime, or copy the bundle again if it may be damaged") from None
                partial.add(key, partial.passes(key) + 1, timing)
                measured += 1
                progress.step(f"pass {number}/{passes}: {label}")
    finally:
        partial.close()

    def result(key: str) -> dict[str, Any]:
        return partial.result(key, passes)

    results = {
        "format": RESULTS_FORMAT,
        "runner_version": RUNNER_VERSION,
        "bundle": bundle.identity(),
        "device": device,
        "settings": settings,
        "started": partial.header.get("started", header["started"]),
        "finished": _now(),
        "entries": {e["signature"]: result(f"entry:{e['signature']}") for e in m["entries"]},
        "overhead_ms": result("overhead")["median"],
        "overhead": result("overhead"),
        "calibration": [{"seed": c["seed"], "parts": list(c["parts"]),
                         "measured_ms": result(f"calibration:{c['seed']}")["median"],
                         "timing": result(f"calibration:{c['seed']}")} for c in m["calibration"]],
    }
    _write_atomic(out, results)
    os.remove(partial.path)
    if not args.quiet:
        sys.stderr.write(f"wrote {out}: {len(results['entries'])} entries, overhead "
                         f"{results['overhead_ms'] * 1000:.1f} us, {len(results['calibration'])} calibration networks."
                         f"\nSend {out} back and import it: nas lut import {os.path.basename(out)} -o TABLE.json\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except RunnerError as exc:
        sys.stderr.write(f"\nerror: {exc}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write(f"\ninterrupted: everything measured so far is in {args.output}.partial; re-run the same "
                         "command to continue\n")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
