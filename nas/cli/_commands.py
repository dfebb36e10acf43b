"""The registry of sub-commands; each module adds its parser with ``register(subparsers)``."""

from __future__ import annotations

from nas.cli import arch, lut, search

REGISTRY = [arch.register, lut.register, search.register]
