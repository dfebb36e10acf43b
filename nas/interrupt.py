"""Ctrl-C that is not lost.

CPython cannot deliver a ``KeyboardInterrupt`` that is raised while a finalizer runs (a ``__del__``
or a weakref callback, which the garbage collector and PyTorch's freed tensors run at arbitrary
points): it prints "Exception ignored in ..." and goes on, so a Ctrl-C at that moment used to be
swallowed and a search ran to its end. While :func:`handling_ctrl_c` is active, SIGINT also sets a
flag, and the long loops (every training step, every search trial) call :func:`check_interrupt`,
which raises the interrupt again if it was swallowed. :func:`ctrl_c_deferred` holds a Ctrl-C over a
few statements that must not be cut apart (a write and the start of what undoes it when interrupted).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["handling_ctrl_c", "check_interrupt", "ctrl_c_deferred"]

_pending = False
_deferred = 0  # how many ctrl_c_deferred blocks the main thread is in


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global _pending
    _pending = True
    if not _deferred:
        raise KeyboardInterrupt


@contextmanager
def handling_ctrl_c() -> Iterator[None]:
    """Install the flag-setting SIGINT handler for the block (main thread only; restored after)."""
    global _pending
    _pending = False
    # Only over Python's own handler: an ignored SIGINT (a worker started with '&' by a script) stays
    # ignored, and a handler someone else installed stays theirs.
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _pending = False


def check_interrupt() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed and its interrupt was swallowed."""
    if _pending:
        raise KeyboardInterrupt


@contextmanager
def ctrl_c_deferred() -> Iterator[None]:
    """Hold a Ctrl-C that arrives during the block: it only sets the flag, and the next
    :func:`check_interrupt` raises it (the caller's, right after the block). Under
    :func:`handling_ctrl_c` and in the main thread only (elsewhere Python's own handler raises at once,
    as before); a search creating its trial uses it so that a Ctrl-C cannot fall between the trial's
    creation and the code that fails and re-queues an interrupted trial."""
    global _deferred
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _deferred += 1
    try:
        yield
    finally:
        _deferred -= 1
