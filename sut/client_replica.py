"""Remote replicas whose HTTP clients run in client worker processes (`sut.client_worker`), seen from the harness.

A `ClientProcess` is one worker process: its pipe, and one receiver thread that
turns the worker's messages into sink calls for the replicas it serves. A
`ClientReplica` is one endpoint as a dispatcher member: it keeps the table of the
requests its worker holds (so when the worker dies, it knows at once which samples
had started streaming, which fail, and which can go to another replica), sends
requests in batches, and answers for its replica's ejections and returns, which
the worker decides, as `sut.remote_replica` does in one process.

What LoadGen is told of a first token comes a hop later than the worker saw its
bytes: each replica measures that hop (the worker's arrival time against the
moment the sink is called, on the host's one monotonic clock) and reports its
p50, p99 and maximum (`RemoteStats.first_token_hop_ms`).
"""

from __future__ import annotations

import array
import threading
import time
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np

from mlperf_llm_sut.common.errors import HarnessError
from mlperf_llm_sut.telemetry import prometheus
from mlperf_llm_sut.telemetry.hardware import ProcessSampler
from mlperf_llm_sut.telemetry.series import Reading, Sampler
from scenarios.requests import GenerationRequest, ResultSink
from sut import client_worker
from sut.client_protocol import (
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
    unpack_ids,
)
from sut.client_worker import ClientSpec
from sut.engine_replica import ProcessLink
from sut.held_requests import HeldRequests
from sut.remote_config import RemoteConfig, redact_url
from sut.remote_replica import STOP_SECONDS, AttemptBudget, RemoteStats
from sut.replica import GiveBack
from sut.worker_protocol import Ready, Stop, Submit

Answer = TypeVar("Answer", Opened, Warmed, Closed)
START_SECONDS = 60.0
"""How long a client worker may take to come up: a fresh interpreter importing the client (about a second)."""
STOP_GRACE_SECONDS = STOP_SECONDS + 10.0
"""How long a replica waits for its worker to close it (the worker's own stop is bounded by STOP_SECONDS)."""
SUBMIT_SLICE = 4096
"""Requests per `Send` message at most."""
SCRAPE_WAIT_SECONDS = prometheus.TIMEOUT + 1.0
"""How long the run's sampling waits for a worker's scrape: the scrape's own bound, and the hops."""


