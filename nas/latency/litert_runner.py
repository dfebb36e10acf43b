#!/usr/bin/env python3
"""Measure a LiteRT latency bundle (``nas lut bundle --format tflite``) on a Linux board, or collect a phone's run.

This file is copied into every LiteRT bundle as ``run_python.py``, beside ``run_bundle.py`` (whose bundle
reading, resuming and progress code it uses). It needs Python 3.8+ and, to time models, numpy and
``ai-edge-litert`` (``pip install numpy ai-edge-litert``: Raspberry Pi OS 64-bit, Jetson, any aarch64 or
x86-64 Linux); do not import torch or nas here.

Two uses::

    python3 run_python.py [BUNDLE] -o results.json [--threads 1] [--warmup N --repeats N --max-repeats N
                          --min-seconds S --passes N] [--limit N] [--no-pin] [--quiet]
    python3 run_python.py --from-android RAW_FOLDER -o results.json     # what run_android.sh runs at its end

Timing (a board): the protocol of ``nas lut build --backend litert`` (``nas.latency.measure.LiteRTBackend``).
One pass over a model: an ``ai_edge_litert`` interpreter with ``num_threads = --threads`` and LiteRT's default
XNNPACK delegate, its input set once to float32 N(0, 1) from ``numpy.random.default_rng(0)``, ``warmup``
untimed ``invoke()`` calls, then ``invoke()`` timed with ``time.perf_counter_ns`` until both ``min_repeats``
runs and ``min_seconds`` have passed (at most ``max_repeats``): median and 10th/90th percentiles in ms. Passes
are interleaved over all models and each model's result is its pass with the lowest median. Resumable as
``run_bundle.py`` is: every pass goes to ``RESULTS.partial`` as it is measured.

Collecting (a phone): ``run_android.sh`` runs LiteRT's ``benchmark_model`` on the phone over adb and keeps
each run's output in ``RESULTS.raw/passN/KEY.txt``; ``--from-android`` parses them
(:func:`parse_benchmark_output`) and writes the same ``results.json``. ``benchmark_model`` reports per-run
statistics, not the runs: a pass's ``median``, ``p10`` and ``p90`` are its ``median``, ``p5`` and ``p95``
(older binaries print no percentiles: then its mean, minimum and maximum, and the results say so).

Exit status: 0 done, 2 error (a message, not a traceback), 3 stopped early by ``--limit``, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
from typing import Any

if __package__:  # in the nas package (never a run_bundle.py that happens to lie in the working directory)
    from nas.latency import bundle_runner as base
else:  # beside this file in a bundle
    import run_bundle as base  # type: ignore[import-not-found, no-redef]

RUNNER_VERSION = "1"
TFLITE_BUNDLE_FORMAT = "nas-latency-bundle/tflite-1"
RESULTS_FORMAT = base.RESULTS_FORMAT
DELEGATE = "XNNPACK"
RunnerError = base.RunnerError

# ---------------------------------------------------------------------------------- benchmark_model's output
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_STATS = re.compile(r"count=(?P<count>\d+)(?P<rest>.*)$")
_FIELD = re.compile(rf"(?P<key>first|curr|min|max|avg|std|p5|median|p95)=(?P<value>{_NUMBER})")
_RUNNING = re.compile(r"Running benchmark for at least (?P<runs>\d+) iterations")


def parse_benchmark_output(text: str, where: str = "benchmark_model output") -> dict[str, Any]:
    """The timed runs' statistics of one ``benchmark_model`` run (LiteRT's or TensorFlow Lite's, native binary or
    logcat lines with their prefixes), in ms: ``{median, p10, p90, repeats, statistic, spread, warmup_runs,
    xnnpack}``. The warm-up block (the first ``Running benchmark`` block) is left out."""
    blocks: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    xnnpack = False
    for raw in text.splitlines():
        line = raw.strip()
        if "XNNPACK" in line:
            xnnpack = True
        running = _RUNNING.search(line)
        if running:
            current = {"min_runs": int(running.group("runs"))}
            blocks.append(current)
            continue
        stats = _STATS.search(line)
        if stats and current is not None and "count" not in current:
            current["count"] = int(stats.group("count"))
            rest = stats.group("rest")
            current.update({m.group("key"): float(m.group("value")) for m in _FIELD.finditer(rest)})
            current["all_same"] = "(all same)" in rest or ("curr" in current and "min" not in current)
    timed = [b for b in blocks if "count" in b]
    if len(timed) < 2:
        last = [line for line in text.strip().splitlines() if line.strip()][-3:]
        raise RunnerError(f"{where}: no timed runs found (expected a warm-up block and a 'Running benchmark for at "
                          f"least N iterations' block with a 'count=...' line); its last lines: {' | '.join(last)}")
    run, warmup = timed[-1], timed[0]
    if run["count"] < 1:
        raise RunnerError(f"{where}: the timed block ran the model 0 times")
    if run.get("all_same"):
        value = run["curr"]
        median = p10 = p90 = value
        statistic, spread = "median", "all runs equal"
    elif "median" in run:
        median, p10, p90 = run["median"], run.get("p5", run["min"]), run.get("p95", run["max"])
        statistic, spread = "median", "benchmark_model's p5/p95 as p10/p90"
    else:
        median, p10, p90 = run["avg"], run["min"], run["max"]
        statistic, spread = "mean", "benchmark_model's min/max as p10/p90 (it printed no percentiles)"
    p10, p90 = min(p10, median), max(p90, median)
    return {"median": median / 1000.0, "p10": p10 / 1000.0, "p90": p90 / 1000.0, "repeats": int(run["count"]),
            "statistic": statistic, "spread": spread, "warmup_runs": int(warmup["count"]), "xnnpack": xnnpack}


# ---------------------------------------------------------------------------------- timing on this board
class Timer:
    """``nas.latency.measure.LiteRTBackend``'s pass, without torch."""

    def __init__(self, interpreter_module: Any, np: Any, *, threads: int, settings: dict[str, Any]) -> None:
        self.lite, self.np, self.threads, self.settings = interpreter_module, np, threads, settings

    def time(self, model: bytes) -> dict[str, Any]:
        np, lite, s = self.np, self.lite, self.settings
        interpreter = lite.Interpreter(model_content=model, num_threads=self.threads,
                                       experimental_op_resolver_type=lite.OpResolverType.AUTO)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        data = np.random.default_rng(0).standard_normal(tuple(int(v) for v in detail["shape"])).astype(np.float32)
        interpreter.set_tensor(detail["index"], data)
        invoke = interpreter.invoke
        for _ in range(int(s["warmup"])):
            invoke()
        samples: list[int] = []
        start = time.perf_counter()
        while len(samples) < s["max_repeats"] and (len(samples) < s["min_repeats"]
                                                   or time.perf_counter() - start < s["min_seconds"]):
            t0 = time.perf_counter_ns()
            invoke()
            samples.append(time.perf_counter_ns() - t0)
        p10, median, p90 = np.percentile(np.asarray(samples, dtype=np.float64) / 1e6, [10, 50, 90])
        return {"median": float(median), "p10": float(p10), "p90": float(p90), "repeats": len(samples)}


