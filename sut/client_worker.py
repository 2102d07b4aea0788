"""Inside a client worker: the HTTP clients of one or several remote replicas, in a process of their own.

Why: a remote run reads every streamed token, and in the harness's process that
reading shares one interpreter lock with LoadGen's callbacks and the responder
(about 21 us of the LoadGen process's CPU per streamed token, measured: one
process then tops out near 20-45k streamed tokens/s). Here each `RemoteReplica`
runs as it would in the harness (the same client, health checks, retries,
ejection and stall detection), on one event loop per worker process; what it
delivers goes back batched: one `Results` message per replica per loop turn
(`Outbox`), whatever the number of streams the turn read. The servers' `/metrics`
are scraped here too, when the run's sampling asks (`Scrapes`).

The main thread reads the harness's messages and hands them to the replicas
(their `submit` and `withdraw` return at once; start-up, warm-up and stop run on
threads of their own, so a slow one holds up nothing else). The worker leads its
own process group, so a Ctrl-C at the terminal reaches the harness alone, which
stops the worker in order; when the harness is gone (its end of the pipe closes),
the worker ends at once.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import numpy as np

from mlperf_llm_sut.common.errors import HarnessError
from mlperf_llm_sut.telemetry.series import Sampler
from scenarios.requests import GenerationRequest
from sut.client_protocol import (
    TIMES,
    Close,
    Closed,
    Down,
    FromClient,
    Lost,
    Open,
    Opened,
    Results,
    Returned,
    Scrape,
    Scraped,
    Send,
    TakeBack,
    ToClient,
    Up,
    Warmed,
    WarmUpReplica,
    pack_ids,
)
from sut.generation import GenerationConfig
from sut.output_ids import Retokenizer
from sut.remote_config import RemoteConfig
from sut.remote_replica import AttemptBudget, LoopThread, RemoteReplica, RemoteStats
from sut.worker_protocol import Ready, Step, Stop

MAX_BATCH_SECONDS = 0.001
"""The longest a result waits in the worker for the rest of its loop turn."""


@dataclass(frozen=True)
class ClientReplicaSpec:
    slot: int
    name: str
    endpoint: str


@dataclass(frozen=True)
class ClientSpec:
    """Everything a client worker needs; pickled to the new process. The bearer token is not in it: the worker
    reads it from where `remote` says, as the harness would."""

    name: str
    replicas: list[ClientReplicaSpec]
    remote: RemoteConfig
    tokenizer: str
    generation: GenerationConfig


def main(conn: Connection, spec: ClientSpec) -> None:
    """The client worker process's entry point."""
    os.setpgrp()
    serve(conn, spec)


def serve(conn: Connection, spec: ClientSpec) -> None:
    loop = LoopThread(spec.name)
    outbox = Outbox(conn, loop)
    budget = AttemptBudget()
    retokenizer = Retokenizer(spec.tokenizer)
    replicas: dict[int, RemoteReplica] = {}
    for replica in spec.replicas:
        sink = SlotSink(outbox, replica.slot, budget)
        replicas[replica.slot] = served = RemoteReplica(
            replica.name, replica.endpoint, spec.remote, spec.generation, retokenizer, sink, budget, loop
        )
        outbox.counters[replica.slot] = served.stats
    conn.send(Ready(os.getpid(), sorted(os.sched_getaffinity(0)), None, socket.gethostname()))
    _Worker(conn, replicas, outbox, budget).run()


