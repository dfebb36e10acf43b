"""Device bundles: measure a latency table on a device that cannot run this project.

``nas lut bundle`` writes one zip holding every timing model a search space needs, already
exported to ONNX, plus a standalone runner (``run_bundle.py``, the text of
:mod:`nas.latency.bundle_runner`) that needs only Python 3.8+, numpy and onnxruntime. The
device owner runs it and sends back ``results.json``; ``nas lut import`` turns that into a
latency table (:mod:`nas.latency.importer`). Zip layout::

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
from nas.latency.build import DEFAULT_CALIBRATION, calibration_archs, space_parts
from nas.latency.measure import MeasureSettings, arch_onnx, part_onnx
from nas.latency.bundle_runner import BUNDLE_FORMAT, LIMIT_HELP, RESULTS_FORMAT
from nas.latency.output import check_output, writing
from nas.latency.signature import arch_parts
from nas.space import SearchSpace

__all__ = ["BUNDLE_FORMAT", "RESULTS_FORMAT", "BundleSummary", "make_bundle", "runner_source", "is_bundle",
           "check_bundle_output"]

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


def make_bundle(space: SearchSpace, path: str | os.PathLike, *, references: bool = True,
                calibration: int = DEFAULT_CALIBRATION,
                progress: bool = True, settings: MeasureSettings | None = None) -> BundleSummary:
    """Export everything a device needs to measure ``space`` into the zip ``path`` (written atomically).

    ``path`` may replace an earlier bundle, never any other file (:func:`check_bundle_output`).

    ``settings`` become the runner's default measurement settings (the device owner can
    override them on the command line); ``calibration`` networks (seeds ``CALIBRATION_SEED``,
    ``+1``, ..., from the space's cheapest to its costliest: :func:`nas.latency.build.calibration_archs`)
    are included for the whole-network correction.
    """
    from nas.export import OPSET

    if calibration < 0:
        raise LatencyTableError(f"--calibration: expected >= 0 networks, got {calibration}")
    path = Path(path)
    check_bundle_output(path)
    settings = settings or MeasureSettings()
    started = time.monotonic()
    parts = space_parts(space, references=references)
    archs = [(seed, arch) for seed, _, arch in calibration_archs(space, calibration)]
    files = {part.signature: f"models/{i:05d}.onnx" for i, part in enumerate(parts)}
    input_shape = (1, space.in_ch, space.input_size, space.input_size)
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "created": created,
        "tool": f"nas {__version__}",
        "space": {"name": space.name, "file": space.source, "digest": space.digest},
        "input_size": space.input_size, "in_ch": space.in_ch, "num_classes": space.num_classes, "batch_size": 1,
        "opset": OPSET,
        "settings": settings.to_dict(),
        "measurement": {"weights": "deterministic (1/fan-in), BN at identity", "input": "batch 1, float32 N(0,1)"},
        "references": references,
        "results_format": RESULTS_FORMAT,
        "entries": [{"signature": p.signature, "file": files[p.signature], "input_shape": _shape(p.input_shape)}
                    for p in parts],
        "overhead": {"file": "models/overhead.onnx", "input_shape": _shape(input_shape),
                     "model": "one ReLU (the per-call overhead of a trivial model)"},
        "calibration": [],
    }
    for seed, arch in archs:
        sigs = [p.signature for p in arch_parts(arch)]
        missing = [s for s in sigs if s not in files]
        if missing:  # pragma: no cover - space_parts enumerates every part the space can draw
            raise LatencyTableError(f"calibration network {seed} has parts the bundle lacks: {missing[:3]}")
        manifest["calibration"].append({"seed": seed, "file": f"calibration/{seed}.onnx",
                                        "input_shape": _shape(input_shape), "parts": sigs})

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with writing(path, "the bundle"):
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_zip(tmp, path, space, parts, files, archs, manifest, settings, created, progress)
            check_bundle_output(path)  # again: another process may have written it meanwhile
            os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):  # the folder may be gone or read-only: never a second error on top of the first
            tmp.unlink(missing_ok=True)
        raise
    return BundleSummary(path=path, entries=len(parts), calibration=len(archs), size_bytes=path.stat().st_size,
                         seconds=time.monotonic() - started)


def _write_models(zf: zipfile.ZipFile, path: Path, parts: list[Any], files: dict[str, str],
                  archs: list[tuple[int, Any]], manifest: dict[str, Any], progress: bool) -> None:
    import torch

    from nas.export import to_onnx_bytes

    input_shape = tuple(manifest["overhead"]["input_shape"])
    bar = tqdm(total=len(parts) + 1 + len(archs), desc=f"exporting {path.name}", unit="model", disable=not progress,
               smoothing=0.05)
    with bar:
        for part in parts:
            zf.writestr(files[part.signature], part_onnx(part))
            bar.update()
        zf.writestr("models/overhead.onnx", to_onnx_bytes(torch.nn.ReLU(), input_shape))
        bar.update()
        for (_, arch), entry in zip(archs, manifest["calibration"]):
            zf.writestr(entry["file"], arch_onnx(arch))
            bar.update()


def _write_zip(tmp: Path, path: Path, space: SearchSpace, parts: list[Any], files: dict[str, str],
               archs: list[tuple[int, Any]], manifest: dict[str, Any], settings: MeasureSettings, created: str,
               progress: bool) -> None:
    """Write the bundle's zip to ``tmp`` (``path`` names it in the progress bar and README.txt)."""
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        _write_models(zf, path, parts, files, archs, manifest, progress)
        zf.writestr("manifest.json", json.dumps(manifest, indent=1) + "\n")
        runner = zipfile.ZipInfo("run_bundle.py", date_time=time.localtime()[:6])
        runner.external_attr = 0o100755 << 16  # executable once extracted
        runner.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(runner, runner_source())
        zf.writestr("__main__.py", _MAIN)
        s = settings
        raw = sum(info.file_size for info in zf.infolist())
        extracted = f"{raw / 1e9:.1f} GB" if raw >= 1e9 else f"{raw / 1e6:.0f} MB"
        zf.writestr("README.txt", _README.format(
            extracted=extracted, limit=LIMIT_HELP,
            space=space.name, entries=len(parts), calibration=len(archs), tool=f"nas {__version__}",
            created=created, zip_name=path.name,
            settings=f"warmup {s.warmup}, repeats {s.min_repeats}..{s.max_repeats}, min {s.min_seconds} s, "
                     f"{s.passes} passes"))
