"""Readings and the samplers that take them: the shape every source of telemetry shares.

A sampler (an engine's stat logger, a server's Prometheus `/metrics`, NVML, psutil) turns what its source says
now into `Reading`s under the names of `mlperf_llm_sut.telemetry.metrics`; it never raises for a source that is missing,
refuses or answers garbage: it says so in `warnings()` (one line each, for the run's summary) and returns
what it could read. Times are `time.monotonic()` seconds, the clock the run marks LoadGen's test window on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Reading:
    time: float
    """`time.monotonic()` when it was read."""
    source: str
    """What it is of: `replica-0`, `gpu:0`, `harness`, `replica-0 worker`."""
    metric: str
    """One of `mlperf_llm_sut.telemetry.metrics`' names."""
    value: float


class Sampler(Protocol):
    """One source of readings, asked at every tick of the sampling loop."""

    name: str

    def sample(self, now: float) -> list[Reading]:
        """What the source says at `now`; quick (the loop asks every sampler each tick), and never raises."""
        ...

    def warnings(self) -> list[str]:
        """What kept it from reading its source, one line each (empty when all went well)."""
        ...

    def close(self) -> None:
        """Release what it holds (a connection, NVML); idempotent."""
        ...
