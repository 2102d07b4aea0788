"""What every scenario driver does: LoadGen queries in, replica requests out."""

from __future__ import annotations

from typing import Any, ClassVar

import mlperf_loadgen as lg

from scenarios.qsl import SampleLibrary
from scenarios.requests import GenerationRequest, RequestTarget
from scenarios.responder import LoadGenResponder


class ScenarioDriver:
    """Turns LoadGen's `IssueQuery` calls into replica requests.

    It runs on LoadGen's issue thread, so it only builds requests and queues
    them; generation and responses happen on the replicas' threads.
    """

    name: ClassVar[str]
    stream: ClassVar[bool]

    def __init__(self, library: SampleLibrary, replica: RequestTarget, responder: LoadGenResponder) -> None:
        self.library = library
        self.replica = replica
        self.responder = responder

    def issue_queries(self, query_samples: list[Any]) -> None:
        requests = [GenerationRequest(q.id, q.index, self.library.prompt(q.index), self.stream) for q in query_samples]
        self.responder.issued(requests)
        if self.responder.stopped is not None:
            # The run is stopping; LoadGen (Server) keeps its schedule, and each new sample fails at once.
            self.responder.failed(requests, self.responder.stopped)
            return
        self.replica.submit(requests)

    def flush_queries(self) -> None:
        """Nothing is held back for batching, so there is nothing to flush."""

    def open(self) -> Any:
        """LoadGen's handle to this driver; `close` only once no LoadGen test can call it any more."""
        self._handle = lg.ConstructSUT(self.issue_queries, self.flush_queries)
        return self._handle

    def close(self) -> None:
        lg.DestroySUT(self._handle)
