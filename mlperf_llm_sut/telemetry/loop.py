"""The sampling loop: one daemon thread that asks every sampler at each tick and keeps what they read, and the
readings' file.

Samplers are asked one after the other on that thread: a slow one delays the others' readings of that tick
(and ticks it overran are skipped, not caught up), a raising one loses its own readings and gives one warning,
and neither stops the loop. The loop measures its own cost (the thread's CPU time), so a run can say what share
of the harness's CPU the sampling took. Imports nothing of the project beyond `telemetry`.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from mlperf_llm_sut.telemetry.series import Reading, Sampler

STOP_TIMEOUT = 5.0
"""How long `stop()` waits for the tick in progress, by default: a sampler's own timeouts (an HTTP scrape's)
should be shorter."""


class SamplingLoop:
    """Asks `samplers` every `interval` seconds on a daemon thread, from `start()` until `stop()`.

    The first tick is at `start()`. `clock` stamps the readings and schedules the ticks: it must be the clock
    the run marks its test window on (`time.monotonic`)."""

    def __init__(
        self,
        samplers: Sequence[Sampler],
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (isinstance(interval, int | float) and math.isfinite(interval) and interval > 0):
            raise ValueError(f"SamplingLoop: interval must be a number of seconds > 0, not {interval!r}")
        self.interval = float(interval)
        self._samplers = list(samplers)
        self._clock = clock
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._readings: list[Reading] = []
        self._current: Sampler | None = None
        """The sampler being asked now, on the loop's thread (the one `stop()` must not close under it)."""
        self._closed: set[int] = set()
        """`id()`s of the samplers closed (a sampler need not be hashable)."""
        self._failures: dict[int, tuple[str, int]] = {}
        """sampler's place in `samplers` -> (its first unexpected exception, how many times it raised)."""
        self._own_warnings: dict[str, None] = {}
        self._overruns: dict[int, int] = {}
        """sampler's place -> how many of its samples took longer than the interval."""
        self._cpu_seconds = 0.0
        self._ticks = 0

    @property
    def cpu_seconds(self) -> float:
        """The CPU time the loop's thread spent in ticks: the sampling's own cost."""
        return self._cpu_seconds

    @property
    def ticks(self) -> int:
        return self._ticks

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("SamplingLoop: start() once per loop")
        self._thread = threading.Thread(target=self._run, name="telemetry-sampling", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop ticking and close the samplers; returns within about `timeout` seconds even if a sampler is
        stuck: that one is left to its (daemon) thread, which closes it if it ever returns. Idempotent."""
        with self._lock:
            self._stopping.set()
        thread = self._thread
        if thread is not None:
            thread.join(max(timeout, 0.0))
            if thread.is_alive():
                current = self._current
                name = current.name if current is not None else "a sampler"
                self._warn(f"sampling: {name} did not return within {timeout:g} s of the stop; left behind")
        self._close_samplers()

    def _close_samplers(self) -> None:
        """Close every sampler not being asked now and not closed yet; the loop's thread closes the last one."""
        with self._lock:
            to_close = [
                sampler
                for sampler in self._samplers
                if sampler is not self._current and id(sampler) not in self._closed
            ]
            self._closed.update(id(sampler) for sampler in to_close)
        for sampler in to_close:
            try:
                sampler.close()
            except Exception as error:
                self._warn(f"{sampler.name}: close raised {type(error).__name__}: {error}")

    def readings(self) -> list[Reading]:
        """What was read so far, in the order read (a copy)."""
        with self._lock:
            return list(self._readings)

    def warnings(self) -> list[str]:
        """Every sampler's warnings and the loop's own (a sampler that raised, or overran the interval), each
        line once."""
        lines: dict[str, None] = {}
        for sampler in self._samplers:
            try:
                lines.update(dict.fromkeys(sampler.warnings()))
            except Exception as error:
                lines.setdefault(f"{sampler.name}: warnings() raised {type(error).__name__}: {error}", None)
        with self._lock:
            failures = dict(self._failures)
            overruns = dict(self._overruns)
            lines.update(self._own_warnings)
        for place, overran in sorted(overruns.items()):
            # A busy harness holds the sampling thread back now and then (it shares the GIL); a sampler too slow
            # for the interval overruns it again and again, and its series has gaps.
            if overran > max(1, self._ticks // 10):
                name = self._samplers[place].name
                line = (
                    f"{name}: {overran} of {self._ticks} samples took longer than the {self.interval:g} s interval "
                    "(ticks skipped: raise --telemetry-interval)"
                )
                lines.setdefault(line, None)
        for place, (first, count) in sorted(failures.items()):
            times = "once" if count == 1 else f"{count} times"
            name = self._samplers[place].name
            lines.setdefault(f"{name}: sampling raised {times}, its readings of those ticks lost (first: {first})")
        return list(lines)

    def _warn(self, line: str) -> None:
        with self._lock:
            self._own_warnings.setdefault(line, None)

    def _run(self) -> None:
        try:
            next_tick = self._clock()
            while not self._stopping.is_set():
                started = time.thread_time()
                self._tick()
                self._cpu_seconds += time.thread_time() - started
                self._ticks += 1
                # A fixed rate: ticks fall on start + k * interval; those a slow tick overran are skipped.
                next_tick += self.interval
                now = self._clock()
                if now > next_tick:
                    next_tick += math.ceil((now - next_tick) / self.interval) * self.interval
                self._stopping.wait(next_tick - now)
        finally:
            with self._lock:
                self._current = None
            self._close_samplers()

    def _tick(self) -> None:
        for place, sampler in enumerate(self._samplers):
            with self._lock:
                # Checked under the lock that `stop()` sets it under: once stopping, no sampler is begun.
                if self._stopping.is_set():
                    return
                self._current = sampler
            began = self._clock()
            try:
                readings = list(sampler.sample(began))
            except Exception as error:
                readings = []
                with self._lock:
                    first, count = self._failures.get(place, (f"{type(error).__name__}: {error}", 0))
                    self._failures[place] = (first, count + 1)
            took = self._clock() - began
            with self._lock:
                if took > self.interval:
                    self._overruns[place] = self._overruns.get(place, 0) + 1
                self._current = None
                self._readings.extend(readings)


def write_jsonl(readings: Iterable[Reading], path: Path) -> None:
    """One JSON object per line, `{"time", "source", "metric", "value"}`, in the order given; a value that is not
    finite is written null (JSON has no NaN)."""
    with Path(path).open("w", encoding="utf-8") as out:
        for reading in readings:
            value = reading.value if math.isfinite(reading.value) else None
            out.write(
                json.dumps({"time": reading.time, "source": reading.source, "metric": reading.metric, "value": value})
            )
            out.write("\n")


def read_jsonl(path: Path) -> list[Reading]:
    """The readings `write_jsonl` wrote (null values come back NaN)."""
    readings = []
    with Path(path).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                value = math.nan if item["value"] is None else float(item["value"])
                readings.append(Reading(float(item["time"]), str(item["source"]), str(item["metric"]), value))
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f"{path}:{number}: not a reading ({error})") from error
    return readings
