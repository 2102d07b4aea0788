"""Whether one remote server is fit to take requests: the state machine behind a `RemoteReplica`'s ejections.

    UP ──(eject_after errors in a row, or a stall)──> OUT ──(a probe passes)──> UP
                                                       │
                                                       └──(a probe fails down_timeout after going out)──> FAILED

* UP: requests go on the wire. Each failed attempt that another attempt might fix
  counts as an error; an answer ends the run of errors. The run reaching
  `eject_after` ejects the server. So does a stall: requests on the wire and
  nothing back (no streamed event, no answer) for `stall_timeout`, whatever the
  server's health check says.
* OUT: ejected for now. Its work goes elsewhere, and a probe checks it every
  `probe_interval`. A probe that passes brings it back UP with no errors
  counted; one that fails `down_timeout` or more after it went out fails it.
* FAILED: for good; nothing leaves this state.

`ServerHealth` only decides and keeps the time, on the clock it is given: the
replica sends the requests and the probes, moves the work and tells the sink,
and asks this class what each outcome means. It is not thread-safe: the replica
calls it from its event-loop thread only.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

WATCH_PERIOD_SECONDS = 1.0
"""The stall watchdog looks at least this often, and four times per `stall_timeout` when that is shorter."""


class HealthState(enum.Enum):
    UP = "up"
    OUT = "out"
    FAILED = "failed"


class ServerHealth:
    """One server's health: UP, OUT or FAILED (see the module's docstring), and the counts that move it."""

    def __init__(
        self,
        where: str,
        *,
        eject_after: int,
        probe_interval: float,
        down_timeout: float,
        stall_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.where = where
        """How reasons name the server: its replica and redacted endpoint."""
        self.eject_after = eject_after
        self.probe_interval = probe_interval
        self.down_timeout = down_timeout
        self.stall_timeout = stall_timeout
        self._clock = clock
        self.state = HealthState.UP
        self.errors_in_a_row = 0
        self.out_reason = ""
        """Why it went OUT last; kept once it is FAILED."""
        self.failure: str | None = None
        """Why it is FAILED; None in the other states."""
        self._out_since = 0.0
        self._last_progress = clock()

    @property
    def is_up(self) -> bool:
        return self.state is HealthState.UP

    @property
    def watch_period(self) -> float:
        """How often the replica asks `stalled`."""
        return min(WATCH_PERIOD_SECONDS, self.stall_timeout / 4)

    # -- attempts -------------------------------------------------------------------------------------
    def answered(self) -> None:
        """An attempt got its answer: the run of errors ends."""
        self.errors_in_a_row = 0

    def attempt_failed(self, error: str) -> str | None:
        """Count one failed attempt that another attempt might fix; `error` says what went wrong.

        Returns why the server should go OUT when this error makes `eject_after` in a row while it is UP,
        else None. The caller ejects (`eject`) once it has dealt with the attempt itself."""
        self.errors_in_a_row += 1
        if self.errors_in_a_row >= self.eject_after and self.is_up:
            return f"{self.where} had {self.errors_in_a_row} errors in a row, the last: {error}"
        return None

    def progressed(self) -> None:
        """Something came back from the server; also called as work starts after idle time, which is no
        stall."""
        self._last_progress = self._clock()

    def stalled(self, on_wire: int) -> str | None:
        """Why the server counts as stuck, with `on_wire` requests sent and unanswered: none while it is not
        UP, has nothing on the wire, or answered within `stall_timeout`."""
        quiet = self._clock() - self._last_progress
        if on_wire and quiet > self.stall_timeout and self.is_up:
            return f"{self.where} returned nothing for {quiet:.0f} s with {on_wire} requests on the wire"
        return None

    # -- out and back -----------------------------------------------------------------------------------
    def eject(self, reason: str) -> None:
        """UP -> OUT, from now."""
        assert self.is_up, f"{self.where} ejected while {self.state.value}"
        self.state = HealthState.OUT
        self._out_since = self._clock()
        self.out_reason = reason

    def probe_passed(self) -> None:
        """OUT -> UP, with no errors counted."""
        assert self.state is HealthState.OUT, f"{self.where} probed while {self.state.value}"
        self.state = HealthState.UP
        self.errors_in_a_row = 0

    def probe_failed(self) -> str | None:
        """OUT stays OUT until `down_timeout` has passed since the ejection; then -> FAILED, and the reason
        is returned."""
        assert self.state is HealthState.OUT, f"{self.where} probed while {self.state.value}"
        if self._clock() - self._out_since < self.down_timeout:
            return None
        self.state = HealthState.FAILED
        self.failure = f"{self.where} stayed out for {self.down_timeout:.0f} s: {self.out_reason}"
        return self.failure
