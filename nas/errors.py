"""The exception hierarchy.

Every error a *user* can cause (a bad file, a missing entry, an impossible budget) derives
from :class:`NASError`. The CLI prints its message and exits with status 2, without a
traceback. Messages say what was expected, what was received, and how to fix it.
Anything else escaping the CLI is a bug and keeps its traceback.
"""

from __future__ import annotations

import reprlib
from typing import Any

__all__ = [
    "shown",
    "NASError",
    "ConfigError",
    "SpecError",
    "SpaceError",
    "DataError",
    "CheckpointError",
    "ExportError",
    "LatencyTableError",
    "MissingLatencyEntryError",
    "BudgetError",
    "SearchError",
    "AccuracyTableError",
    "SupernetError",
    "RetrainError",
]


_REPR = reprlib.Repr()  # keyword arguments only from Python 3.12
for _name, _limit in (("maxlevel", 3), ("maxlist", 6), ("maxtuple", 6), ("maxdict", 6), ("maxset", 6),
                      ("maxstring", 60), ("maxother", 60), ("maxlong", 40)):
    setattr(_REPR, _name, _limit)


def shown(value: Any, limit: int = 80) -> str:
    """A value from a user's file as an error message shows it: ``repr`` (control characters escaped), cut to about
    ``limit`` characters, and never built whole (a YAML alias bomb expands to gigabytes under plain ``repr``)."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class NASError(Exception):
    """Base class for errors caused by user input or environment, reported without traceback."""


class ConfigError(NASError, ValueError):
    """A setting (an option, a training configuration) has a value outside what is allowed."""


class SpecError(NASError, ValueError):
    """An architecture (block/network spec, JSON file or compact string) is invalid."""


class SpaceError(NASError, ValueError):
    """A search-space file is invalid."""


class DataError(NASError):
    """A dataset is missing, empty, corrupt or inconsistent."""


class CheckpointError(NASError):
    """A checkpoint or weights file does not exist or does not match the architecture."""


class ExportError(NASError):
    """ONNX export failed or the exported model disagrees with PyTorch."""


class LatencyTableError(NASError):
    """A latency table is malformed or does not fit the network/space it is used with."""


class MissingLatencyEntryError(LatencyTableError, KeyError):
    """A latency table has no entry for a block signature.

    ``KeyError`` quotes its message in ``str()``; we keep the plain message instead.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class BudgetError(NASError):
    """A latency budget cannot be met (below the fastest network of the space)."""


class SearchError(NASError):
    """A search run cannot start or continue (bad options, mismatched study)."""


class AccuracyTableError(SearchError):
    """A ground-truth accuracy table (``--accuracy-table``) is malformed, or lacks a network searched."""


class SupernetError(NASError):
    """A supernet that does not fit the request: another space or input size, an architecture outside it."""


class RetrainError(NASError):
    """A run directory, its results or a retrain option cannot be used."""
