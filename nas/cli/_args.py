"""Argument types shared by the commands: each refuses a bad value with argparse's one-line error."""

from __future__ import annotations

import argparse
import math

__all__ = ["positive_int", "non_negative_int", "positive_float", "non_negative_float", "add_threads_option",
           "THREADS_HELP"]

THREADS_HELP = ("CPU threads for training (default 0: the cores left idle by other work, from the 1-minute load "
                "average; busy cores make multi-threaded training several times slower). A run resumed with "
                "another thread count goes on, but its sums come out in another order, so it may not end with an "
                "uninterrupted run's weights: give the same N at every start where that matters")


def add_threads_option(group: argparse._ActionsContainer) -> None:
    """``--threads N`` of every command that trains (``nas.train.device.cpu_threads`` refuses N < 0)."""
    group.add_argument("--threads", type=int, default=0, metavar="N", help=THREADS_HELP)


def _int(text: str, low: int, expected: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _int(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """Seeds among others: NumPy's generators take no negative seed."""
    return _int(text, 0, "an integer >= 0")


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value
