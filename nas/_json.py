"""JSON reading shared by the loaders: a key given twice in one object is an error.

``json.loads`` keeps the last of repeated keys silently; for a table entry or an architecture that
hides a mistake, so the table and architecture loaders pass :func:`refuse_repeated_keys` as their
``object_pairs_hook``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["refuse_repeated_keys"]

PairsHook = Callable[[list[tuple[str, Any]]], dict[str, Any]]


def refuse_repeated_keys(error: Callable[[str], Exception]) -> PairsHook:
    """An ``object_pairs_hook`` that raises ``error(key)`` for the first key given twice in one object."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for key, value in pairs:
            if key in data:
                raise error(key)
            data[key] = value
        return data

    return hook
