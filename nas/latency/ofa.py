"""Importing published Once-for-All / ProxylessNAS latency lookup tables (YAML).

Those tables map layer keys to timing statistics::

    Conv-input:224x224x3-output:112x112x32:                       {count: 100, mean: 5.1, var: 0.02}
    expanded_conv-input:7x7x192-output:7x7x320-expand:6-kernel:5-stride:1-idskip:0:  {...}
    expanded_conv-input:28x28x40-output:28x28x40-expand:120-kernel:5-stride:1-idskip:1-se:1-hs:0:  {...}
    Conv_1-input:7x7x320-output:7x7x1280:                         {...}
    AvgPool2D-input:7x7x1280-output:1x1x1280:                     {...}   (MobileNetV3 tables)
    Logits-input:7x7x1280-output:1000:                            {...}   (pool + classifier, ProxylessNAS)

``input``/``output`` are a layer's ``H x W x C`` in and out; ``expand`` is the expansion
*ratio* in the MobileNetV2/ProxylessNAS tables but the *middle channel count* in the
MobileNetV3 ones, which add ``-se:0|1-hs:0|1`` after ``idskip`` (``expand="auto"`` tells them
apart by those fields); ``idskip:1`` is a residual connection.

Each block key becomes our inverted-residual signature (``hs:1`` -> ``hswish``, else ``relu``,
i.e. ReLU6; ``se`` from ``se:``); ``Conv`` becomes the stem (3x3, stride from the
resolutions); ``Conv_1`` + (``AvgPool*`` +) ``Logits`` together become the 1x1-conv head.
Only signatures the given space can produce are kept. An entry's median is the published
mean, p10/p90 are ``mean -/+ 1.2816 * sqrt(var)`` (normal quantiles, kept positive), repeats
is ``count``; entries are marked ``imported``. These tables time whole layers in another
framework on another device: there is no whole-network calibration (identity correction).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nas import __version__
from nas.arch import ACTIVATIONS, BlockSpec, HeadSpec, StemSpec, conv_out_size
from nas.errors import LatencyTableError, SpecError
from nas.latency.build import space_parts
from nas.latency.importer import refuse_existing
from nas.latency.signature import block_signature, stem_signature
from nas.latency.table import Correction, Entry, LatencyTable, save_table
from nas.space import SearchSpace

__all__ = ["EXPAND_MODES", "OfaImport", "read_ofa_yaml", "import_ofa_yaml", "IDENTITY_METHOD"]

EXPAND_MODES: tuple[str, ...] = ("auto", "ratio", "channels")
IDENTITY_METHOD = "none: imported per-block table, no whole-network calibration"
Z90 = 1.2815515655446004  # standard normal 90 % quantile

# skip reasons, as they appear in the summary
NOT_IN_SPACE = "not produced by the space"
IDSKIP = "idskip disagrees with stride/channels"
SHAPE = "inconsistent or non-square shapes"
UNSUPPORTED = "layer or options with no counterpart here"
DUPLICATE = "duplicate of an earlier key"


@dataclass
class _Stat:
    mean: float
    var: float
    count: int

    def entry(self) -> Entry:
        sd = math.sqrt(self.var)
        p10 = max(self.mean - Z90 * sd, self.mean * 1e-3)
        return Entry(self.mean, p10, self.mean + Z90 * sd, self.count, "imported")


@dataclass
class OfaImport:
    """What an import did: the table, and which keys and space parts were (not) used."""

    table: LatencyTable
    keys: int
    used: int
    skipped: dict[str, int]
    space_parts: int
    missing: list[str] = field(default_factory=list)

    @property
    def covered(self) -> int:
        return self.space_parts - len(self.missing)


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, why: str) -> LatencyTableError:
        return LatencyTableError(f"{self.source}: {key}: {why}")

    def stat(self, key: str, raw: Any) -> _Stat:
        if not isinstance(raw, dict):
            raise self.fail(key, f"expected a mapping {{count, mean, var}}, got {raw!r}")
        if "mean" not in raw:
            raise self.fail(key, "missing 'mean' (expected {count: N, mean: ms, var: ms^2})")

        def number(name: str, value: Any, positive: bool) -> float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or value < 0 or (positive and value == 0):
                raise self.fail(f"{key}.{name}", f"expected a {'positive' if positive else 'non-negative'} finite "
                                                 f"number, got {value!r}")
            return float(value)

        mean = number("mean", raw["mean"], True)
        var = number("var", raw.get("var", 0.0), False)
        count = raw.get("count", 1)
        if isinstance(count, float) and count.is_integer():
            count = int(count)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise self.fail(f"{key}.count", f"expected a positive integer, got {count!r}")
        return _Stat(mean, var, count)

    def fields(self, key: str) -> tuple[str, dict[str, str]]:
        layer, *rest = key.split("-")
        fields: dict[str, str] = {}
        for token in rest:
            name, sep, value = token.partition(":")
            if not sep or not name or not value:
                raise self.fail(key, f"expected '-name:value' fields after the layer type, got {token!r}")
            if name in fields:
                raise self.fail(key, f"field {name!r} appears twice")
            fields[name] = value
        return layer, fields

    def ints(self, key: str, name: str, value: str | None) -> list[int]:
        if value is None:
            raise self.fail(key, f"missing the '{name}:' field")
        try:
            numbers = [int(v) for v in value.split("x")]
        except ValueError:
            raise self.fail(key, f"{name}: expected integers like 7x7x192, got {value!r}") from None
        if any(n < 0 for n in numbers):
            raise self.fail(key, f"{name}: negative value {value!r}")
        return numbers

    def shape(self, key: str, name: str, value: str | None) -> tuple[int, int, int]:
        numbers = self.ints(key, name, value)
        if len(numbers) != 3:
            raise self.fail(key, f"{name}: expected HxWxC, got {value!r}")
        return numbers[0], numbers[1], numbers[2]

    def flag(self, key: str, name: str, value: str | None, default: int | None = None) -> int:
        if value is None:
            if default is None:
                raise self.fail(key, f"missing the '{name}:' field")
            return default
        if value not in ("0", "1"):
            raise self.fail(key, f"{name}: expected 0 or 1, got {value!r}")
        return int(value)

    def number(self, key: str, name: str, value: str | None) -> int:
        numbers = self.ints(key, name, value)
        if len(numbers) != 1:
            raise self.fail(key, f"{name}: expected one integer, got {value!r}")
        return numbers[0]


def _stride(h_in: int, h_out: int) -> int | None:
    return next((s for s in (1, 2) if conv_out_size(h_in, s) == h_out), None)


def _load_yaml(path: Path) -> dict[str, Any]:
    source = str(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise LatencyTableError(f"{source}: file not found") from None
    except OSError as exc:
        raise LatencyTableError(f"{source}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise LatencyTableError(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict) or not data:
        raise LatencyTableError(f"{source}: expected a mapping of layer keys to {{count, mean, var}} (a Once-for-All "
                                f"/ ProxylessNAS latency table), got {type(data).__name__}")
    for key in data:
        if not isinstance(key, str):
            raise LatencyTableError(f"{source}: {key!r}: expected a string key like "
                                    "'expanded_conv-input:7x7x192-output:7x7x320-expand:6-kernel:5-stride:1-idskip:0'")
    return data


def read_ofa_yaml(path: str | os.PathLike, space: SearchSpace, *,
                  expand: str = "auto") -> tuple[dict[str, Entry], dict[str, Any]]:
    """The entries of ``space`` the file covers, and a summary (keys, used, skipped by reason)."""
    if expand not in EXPAND_MODES:
        raise LatencyTableError(f"--ofa-expand: expected one of {list(EXPAND_MODES)}, got {expand!r}")
    path = Path(path)
    data = _load_yaml(path)
    r = _Reader(str(path))
    wanted = {p.signature: p for p in space_parts(space, references=True)}
    stats: dict[str, _Stat] = {}  # signature -> stat
    used: set[str] = set()
    skipped: dict[str, int] = {}
    # head pieces, keyed by shapes; values (key, stat)
    conv1: dict[tuple[int, int, int], tuple[str, _Stat]] = {}
    pool: dict[tuple[int, int], tuple[str, _Stat]] = {}
    logits: dict[tuple[int, int, int], tuple[str, _Stat]] = {}

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    def keep(key: str, sig: str, stat: _Stat) -> None:
        if sig in stats:
            skip(DUPLICATE)
        else:
            stats[sig] = stat
            used.add(key)

    for key, raw in data.items():
        stat = r.stat(key, raw)
        layer, f = r.fields(key)
        if layer == "expanded_conv":
            h, w, c_in = r.shape(key, "input", f.get("input"))
            h2, w2, c_out = r.shape(key, "output", f.get("output"))
            e = r.number(key, "expand", f.get("expand"))
            k = r.number(key, "kernel", f.get("kernel"))
            s = r.number(key, "stride", f.get("stride"))
            idskip = r.flag(key, "idskip", f.get("idskip"))
            se = r.flag(key, "se", f.get("se"), default=0)
            hs = r.flag(key, "hs", f.get("hs"), default=0)
            extra = sorted(set(f) - {"input", "output", "expand", "kernel", "stride", "idskip", "se", "hs"})
            if extra:
                skip(UNSUPPORTED)
                continue
            mode = expand if expand != "auto" else ("channels" if "se" in f or "hs" in f else "ratio")
            mid = e * c_in if mode == "ratio" else e
            if h != w or h2 != w2 or conv_out_size(h, s) != h2:
                skip(SHAPE)
                continue
            if bool(idskip) != (s == 1 and c_in == c_out):
                skip(IDSKIP)
                continue
            try:
                block = BlockSpec(type="ir", in_ch=c_in, out_ch=c_out, mid_ch=mid, kernel=k, stride=s, se=bool(se),
                                  act="hswish" if hs else "relu")
            except SpecError:
                skip(UNSUPPORTED)
                continue
            sig = block_signature(block, resolution=h)
            if sig in wanted:
                keep(key, sig, stat)
            else:
                skip(NOT_IN_SPACE)
        elif layer == "Conv":
            h, w, c_in = r.shape(key, "input", f.get("input"))
            h2, w2, c_out = r.shape(key, "output", f.get("output"))
            s = _stride(h, h2)
            if h != w or h2 != w2 or s is None or c_in < 1 or c_out < 1:
                skip(SHAPE)
                continue
            sigs = [stem_signature(StemSpec(out_ch=c_out, kernel=3, stride=s, act=act), in_ch=c_in, resolution=h)
                    for act in ACTIVATIONS]  # the key does not say the activation
            sig = next((x for x in sigs if x in wanted), None)
            if sig is None:
                skip(NOT_IN_SPACE)
            else:
                keep(key, sig, stat)
        elif layer == "Conv_1":
            h, w, c_in = r.shape(key, "input", f.get("input"))
            h2, w2, c_out = r.shape(key, "output", f.get("output"))
            if h != w or (h2, w2) != (h, w):
                skip(SHAPE)
                continue
            if (h, c_in, c_out) in conv1:
                skip(DUPLICATE)
            else:
                conv1[(h, c_in, c_out)] = (key, stat)
        elif layer.startswith("AvgPool"):
            h, w, c = r.shape(key, "input", f.get("input"))
            out = r.shape(key, "output", f.get("output"))
            if h != w or out != (1, 1, c):
                skip(SHAPE)
                continue
            if (h, c) in pool:
                skip(DUPLICATE)
            else:
                pool[(h, c)] = (key, stat)
        elif layer == "Logits":
            h, w, c = r.shape(key, "input", f.get("input"))
            n = r.ints(key, "output", f.get("output"))[-1]
            if h != w:
                skip(SHAPE)
                continue
            if (h, c, n) in logits:
                skip(DUPLICATE)
            else:
                logits[(h, c, n)] = (key, stat)
        else:  # Conv_2 (MobileNetV3's feature mix), other networks' layers
            skip(UNSUPPORTED)

    # Heads: Conv_1 (1x1 conv to the head width), then the pooling and the classifier, either as
    # one 'Logits' key at the final resolution (ProxylessNAS) or 'AvgPool2D' + 'Logits' on 1x1.
    for sig, part in wanted.items():
        spec = part.spec
        if part.name != "head" or not isinstance(spec, HeadSpec) or spec.kind == "dw":
            continue
        res, n = part.resolution, part.num_classes
        width = part.in_ch if spec.kind == "none" else spec.width
        pieces: list[tuple[str, _Stat]] = []
        if spec.kind == "conv":
            if (res, part.in_ch, width) not in conv1:
                continue
            pieces.append(conv1[(res, part.in_ch, width)])
        if (res, width, n) in logits:
            pieces.append(logits[(res, width, n)])
        elif (res, width) in pool and (1, width, n) in logits:
            pieces += [pool[(res, width)], logits[(1, width, n)]]
        else:
            continue
        stats[sig] = _Stat(sum(p.mean for _, p in pieces), sum(p.var for _, p in pieces),
                           min(p.count for _, p in pieces))
        used.update(k for k, _ in pieces)
    head_keys = {k for k, _ in [*conv1.values(), *pool.values(), *logits.values()]}
    for _ in head_keys - used:
        skip(NOT_IN_SPACE)

    entries = {sig: stat.entry() for sig, stat in stats.items()}
    missing = [sig for sig in wanted if sig not in entries]
    summary = {"keys": len(data), "used": len(used), "skipped": dict(sorted(skipped.items())),
               "space_parts": len(wanted), "missing": missing, "expand": expand}
    return entries, summary


def import_ofa_yaml(path: str | os.PathLike, out: str | os.PathLike, *, space: SearchSpace, device_name: str | None,
                    expand: str = "auto") -> OfaImport:
    """Convert a published OFA/ProxylessNAS YAML table into a table for ``space`` saved at ``out``."""
    out = Path(out)
    if not device_name or not device_name.strip():
        raise LatencyTableError(f"{path}: --device-name is required for YAML imports: the file does not say which "
                                "device it was measured on (e.g. --device-name 'Pixel 1 (OFA table)')")
    refuse_existing(out)
    entries, summary = read_ofa_yaml(path, space, expand=expand)
    if not entries:
        raise LatencyTableError(
            f"{path}: none of its {summary['keys']} keys matches a part of the space '{space.name}' "
            f"({space.source}: {space.input_size}x{space.input_size} inputs); skipped: "
            + ", ".join(f"{n} {why}" for why, n in summary["skipped"].items())
            + "; published tables are for their own resolutions and widths (e.g. 224x224 ImageNet networks)")
    raw = Path(path).read_bytes()
    metadata: dict[str, Any] = {
        "device": device_name.strip(), "cpu": None, "gpu": None, "backend": "imported:ofa-yaml",
        "backend_version": "unknown", "execution_provider": "unknown", "threads": 1, "batch_size": 1,
        "input_size": space.input_size, "in_ch": space.in_ch, "num_classes": space.num_classes,
        "space": {"name": space.name, "file": space.source, "digest": space.digest},
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "units": "ms",
        "measurement": {
            "source": "published Once-for-All / ProxylessNAS latency lookup table (YAML)",
            "statistic": "mean", "spread": "p10/p90 = mean -/+ 1.2816 * sqrt(var) (normal approximation)",
            "expand": expand,
        },
        "tool": f"nas {__version__}",
        "complete": not summary["missing"],
        "import": {"file": str(path), "sha256": hashlib.sha256(raw).hexdigest(), "keys": summary["keys"],
                   "used": summary["used"], "skipped": summary["skipped"],
                   "covered": len(entries), "space_parts": summary["space_parts"]},
    }
    table = LatencyTable(metadata=metadata, entries=entries,
                         correction=Correction(scale=1.0, offset_ms=0.0, per_part_overhead_ms=0.0,
                                               method=IDENTITY_METHOD, fitted_on=0), path=out)
    refuse_existing(out)
    save_table(table, out)
    return OfaImport(table=table, keys=summary["keys"], used=summary["used"], skipped=summary["skipped"],
                     space_parts=summary["space_parts"], missing=summary["missing"])
