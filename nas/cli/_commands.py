"""The registry of sub-commands; each module adds its parser with ``register(subparsers)``.

One line per command module, in the order ``nas --help`` lists them.
"""

from __future__ import annotations

from importlib import import_module

_MODULES: tuple[str, ...] = (
    "arch",
    "lut",
    "search",
    "adapt",
    "train",
    "export",
    "retrain",
)

REGISTRY = [import_module(f"nas.cli.{name}").register for name in _MODULES]
