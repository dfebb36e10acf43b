"""Command-line interface: ``nas <command> ...``.

The CLI only parses arguments and calls library functions. Errors derived from
:class:`nas.errors.NASError` are user errors: one message on stderr, exit status 2, no
traceback. Ctrl-C exits with status 130 after the command has saved what it had.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from nas import __version__
from nas.errors import NASError
from nas.interrupt import handling_ctrl_c

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    from nas.cli import _commands

    parser = argparse.ArgumentParser(
        prog="nas",
        description=(
            "Hardware-aware neural architecture search: find the most accurate MobileNet-style "
            "network that meets a latency budget on a measured device."
        ),
    )
    parser.add_argument("--version", action="version", version=f"nas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _commands.REGISTRY:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = None
    try:
        with handling_ctrl_c():
            args = build_parser().parse_args(argv)  # the parser imports the commands: seconds
            code = args.func(args)
    except NASError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = getattr(args, "resume_hint", None)  # set by the commands that resume
        print(f"\ninterrupted: everything finished so far is saved; {hint}." if hint else "\ninterrupted.",
              file=sys.stderr)
        return 130
    return int(code or 0)
