"""Ctrl-C swallowed by a finalizer ("Exception ignored in ...") is raised again by the next check."""

from __future__ import annotations

import signal

import pytest

from nas.interrupt import check_interrupt, handling_ctrl_c
from tests.conftest import CtrlCWhileFreed


def test_a_swallowed_ctrl_c_is_raised_by_the_next_check(swallowed: list[type[BaseException]]) -> None:
    before = signal.getsignal(signal.SIGINT)
    with handling_ctrl_c():
        check_interrupt()  # nothing pressed yet
        CtrlCWhileFreed()  # freed at once
        assert swallowed == [KeyboardInterrupt]
        with pytest.raises(KeyboardInterrupt):
            check_interrupt()
    assert signal.getsignal(signal.SIGINT) is before
    check_interrupt()  # outside the block: the flag is reset


def test_an_ignored_sigint_stays_ignored() -> None:
    """A worker started with '&' by a script ignores SIGINT; nas must not start hearing it."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with handling_ctrl_c():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            signal.raise_signal(signal.SIGINT)  # nothing happens
            check_interrupt()
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_ctrl_c_that_is_raised_normally_also_sets_the_flag(sigint_raises: None) -> None:
    with handling_ctrl_c():
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            check_interrupt()
