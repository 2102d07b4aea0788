"""A lone replica as a group of one: what a run asks of a group, without a dispatcher in the way."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from mlperf_llm_sut.telemetry.series import Sampler
from scenarios.requests import GenerationRequest
from sut.replica import Replica, ReplicaStats


class Solo:
    """A `ReplicaGroup` of one replica, which gets every request as it comes."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self.name = replica.name
        self._placed: dict[int, str] = {}
        # A Server test may still issue while a stopped run reads the assignments.
        self._lock = threading.Lock()

    @property
    def members(self) -> Sequence[Replica]:
        return [self.replica]

    def start(self) -> None:
        self.replica.start()

    def warm_up(self, prompts: Sequence[list[int]], max_new_tokens: int) -> None:
        self.replica.warm_up(prompts, max_new_tokens)

    def submit(self, requests: Sequence[GenerationRequest]) -> None:
        with self._lock:
            self._placed.update(dict.fromkeys((request.response_id for request in requests), self.name))
        self.replica.submit(requests)

    def stop(self) -> None:
        self.replica.stop()

    def stats(self) -> ReplicaStats:
        return self.replica.stats()

    def engine_args(self) -> dict[str, Any]:
        return self.replica.engine_args()

    def samplers(self) -> list[Sampler]:
        return self.replica.samplers()

    def assignments(self) -> dict[int, str]:
        with self._lock:
            return dict(self._placed)

    def replica_failures(self) -> dict[str, dict[str, object]]:
        """A lone replica's failure reaches the sink (`ResultSink.replica_failed`): nothing moved anywhere."""
        return {}

    def stolen(self) -> dict[str, int]:
        return {}

    def finish_spread(self) -> float | None:
        return None