class ClientProcess:
    """One client worker process, and the replicas it serves."""

    def __init__(self, spec: ClientSpec, link: ProcessLink | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self._link = link or ProcessLink()
        self._replicas: dict[int, ClientReplica] = {}
        self._launching = threading.Lock()
        self._lock = threading.Lock()
        """Guards the pipe's sending end and the set of open replicas."""
        self._launched = False
        """Started, and not yet told to end."""
        self._ready: Ready | None = None
        self._failure: str | None = None
        self._stopped = False
        self._gone = False
        self._open: set[int] = set()
        self._receiver: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._ready.pid if self._ready is not None else None

    def attach(self, replica: ClientReplica) -> None:
        self._replicas[replica.slot] = replica

    def ensure_running(self) -> None:
        """Launch the worker, once for all its replicas; raises `HarnessError` if it does not come up."""
        with self._launching:
            if self._ready is None and self._failure is None:
                if self._stopped:
                    raise HarnessError(f"{self.name} was stopped before it started")
                self._link.start(client_worker.main, (self.spec,), name=f"{self.name}-worker", spawn=True, alone=True)
                self._launched = True
                self._failure = self._wait_ready()
        if self._failure is not None:
            raise HarnessError(f"{self.name}: the client worker process failed to start: {self._failure}")

    def _wait_ready(self) -> str | None:
        timer = threading.Timer(START_SECONDS, self._link.kill)
        timer.daemon = True
        timer.start()
        try:
            message = self._link.wait_ready()
        finally:
            timer.cancel()
        if self._stopped and isinstance(message, Ready):
            message = "it was stopped while it started"
        if not isinstance(message, Ready):
            self._launched = False
            self._link.kill()
            return message
        self._ready = message
        self._receiver = threading.Thread(target=self._receive, name=f"{self.name}-receiver", daemon=True)
        self._receiver.start()
        return None

    def opened(self, slot: int) -> None:
        with self._lock:
            self._open.add(slot)

    def send(self, message: ToClient) -> None:
        """Raises OSError when the worker is gone."""
        with self._lock:
            if self._gone or self._ready is None:
                raise OSError("the client worker is gone")
            self._link.send(message)

    def closed(self, slot: int) -> None:
        """Replica `slot` is stopped; with the last open one, the worker ends."""
        with self._lock:
            self._open.discard(slot)
            if self._open or not self._launched:
                return
            self._launched = False
        try:
            self.send(Stop())
        except OSError:
            pass
        self._link.join(STOP_GRACE_SECONDS)
        self._link.kill()
        if self._receiver is not None:
            self._receiver.join()

    def stop_starting(self) -> None:
        """A stop signal during start-up: a worker still coming up reads no messages, so it is ended."""
        self._stopped = True
        if self._launched and self._ready is None:
            self._link.kill()

    def kill(self) -> None:
        """End the worker now (one that does not close its replicas in time): what it held fails or moves on."""
        self._link.kill()

    def _receive(self) -> None:
        while True:
            message = self._link.receive()
            if message is None:
                break
            self._deliver(message)
        with self._lock:
            self._gone = True
            ended = not self._launched
        if not ended:
            reason = f"{self.name} failed: {self._link.exit_reason()}"
            for replica in self._replicas.values():
                replica.on_death(reason)

    def _deliver(self, message: FromClient) -> None:
        if isinstance(message, Ready):
            return
        replica = self._replicas[message.slot]
        if isinstance(message, Results):
            replica.on_results(message)
        elif isinstance(message, Down):
            replica.on_down(message)
        elif isinstance(message, Up):
            replica.on_up()
        elif isinstance(message, Lost):
            replica.on_lost(message)
        elif isinstance(message, Returned):
            replica.on_returned(message)
        elif isinstance(message, Scraped):
            replica.on_scraped(message)
        elif isinstance(message, Opened | Warmed | Closed):
            replica.on_answer(message)


class WorkerScrapes:
    """A replica's server metrics as the run's telemetry sees them: each tick asks its worker to scrape and waits
    for what it read (each reading with the time it was read). The harness's process sends a message and receives
    a few readings; the HTTP request and the page's parsing happen in the worker."""

    def __init__(self, replica: ClientReplica) -> None:
        self.name = replica.name
        self._replica = replica

    def sample(self, now: float) -> list[Reading]:
        return self._replica.scrape()

    def warnings(self) -> list[str]:
        return self._replica.scrape_warnings()

    def close(self) -> None:
        """The worker closes what it scrapes with."""


class ClientReplica:
    """One endpoint whose client runs in a `ClientProcess`, as a dispatcher member (`sut.replica.Member`)."""

    def __init__(
        self,
        name: str,
        slot: int,
        endpoint: str,
        settings: RemoteConfig,
        process: ClientProcess,
        sink: ResultSink,
        budget: AttemptBudget,
    ) -> None:
        self.name = name
        self.slot = slot
        self.endpoint = endpoint
        self._settings = settings
        self._process = process
        self._sink = sink
        self._budget = budget
        self._counts = RemoteStats(name=name, devices=["remote"], endpoint=redact_url(endpoint))
        """What the harness counts itself: samples, tokens, failures, busy time."""
        self._held = HeldRequests(self._counts)
        self._lock = self._held.lock
        """Guards the request table and what is sent with it."""
        self._answers: dict[type, tuple[threading.Event, list[Opened | Warmed | Closed]]] = {
            kind: (threading.Event(), []) for kind in (Opened, Warmed, Closed)
        }
        self._dead: str | None = None
        self._stopping = False
        self._started = False
        self._worker_stats: RemoteStats | None = None
        self._hops = array.array("d")
        """Seconds from a first token's bytes in the worker to the sink call here."""
        self._scrapes = threading.Condition()
        """Guards the three below; notified when the worker answers a `Scrape`, or is gone."""
        self._scraped: list[Reading] = []
        """Telemetry the worker read, not yet taken by the run's sampling."""
        self._scrapes_asked = self._scrapes_answered = 0
        self._scrape_warnings: list[str] = []
        process.attach(self)

    @property
    def where(self) -> str:
        return f"{self.name} ({redact_url(self.endpoint)})"

    # -- Replica ----------------------------------------------------------------------------------
    def start(self) -> None:
        self._process.ensure_running()
        with self._lock:  # `stop` from another thread sees either no replica opened or one to close
            if self._stopping:
                raise HarnessError(f"{self.where} was stopped before it started")
            self._started = True
            self._process.opened(self.slot)
        opened = self._ask(Opened, Open(self.slot))
        if opened is None:
            raise HarnessError(self._dead or f"{self.where} was stopped before it started")
        if opened.error is not None:
            raise HarnessError(opened.error)

    def warm_up(self, prompts: Sequence[list[int]], max_new_tokens: int) -> None:
        if not prompts:
            return
        warmed = self._ask(Warmed, WarmUpReplica(self.slot, [list(p) for p in prompts], max_new_tokens))
        if warmed is None:
            raise HarnessError(self._dead or f"{self.name} was stopped during its warm-up")
        if warmed.error is not None:
            raise HarnessError(warmed.error)

    def submit(self, requests: Sequence[GenerationRequest]) -> None:
        if requests:
            self._send_requests(requests, kept=False)

    def withdraw(self, count: int, give_back: GiveBack) -> None:
        with self._lock:
            if self._dead is None and not self._stopping:
                self._held.await_give_back(give_back)
                try:
                    self._process.send(TakeBack(self.slot, count))
                    return
                except OSError:
                    self._held.forget_give_back()
        give_back([])

    def stop(self) -> None:
        """Safe from any thread, also while `start` or `warm_up` wait in another: what they wait for ends."""
        with self._lock:
            self._stopping = True
            opened = self._started
        if not opened:
            self._process.stop_starting()
        elif self._dead is None and self._ask(Closed, Close(self.slot), STOP_GRACE_SECONDS, closing=True) is None:
            self._process.kill()  # a worker that does not close in time is ended: its replicas' work fails below
        for event, _ in self._answers.values():
            event.set()  # a start-up or warm-up waiting for its answer ends with the replica
        with self._scrapes:
            self._scrapes.notify_all()  # and so does a tick waiting for a scrape
        self._process.closed(self.slot)
        streaming, unstarted = self._held.take_all()
        self._held.answer_withdrawals()
        self._fail(streaming + unstarted, "the replica was stopped")

    def stats(self) -> RemoteStats:
        counts = self._counts
        worker = self._worker_stats or counts
        hops = np.frombuffer(self._hops, np.float64) * 1e3
        return RemoteStats(
            name=self.name,
            devices=counts.devices,
            samples=counts.samples,
            output_tokens=counts.output_tokens,
            failed=counts.failed,
            busy_seconds=counts.busy_seconds,
            count_mismatches=worker.count_mismatches,
            endpoint=counts.endpoint,
            errors=worker.errors,
            first_errors=worker.first_errors,
            retries=worker.retries,
            ejections=worker.ejections,
            text_outputs=worker.text_outputs,
            client_process=self._process.name,
            first_token_hop_ms=(
                {
                    "p50": round(float(np.percentile(hops, 50)), 3),
                    "p99": round(float(np.percentile(hops, 99)), 3),
                    "max": round(float(hops.max()), 3),
                }
                if len(hops)
                else {}
            ),
        )

    def engine_args(self) -> dict[str, Any]:
        """The server runs its own engine, with arguments of its own."""
        return {}

    def samplers(self) -> list[Sampler]:
        """With the first replica of each worker, that worker's CPU and memory; and the server's `/metrics`, read
        in the worker (`WorkerScrapes`)."""
        samplers: list[Sampler] = []
        pid = self._process.pid
        if pid is not None and self.slot == self._process.spec.replicas[0].slot:
            samplers.append(ProcessSampler({f"{self._process.name} worker": pid}))
        return [*samplers, WorkerScrapes(self)]

    def scrape(self) -> list[Reading]:
        """The replica's telemetry sources, read by the worker now: waits for its answer (a server slow to answer
        holds up the tick as it would in this process, up to the scrape's timeout)."""
        with self._scrapes:
            if self._dead is None and not self._stopping:
                try:
                    self._process.send(Scrape(self.slot))
                except OSError:
                    pass  # the worker is gone: its receiver says so
                else:
                    self._scrapes_asked += 1
                    asked = self._scrapes_asked
                    self._scrapes.wait_for(
                        lambda: self._scrapes_answered >= asked or self._dead is not None or self._stopping,
                        SCRAPE_WAIT_SECONDS,
                    )
            taken, self._scraped = self._scraped, []
        return taken

    def scrape_warnings(self) -> list[str]:
        with self._scrapes:
            return list(self._scrape_warnings)

    # -- from the worker, on its process's receiver thread ----------------------------------------------
    def on_results(self, results: Results) -> None:
        now = time.perf_counter()
        delivery = self._held.step(results.step)
        for request, _ in delivery.done:
            self._budget.forget(request.response_id)
        delivery.to(self._sink, self._fail)
        if delivery.first:
            self._hops.extend(now - arrived for arrived in results.arrival_times())
        if results.stats is not None:
            self._worker_stats = results.stats

    def on_down(self, down: Down) -> None:
        """The worker's replica is out: the dispatcher places its unstarted requests, and what it cannot place
        goes back to be kept until the replica is back."""
        requests = self._release(down.ids, down.attempts)
        kept = list(self._sink.replica_down(requests, down.reason))
        if kept:
            self._send_requests(kept, kept=True)

    def on_up(self) -> None:
        self._sink.replica_up()

    def on_lost(self, lost: Lost) -> None:
        self._sink.replica_failed(self._release(lost.ids, lost.attempts), lost.reason)

    def on_returned(self, returned: Returned) -> None:
        self._budget.take_over(returned.attempts)
        self._held.given_back(unpack_ids(returned.ids))

    def on_scraped(self, scraped: Scraped) -> None:
        with self._scrapes:
            self._scraped.extend(scraped.readings)
            self._scrape_warnings = scraped.warnings
            self._scrapes_answered += 1
            self._scrapes.notify_all()

    def on_answer(self, answer: Opened | Warmed | Closed) -> None:
        if isinstance(answer, Closed):
            self._worker_stats = answer.stats
        event, answers = self._answers[type(answer)]
        answers.append(answer)
        event.set()

    def on_death(self, reason: str) -> None:
        with self._lock:
            if self._dead is not None:
                return
            self._dead = reason
        for event, _ in self._answers.values():
            event.set()
        with self._scrapes:
            self._scrapes.notify_all()
        self._held.lose_all(reason, self._sink, self._fail)

    # -- helpers ----------------------------------------------------------------------------------------
    def _send_requests(self, requests: Sequence[GenerationRequest], *, kept: bool) -> None:
        with self._lock:
            dead, stopping = self._dead, self._stopping
            if dead is None and not stopping:
                self._held.hold(requests)
                try:
                    # In slices, so the worker starts on the first while the rest are packed and sent.
                    for start in range(0, len(requests), SUBMIT_SLICE):
                        chunk = requests[start : start + SUBMIT_SLICE]
                        attempts = self._budget.hand_over([request.response_id for request in chunk])
                        self._process.send(Send(self.slot, Submit.pack(chunk), attempts, kept))
                except OSError:
                    pass  # the worker is gone: its receiver sees it and hands these on with the rest
                return
        if dead is not None:
            self._sink.replica_failed(list(requests), dead)
        else:
            self._fail(list(requests), "the replica was stopped")

    def _release(self, ids: bytes, attempts: dict[int, int]) -> list[GenerationRequest]:
        """Requests the worker no longer holds, and that go elsewhere with their failed attempts."""
        self._budget.take_over(attempts)
        return self._held.release(unpack_ids(ids))

    def _ask(
        self, kind: type[Answer], message: ToClient, timeout: float | None = None, *, closing: bool = False
    ) -> Answer | None:
        """Send `message` and wait for the worker's answer of `kind`; None if the worker died, the replica was
        stopped (unless this is its `closing`), or `timeout` passed."""
        event, answers = self._answers[kind]
        with self._lock:
            if self._dead is not None or (self._stopping and not closing):
                return None
            event.clear()
            answers.clear()
        try:
            self._process.send(message)
        except OSError:
            return None
        event.wait(timeout)
        answer = answers[-1] if answers else None
        return answer if isinstance(answer, kind) else None

    def _fail(self, requests: list[GenerationRequest], reason: str) -> None:
        if requests:
            self._counts.failed += len(requests)
            for request in requests:
                self._budget.forget(request.response_id)
            self._sink.failed(requests, reason)