def _import_runtime() -> tuple[Any, Any, str]:
    lite, np = base.import_runtime("ai_edge_litert.interpreter", "ai-edge-litert")
    from importlib.metadata import PackageNotFoundError, version

    try:
        litert_version = version("ai-edge-litert")
    except PackageNotFoundError:
        litert_version = "unknown"
    return lite, np, litert_version


def _work(m: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(key in the partial file / raw folder, file in the bundle, label) of every model, in timing order."""
    work = [(f"entry:{e['signature']}", e["file"], e["signature"]) for e in m["entries"]]
    work.append(("overhead", m["overhead"]["file"], "overhead model"))
    work += [(f"calibration:{c['seed']}", c["file"], f"calibration network {c['seed']}") for c in m["calibration"]]
    return work


def _results(bundle: Any, device: dict[str, Any], settings: dict[str, Any], started: str,
             result: Any) -> dict[str, Any]:
    m = bundle.manifest
    return {
        "format": RESULTS_FORMAT, "runner_version": RUNNER_VERSION, "bundle": bundle.identity(), "device": device,
        "settings": settings, "started": started, "finished": base._now(),
        "entries": {e["signature"]: result(f"entry:{e['signature']}") for e in m["entries"]},
        "overhead_ms": result("overhead")["median"], "overhead": result("overhead"),
        "calibration": [{"seed": c["seed"], "parts": list(c["parts"]),
                         "measured_ms": result(f"calibration:{c['seed']}")["median"],
                         "timing": result(f"calibration:{c['seed']}")} for c in m["calibration"]],
    }


def _check_output(out: str) -> None:
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise RunnerError(f"-o {out}: the folder {folder} does not exist")
    if os.path.exists(out):
        raise RunnerError(f"{out} already exists (a finished run); nothing was measured. Choose another -o path, or "
                          "move the old results away first")


def run_board(args: argparse.Namespace) -> int:
    if args.threads < 1:
        raise RunnerError(f"--threads: expected >= 1, got {args.threads}")
    if args.limit is not None and args.limit < 1:
        raise RunnerError(f"--limit: expected >= 1, got {args.limit}")
    bundle = base.Bundle(args.bundle or base._default_bundle(), TFLITE_BUNDLE_FORMAT)
    m = bundle.manifest
    settings = base._settings(args, m)
    out = args.output
    _check_output(out)
    lite, np, litert_version = _import_runtime()
    pinned = None if args.no_pin else base.pin(args.threads)
    cpu = base.cpu_name()
    model = base.board_model()
    name = f"{model} ({cpu})" if model and model not in cpu else cpu
    device = {"description": f"{name}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.machine()}",
              "platform": platform.platform(), "system": platform.system(), "machine": platform.machine(),
              "processor": cpu, "board": model, "cpu_count": os.cpu_count(), "python": platform.python_version(),
              "numpy": np.__version__, "runtime": "litert", "litert": f"ai-edge-litert {litert_version}",
              "provider": DELEGATE, "threads": args.threads, "pinned_cpus": pinned}
    header = {"results_format": RESULTS_FORMAT, "manifest_sha256": bundle.manifest_sha256, "provider": DELEGATE,
              "threads": args.threads, "settings": settings, "machine": device["machine"], "processor": cpu,
              "runtime": device["litert"], "pinned": not args.no_pin, "started": base._now()}
    work = _work(m)
    partial = base.Partial(out + ".partial", header)
    timer = Timer(lite, np, threads=args.threads, settings=settings)
    passes = int(settings["passes"])
    total = len(work) * passes
    left = sum(max(passes - partial.passes(key), 0) for key, _, _ in work)
    if not args.quiet:
        resumed = total - left
        note = f" (resuming: {resumed} passes already in {partial.path})" if resumed else ""
        sys.stderr.write(f"{bundle.location}: timing {len(work)} models in {passes} interleaved pass(es) with "
                         f"ai-edge-litert {litert_version} and XNNPACK, {args.threads} thread(s){note}\n")
    progress = base.Progress(total, total - left, args.quiet)
    measured = 0
    try:
        for number in range(1, passes + 1):
            for key, name_, label in work:
                if partial.passes(key) >= number:
                    continue
                if args.limit is not None and measured >= args.limit:
                    progress.finish()
                    sys.stderr.write(f"stopped after {measured} timing passes (--limit); re-run the same command to "
                                     "continue\n")
                    return base.EXIT_LIMIT
                try:
                    timing = timer.time(bundle.read(name_))
                except (ValueError, RuntimeError) as exc:
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    raise RunnerError(f"{bundle.location}: {name_} ({label}): ai-edge-litert {litert_version} cannot "
                                      f"run it ({first}); upgrade ai-edge-litert, or copy the bundle again") from None
                partial.add(key, partial.passes(key) + 1, timing)
                measured += 1
                progress.step(f"pass {number}/{passes}: {label}")
    finally:
        partial.close()
    results = _results(bundle, device, {**settings, "spread": "p10/p90 of the timed runs"},
                       partial.header.get("started", header["started"]), lambda key: partial.result(key, passes))
    base._write_atomic(out, results)
    os.remove(partial.path)
    if not args.quiet:
        sys.stderr.write(f"wrote {out}: {len(results['entries'])} entries.\nSend {out} back and import it: nas lut "
                         f"import {os.path.basename(out)} -o TABLE.json --device-name 'DEVICE'\n")
    return 0


# ---------------------------------------------------------------------------------- collecting a phone's run
def _read_keyvalues(path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if "=" in line:
                    key, value = line.rstrip("\r\n").split("=", 1)
                    out[key.strip()] = value.strip()
    except OSError as exc:
        raise RunnerError(f"{path}: cannot read it ({exc.strerror}); run run_android.sh again") from None
    return out


def file_key(key: str) -> str:
    """The raw file name of a model key (run_android.sh names them the same way: models.tsv's first column)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", key)


def collect_android(args: argparse.Namespace) -> int:
    raw = args.from_android
    if not os.path.isdir(raw):
        raise RunnerError(f"--from-android {raw}: no such folder (run_android.sh keeps the raw outputs in "
                          "RESULTS.raw/)")
    bundle = base.Bundle(args.bundle or base._default_bundle(), TFLITE_BUNDLE_FORMAT)
    out = args.output
    _check_output(out)
    run = _read_keyvalues(os.path.join(raw, "run.txt"))
    dev = _read_keyvalues(os.path.join(raw, "device.txt"))
    try:
        threads, passes = int(run["threads"]), int(run["passes"])
        settings = {"warmup": int(run["warmup"]), "min_repeats": int(run["runs"]),
                    "min_seconds": float(run["min_secs"]), "passes": passes}
    except (KeyError, ValueError) as exc:
        raise RunnerError(f"{os.path.join(raw, 'run.txt')}: {exc} is missing or not a number; run run_android.sh "
                          "again") from None
    if run.get("manifest_sha256") != bundle.manifest_sha256:
        raise RunnerError(f"{raw}: measured with another bundle (manifest {run.get('manifest_sha256')!r}); collect "
                          "it with the run_python.py of the bundle it was run with")
    timings: dict[str, list[dict[str, Any]]] = {}
    notes: set[str] = set()
    xnnpack = True
    for key, _, _ in _work(bundle.manifest):
        for number in range(1, passes + 1):
            path = os.path.join(raw, f"pass{number}", file_key(key) + ".txt")
            if not os.path.isfile(path):
                raise RunnerError(f"{path}: missing; the phone's run is not finished: run run_android.sh again (it "
                                  "resumes)")
            with open(path, encoding="utf-8", errors="replace") as f:
                parsed = parse_benchmark_output(f.read(), where=path)
            notes.add(parsed["spread"])
            xnnpack = xnnpack and parsed["xnnpack"]
            timings.setdefault(key, []).append(parsed)
    statistic = "median" if all(t["statistic"] == "median" for ts in timings.values() for t in ts) else "mean"
    settings["max_repeats"] = max(max(t["repeats"] for t in ts) for ts in timings.values())
    settings["min_repeats"] = min(settings["min_repeats"], settings["max_repeats"])
    settings.update({"statistic": statistic, "spread": "; ".join(sorted(notes))})
    model = " ".join(v for v in (dev.get("manufacturer"), dev.get("model")) if v) or "Android device"
    soc = dev.get("soc") or dev.get("hardware") or ""
    abi = dev.get("abi", "")
    device = {"description": f"{model}{f' ({soc})' if soc else ''}, Android {dev.get('android', '?')}, {abi}".strip(", "),
              "platform": f"Android {dev.get('android', '?')}", "system": "Android", "machine": abi,
              "processor": soc, "board": model, "cpu_count": None, "runtime": "litert",
              "litert": f"benchmark_model ({run.get('binary', 'LiteRT')})", "provider": DELEGATE,
              "threads": threads, "cpu_mask": run.get("cpu_mask") or None, "xnnpack_seen": xnnpack,
              "pinned_cpus": None}

    def result(key: str) -> dict[str, Any]:
        return base.best_of([{k: t[k] for k in ("median", "p10", "p90", "repeats")} for t in timings[key]])

    results = _results(bundle, device, settings, run.get("started", base._now()), result)
    base._write_atomic(out, results)
    if not args.quiet:
        sys.stderr.write(f"wrote {out}: {len(results['entries'])} entries from {raw}.\nImport it: nas lut import "
                         f"{os.path.basename(out)} -o TABLE.json --device-name 'DEVICE'\n")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="run_python.py",
        description="Time every model of a LiteRT latency bundle (nas lut bundle --format tflite) with ai-edge-litert "
                    "and XNNPACK on this Linux board, or (--from-android) collect the outputs run_android.sh kept, "
                    "and write the results for 'nas lut import'. Resumable: re-run the same command.",
        epilog="Exit status: 0 done, 2 error, 3 stopped by --limit, 130 interrupted (re-run to continue).")
    base.add_bundle_argument(p)
    p.add_argument("-o", "--output", default="results.json", metavar="RESULTS", help="results JSON to write")
    p.add_argument("--from-android", metavar="RAW", help="collect run_android.sh's outputs (RESULTS.raw/)")
    p.add_argument("--threads", type=int, default=1, help="LiteRT num_threads (default 1)")
    base.add_measurement_arguments(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return collect_android(args) if args.from_android else run_board(args)
    except RunnerError as exc:
        sys.stderr.write(f"\nerror: {exc}\n")
        return base.EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write(f"\ninterrupted: everything measured so far is in {args.output}.partial; re-run the same "
                         "command to continue\n")
        return base.EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
