"""Importing published Once-for-All / ProxylessNAS latency lookup tables (YAML).

Those tables map layer keys to timing statistics (``mean`` in ms, ``count`` runs, and the spread
as ``var`` (ProxylessNAS's ``mobile_trim.yaml``) or ``std`` (OFA's Note10 tables))::

    Conv-input:224x224x3-output:112x112x32:                       {count: 982, mean: 4.08, var: 0.25}
    expanded_conv-input:7x7x192-output:7x7x320-expand:6-kernel:5-stride:1-idskip:0:  {...}
    expanded_conv-input:28x28x40-output:28x28x40-expand:120-kernel:5-stride:1-idskip:1-se:1-hs:0:  {...}
    Conv_1-input:7x7x320-output:7x7x1280:                         {...}   1x1 conv to the head width
    Logits-input:7x7x1280-output:1000:                            {...}   pool + classifier (ProxylessNAS)
    AvgPool2D-input:7x7x1152-output:1x1x1152:                     {...}   (MobileNetV3 tables:)
    Conv_2-input:1x1x1152-output:1x1x1536:                        {...}   feature mix after the pooling
    Logits-input:1x1x1536-output:1000:                            {...}   classifier

``input``/``output`` are a layer's ``H x W x C`` in and out; ``expand`` is the expansion
*ratio* in the MobileNetV2/ProxylessNAS tables but the *middle channel count* in the
MobileNetV3 ones, which add ``-se:0|1-hs:0|1`` after ``idskip`` (``expand="auto"`` tells them
apart by those fields); ``idskip:1`` is a residual connection.

Each block key becomes our inverted-residual signature (``hs:1`` -> ``hswish``, else ``relu``,
i.e. ReLU6; ``se`` from ``se:``); ``Conv`` becomes the stem (3x3, stride from the resolutions).
The head entry (``head_conv_...``) is the sum of the published head's pieces, in one of three
forms: ``Conv_1`` + ``Logits`` (ProxylessNAS), ``Conv_1`` + ``AvgPool2D`` + ``Logits`` on 1x1,
or ``Conv_1`` + ``AvgPool2D`` + ``Conv_2`` + ``Logits`` (OFA MobileNetV3: its feature-mix layer
``Conv_2`` has no counterpart in nas's ``conv`` head, but is part of the network the table
times, so the entry is the published head's latency and a prediction equals OFA's own
predictor's). Only signatures the given space can produce are kept. An entry's median is the
published mean; p10/p90 are ``mean -/+ 1.2816 * sd`` (normal quantiles, kept positive) with the
sd from the key's ``var`` or ``std``, and ``p10 = p90 = mean`` for a key with neither (the
metadata says which); repeats is ``count``; entries are marked ``imported``. These tables time
whole layers in another framework on another device: there is no whole-network calibration
(identity correction).

Which spaces they cover: ``search_spaces/proxylessnas_mobile_224.yaml`` (``mobile_trim.yaml``)
and ``search_spaces/ofa_mbv3_{160,176,192,208,224}.yaml`` (``note10/{R}_lookup_table.yaml``),
completely; none of the 32x32 spaces (the tables time ImageNet-sized layers only).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nas import __version__
from nas.arch import ACTIVATIONS, BlockSpec, HeadSpec, StemSpec, conv_out_size
from nas.errors import LatencyTableError, SpecError
from nas.latency.build import space_parts
from nas.latency.fields import MAX_MS, MAX_YAML_BYTES, decode_text, read_bounded, shown
from nas.latency.importer import IMPORT_FORMATS, device_label, refuse_existing
from nas.latency.output import check_output, writing
from nas.latency.signature import Part, block_signature, stem_signature
from nas.latency.table import Correction, Entry, LatencyTable, save_table
from nas.space import SearchSpace

__all__ = ["EXPAND_MODES", "OfaImport", "read_ofa_yaml", "import_ofa_yaml", "IDENTITY_METHOD", "SUPPORTED"]

EXPAND_MODES: tuple[str, ...] = ("auto", "ratio", "channels")
IDENTITY_METHOD = "none: imported per-block table, no whole-network calibration"
Z90 = 1.2815515655446004  # standard normal 90 % quantile
#: What ``nas lut import`` reads, for messages about a file it cannot.
SUPPORTED = IMPORT_FORMATS
_HEAD_LAYERS = ("Conv_1", "Conv_2", "Logits")

# skip reasons, as they appear in the summary
NOT_IN_SPACE = "not produced by the space"
IDSKIP = "idskip disagrees with stride/channels"
SHAPE = "inconsistent or non-square shapes"
UNSUPPORTED = "layer or options with no counterpart here"
DUPLICATE = "duplicate of an earlier key"


@dataclass
class _Stat:
    mean: float
    sd: float | None  # None: the key gives no spread
    count: int

    def entry(self) -> Entry:
        if self.sd is None:
            return Entry(self.mean, self.mean, self.mean, self.count, "imported")
        p10 = max(self.mean - Z90 * self.sd, self.mean * 1e-3)
        return Entry(self.mean, p10, self.mean + Z90 * self.sd, self.count, "imported")

    @classmethod
    def total(cls, stats: list[_Stat]) -> _Stat:
        """Layers run one after another: means add, variances add (independent timings)."""
        sd = None if any(s.sd is None for s in stats) else math.sqrt(sum(s.sd**2 for s in stats))  # type: ignore
        return cls(sum(s.mean for s in stats), sd, min(s.count for s in stats))


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
        self.spread: Counter[str] = Counter()  # which spread field each key had: var, std, none

    def fail(self, key: str, why: str) -> LatencyTableError:
        return LatencyTableError(f"{self.source}: {key}: {why}")

    def _number(self, key: str, name: str, value: Any, positive: bool) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and (not isinstance(value, float) or math.isfinite(value)) and 0 <= value
        if not ok or (positive and value == 0):
            raise self.fail(f"{key}.{name}", f"expected a {'positive' if positive else 'non-negative'} finite "
                                             f"number, got {shown(value)}")
        if value > (MAX_MS if name != "var" else MAX_MS**2):
            raise self.fail(f"{key}.{name}", f"{shown(value)} is more than a minute ({MAX_MS:g} ms): not a "
                                             "layer's latency; the file is corrupted or in another unit")
        return float(value)

    def _sd(self, key: str, raw: dict[str, Any]) -> float | None:
        if "var" in raw:
            self.spread["var"] += 1
            return math.sqrt(self._number(key, "var", raw["var"], False))
        if "std" in raw:
            self.spread["std"] += 1
            return self._number(key, "std", raw["std"], False)
        self.spread["none"] += 1
        return None

    def stat(self, key: str, raw: Any) -> _Stat:
        if not isinstance(raw, dict):
            raise self.fail(key, f"expected a mapping {{count, mean, var or std}}, got {shown(raw)}")
        if "mean" not in raw:
            raise self.fail(key, "missing 'mean' (expected {count: N, mean: ms, var: ms^2 or std: ms})")
        mean = self._number(key, "mean", raw["mean"], True)
        count = raw.get("count", 1)
        if isinstance(count, float) and count.is_integer():
            count = int(count)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10**12:
            raise self.fail(f"{key}.count", f"expected a positive integer, got {shown(count)}")
        return _Stat(mean, self._sd(key, raw), count)

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
        if not all(v.isdigit() and len(v) <= 9 for v in value.split("x")):
            raise self.fail(key, f"{name}: expected integers like 7x7x192, got {value!r}")
        return [int(v) for v in value.split("x")]

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


@dataclass
class _Found:
    """What the keys hold: entries by signature, head pieces by shape, and the bookkeeping."""

    wanted: dict[str, Part]
    stats: dict[str, _Stat] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    skipped: dict[str, int] = field(default_factory=dict)
    conv1: dict[tuple[int, int, int], tuple[str, _Stat]] = field(default_factory=dict)  # (res, in, width)
    pool: dict[tuple[int, int], tuple[str, _Stat]] = field(default_factory=dict)  # (res, channels)
    conv2: dict[tuple[int, int], tuple[str, _Stat]] = field(default_factory=dict)  # (width, mix)
    logits: dict[tuple[int, int, int], tuple[str, _Stat]] = field(default_factory=dict)  # (res, in, classes)
    heads: dict[str, str] = field(default_factory=dict)  # head signature -> the layers summed into it

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def keep(self, key: str, sig: str, stat: _Stat) -> None:
        if sig not in self.wanted:
            self.skip(NOT_IN_SPACE)
        elif sig in self.stats:
            self.skip(DUPLICATE)
        else:
            self.stats[sig] = stat
            self.used.add(key)

    def piece(self, table: dict[Any, tuple[str, _Stat]], shape: Any, key: str, stat: _Stat) -> None:
        if shape in table:
            self.skip(DUPLICATE)
        else:
            table[shape] = (key, stat)


def _stride(h_in: int, h_out: int) -> int | None:
    return next((s for s in (1, 2) if conv_out_size(h_in, s) == h_out), None)


def _block(r: _Reader, key: str, f: dict[str, str], stat: _Stat, expand: str, found: _Found) -> None:
    h, w, c_in = r.shape(key, "input", f.get("input"))
    h2, w2, c_out = r.shape(key, "output", f.get("output"))
    e = r.number(key, "expand", f.get("expand"))
    k = r.number(key, "kernel", f.get("kernel"))
    s = r.number(key, "stride", f.get("stride"))
    idskip = r.flag(key, "idskip", f.get("idskip"))
    se = r.flag(key, "se", f.get("se"), default=0)
    hs = r.flag(key, "hs", f.get("hs"), default=0)
    if set(f) - {"input", "output", "expand", "kernel", "stride", "idskip", "se", "hs"}:
        return found.skip(UNSUPPORTED)
    mode = expand if expand != "auto" else ("channels" if "se" in f or "hs" in f else "ratio")
    if h != w or h2 != w2 or s not in (1, 2) or conv_out_size(h, s) != h2:
        return found.skip(SHAPE)
    if bool(idskip) != (s == 1 and c_in == c_out):
        return found.skip(IDSKIP)
    try:
        block = BlockSpec(type="ir", in_ch=c_in, out_ch=c_out, mid_ch=e * c_in if mode == "ratio" else e, kernel=k,
                          stride=s, se=bool(se), act="hswish" if hs else "relu")
    except SpecError:
        return found.skip(UNSUPPORTED)
    found.keep(key, block_signature(block, resolution=h), stat)


def _stem(r: _Reader, key: str, f: dict[str, str], stat: _Stat, found: _Found) -> None:
    h, w, c_in = r.shape(key, "input", f.get("input"))
    h2, w2, c_out = r.shape(key, "output", f.get("output"))
    s = _stride(h, h2)
    if h != w or h2 != w2 or s is None or c_in < 1 or c_out < 1:
        return found.skip(SHAPE)
    sigs = [stem_signature(StemSpec(out_ch=c_out, kernel=3, stride=s, act=act), in_ch=c_in, resolution=h)
            for act in ACTIVATIONS]  # the key does not say the activation
    found.keep(key, next((x for x in sigs if x in found.wanted), sigs[0]), stat)


def _head_piece(r: _Reader, layer: str, key: str, f: dict[str, str], stat: _Stat, found: _Found) -> None:
    h, w, c = r.shape(key, "input", f.get("input"))
    if layer == "Logits":
        n = r.ints(key, "output", f.get("output"))[-1]
        return found.skip(SHAPE) if h != w else found.piece(found.logits, (h, c, n), key, stat)
    out = r.shape(key, "output", f.get("output"))
    if layer == "Conv_1":
        ok = h == w and out[:2] == (h, w)
        return found.piece(found.conv1, (h, c, out[2]), key, stat) if ok else found.skip(SHAPE)
    if layer == "Conv_2":
        ok = (h, w) == (1, 1) and out[:2] == (1, 1)
        return found.piece(found.conv2, (c, out[2]), key, stat) if ok else found.skip(SHAPE)
    ok = h == w and out == (1, 1, c)  # AvgPool*
    return found.piece(found.pool, (h, c), key, stat) if ok else found.skip(SHAPE)


def _classifier(found: _Found, res: int, width: int, n: int) -> tuple[list[tuple[str, _Stat]], str] | None:
    """The pieces after the head's 1x1 convolution (pooling, feature mix, classifier) and their names."""
    if (res, width, n) in found.logits:  # ProxylessNAS: Logits is pooling + classifier
        return [found.logits[(res, width, n)]], "Logits"
    if (res, width) not in found.pool:
        return None
    if (1, width, n) in found.logits:
        return [found.pool[(res, width)], found.logits[(1, width, n)]], "AvgPool2D + Logits"
    mixes = sorted(mix for (w, mix) in found.conv2 if w == width and (1, mix, n) in found.logits)
    if len(mixes) != 1:  # none, or ambiguous
        return None
    mix = mixes[0]
    return ([found.pool[(res, width)], found.conv2[(width, mix)], found.logits[(1, mix, n)]],
            f"AvgPool2D + Conv_2 (feature mix {width} -> {mix}, no counterpart in nas's head) + Logits")


