"""Answers LoadGen: each issued sample exactly once, output token ids as int32.

Replicas call this from their own threads. It is the only place that talks to
LoadGen's completion API, so it is also where "answered exactly once" is
enforced and counted.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import mlperf_loadgen as lg
import numpy as np

from scenarios.requests import GenerationRequest

TOKEN_DTYPE = np.int32


@dataclass
class SampleRecord:
    """One answered sample, for run.json statistics and the optional samples log."""

    response_id: int
    sample_index: int
    issued_at: float
    first_token_at: float | None = None
    completed_at: float | None = None
    first_token: int | None = None
    n_tokens: int = 0
    tokens: list[int] | None = None
    error: str | None = None


class LoadGenResponder:
    """The `ResultSink` every replica reports to."""

    def __init__(self, *, keep_tokens: bool = False, first_token_in_completion: bool = True) -> None:
        self.keep_tokens = keep_tokens
        self.first_token_in_completion = first_token_in_completion
        """False: a sample whose first token went to FirstTokenComplete is completed with the tokens after it
        only, and LoadGen counts those (gpt-oss-120b's reference); True: with all of them (the others')."""
        self._lock = threading.Lock()
        self._records: dict[int, SampleRecord] = {}
        self._open: set[int] = set()
        self.completed_count = 0
        self.output_tokens = 0
        self.duplicates = 0
        self.failures: dict[str, int] = {}
        self.replica_failures: list[str] = []
        self.stopped: str | None = None
        """Why the run stopped early: from then on every open and every new sample is failed with it."""

    # -- issue side -------------------------------------------------------
    def issued(self, requests: Sequence[GenerationRequest]) -> None:
        now = time.perf_counter()
        with self._lock:
            for request in requests:
                self._records[request.response_id] = SampleRecord(request.response_id, request.sample_index, now)
                self._open.add(request.response_id)

    # -- ResultSink ---------------------------------------------------------
    def first_token(self, request: GenerationRequest, token_id: int) -> None:
        data = np.array([token_id], dtype=TOKEN_DTYPE)
        with self._lock:
            record = self._records.get(request.response_id)
            # LoadGen frees a sample once it is answered: a first token after that (a stream that goes on
            # after its sample was failed) must never reach it.
            if record is None or record.first_token_at is not None or request.response_id not in self._open:
                if self.stopped is None:
                    self.duplicates += 1
                return
            record.first_token_at = time.perf_counter()
            record.first_token = int(data[0])
        lg.FirstTokenComplete([lg.QuerySampleResponse(request.response_id, data.ctypes.data, data.nbytes)])

    def completed(self, results: Sequence[tuple[GenerationRequest, Sequence[int]]]) -> None:
        now = time.perf_counter()
        arrays: list[np.ndarray] = []
        responses = []
        with self._lock:
            for request, tokens in results:
                if not self._close(request.response_id):
                    continue
                data = np.asarray(tokens, dtype=TOKEN_DTYPE)
                record = self._records[request.response_id]
                record.completed_at = now
                record.n_tokens = len(data)
                if self.keep_tokens:
                    record.tokens = data.tolist()
                self.completed_count += 1
                self.output_tokens += len(data)
                if record.first_token_at is not None and not self.first_token_in_completion:
                    data = data[1:]
                arrays.append(data)
                responses.append(lg.QuerySampleResponse(request.response_id, data.ctypes.data, data.nbytes, len(data)))
        if responses:
            # LoadGen copies what it logs during this call, so `arrays` may go afterwards.
            lg.QuerySamplesComplete(responses)

    def failed(self, requests: Sequence[GenerationRequest], reason: str) -> None:
        """Answer with no tokens, so LoadGen finishes; the run is then reported INVALID."""
        self._fail_ids([request.response_id for request in requests], reason)

    def replica_failed(self, unstarted: Sequence[GenerationRequest], reason: str) -> None:
        """With no other replica to take them, unstarted requests fail too."""
        with self._lock:
            self.replica_failures.append(reason)
        self.failed(unstarted, reason)

    def stop(self, reason: str) -> None:
        """Fail every open sample now, and every sample issued from now on, so LoadGen can finish; replicas
        that answer later are ignored."""
        with self._lock:
            self.stopped = reason
            open_ids = list(self._open)
        self._fail_ids(open_ids, reason)

    def replica_down(self, unstarted: Sequence[GenerationRequest], reason: str) -> Sequence[GenerationRequest]:
        """A lone replica keeps its work while it is out: there is nowhere else to send it."""
        return unstarted

    def replica_up(self) -> None:
        pass

    def _fail_ids(self, response_ids: Sequence[int], reason: str) -> None:
        now = time.perf_counter()
        responses = []
        with self._lock:
            for response_id in response_ids:
                if not self._close(response_id):
                    continue
                record = self._records[response_id]
                record.completed_at = now
                record.error = reason
                self.failures[reason] = self.failures.get(reason, 0) + 1
                responses.append(lg.QuerySampleResponse(response_id, 0, 0, 0))
        if responses:
            lg.QuerySamplesComplete(responses)

    def _close(self, response_id: int) -> bool:
        if response_id in self._open:
            self._open.remove(response_id)
            return True
        if self.stopped is None:
            self.duplicates += 1
        return False

    # -- after the run --------------------------------------------------------
    @property
    def issued_count(self) -> int:
        return len(self._records)

    @property
    def failed_count(self) -> int:
        return sum(self.failures.values())

    def accounts(self) -> Accounts:
        """Every count and record at one instant: after a stop LoadGen (Server) may still be issuing, and what
        a run reports must agree with itself."""
        with self._lock:
            return Accounts(
                records=[dataclasses.replace(record) for record in self._records.values()],
                issued=len(self._records),
                completed=self.completed_count,
                failed=sum(self.failures.values()),
                failures=dict(self.failures),
                duplicates=self.duplicates,
                unanswered=len(self._open),
                output_tokens=self.output_tokens,
                replica_failures=list(dict.fromkeys(self.replica_failures)),
            )


@dataclass(frozen=True)
class SampleCounts:
    """How many samples LoadGen issued and what became of them: run.json's `samples`."""

    issued: int
    completed: int
    failed: int
    duplicates: int
    unanswered: int
    output_tokens: int


