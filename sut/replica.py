"""The replica interface: what a scenario driver needs from anything that generates.

A replica takes token-id prompts, reports each stream's first token the moment
it exists, and reports every finished sample's output token ids. An in-process
vLLM engine is one implementation; a new backend is one new module that
implements `Replica`: `sut.engine_replica` (a local engine) and
`sut.remote_replica` (an inference server) are the two there are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One LoadGen sample on its way to a replica."""

    response_id: int
    """LoadGen's `QuerySample.id`: the handle the response goes back under."""
    sample_index: int
    """The QSL index of the prompt."""
    prompt: list[int]
    stream: bool
    """Report the first token on its own (Server) or only the finished output (Offline)."""


class ResultSink(Protocol):
    """Where replicas deliver results; called from the replica's own thread."""

    def first_token(self, request: GenerationRequest, token_id: int) -> None: ...

    def completed(self, results: Sequence[tuple[GenerationRequest, Sequence[int]]]) -> None: ...

    def failed(self, requests: Sequence[GenerationRequest], reason: str) -> None: ...

    def replica_failed(self, unstarted: Sequence[GenerationRequest], reason: str) -> None:
        """The replica is gone for good; `unstarted` never produced anything and may go elsewhere."""

    def replica_down(self, unstarted: Sequence[GenerationRequest], reason: str) -> Sequence[GenerationRequest]:
        """The replica is out for now (`replica_up` follows if it comes back). `unstarted` may go
        elsewhere; the requests returned had nowhere else to go, and the replica keeps them."""

    def replica_up(self) -> None:
        """The replica that was down takes work again."""


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


GiveBack = Callable[[list[GenerationRequest]], None]


class Member(Replica, Protocol):
    """A replica in a group: what a dispatcher needs besides a `Replica`."""

    def withdraw(self, count: int, give_back: GiveBack) -> None:
        """Hand back up to `count` Offline requests it has not started, by one call of `give_back` (from
        any thread, with none if it has none): the replica then no longer owes them, and they may go to
        another replica."""
