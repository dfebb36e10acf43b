"""Turn what a user typed (a reference name, a JSON file, a compact string) into an ArchSpec."""

from __future__ import annotations

from pathlib import Path

from nas.arch.compact import looks_compact, parse_compact
from nas.arch.reference import REFERENCE_NAMES, reference_arch
from nas.arch.serialize import load_arch_file
from nas.arch.spec import ArchSpec
from nas.errors import SpecError

__all__ = ["resolve_arch"]


def resolve_arch(text: str) -> ArchSpec:
    """Accepts ``mobilenetv2-cifar[@alpha]``, a path to an arch JSON file, or a compact string."""
    if text.partition("@")[0] in REFERENCE_NAMES:
        return reference_arch(text)
    path = Path(text)
    try:
        is_file = path.is_file()  # first: a file in a folder named like a compact string is still a file
    except (OSError, ValueError):  # a name too long for the file system, or one with a NUL byte
        is_file = False
    if is_file:
        return load_arch_file(path)
    if looks_compact(text):
        return parse_compact(text)
    shown = text if len(text) <= 120 else f"{text[:100]}... ({len(text)} characters)"
    raise SpecError(
        f"architecture {shown!r}: not a reference name ({', '.join(REFERENCE_NAMES)}, optionally '@alpha'), "
        "not an existing JSON file, and not a compact string (which starts with 'in<size>x<channels>-')"
    )
