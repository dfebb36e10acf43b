"""Reading untrusted files field by field: bounded reads, text and JSON decoding, typed fields.

Tables, a device's ``results.json`` and published YAML tables come from outside: a corrupted
copy, the wrong file, a hand edit. Everything here turns what could crash (a file of gigabytes,
``/dev/zero``, UTF-16 text, JSON nested a million levels deep, a number of ten thousand digits, a
string with terminal escape codes) into one :class:`~nas.errors.LatencyTableError` naming the
file and the field.

Bounds (see ``latency_tables/README.md``):

* :data:`MAX_MS`: no part of a network, and no whole network, takes a minute; a larger latency
  is a corrupted or mis-scaled file (``1e300``), not a measurement.
* :data:`MAX_JSON_BYTES`: a table of 100,000 parts is ~20 MB; anything over 64 MiB is refused
  unread. :data:`MAX_YAML_BYTES`: the published YAML tables are ~15 kB; 16 MiB is refused unread.
* :data:`MAX_INT_DIGITS`: no field needs an integer of more than 30 digits.
"""

from __future__ import annotations

import codecs
import json
import math
import stat
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from nas._json import refuse_repeated_keys
from nas.errors import LatencyTableError, shown

__all__ = ["MAX_MS", "MAX_JSON_BYTES", "MAX_YAML_BYTES", "MAX_INT_DIGITS", "read_bounded", "decode_text",
           "parse_json", "has_control", "shown", "Fields"]

MAX_MS = 60_000.0
MAX_JSON_BYTES = 64 * 2**20
MAX_YAML_BYTES = 16 * 2**20
MAX_INT_DIGITS = 30
_ZIP_MAGIC = b"PK\x03\x04"
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a pipe"), (stat.S_ISSOCK, "a socket"))


def _size(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


def read_bounded(path: Path, *, limit: int, missing: str, what: str) -> bytes:
    """The bytes of the regular file ``path``; refuses a missing or unreadable file, a directory or device, and a
    file larger than ``limit`` bytes (unread). ``missing`` ends the not-found message; ``what`` names the kind of
    file expected."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise LatencyTableError(f"{path}: {missing}") from None
    except OSError as exc:
        raise LatencyTableError(f"{path}: cannot read ({exc.strerror or exc})") from None
    kind = next((name for test, name in _KINDS if test(info.st_mode)), None)
    if kind is not None:
        raise LatencyTableError(f"{path}: is {kind}, not a file; expected {what}")
    if info.st_size > limit:
        raise LatencyTableError(f"{path}: {_size(info.st_size)} is larger than {what} can be (at most "
                                f"{_size(limit)}); refused unread")
    try:
        with open(path, "rb") as f:
            raw = f.read(limit + 1)
    except OSError as exc:
        raise LatencyTableError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(raw) > limit:  # it grew while we looked
        raise LatencyTableError(f"{path}: larger than {what} can be (at most {_size(limit)}); refused")
    return raw


def decode_text(raw: bytes, source: str, *, hint: str, zip_hint: str | None = None) -> str:
    """``raw`` as UTF-8 text (a UTF-8 byte-order mark is allowed); refuses a zip, UTF-16/32 and binary data."""
    if raw.startswith(_ZIP_MAGIC):
        raise LatencyTableError(f"{source}: it is a zip archive, not text; {zip_hint or hint}")
    for bom, name in ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                      (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16")):
        if raw.startswith(bom):
            raise LatencyTableError(f"{source}: it is {name} text; save it as UTF-8 (e.g. iconv -f {name} -t UTF-8); "
                                    f"{hint}")
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise LatencyTableError(f"{source}: it holds NUL bytes (the first at byte {nul}): binary data or UTF-16 text "
                                f"without a byte-order mark, not UTF-8 text; {hint}")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LatencyTableError(f"{source}: byte {exc.start} (0x{raw[exc.start]:02x}) is not UTF-8 text; "
                                f"{hint}") from None


def _bounded_int(source: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        digits = len(text.lstrip("-"))
        if digits > MAX_INT_DIGITS:
            raise LatencyTableError(f"{source}: holds an integer of {digits} digits; no field takes more than "
                                    f"{MAX_INT_DIGITS}")
        return int(text)

    return parse


def parse_json(text: str, source: str, *, hint: str) -> Any:
    """``json.loads`` that refuses repeated keys, integers of more than :data:`MAX_INT_DIGITS` digits and nesting
    deeper than Python's recursion limit, each with one message."""
    duplicate = refuse_repeated_keys(lambda key: LatencyTableError(
        f"{source}: duplicate key {key!r}; each key may appear only once in an object"))
    try:
        return json.loads(text, object_pairs_hook=duplicate, parse_int=_bounded_int(source))
    except json.JSONDecodeError as exc:
        raise LatencyTableError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno}); {hint}") from None
    except RecursionError:
        raise LatencyTableError(f"{source}: JSON nested too deeply to read (objects or lists inside each other "
                                f"hundreds of levels deep); {hint}") from None
    except ValueError as exc:  # other decoder errors
        raise LatencyTableError(f"{source}: not valid JSON ({shown(str(exc))}); {hint}") from None


