"""The registry of sub-commands; each module adds its parser with ``register(subparsers)``.

One line per command module, in the order ``nas --help`` lists them: the user journey first.
"""

from __future__ import annotations

from importlib import import_module

_MODULES: tuple[str, ...] = (
    "lut",  # 1. measure the device
    "search",  # 2. search
    "supernet",  # 2b. a weight-sharing supernet to score a search's candidates
    "adapt",  # 3. NetAdapt
    "retrain",  # 4. retrain the winners, report (registers 'retrain' and 'report')
    "train",  # single networks
    "export",
    "arch",
)

REGISTRY = [import_module(f"nas.cli.{name}").register for name in _MODULES]