class Scrapes:
    """The replicas' telemetry sources (their servers' `/metrics`), read here when the harness's sampling asks:
    a scrape (an HTTP GET and a page parsed, about 1-2 ms of CPU) costs this process, not LoadGen's, and a fleet's
    pages are read by as many processes as serve it. One thread reads them in the order asked, off the event
    loop; each `Scrape` gets one `Scraped`."""

    def __init__(self, outbox: Outbox, replicas: dict[int, RemoteReplica]) -> None:
        self._outbox = outbox
        self._replicas = replicas
        self._samplers: dict[int, list[Sampler]] = {}
        self._asked: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def ask(self, slot: int) -> None:
        """From the main thread, the only one that asks."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="scrapes", daemon=True)
            self._thread.start()
        self._asked.put(slot)

    def close(self) -> None:
        if self._thread is not None:
            self._asked.put(None)
            self._thread.join()
        for samplers in self._samplers.values():
            for sampler in samplers:
                sampler.close()

    def _run(self) -> None:
        while (slot := self._asked.get()) is not None:
            samplers = self._samplers.get(slot)
            if samplers is None:
                samplers = self._samplers[slot] = self._replicas[slot].samplers()
            now = time.monotonic()
            readings = [reading for sampler in samplers for reading in sampler.sample(now)]
            warnings = [line for sampler in samplers for line in sampler.warnings()]
            self._outbox.control(Scraped(slot, readings, warnings))


class _Worker:
    def __init__(
        self, conn: Connection, replicas: dict[int, RemoteReplica], outbox: Outbox, budget: AttemptBudget
    ) -> None:
        self._conn = conn
        self._replicas = replicas
        self._outbox = outbox
        self._budget = budget
        self._busy: list[threading.Thread] = []
        self._scrapes = Scrapes(outbox, replicas)

    def run(self) -> None:
        while True:
            try:
                message: ToClient = self._conn.recv()
            except (EOFError, OSError):
                os._exit(0)  # the harness is gone: nobody is left to answer, and the sockets close with the process
            if isinstance(message, Stop):
                break
            self._handle(message)
        for replica in self._replicas.values():
            replica.stop()
        for thread in self._busy:
            thread.join()
        self._scrapes.close()

    def _handle(self, message: ToClient) -> None:
        if isinstance(message, Send):
            self._budget.take_over(message.attempts)
            replica = self._replicas[message.slot]
            (replica.keep if message.kept else replica.submit)(message.requests.unpack())
        elif isinstance(message, TakeBack):
            self._replicas[message.slot].withdraw(message.count, self._outbox.giver(message.slot, self._budget))
        elif isinstance(message, Scrape):
            self._scrapes.ask(message.slot)
        elif isinstance(message, Open):
            self._aside(functools.partial(self._open, message.slot))
        elif isinstance(message, WarmUpReplica):
            self._aside(functools.partial(self._warm, message))
        elif isinstance(message, Close):
            self._aside(functools.partial(self._close, message.slot))

    def _aside(self, work: Callable[[], None]) -> None:
        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        self._busy = [t for t in self._busy if t.is_alive()] + [thread]

    def _open(self, slot: int) -> None:
        try:
            self._replicas[slot].start()
        except HarnessError as exc:
            self._outbox.control(Opened(slot, exc.message))
        except Exception as exc:  # a bug must fail the start-up with a reason, not leave the harness waiting
            self._outbox.control(Opened(slot, f"{type(exc).__name__}: {exc}"))
        else:
            self._outbox.control(Opened(slot))

    def _warm(self, warm: WarmUpReplica) -> None:
        try:
            self._replicas[warm.slot].warm_up(warm.prompts, warm.max_new_tokens)
        except HarnessError as exc:
            self._outbox.control(Warmed(warm.slot, exc.message))
        except Exception as exc:
            self._outbox.control(Warmed(warm.slot, f"{type(exc).__name__}: {exc}"))
        else:
            self._outbox.control(Warmed(warm.slot))

    def _close(self, slot: int) -> None:
        replica = self._replicas[slot]
        replica.stop()
        self._outbox.control(Closed(slot, _copy(replica.stats())))


@dataclass
class _Turn:
    """What one replica delivered since the last flush."""

    first: list[tuple[int, int]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    done: list[tuple[int, Sequence[int]]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)


class Outbox:
    """The worker's messages to the harness: results batched per event-loop turn, control messages at once
    (after the results before them, so the harness sees everything in the order it happened).

    A turn of a loop that reads many busy streams can be long (every socket with data, each holding many events):
    results that have waited MAX_BATCH_SECONDS go out at once, mid-turn, so the batching never delays what LoadGen
    is told by more than that."""

    def __init__(self, conn: Connection, loop: LoopThread) -> None:
        self._conn = conn
        self._loop = loop.loop
        self._lock = threading.Lock()
        self._turns: dict[int, _Turn] = {}
        self._oldest: float | None = None
        """When the oldest result not sent yet came."""
        self._flush_due = False
        self.counters: dict[int, Callable[[], RemoteStats]] = {}
        """Each replica's counters, sent with its results when they changed."""
        self._sent_counters: dict[int, tuple[int, ...]] = {}

    def first_token(self, slot: int, response_id: int, token_id: int) -> None:
        now = time.perf_counter()
        with self._lock:
            turn = self._turn(slot)
            turn.first.append((response_id, token_id))
            turn.times.append(now)
            self._due(now)

    def completed(self, slot: int, results: list[tuple[int, Sequence[int]]]) -> None:
        now = time.perf_counter()
        with self._lock:
            self._turn(slot).done.extend(results)
            self._due(now)

    def failed(self, slot: int, response_ids: list[int], reason: str) -> None:
        now = time.perf_counter()
        with self._lock:
            self._turn(slot).failed.extend((i, reason) for i in response_ids)
            self._due(now)

    def control(self, message: FromClient) -> None:
        with self._lock:
            self._flush_locked()
            self._conn.send(message)

    def giver(self, slot: int, budget: AttemptBudget) -> Callable[[list[GenerationRequest]], None]:
        """What a `withdraw` hands back goes to the harness as `Returned`."""

        def give_back(requests: list[GenerationRequest]) -> None:
            ids = [r.response_id for r in requests]
            self.control(Returned(slot, pack_ids(ids), budget.hand_over(ids)))

        return give_back

    def flush(self) -> None:
        with self._lock:
            self._flush_due = False
            self._flush_locked()

    def _turn(self, slot: int) -> _Turn:
        """Under the lock: the replica's pending results."""
        turn = self._turns.get(slot)
        if turn is None:
            turn = self._turns[slot] = _Turn()
        return turn

    def _due(self, now: float) -> None:
        """Under the lock, after a result was added: the first of a turn schedules the flush at its end (on the
        loop, the callbacks of everything read in this turn run first); one that waited too long goes now."""
        if self._oldest is None:
            self._oldest = now
        elif now - self._oldest >= MAX_BATCH_SECONDS:
            self._flush_locked()
            return
        if not self._flush_due:
            self._flush_due = True
            try:
                self._loop.call_soon_threadsafe(self.flush)
            except RuntimeError:  # the loop is closed: what is left is flushed by the next control message
                pass

    def _flush_locked(self) -> None:
        self._oldest = None
        turns, self._turns = self._turns, {}
        for slot, turn in turns.items():
            step = Step.pack(turn.first, turn.done, turn.failed)
            stats = self.counters[slot]()
            mark = (
                sum(stats.errors.values()),
                stats.retries,
                stats.ejections,
                stats.text_outputs,
                stats.count_mismatches,
            )
            changed = self._sent_counters.get(slot) != mark
            self._sent_counters[slot] = mark
            times = np.array(turn.times, TIMES).tobytes()
            self._conn.send(Results(slot, step, times, _copy(stats) if changed else None))


