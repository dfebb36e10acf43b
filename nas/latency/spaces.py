"""Finding the search space a table was built for."""

from __future__ import annotations

from pathlib import Path

from nas.errors import LatencyTableError
from nas.latency.predict import check_table_for_space
from nas.latency.table import LatencyTable
from nas.space import SearchSpace, load_space

__all__ = ["space_for_table"]


def space_for_table(table: LatencyTable, space: str | None = None) -> SearchSpace:
    """Load ``space`` (or the table's own space file) and check the table was built for it.

    The table's space path is tried as written, then relative to the table's folder and its
    parent (tables shipped in ``latency_tables/`` name ``search_spaces/...``).
    """
    if space is not None:
        loaded = load_space(space)
    else:
        recorded = table.space_file
        if not recorded:
            raise LatencyTableError(f"{table.name}: metadata.space.file is empty; pass the space with --space FILE")
        base = table.path.parent if table.path else Path(".")
        candidates = [Path(recorded), base / recorded, base.parent / recorded]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise LatencyTableError(f"{table.name}: the table's search space {recorded!r} was not found (looked in "
                                    f"{', '.join(str(c.parent) for c in candidates)}); pass it with --space FILE")
        loaded = load_space(found)
    check_table_for_space(table, loaded)
    return loaded
