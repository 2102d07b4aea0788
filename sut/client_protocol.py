"""What the harness and a client worker process say to each other, over one pipe.

A client worker (`sut.client_worker`) runs the HTTP clients of one or several
remote replicas; each message names the replica by its slot in the run. As with
engine workers (`sut.worker_protocol`, whose `Submit`, `Step` and `Ready` these
reuse), results travel in batches: one `Results` per event-loop turn of the worker
that produced any, whatever the number of streams and replicas it served.

* harness -> worker (`ToClient`): `Open`, `Send`, `WarmUpReplica`, `TakeBack`,
  `Scrape`, `Close`, and `Stop` for the whole process;
* worker -> harness (`FromClient`): `Ready` once; `Opened` and `Warmed` answer
  `Open` and `WarmUpReplica`; `Results` (first tokens with the time they arrived,
  finished and failed samples, the replica's counters when they changed); `Down`,
  `Up` and `Lost` when a replica goes out, comes back or fails for good; `Returned`
  answers each `TakeBack`; `Scraped` each `Scrape`; `Closed` with the replica's
  final counters.

Failed attempts travel with the samples they belong to (`attempts`): a sample that
moves between replicas of different processes keeps its count, so `retries` bounds
its attempts over the whole run, as within one process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np

from mlperf_llm_sut.telemetry.series import Reading
from sut.remote_replica import RemoteStats
from sut.worker_protocol import IDS, Ready, Step, Stop, Submit

TIMES = np.float64
Attempts: TypeAlias = dict[int, int]
"""Failed attempts so far, by LoadGen response id, of the samples that have any."""


@dataclass(frozen=True, slots=True)
class Open:
    """Connect replica `slot` and run its start-up checks."""

    slot: int


@dataclass(frozen=True, slots=True)
class Send:
    slot: int
    requests: Submit
    attempts: Attempts = field(default_factory=dict)
    kept: bool = False
    """Requests the replica offered back when it went out, and that had nowhere else to go: it keeps them
    until it is back, rather than offering them again."""


@dataclass(frozen=True, slots=True)
class WarmUpReplica:
    slot: int
    prompts: list[list[int]]
    max_new_tokens: int


@dataclass(frozen=True, slots=True)
class TakeBack:
    """Hand back up to `count` Offline requests replica `slot` has not sent (work stealing)."""

    slot: int
    count: int


@dataclass(frozen=True, slots=True)
class Scrape:
    """Read replica `slot`'s telemetry sources (its server's `/metrics`) now: a tick of the run's sampling."""

    slot: int


@dataclass(frozen=True, slots=True)
class Close:
    """Stop replica `slot`: what it still holds fails."""

    slot: int


@dataclass(frozen=True, slots=True)
class Opened:
    slot: int
    error: str | None = None
    """Why it cannot serve the run, in the words of the harness's error for it."""


@dataclass(frozen=True, slots=True)
class Warmed:
    slot: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Results:
    """What replica `slot` delivered in one event-loop turn."""

    slot: int
    step: Step
    first_times: bytes = b""
    """When each first token's bytes arrived (`time.perf_counter`, CLOCK_MONOTONIC: one clock for every process
    of the host), in the order of `step.first()`."""
    stats: RemoteStats | None = None
    """The replica's counters, when they changed since the last ones sent."""

    def arrival_times(self) -> list[float]:
        times: list[float] = np.frombuffer(self.first_times, TIMES).tolist()
        return times


@dataclass(frozen=True, slots=True)
class Down:
    """Replica `slot` is out for now; `ids` are its unstarted requests, which it no longer holds."""

    slot: int
    ids: bytes
    reason: str
    attempts: Attempts


@dataclass(frozen=True, slots=True)
class Up:
    slot: int


@dataclass(frozen=True, slots=True)
class Lost:
    """Replica `slot` failed for good; `ids` never produced anything and may go elsewhere."""

    slot: int
    ids: bytes
    reason: str
    attempts: Attempts


@dataclass(frozen=True, slots=True)
class Returned:
    """The answer to one `TakeBack`: the requests replica `slot` no longer holds (maybe none)."""

    slot: int
    ids: bytes
    attempts: Attempts


@dataclass(frozen=True, slots=True)
class Scraped:
    """What one `Scrape` read (times: `time.monotonic`, one clock for every process of the host), and what kept
    the replica's sources from being read so far."""

    slot: int
    readings: list[Reading]
    warnings: list[str]


@dataclass(frozen=True, slots=True)
class Closed:
    slot: int
    stats: RemoteStats


ToClient: TypeAlias = Open | Send | WarmUpReplica | TakeBack | Scrape | Close | Stop
"""What the harness sends a client worker."""
FromClient: TypeAlias = Ready | Opened | Warmed | Results | Down | Up | Lost | Returned | Scraped | Closed
"""What a client worker sends the harness."""


def pack_ids(response_ids: list[int]) -> bytes:
    return np.array(response_ids, IDS).tobytes()


def unpack_ids(ids: bytes) -> list[int]:
    unpacked: list[int] = np.frombuffer(ids, IDS).tolist()
    return unpacked
