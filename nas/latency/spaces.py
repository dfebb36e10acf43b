"""Finding the search space a table was built for.

A table records its space as ``metadata.space`` (name, file, digest). The recorded file is only a
hint: a table may come from anywhere (a colleague, a device import), so the path in it is never
opened as written. Only its file name is used, and only a ``.yaml``/``.yml`` name, looked up in
folders that hold search spaces: beside the table, ``search_spaces/`` beside the table or beside
its folder, ``search_spaces/`` in the working directory and this checkout's ``search_spaces/``.
A file found there is used only when its digest is the table's. Nothing of a file that fails to
load as a space is printed (the loader's message may quote a line of it).
"""

from __future__ import annotations

import re
from pathlib import Path

from nas.errors import LatencyTableError, NASError
from nas.latency.predict import check_table_for_space
from nas.latency.table import LatencyTable
from nas.space import SearchSpace, load_space

__all__ = ["space_for_table", "space_hint", "hint_folders", "SHIPPED_SPACES"]

#: The search spaces of a source checkout (absent when nas is installed from a wheel).
SHIPPED_SPACES = Path(__file__).resolve().parents[2] / "search_spaces"
_SPACE_NAME = re.compile(r"[\w.+-]+\.ya?ml")


def space_hint(recorded: str | None) -> str | None:
    """The file name a recorded space path hints at (``search_spaces/x.yaml`` -> ``x.yaml``), or None when it
    names no YAML file (``/etc/shadow``, an empty string)."""
    if not recorded:
        return None
    name = re.split(r"[/\\]", recorded)[-1]
    return name if _SPACE_NAME.fullmatch(name) else None


def hint_folders(table: LatencyTable) -> list[Path]:
    """Where a table's space file name is looked up, in order, without repeats."""
    base = table.path.parent if table.path is not None else Path(".")
    folders = [base, base / "search_spaces", base.parent / "search_spaces", Path("search_spaces"), SHIPPED_SPACES]
    seen: set[Path] = set()
    out = []
    for folder in folders:
        key = folder.resolve()
        if key not in seen:
            seen.add(key)
            out.append(folder)
    return out


def _hinted_space(table: LatencyTable) -> SearchSpace:
    recorded = table.space_file
    name = space_hint(recorded)
    if name is None:
        raise LatencyTableError(f"{table.name}: metadata.space.file {recorded!r} names no .yaml search-space file; "
                                "pass the table's space with --space FILE")
    folders = hint_folders(table)
    others = []
    for folder in folders:
        path = folder / name
        if not path.is_file():
            continue
        try:
            space = load_space(path)
        except NASError:
            others.append(f"{path} (not a loadable space)")
            continue
        if space.digest == table.space_digest:
            return space
        others.append(f"{path} (another space: digest {space.digest[:12]})")
    found = f"; found {', '.join(others)}" if others else ""
    raise LatencyTableError(
        f"{table.name}: the table's search space {name!r} (metadata.space.file, used as a file name only) with digest "
        f"{str(table.space_digest)[:12]} was not found in {', '.join(f'{f}/' for f in folders)}{found}; pass it with "
        "--space FILE")


def space_for_table(table: LatencyTable, space: str | None = None) -> SearchSpace:
    """Load ``space`` (or find the table's own, see the module doc) and check the table was built for it."""
    loaded = load_space(space) if space is not None else _hinted_space(table)
    check_table_for_space(table, loaded)
    return loaded
