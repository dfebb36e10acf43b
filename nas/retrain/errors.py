"""The retraining package's user error (a :class:`~nas.errors.NASError`: one line, exit 2)."""

from __future__ import annotations

from nas.errors import NASError

__all__ = ["RetrainError"]


class RetrainError(NASError):
    """A run directory, its results or a retrain option cannot be used."""
