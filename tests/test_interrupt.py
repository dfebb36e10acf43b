"""Ctrl-C swallowed by a finalizer ("Exception ignored in ...") is raised again by the next check."""

from __future__ import annotations

import signal
import threading

import pytest

from nas.interrupt import check_interrupt, ctrl_c_deferred, handling_ctrl_c
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


def test_a_deferred_ctrl_c_is_held_until_the_next_check(sigint_raises: None) -> None:
    with handling_ctrl_c():
        with ctrl_c_deferred():
            with ctrl_c_deferred():
                pass
            signal.raise_signal(signal.SIGINT)  # held, also after a nested block ended
            with pytest.raises(KeyboardInterrupt):  # reached: the press did not raise, but it is recorded
                check_interrupt()
        with pytest.raises(KeyboardInterrupt):
            check_interrupt()
        with pytest.raises(KeyboardInterrupt):  # after the block, Ctrl-C raises at once again
            signal.raise_signal(signal.SIGINT)


def test_a_second_press_in_a_held_block_raises_at_once(sigint_raises: None) -> None:
    """A write that hangs (a database that does not answer) can still be left by pressing again."""
    with handling_ctrl_c(), pytest.raises(KeyboardInterrupt), ctrl_c_deferred():
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)


@pytest.mark.parametrize("first", ["raised", "swallowed"])
def test_after_a_first_ctrl_c_a_block_holds_none(swallowed: list[type[BaseException]], first: str) -> None:
    """Pressed again while the first is handled (or after a finalizer swallowed it): stop at once."""
    with handling_ctrl_c():
        if first == "raised":
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGINT)
        else:
            CtrlCWhileFreed()
            assert swallowed == [KeyboardInterrupt]
        with pytest.raises(KeyboardInterrupt), ctrl_c_deferred():
            signal.raise_signal(signal.SIGINT)


def test_a_handler_entered_elsewhere_keeps_the_main_threads_held_ctrl_c(sigint_raises: None) -> None:
    def enter_from_a_thread() -> None:
        with handling_ctrl_c():
            pass

    with handling_ctrl_c():
        with ctrl_c_deferred():
            signal.raise_signal(signal.SIGINT)
            thread = threading.Thread(target=enter_from_a_thread)
            thread.start()
            thread.join(10)
        with pytest.raises(KeyboardInterrupt):
            check_interrupt()


def test_deferring_outside_the_main_thread_holds_nothing(sigint_raises: None) -> None:
    """Only the main thread hears SIGINT: another thread's block must not silence it there."""
    entered, release = threading.Event(), threading.Event()

    def in_a_thread() -> None:
        with ctrl_c_deferred():
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=in_a_thread)
    with handling_ctrl_c():
        thread.start()
        try:
            assert entered.wait(10)
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGINT)
        finally:
            release.set()
            thread.join(10)