class SlotSink:
    """The `ResultSink` of one replica in the worker: its results go to the `Outbox`, and what it hands on to the
    dispatcher goes to the harness, with the samples' failed attempts."""

    def __init__(self, outbox: Outbox, slot: int, budget: AttemptBudget) -> None:
        self._outbox = outbox
        self._slot = slot
        self._budget = budget

    def first_token(self, request: GenerationRequest, token_id: int) -> None:
        self._outbox.first_token(self._slot, request.response_id, token_id)

    def completed(self, results: Sequence[tuple[GenerationRequest, Sequence[int]]]) -> None:
        self._outbox.completed(self._slot, [(request.response_id, ids) for request, ids in results])

    def failed(self, requests: Sequence[GenerationRequest], reason: str) -> None:
        self._outbox.failed(self._slot, [request.response_id for request in requests], reason)

    def replica_failed(self, unstarted: Sequence[GenerationRequest], reason: str) -> None:
        ids = [request.response_id for request in unstarted]
        self._outbox.control(Lost(self._slot, pack_ids(ids), reason, self._budget.hand_over(ids)))

    def replica_down(self, unstarted: Sequence[GenerationRequest], reason: str) -> Sequence[GenerationRequest]:
        """All of them go to the harness, whose dispatcher places them; what it cannot place comes back as a
        `Send` with `kept`."""
        ids = [request.response_id for request in unstarted]
        self._outbox.control(Down(self._slot, pack_ids(ids), reason, self._budget.hand_over(ids)))
        return []

    def replica_up(self) -> None:
        self._outbox.control(Up(self._slot))


def _copy(stats: RemoteStats) -> RemoteStats:
    """A snapshot: the loop thread goes on counting into the original while it is pickled."""
    return dataclasses.replace(stats, errors=dict(stats.errors), first_errors=dict(stats.first_errors))
