"""Ctrl-C that is never swallowed: every SIGINT is counted, so code that catches it cannot turn it into success.

Python raises KeyboardInterrupt wherever the main thread is when SIGINT comes. Third-party code that catches
everything (langdetect's profile loader has a bare `except:`) or runs in a `__del__` during garbage collection turns
it into another exception or drops it. While `watch_interrupts` is active, a handler counts each SIGINT before it
raises, so the runner re-raises a swallowed one at its next checkpoint (`raise_if_interrupted`) and never reports an
interrupted run as complete. `held_interrupts` blocks run to their end (closing engines, writing the report) with the
interrupt counted; `deferred_interrupts` does the same and raises it afterwards (loading language profiles whole).

`SFTEVAL_TEST_INTERRUPT_AT=PHASE[:N[:SIGNAL]]` makes the process send itself SIGNAL (default SIGINT) the N-th time
(default 1) it reaches `phase_reached(PHASE)`, so tests interrupt a chosen phase instead of racing a timer.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

TEST_VARIABLE = "SFTEVAL_TEST_INTERRUPT_AT"


@dataclass
class InterruptWatch:
    """The SIGINTs seen while installed; inside a held block they are counted but not raised."""

    received: int = 0
    holding: int = 0

    def handle(self, signal_number: int, frame: FrameType | None) -> None:
        """The SIGINT handler: count, then raise as Python's default handler does (unless held)."""
        self.received += 1
        if self.holding == 0:
            raise KeyboardInterrupt


_active: list[InterruptWatch] = []
_phases_reached: dict[str, int] = {}


@contextmanager
def watch_interrupts() -> Iterator[InterruptWatch]:
    """Count every SIGINT for the duration of the block; an enclosing watch is reused.

    Installs nothing outside the main thread or where SIGINT is not Python's default (ignored by a background shell,
    or handled by the embedding program): the watch then counts nothing.
    """
    if _active:
        yield _active[-1]
        return
    watch = InterruptWatch()
    installable = threading.current_thread() is threading.main_thread()
    if not installable or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield watch
        return
    previous = signal.signal(signal.SIGINT, watch.handle)
    _active.append(watch)
    try:
        yield watch
    finally:
        _active.pop()
        signal.signal(signal.SIGINT, previous)


@contextmanager
def held_interrupts() -> Iterator[InterruptWatch]:
    """Run the block to its end even when Ctrl-C comes; the interrupt stays counted in the watch's `received`."""
    with watch_interrupts() as watch:
        watch.holding += 1
        try:
            yield watch
        finally:
            watch.holding -= 1


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Run the block whole; a Ctrl-C that came meanwhile is raised as KeyboardInterrupt when it ends."""
    with held_interrupts() as watch:
        before = watch.received
        yield
    if watch.received > before and watch.holding == 0:
        raise KeyboardInterrupt


def raise_if_interrupted() -> None:
    """Raise the KeyboardInterrupt of a counted SIGINT that something swallowed (outside held blocks)."""
    if _active and _active[-1].received and _active[-1].holding == 0:
        raise KeyboardInterrupt


def phase_reached(phase: str) -> None:
    """Signal this process when SFTEVAL_TEST_INTERRUPT_AT names `phase` and this is its N-th visit."""
    wanted = os.environ.get(TEST_VARIABLE, "")
    name, _, rest = wanted.partition(":")
    if name != phase:
        return
    count, _, signal_name = rest.partition(":")
    _phases_reached[phase] = _phases_reached.get(phase, 0) + 1
    if _phases_reached[phase] == int(count or 1):
        # raise_signal delivers to this thread before it returns: the handler runs at the next bytecode.
        signal.raise_signal(signal.Signals[signal_name or "SIGINT"])