@dataclass(frozen=True)
class Accounts(SampleCounts):
    """What became of the samples LoadGen issued (`LoadGenResponder.accounts`)."""

    records: list[SampleRecord]
    failures: dict[str, int]
    """Failed samples by reason."""
    replica_failures: list[str]
    """Why replicas failed for good, each once."""

    def counts(self) -> SampleCounts:
        return SampleCounts(**{field.name: getattr(self, field.name) for field in dataclasses.fields(SampleCounts)})


def latency_percentiles(records: Sequence[SampleRecord]) -> dict[str, dict[str, float] | None]:
    """TTFT and TPOT percentiles (ms) of answered streams, from the harness's own clock.

    TPOT per sample is LoadGen's: (completion - first token) / (output tokens - 1).
    """
    ttft = [r.first_token_at - r.issued_at for r in records if r.first_token_at is not None and r.error is None]
    tpot = [
        (r.completed_at - r.first_token_at) / (r.n_tokens - 1)
        for r in records
        if r.first_token_at is not None and r.completed_at is not None and r.n_tokens > 1
    ]
    return {"ttft_ms": _percentiles_ms(ttft), "tpot_ms": _percentiles_ms(tpot)}


def _percentiles_ms(seconds: list[float]) -> dict[str, float] | None:
    if not seconds:
        return None
    values = np.percentile(np.asarray(seconds) * 1e3, [50, 90, 99])
    return {name: round(float(v), 3) for name, v in zip(("p50", "p90", "p99"), values, strict=True)}