def _heads(found: _Found) -> None:
    """Sum the published head pieces into the head entries of the space (see the module doc)."""
    for sig, part in found.wanted.items():
        spec = part.spec
        if part.name != "head" or not isinstance(spec, HeadSpec) or spec.kind == "dw":
            continue
        width = part.in_ch if spec.kind == "none" else spec.width
        first: list[tuple[str, _Stat]] = []
        if spec.kind == "conv":
            if (part.resolution, part.in_ch, width) not in found.conv1:
                continue
            first = [found.conv1[(part.resolution, part.in_ch, width)]]
        rest = _classifier(found, part.resolution, width, part.num_classes)
        if rest is None:
            continue
        pieces = first + rest[0]
        found.stats[sig] = _Stat.total([stat for _, stat in pieces])
        found.used.update(key for key, _ in pieces)
        found.heads[sig] = ("Conv_1 + " if first else "") + rest[1]
    pieces_keys = {k for table in (found.conv1, found.pool, found.conv2, found.logits) for k, _ in table.values()}
    for _ in pieces_keys - found.used:
        found.skip(NOT_IN_SPACE)


def _load_yaml(path: Path) -> dict[str, Any]:
    source = str(path)
    raw = read_bounded(path, limit=MAX_YAML_BYTES, missing="file not found", what="a published latency table")
    text = decode_text(raw, source, hint=SUPPORTED)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise LatencyTableError(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:
        raise LatencyTableError(f"{source}: YAML nested too deeply to read; {SUPPORTED}") from None
    if not isinstance(data, dict) or not data:
        raise LatencyTableError(f"{source}: expected a mapping of layer keys to {{count, mean, var or std}}, got "
                                f"{type(data).__name__ if data is not None else 'an empty file'}; {SUPPORTED}")
    for key in data:
        if not isinstance(key, str):
            raise LatencyTableError(f"{source}: {shown(key)}: expected a string key like "
                                    "'expanded_conv-input:7x7x192-output:7x7x320-expand:6-kernel:5-stride:1-idskip:0'")
    layers = {key.split("-")[0] for key in data}
    if not layers & {"Conv", "expanded_conv", *_HEAD_LAYERS} and not any(x.startswith("AvgPool") for x in layers):
        raise LatencyTableError(f"{source}: none of its {len(data)} keys is a layer of a published latency table "
                                f"(keys such as {', '.join(shown(k, 40) for k in list(data)[:3])}); {SUPPORTED}")
    return data


def read_ofa_yaml(path: str | os.PathLike, space: SearchSpace, *,
                  expand: str = "auto") -> tuple[dict[str, Entry], dict[str, Any]]:
    """The entries of ``space`` the file covers, and a summary (keys, used, skipped by reason, heads, spread)."""
    if expand not in EXPAND_MODES:
        raise LatencyTableError(f"--ofa-expand: expected one of {list(EXPAND_MODES)}, got {expand!r}")
    path = Path(path)
    data = _load_yaml(path)
    r = _Reader(str(path))
    found = _Found(wanted={p.signature: p for p in space_parts(space, references=True)})
    for key, raw in data.items():
        layer, f = r.fields(key)
        if not (layer in ("Conv", "expanded_conv", *_HEAD_LAYERS) or layer.startswith("AvgPool")):
            found.skip(UNSUPPORTED)  # other networks' layers
            continue
        stat = r.stat(key, raw)
        if layer == "expanded_conv":
            _block(r, key, f, stat, expand, found)
        elif layer == "Conv":
            _stem(r, key, f, stat, found)
        else:
            _head_piece(r, layer, key, f, stat, found)
    _heads(found)
    entries = {sig: stat.entry() for sig, stat in found.stats.items()}
    summary = {"keys": len(data), "used": len(found.used), "skipped": dict(sorted(found.skipped.items())),
               "space_parts": len(found.wanted), "missing": [sig for sig in found.wanted if sig not in entries],
               "expand": expand, "heads": found.heads, "spread": dict(r.spread)}
    return entries, summary


def _spread(summary: dict[str, Any]) -> str:
    counts = summary["spread"]
    parts = [f"{counts[k]} keys give {k}" for k in ("var", "std") if counts.get(k)]
    none = (f"; {counts['none']} keys give neither: their p10 = p90 = mean (no spread published)"
            if counts.get("none") else "")
    given = ", ".join(parts) or "no key gives var or std"
    return (f"p10/p90 = mean -/+ 1.2816 x sd (normal approximation), sd from the key's var or std field ({given})"
            f"{none}; a head entry sums its layers' means and variances")


def _metadata(path: Path, space: SearchSpace, device_name: str, expand: str, summary: dict[str, Any],
              covered: int) -> dict[str, Any]:
    return {
        "device": device_name, "cpu": None, "gpu": None, "backend": "imported:ofa-yaml",
        "backend_version": "unknown", "execution_provider": "unknown", "threads": 1, "batch_size": 1,
        "input_size": space.input_size, "in_ch": space.in_ch, "num_classes": space.num_classes,
        "space": {"name": space.name, "file": space.source, "digest": space.digest},
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "units": "ms",
        "measurement": {"source": "published Once-for-All / ProxylessNAS latency lookup table (YAML)",
                        "statistic": "mean", "spread": _spread(summary), "expand": expand},
        "tool": f"nas {__version__}",
        "complete": not summary["missing"],
        "import": {"file": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                   "keys": summary["keys"], "used": summary["used"], "skipped": summary["skipped"],
                   "covered": covered, "space_parts": summary["space_parts"], "heads": summary["heads"]},
    }


def import_ofa_yaml(path: str | os.PathLike, out: str | os.PathLike, *, space: SearchSpace, device_name: str | None,
                    expand: str = "auto") -> OfaImport:
    """Convert a published OFA/ProxylessNAS YAML table into a table for ``space`` saved at ``out``."""
    out, path = Path(out), Path(path)
    name = device_label(device_name)
    if not name:
        raise LatencyTableError(f"{path}: --device-name is required for YAML imports: the file does not say which "
                                "device it was measured on (e.g. --device-name 'Pixel 1 (OFA table)')")
    refuse_existing(out)
    check_output(out, what="the table")
    entries, summary = read_ofa_yaml(path, space, expand=expand)
    if not entries:
        raise LatencyTableError(
            f"{path}: none of its {summary['keys']} keys matches a part of the space '{space.name}' "
            f"({space.source}: {space.input_size}x{space.input_size} inputs); skipped: "
            + ", ".join(f"{n} {why}" for why, n in summary["skipped"].items())
            + "; published tables are for their own resolutions and widths: search_spaces/proxylessnas_mobile_224.yaml "
              "fits ProxylessNAS's mobile_trim.yaml, search_spaces/ofa_mbv3_R.yaml OFA's note10/R_lookup_table.yaml")
    metadata = _metadata(path, space, name, expand, summary, len(entries))
    table = LatencyTable(metadata=metadata, entries=entries,
                         correction=Correction(scale=1.0, offset_ms=0.0, per_part_overhead_ms=0.0,
                                               method=IDENTITY_METHOD, fitted_on=0), path=out)
    refuse_existing(out)
    with writing(out, "the table"):
        save_table(table, out)
    return OfaImport(table=table, keys=summary["keys"], used=summary["used"], skipped=summary["skipped"],
                     space_parts=summary["space_parts"], missing=summary["missing"])
