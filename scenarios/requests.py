"""What a scenario hands to the replicas, and where their answers come back.

A scenario driver turns each LoadGen sample into a `GenerationRequest` and submits it to a
`RequestTarget` (the replicas, `sut.replica`); the replicas report every first token, finished
output and failure to a `ResultSink` (`scenarios.responder`, which answers LoadGen). Both sides
meet here, so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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


class RequestTarget(Protocol):
    """What a scenario driver submits to: the replicas of a system under test."""

    def submit(self, requests: Sequence[GenerationRequest]) -> None:
        """Queue requests without blocking; results arrive at the sink."""


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