def has_control(text: str) -> bool:
    """Whether ``text`` holds control or format characters (newlines, ESC, bidi overrides), which would reach a
    terminal raw when printed, or lone surrogates (from ``\\ud800`` in JSON or an undecodable byte in argv),
    which cannot be printed at all."""
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in text)




class Fields:
    """Typed access to a parsed file; every error names the file and the field (``where``)."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, why: str) -> LatencyTableError:
        return LatencyTableError(f"{self.source}: {where or '(top level)'}: {why}")

    def obj(self, data: Any, where: str, keys: Iterable[str] = (), *, missing: str = "missing") -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(where, f"expected an object, got {type(data).__name__}")
        for key in keys:
            if key not in data:
                raise self.fail(f"{where}.{key}" if where else key, missing)
        return data

    def number(self, value: Any, where: str, *, low: float = -MAX_MS, high: float = MAX_MS,
               low_open: bool = False, what: str = "a finite number") -> float:
        """A number in ``[low, high]`` (``(low, high]`` with ``low_open``); ints are compared exactly, never
        converted first, so a 400-digit integer is refused instead of overflowing."""
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and isinstance(value, float):
            ok = math.isfinite(value)
        if ok:
            ok = (low < value if low_open else low <= value) and value <= high
        if not ok:
            raise self.fail(where, f"expected {what}, got {shown(value)}")
        return float(value)

    def ms(self, value: Any, where: str) -> float:
        """A latency: positive, finite, at most :data:`MAX_MS`."""
        self.number(value, where, low=0.0, low_open=True, high=math.inf, what="a positive, finite number")
        if value > MAX_MS:
            raise self.fail(where, f"{shown(value)} ms is more than a minute ({MAX_MS:g} ms): not a latency of a "
                                   "part or a network; the file is corrupted or in another unit")
        return float(value)

    def integer(self, value: Any, where: str, minimum: int = 1, maximum: int = 10**12, *,
                what: str | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            what = what or f"an integer >= {minimum}" + (f" and <= {maximum}" if maximum < 10**12 else "")
            raise self.fail(where, f"expected {what}, got {shown(value)}")
        return value

    def text(self, value: Any, where: str, *, optional: bool = False, empty: bool = False,
             limit: int = 1000) -> str | None:
        """A string without control characters, at most ``limit`` characters (``None`` allowed when ``optional``;
        ``""`` when ``empty``)."""
        if value is None and optional:
            return None
        if not isinstance(value, str) or (not value and not empty):
            kind = "a string" if empty else "a non-empty string"
            raise self.fail(where, f"expected {kind}{' or null' if optional else ''}, got {shown(value)}")
        if has_control(value):
            raise self.fail(where, f"holds control characters ({shown(value)}); write it without them")
        if len(value) > limit:
            raise self.fail(where, f"a string of {len(value)} characters; at most {limit}")
        return value

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, f"expected true or false, got {shown(value)}")
        return value
