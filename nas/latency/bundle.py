"""Device bundles: measure a latency table on a device that cannot run this project.

``nas lut bundle`` writes one zip holding every timing model a search space needs, already
exported to ONNX, plus a standalone runner (``run_bundle.py``, the text of
:mod:`nas.latency.bundle_runner`) that needs only Python 3.8+, numpy and onnxruntime. The
device owner runs it and sends back ``results.json``; ``nas lut import`` turns that into a
latency table (:mod:`nas.latency.importer`).

``nas lut bundle --format tflite`` writes the same models as LiteRT .tflite files (NHWC inputs,
see :mod:`nas.latency.formats`) with ``run_android.sh`` (a computer with adb runs LiteRT's
``benchmark_model`` on an attached phone), ``run_python.py`` (:mod:`nas.latency.litert_runner`:
a Linux board with ``ai-edge-litert``, and the collection of a phone's run) and ``models.tsv``
(the models in timing order, for the shell script); the manifest's format is
``nas-latency-bundle/tflite-1``. ONNX zip layout::

    manifest.json            format, space identity, input size, opset, default measurement
                             settings, entries [{signature, file, input_shape}], overhead model,
                             calibration networks [{seed, file, input_shape, parts}]
    run_bundle.py            the runner (``python run_bundle.py bundle.zip -o results.json``)
    __main__.py              lets ``python bundle.zip -o results.json`` run the zip directly
    README.txt               what the device owner does
    models/NNNNN.onnx        one timing model per part (stem, block at a resolution, head)
    models/overhead.onnx     a one-ReLU model: the per-call overhead
    calibration/SEED.onnx    whole networks of the space (cheapest to costliest), timed end to end

The timing models have constant weights (see :mod:`nas.latency.measure`), so DEFLATE shrinks
them by about three orders of magnitude and a bundle for the default space stays small.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import zipfile
from contextlib import suppress
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from tqdm import tqdm

from nas import __version__
from nas.errors import LatencyTableError
from nas.latency.build import DEFAULT_CALIBRATION, MAX_CALIBRATION, calibration_archs, space_parts
from nas.latency.bundle_runner import BUNDLE_FORMAT, LIMIT_HELP, RESULTS_FORMAT
from nas.latency.formats import ModelFormat, cache_folder, model_format
from nas.latency.litert_runner import TFLITE_BUNDLE_FORMAT
from nas.latency.litert_runner import file_key
from nas.latency.measure import MeasureSettings
from nas.latency.output import check_output, writing
from nas.latency.signature import arch_parts
from nas.space import SearchSpace

__all__ = ["BUNDLE_FORMAT", "TFLITE_BUNDLE_FORMAT", "RESULTS_FORMAT", "BUNDLE_FORMATS", "BundleSummary", "make_bundle",
           "runner_source", "litert_runner_source", "android_script", "is_bundle", "check_bundle_output"]

#: what ``nas lut bundle --format`` takes
BUNDLE_FORMATS: tuple[str, ...] = ("onnx", "tflite")

_MAIN = """\
# Lets `python bundle.zip -o results.json` run the bundle without extracting it (see README.txt).
import sys

import run_bundle

sys.exit(run_bundle.main())
"""

_README = """\
Latency bundle for the search space '{space}' ({entries} timing models, {calibration} calibration networks)
Made by {tool} on {created}.

What to do on the device (phone, Raspberry Pi, ...):

1. Install Python 3.8 or newer, then:    python3 -m pip install numpy onnxruntime
   (nothing else is needed: no PyTorch, no nas).
