"""Ctrl-C that is not lost.

CPython cannot deliver a ``KeyboardInterrupt`` that is raised while a finalizer runs (a ``__del__``
or a weakref callback, which the garbage collector and PyTorch's freed tensors run at arbitrary
points): it prints "Exception ignored in ..." and goes on, so a Ctrl-C at that moment used to be
swallowed and a search ran to its end. While :func:`handling_ctrl_c` is active, SIGINT also sets a
flag, and the long loops (every training step, every search trial) call :func:`check_interrupt`,
which raises the interrupt again if it was swallowed. :func:`ctrl_c_deferred` holds a Ctrl-C over a
few statements that must not be cut apart (a trial's creation and the code that fails an interrupted
trial; the write of a trial's outcome).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["handling_ctrl_c", "check_interrupt", "ctrl_c_deferred"]

_pending = False
_presses = 0  # SIGINTs heard under handling_ctrl_c
_deferred = 0  # how many ctrl_c_deferred blocks the main thread is in
_held_from: int | None = None  # _presses when the outermost of them began; None: it holds nothing


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global _pending, _presses
    _pending = True
    _presses += 1
    if _deferred and _held_from is not None and _presses - _held_from == 1:  # held until the block's end
        return
    raise KeyboardInterrupt


@contextmanager
def handling_ctrl_c() -> Iterator[None]:
    """Install the flag-setting SIGINT handler for the block (main thread only; restored after)."""
    global _pending
    # Only over Python's own handler: an ignored SIGINT (a worker started with '&' by a script) stays
    # ignored, and a handler someone else installed stays theirs (and the flag, maybe holding a Ctrl-C
    # of the main thread's block, is left alone).
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    _pending = False
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _pending = False


def check_interrupt() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed and its interrupt was swallowed (or held)."""
    if _pending:
        raise KeyboardInterrupt


@contextmanager
def ctrl_c_deferred() -> Iterator[None]:
    """Hold a Ctrl-C that arrives during the block: it only sets the flag, and the next
    :func:`check_interrupt` raises it. Only the first press is held, and only when none was pressed
    before the block (a Ctrl-C being handled, or one a finalizer swallowed): pressing again stops at
    once, so a write that hangs can still be left. Under :func:`handling_ctrl_c` and in the main thread
    only; elsewhere nothing is held (Python's own handler raises at once, as before)."""
    global _deferred, _held_from
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if not _deferred:
        _held_from = None if _pending else _presses
    _deferred += 1
    try:
        yield
    finally:
        _deferred -= 1
