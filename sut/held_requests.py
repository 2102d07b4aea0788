"""What a worker holds for one replica, as the harness's side of the worker keeps it.

An engine worker (`sut.engine_replica`) and a client worker (`sut.client_replica`) both
answer over a pipe: the harness keeps the table of the requests each one holds, and whether
each one's first token went out, so that every answer is delivered once, what the worker
gives back leaves the table, and when the worker dies the harness knows at once which samples
had started streaming (those fail) and which can go to another replica.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from scenarios.requests import GenerationRequest, ResultSink
from sut.replica import GiveBack, ReplicaStats
from sut.worker_protocol import Step


@dataclass
class Delivery:
    """What one `Step` delivers, sorted out of the table: to be passed to the sink outside the lock."""

    first: list[tuple[GenerationRequest, int]] = field(default_factory=list)
    done: list[tuple[GenerationRequest, Any]] = field(default_factory=list)
    failed: dict[str, list[GenerationRequest]] = field(default_factory=dict)

    def to(self, sink: ResultSink, fail: Callable[[list[GenerationRequest], str], None]) -> None:
        for request, token in self.first:
            sink.first_token(request, token)
        if self.done:
            sink.completed(self.done)
        for reason, requests in self.failed.items():
            fail(requests, reason)


class HeldRequests:
    """The table of one replica's requests in its worker, its busy time, and who waits for withdrawn work."""

    def __init__(self, stats: ReplicaStats) -> None:
        self.lock = threading.Lock()
        """Guards the table, and orders what is sent to the worker with the table's changes."""
        self._held: dict[int, tuple[GenerationRequest, bool]] = {}
        """Requests the worker has, and whether their first token went out."""
        self._giving_back: deque[GiveBack] = deque()
        """Who waits for each withdrawal asked for, in order: the worker answers each, in order."""
        self._busy_since: float | None = None
        self._stats = stats

    def hold(self, requests: Sequence[GenerationRequest]) -> None:
        """Under `lock`: the worker is about to get `requests`."""
        if not self._held:
            self._busy_since = time.perf_counter()
        for request in requests:
            self._held[request.response_id] = (request, False)

    def step(self, step: Step) -> Delivery:
        """What the worker delivered; a request missing here was already answered for (the replica was stopped)."""
        delivery = Delivery()
        with self.lock:
            for response_id, token in step.first():
                if response_id in self._held:
                    request = self._held[response_id][0]
                    self._held[response_id] = (request, True)
                    delivery.first.append((request, token))
            for response_id, tokens in step.done():
                if response_id in self._held:
                    delivery.done.append((self._held.pop(response_id)[0], tokens))
            for response_id, reason in step.failed:
                if response_id in self._held:
                    delivery.failed.setdefault(reason, []).append(self._held.pop(response_id)[0])
            self._account(delivery.done)
        return delivery

    def release(self, response_ids: Iterable[int]) -> list[GenerationRequest]:
        """Requests the worker no longer holds (given back, or offered to other replicas)."""
        with self.lock:
            requests = [self._held.pop(i)[0] for i in response_ids if i in self._held]
            self._account([])
        return requests

    def take_all(self) -> tuple[list[GenerationRequest], list[GenerationRequest]]:
        """Everything still held, as (started, unstarted): the worker is gone or stopped."""
        with self.lock:
            held = list(self._held.values())
            self._held.clear()
        return [r for r, started in held if started], [r for r, started in held if not started]

    def await_give_back(self, give_back: GiveBack) -> None:
        """Under `lock`: a withdrawal is about to be asked for."""
        self._giving_back.append(give_back)

    def forget_give_back(self) -> None:
        """Under `lock`: the withdrawal could not be asked for after all."""
        self._giving_back.pop()

    def given_back(self, response_ids: Iterable[int]) -> None:
        """The worker's answer to the oldest withdrawal: the requests go to who asked."""
        with self.lock:
            give_back = self._giving_back.popleft()
        give_back(self.release(response_ids))

    def answer_withdrawals(self) -> None:
        """A worker that is gone answers no withdrawal: each waiting caller hears "none" (what it held is failed or
        handed on with the rest)."""
        with self.lock:
            waiting = list(self._giving_back)
            self._giving_back.clear()
        for give_back in waiting:
            give_back([])

    def lose_all(self, reason: str, sink: ResultSink, fail: Callable[[list[GenerationRequest], str], None]) -> None:
        """The worker died: a stream whose first token LoadGen has seen cannot move, so it fails; everything else
        goes back to the dispatcher through `sink`, and each waiting withdrawal hears "none"."""
        started, unstarted = self.take_all()
        self.answer_withdrawals()
        fail(started, reason)
        sink.replica_failed(unstarted, reason)

    def _account(self, done: list[tuple[GenerationRequest, Any]]) -> None:
        self._stats.samples += len(done)
        self._stats.output_tokens += sum(len(tokens) for _, tokens in done)
        if not self._held and self._busy_since is not None:
            self._stats.busy_seconds += time.perf_counter() - self._busy_since
            self._busy_since = None