2. Copy this zip to the device and run, in the folder that holds it:

       python3 {zip_name} -o results.json

   The models are read straight from the zip; there is no need to extract it (extracted, it takes
   {extracted}, as the timing models' constant weights compress very well). If you do extract it, run
   python3 run_bundle.py -o results.json inside the extracted folder, or
   python3 run_bundle.py {zip_name} -o results.json with only run_bundle.py extracted.

   Options: --threads N (default 1), --provider NAME (default CPUExecutionProvider),
   --warmup/--repeats/--max-repeats/--min-seconds/--passes (defaults: {settings}),
   --limit N ({limit}),
   --help for all.
   Every model is timed in several passes (pass 1 over all models, then pass 2, ...) and the fastest
   pass counts, so a stretch of throttling or background load spoils at most one pass of a model.
   Keep the device otherwise idle and plugged in; the run prints its progress and an ETA.
3. It is resumable: after an interruption, run the same command again; finished passes are kept in
   results.json.partial and are not measured again.
4. Send results.json back. On the development machine:

       nas lut import results.json -o my_device.json --device-name "My device"
"""


_MAIN_TFLITE = """\
# Lets `python bundle.zip -o results.json` time the LiteRT models on a Linux board without extracting it.
import sys

import run_python

sys.exit(run_python.main())
"""

_README_TFLITE = """\
LiteRT latency bundle for the search space '{space}' ({entries} timing models, {calibration} calibration networks)
Made by {tool} on {created}. The models are float32 .tflite files with NHWC inputs, run by LiteRT with its
XNNPACK CPU delegate, as an Android app runs them.

A. An Android phone (measured from a computer with adb; the phone needs nothing installed):

1. On the computer: install Android platform-tools (adb) and Python 3; enable USB debugging on the phone and
   connect it ('adb devices' lists it).
2. Get LiteRT's benchmark_model for the phone's ABI ('adb shell getprop ro.product.cpu.abi'; arm64-v8a on nearly
   every phone: android_aarch64) from the LiteRT documentation's performance measurement page ("Native
   benchmark binary"), or build it from LiteRT's sources.
3. Extract this zip and run, in the extracted folder:

       unzip {zip_name} -d {folder} && cd {folder}
       ./run_android.sh --benchmark-model /path/to/android_aarch64_benchmark_model -o results.json

   Options: --threads N (default 1), --warmup N, --runs N, --min-secs S, --passes N (defaults: {settings}),
   --cpu-mask HEX (run under 'taskset HEX', e.g. the big cores), --serial SERIAL (several phones), --limit N,
   --keep (leave the files on the phone), --help. Every finished run is kept in results.json.raw/, so an
   interrupted run resumes when the same command is run again. Keep the phone idle, screen on or off but
   always the same, plugged in and cool.

B. A Linux board (Raspberry Pi OS 64-bit, Jetson, any aarch64/x86-64 Linux with Python 3.8+):

       python3 -m pip install numpy ai-edge-litert
       python3 {zip_name} -o results.json          (or: python3 run_python.py -o results.json, extracted)

   Options: --threads, --warmup/--repeats/--max-repeats/--min-seconds/--passes, --limit N ({limit}), --help.
   Resumable: re-run the same command after an interruption.

Then send results.json back. On the development machine:

       nas lut import results.json -o my_device.json --device-name "My device"
"""


@dataclass(frozen=True)
class BundleSummary:
    path: Path
    entries: int
    calibration: int
    size_bytes: int
    seconds: float


def runner_source() -> str:
    """The text of :mod:`nas.latency.bundle_runner`, shipped as ``run_bundle.py``."""
    return resources.files("nas.latency").joinpath("bundle_runner.py").read_text(encoding="utf-8")


def litert_runner_source() -> str:
    """The text of :mod:`nas.latency.litert_runner`, shipped in LiteRT bundles as ``run_python.py``."""
    return resources.files("nas.latency").joinpath("litert_runner.py").read_text(encoding="utf-8")


def is_bundle(path: Path) -> bool:
    """Whether ``path`` is a bundle zip written by ``nas lut bundle`` (any format version)."""
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = json.loads(zf.read("manifest.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False
    family = BUNDLE_FORMAT.split("/")[0] + "/"
    return isinstance(manifest, dict) and str(manifest.get("format", "")).startswith(family)


def check_bundle_output(path: Path) -> None:
    """Refuse an output path that names a .json file, or an existing file other than an earlier bundle."""
    if path.suffix.lower() == ".json":
        raise LatencyTableError(f"{path}: -o names a .json file, but a bundle is a zip: use e.g. -o bundle.zip "
                                "(.json files are latency tables, written by 'nas lut build' or 'nas lut import')")
    if path.exists() and not is_bundle(path):
        raise LatencyTableError(f"{path}: already exists and is not a bundle zip made by 'nas lut bundle'; it is "
                                "never overwritten: choose another -o path, or move the file away first")
    check_output(path, what="the bundle")


def _shape(shape: tuple[int, ...]) -> list[int]:
    return [int(v) for v in shape]


def _nhwc(shape: tuple[int, ...]) -> list[int]:
    return [int(shape[i]) for i in (0, 2, 3, 1)]


def android_script(settings: MeasureSettings) -> str:
    """``run_android.sh``: the template with the bundle's default settings (``--runs`` is ``min_repeats``)."""
    text = resources.files("nas.latency").joinpath("run_android.sh.tmpl").read_text(encoding="utf-8")
    values = {"TOOL": f"nas {__version__}", "THREADS": "1", "WARMUP": str(settings.warmup),
              "RUNS": str(settings.min_repeats), "MIN_SECS": f"{settings.min_seconds:g}", "PASSES": str(settings.passes)}
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    return text


def make_bundle(space: SearchSpace, path: str | os.PathLike, *, references: bool = True,
                calibration: int = DEFAULT_CALIBRATION, progress: bool = True,
                settings: MeasureSettings | None = None, fmt: str = "onnx") -> BundleSummary:
    """Export everything a device needs to measure ``space`` into the zip ``path`` (written atomically).

    ``path`` may replace an earlier bundle, never any other file (:func:`check_bundle_output`).
    ``fmt``: ``"onnx"`` (a runner for onnxruntime, ``run_bundle.py``) or ``"tflite"`` (LiteRT models, with
    ``run_android.sh`` for a phone over adb and ``run_python.py`` for a Linux board; needs the ``[litert]``
    extra here).

    ``settings`` become the runner's default measurement settings (the device owner can
    override them on the command line); ``calibration`` networks (seeds ``CALIBRATION_SEED``,
    ``+1``, ..., from the space's cheapest to its costliest: :func:`nas.latency.build.calibration_archs`)
    are included for the whole-network correction.
    """
    if not 0 <= calibration <= MAX_CALIBRATION:
        raise LatencyTableError(f"--calibration: expected 0 to {MAX_CALIBRATION} networks, got {calibration}")
    path = Path(path)
    check_bundle_output(path)
    models = model_format(fmt)  # a missing [litert] extra is refused here, before any work
    settings = settings or MeasureSettings()
    started = time.monotonic()
    parts = space_parts(space, references=references)
    archs = [(seed, arch) for seed, _, arch in calibration_archs(space, calibration)]
    ext = models.suffix
    files = {part.signature: f"models/{i:05d}{ext}" for i, part in enumerate(parts)}
    input_shape = (1, space.in_ch, space.input_size, space.input_size)
    shape = _nhwc if fmt == "tflite" else _shape
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    manifest: dict[str, Any] = {
        "format": TFLITE_BUNDLE_FORMAT if fmt == "tflite" else BUNDLE_FORMAT,
        "created": created,
        "tool": f"nas {__version__}",
        "space": {"name": space.name, "file": space.source, "digest": space.digest},
        "input_size": space.input_size, "in_ch": space.in_ch, "num_classes": space.num_classes, "batch_size": 1,
        **({"model_format": "tflite", **models.describe()} if fmt == "tflite" else {"opset": models.describe()["opset"]}),
        "settings": settings.to_dict(),
        "measurement": {"weights": "deterministic (1/fan-in), BN at identity", "input": "batch 1, float32 N(0,1)"},
        "references": references,
        "results_format": RESULTS_FORMAT,
        "entries": [{"signature": p.signature, "file": files[p.signature], "input_shape": shape(p.input_shape)}
                    for p in parts],
        "overhead": {"file": f"models/overhead{ext}", "input_shape": shape(input_shape),
                     "model": "one ReLU (the per-call overhead of a trivial model)"},
        "calibration": [],
    }
    for seed, arch in archs:
        sigs = [p.signature for p in arch_parts(arch)]
        missing = [s for s in sigs if s not in files]
        if missing:  # pragma: no cover - space_parts enumerates every part the space can draw
            raise LatencyTableError(f"calibration network {seed} has parts the bundle lacks: {missing[:3]}")
        manifest["calibration"].append({"seed": seed, "file": f"calibration/{seed}{ext}",
                                        "input_shape": shape(input_shape), "parts": sigs})

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if fmt != "onnx":  # slow conversions are kept on disk until the bundle is written (a re-run converts the rest)
        models.cache.folder = cache_folder(path)
    try:
        with writing(path, "the bundle"):
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_zip(tmp, path, space, parts, files, archs, manifest, settings, created, progress, models)
            check_bundle_output(path)  # again: another process may have written it meanwhile
            os.replace(tmp, path)
        models.cache.remove_folder()
    except BaseException:
        with suppress(OSError):  # the folder may be gone or read-only: never a second error on top of the first
            tmp.unlink(missing_ok=True)
        raise
    return BundleSummary(path=path, entries=len(parts), calibration=len(archs), size_bytes=path.stat().st_size,
                         seconds=time.monotonic() - started)


def _write_models(zf: zipfile.ZipFile, path: Path, parts: list[Any], files: dict[str, str],
                  archs: list[tuple[int, Any]], manifest: dict[str, Any], progress: bool, models: ModelFormat) -> None:
    input_shape = (1, manifest["in_ch"], manifest["input_size"], manifest["input_size"])
    bar = tqdm(total=len(parts) + 1 + len(archs), desc=f"exporting {path.name}", unit="model", disable=not progress,
               smoothing=0.05)
    with bar:
        for part in parts:
            zf.writestr(files[part.signature], models.part_model(part))
            bar.update()
        zf.writestr(manifest["overhead"]["file"], models.overhead_model(input_shape))
        bar.update()
        for (_, arch), entry in zip(archs, manifest["calibration"]):
            zf.writestr(entry["file"], models.network_model(arch))
            bar.update()


def _executable(name: str, text: str) -> tuple[zipfile.ZipInfo, str]:
    info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    info.external_attr = 0o100755 << 16  # executable once extracted
    info.compress_type = zipfile.ZIP_DEFLATED
    return info, text


def _write_zip(tmp: Path, path: Path, space: SearchSpace, parts: list[Any], files: dict[str, str],
               archs: list[tuple[int, Any]], manifest: dict[str, Any], settings: MeasureSettings, created: str,
               progress: bool, models: ModelFormat) -> None:
    """Write the bundle's zip to ``tmp`` (``path`` names it in the progress bar and README.txt)."""
    tflite = models.name == "tflite"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        _write_models(zf, path, parts, files, archs, manifest, progress, models)
        zf.writestr("manifest.json", json.dumps(manifest, indent=1) + "\n")
        zf.writestr(*_executable("run_bundle.py", runner_source()))
        if tflite:
            zf.writestr(*_executable("run_python.py", litert_runner_source()))
            zf.writestr(*_executable("run_android.sh", android_script(settings)))
            rows = [("entry:" + e["signature"], e["file"]) for e in manifest["entries"]]
            rows.append(("overhead", manifest["overhead"]["file"]))
            rows += [(f"calibration:{c['seed']}", c["file"]) for c in manifest["calibration"]]
            zf.writestr("models.tsv", "".join(f"{file_key(key)}\t{file}\n" for key, file in rows))
        zf.writestr("__main__.py", _MAIN_TFLITE if tflite else _MAIN)
        s = settings
        raw = sum(info.file_size for info in zf.infolist())
        extracted = f"{raw / 1e9:.1f} GB" if raw >= 1e9 else f"{raw / 1e6:.0f} MB"
        readme = _README_TFLITE if tflite else _README
        zf.writestr("README.txt", readme.format(
            extracted=extracted, limit=LIMIT_HELP,
            space=space.name, entries=len(parts), calibration=len(archs), tool=f"nas {__version__}",
            created=created, zip_name=path.name, folder=path.stem,
            settings=f"warmup {s.warmup}, repeats {s.min_repeats}..{s.max_repeats}, min {s.min_seconds} s, "
                     f"{s.passes} passes"))
