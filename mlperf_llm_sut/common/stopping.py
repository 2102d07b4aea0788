"""Stopping a run on SIGINT or SIGTERM, at any phase, within seconds.

Python runs signal handlers in the main thread only, between bytecodes, so a
main thread blocked inside LoadGen's `StartTest` (C++, no bytecode) would not
see a Ctrl-C until the test ended. So whatever a run waits on (LoadGen's test,
a replica starting or warming up) runs on a thread of its own, and the main
thread waits in short steps, looking at `requested` between them.

A first signal is recorded, and only inside `interruptible()` (code that can be
cut anywhere, such as reading inputs or scoring in a process pool) does the
handler raise `Interrupted`, which unwinds through the clean-up there. A second
signal ends the process at once: engine workers and scoring processes then end
by themselves, each when its pipe to this process closes.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
POLL_SECONDS = 0.05
"""How often `wait` looks at `requested`: a stop is acted on this soon."""


@dataclass(frozen=True)
class Interruption:
    """Which signal stopped the run, and in which phase."""

    signal: str
    phase: str

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process ended by it (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + signal.Signals[self.signal].value

    def __str__(self) -> str:
        return f"interrupted by {self.signal} during {self.phase}"


class Interrupted(BaseException):
    """A stop signal arrived in an interruptible phase.

    A `BaseException`, as `KeyboardInterrupt` is, so `except Exception` on the way
    up does not mistake it for a failure of whatever it cut short."""

    def __init__(self, interruption: Interruption) -> None:
        super().__init__(str(interruption))
        self.interruption = interruption


class StopSignals:
    """Catches SIGINT and SIGTERM for the life of a run (`with StopSignals(...) as stop:`).

    The handler does as little as a signal handler may: it records the signal, writes one line to
    `notice_fd` with `os.write`, and raises where that is safe. Anything more (a rich console, a lock, an
    import) could run inside whatever the main thread was doing, such as holding that very lock or
    importing a module, and break it. So code that waits polls `requested` (`wait` does) instead of
    being woken by an event.

    Outside the main thread signals cannot be caught; there `requested` stays None unless `request` is
    called (what a program that runs the harness on a thread of its own can do to stop it)."""

    def __init__(self, notice_fd: int | None = None) -> None:
        self.phase = "preparation"
        self.requested: Interruption | None = None
        self._notice_fd = notice_fd
        self._interruptible = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    @contextmanager
    def interruptible(self, phase: str) -> Iterator[None]:
        """Within, a first signal raises `Interrupted` (one recorded before raises at once)."""
        self.phase = phase
        self.check()
        self._interruptible += 1
        try:
            yield
        finally:
            self._interruptible -= 1

    def wait(self, timeout: float) -> bool:
        """Until a stop is requested or `timeout` passes; whether one was requested."""
        deadline = time.monotonic() + timeout
        while self.requested is None and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, POLL_SECONDS))
        return self.requested is not None

    def check(self) -> None:
        """Raise `Interrupted` if a stop was requested outside `interruptible`; call where unwinding is safe."""
        if self.requested is not None:
            raise Interrupted(self.requested)

    def request(self, signum: int = signal.SIGINT) -> None:
        """Stop the run as that signal would, from any thread (never raises)."""
        if self.requested is None:
            self.requested = Interruption(signal.Signals(signum).name, self.phase)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.requested is not None:
            # The user asked twice: no more clean-up. Children end when their pipes close.
            self._notice(f"\n{name} again: exiting now, without clean-up\n")
            os._exit(128 + signum)
        self.request(signum)
        self._notice(f"\n{name}: stopping during {self.phase}; a second one exits at once\n")
        if self._interruptible:
            raise Interrupted(Interruption(name, self.phase))

    def _notice(self, line: str) -> None:
        if self._notice_fd is None:
            return
        try:
            os.write(self._notice_fd, line.encode())
        except OSError:
            pass  # a closed or full stderr must not stop the stopping


def console_fd(console: Any) -> int | None:
    """The file descriptor a rich console writes to, where it has one (not a StringIO)."""
    try:
        return int(console.file.fileno())
    except (AttributeError, OSError, ValueError):
        return None
