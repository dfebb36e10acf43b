"""Small helpers for printing tables and JSON from CLI commands."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["print_json", "format_table", "DefaultsFormatter", "RawDefaultsFormatter", "RESUME_HINT"]

#: What ``nas`` prints after Ctrl-C for the commands that resume (``set_defaults(resume_hint=...)``).
RESUME_HINT = "re-run the same command to resume"


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if c[:1].isdigit() or c[:1] == "-" else c.ljust(w) for c, w in zip(r, widths))
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


class DefaultsFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help once, and only where it tells something: not for
    required options, flags, options without a default, or help that already states its default."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if _shows_default(action, text):
            text += " (default: %(default)s)"
        return text


class RawDefaultsFormatter(DefaultsFormatter, argparse.RawDescriptionHelpFormatter):
    """:class:`DefaultsFormatter` that keeps the description and epilog as written."""


def _shows_default(action: argparse.Action, text: str) -> bool:
    if not action.option_strings or action.required or "(default" in text:
        return False
    return not any(action.default is v for v in (None, False, argparse.SUPPRESS))
