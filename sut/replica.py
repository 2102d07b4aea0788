"""The replica interface: what a system under test needs from anything that generates.

A replica takes token-id prompts (`scenarios.requests.GenerationRequest`), reports each
stream's first token the moment it exists, and reports every finished sample's output token
ids to its `ResultSink`. A new backend is one new module that implements `Replica`:
`sut.engine_replica` (a local or Ray vLLM engine) and `sut.remote_replica` (an inference
server) are the two there are. A `ReplicaGroup` is what a run drives: several replicas behind
a dispatcher (`sut.dispatch`), or one on its own (`sut.solo`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mlperf_llm_sut.telemetry.series import Sampler
from scenarios.requests import GenerationRequest


@dataclass
class ReplicaStats:
    """What one replica did during the timed run."""

    name: str
    devices: list[str] = field(default_factory=list)
    cpus: list[int] | None = None
    """The cores it ran on, where it was pinned."""
    node: str | None = None
    """The host its engine ran on (a Ray actor's node), where it is a worker of the harness's."""
    samples: int = 0
    output_tokens: int = 0
    failed: int = 0
    busy_seconds: float = 0.0
    count_mismatches: int = 0
    """Answers re-tokenized from a server's text whose length differs from the server's own token count (a
    server's answers only: an engine's output ids are its own)."""

    @property
    def tokens_per_second(self) -> float:
        return self.output_tokens / self.busy_seconds if self.busy_seconds else 0.0

    def details(self) -> dict[str, object]:
        """What a kind of replica adds to its run.json row."""
        return {}


class Replica(Protocol):
    """A generator of token ids that a scenario driver can feed."""

    name: str

    def start(self) -> None:
        """Bring the replica up; raises `HarnessError` with a clear message on failure."""

    def warm_up(self, prompts: Sequence[list[int]], max_new_tokens: int) -> None:
        """Generate a little, untimed, so the timed run starts warm."""

    def submit(self, requests: Sequence[GenerationRequest]) -> None:
        """Queue requests without blocking; results arrive at the sink."""

    def stop(self) -> None:
        """Finish, release the engine; idempotent."""

    def stats(self) -> ReplicaStats: ...

    def engine_args(self) -> dict[str, Any]:
        """The `vllm.EngineArgs` fields its engine is built with, where this process builds it; {} for a
        server, whose engine is its own business."""

    def samplers(self) -> list[Sampler]:
        """Its telemetry: what its engine's stat logger or its server's `/metrics` says, and its worker process's
        CPU and memory (sampled while the run goes; valid once it has started)."""


GiveBack = Callable[[list[GenerationRequest]], None]


class Member(Replica, Protocol):
    """A replica in a group: what a dispatcher needs besides a `Replica`."""

    def withdraw(self, count: int, give_back: GiveBack) -> None:
        """Hand back up to `count` Offline requests it has not started, by one call of `give_back` (from
        any thread, with none if it has none): the replica then no longer owes them, and they may go to
        another replica."""


class ReplicaGroup(Replica, Protocol):
    """The replicas behind one system under test, as a run drives and reports them; a lone replica is a
    group of one (`sut.solo.Solo`)."""

    @property
    def members(self) -> Sequence[Replica]:
        """Each replica of the group; what a run reports is each of them."""

    def assignments(self) -> dict[int, str]:
        """Which member (by name) each request, by LoadGen response id, went to last."""

    def replica_failures(self) -> dict[str, dict[str, object]]:
        """Members that failed for good during the run: why, and how many unstarted requests moved on."""

    def stolen(self) -> dict[str, int]:
        """Offline requests taken back from each member that gave some, and moved to another."""

    def finish_spread(self) -> float | None:
        """Seconds between the first and the last member finishing its last request; None for one member."""
