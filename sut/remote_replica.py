"""A remote inference server (one KServe InferenceService, one vLLM OpenAI server) as a `Replica`.

Every request is a coroutine on the replica's one event-loop thread, over a pool
of keep-alive connections (`sut.http_stream`, which reads each streamed event
where its bytes arrive), so a thousand streams cost a thousand sockets and no
threads. At most `max_in_flight` requests are on the wire; the rest wait in the
replica's queue, which is the backpressure: a dispatcher keeps only a bounded
amount of work here, and a lone replica simply holds LoadGen's queue.

Faults, in the order they are handled:

* An attempt that fails before LoadGen has seen a token of its sample (connect
  error, HTTP 429/5xx, a timeout, a cut stream) is retried, up to `retries`
  times, after a short backoff (or the server's Retry-After). An answer whose
  first token went out cannot be retried: its sample fails.
* `eject_after` consecutive errors take the replica out: its queue goes back to
  the dispatcher (`ResultSink.replica_down`), and a probe checks the endpoint
  every `probe_interval`; when it passes, the replica is back (`replica_up`).
* A replica out for `down_timeout` is failed for good (`replica_failed`).
* A replica with requests on the wire that produces no token and no answer for
  `stall_timeout` is stuck, whatever its health check says: it is taken out, and
  its requests are aborted and placed again as failed attempts. A probe takes a
  replica back only when a real one-token generation succeeds.
* `retries` bounds each sample's attempts over the whole run: the count travels
  with the sample between replicas (`AttemptBudget`), so work that bounces between
  ejected replicas still ends.

When the replica is in or out is `sut.remote_health.ServerHealth`'s to decide;
this module sends the requests and probes and moves the work.

Each sample is answered exactly once: `_held` is the one table of what this
replica owes, and only `_answer` takes from it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.request import getproxies

import httpx
import uvloop

from mlperf_llm_sut.common.errors import HarnessError, setting
from mlperf_llm_sut.telemetry.prometheus import PrometheusSampler
from mlperf_llm_sut.telemetry.series import Sampler
from scenarios.requests import GenerationRequest, ResultSink
from sut.apis import EndpointProblem, StreamAPI, StreamError, build_api, error_message
from sut.generation import GenerationConfig
from sut.http_stream import BadResponse, ConnectFailed, ConnectionBroke, Pool, Response, Target
from sut.output_ids import OutputAssembler, Retokenizer
from sut.remote_config import RemoteConfig, redact_url
from sut.remote_health import ServerHealth
from sut.replica import GiveBack, ReplicaStats

# httpx logs every request at INFO, URL included: thousands of lines a second, and any
# user:password in an endpoint URL with them.
logging.getLogger("httpx").setLevel(logging.WARNING)

T = TypeVar("T")
RETRIABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_BACKOFF_SECONDS = 10.0
STOP_SECONDS = 30.0


@dataclass
class RemoteStats(ReplicaStats):
    endpoint: str = ""
    errors: dict[str, int] = field(default_factory=dict)
    """Failed attempts by kind (`http_500`, `connect`, `stream_cut`, `first_token_timeout`, ...)."""
    first_errors: dict[str, str] = field(default_factory=dict)
    """The first message of each kind, to tell what happened."""
    retries: int = 0
    ejections: int = 0
    text_outputs: int = 0
    """Answers whose ids were re-tokenized from text."""
    client_process: str | None = None
    """The client worker process its HTTP client ran in (`sut.client_worker`); None: the harness's own."""
    first_token_hop_ms: dict[str, float] = field(default_factory=dict)
    """p50, p99 and max of the time from a first token's bytes in the client worker to LoadGen being told."""

    def details(self) -> dict[str, object]:
        hop = {"first_token_hop_ms": self.first_token_hop_ms} if self.first_token_hop_ms else {}
        return {
            "client_process": self.client_process,
            **hop,
            "endpoint": self.endpoint,
            "errors": dict(sorted(self.errors.items())),
            "first_errors": dict(sorted(self.first_errors.items())),
            "retries": self.retries,
            "ejections": self.ejections,
            "text_outputs": self.text_outputs,
            "count_mismatches": self.count_mismatches,
        }


class AttemptError(Exception):
    """One attempt failed; `kind` is how it is counted, `retriable` whether another attempt may help."""

    def __init__(self, kind: str, message: str, *, retriable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retriable = retriable
        self.retry_after = retry_after


class AttemptBudget:
    """Failed attempts per sample, over the whole run and every replica the sample moves between."""

    def __init__(self) -> None:
        self._failed: dict[int, int] = {}
        self._lock = threading.Lock()

    def fail(self, response_id: int) -> int:
        """Count one more failed attempt; returns how many the sample has had."""
        with self._lock:
            count = self._failed.get(response_id, 0) + 1
            self._failed[response_id] = count
            return count

    def forget(self, response_id: int) -> None:
        with self._lock:
            self._failed.pop(response_id, None)

    def hand_over(self, response_ids: Sequence[int]) -> dict[int, int]:
        """The counts of samples that leave for another process's replicas (which take their counts along);
        forgotten here."""
        with self._lock:
            counts = {i: n for i in response_ids if (n := self._failed.pop(i, 0))}
        return counts

    def take_over(self, counts: dict[int, int]) -> None:
        """The counts of samples that arrive from another process's replicas."""
        with self._lock:
            self._failed.update(counts)


class LoopThread:
    """One event loop on a thread of its own, shared by the replicas that use it (those of one client worker
    process, or one replica alone): it runs from the first `acquire` to the last `release`."""

    def __init__(self, name: str) -> None:
        self.name = name
        # Each streamed event wakes the loop; uvloop's wake-up costs about a third less CPU than asyncio's
        # (scripts/bench_sse_client.py), and the wake-ups are most of what a stream costs the client.
        self.loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        self._thread: threading.Thread | None = None
        self._users = 0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            if self.loop.is_closed():
                raise RuntimeError("the event loop was closed")
            self._users += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self.loop.run_forever, name=f"{self.name}-loop", daemon=True)
                self._thread.start()

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users or self._thread is None:
                return
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()
            self._thread = None
            # What was submitted or withdrawn while it stopped waits as callbacks: run them, so each request is
            # failed or given back rather than lost with the loop.
            self.loop.run_until_complete(asyncio.sleep(0))
            self.loop.close()


class RemoteReplica:
    """One endpoint, seen from the harness."""

    def __init__(
        self,
        name: str,
        endpoint: str,
        settings: RemoteConfig,
        generation: GenerationConfig,
        retokenizer: Retokenizer,
        sink: ResultSink,
        budget: AttemptBudget | None = None,
        loop: LoopThread | None = None,
    ) -> None:
        """`loop`: the event loop it shares with other replicas (a client worker's); None: one of its own."""
        self.name = name
        self.endpoint = endpoint.rstrip("/")
        self.api: StreamAPI = build_api(
            settings.protocol,
            settings.served_model_name,
            generation,
            retokenizer,
            server_ids=settings.output_ids == "auto",
        )
        self.settings = settings
        self._retokenizer = retokenizer
        self._max_new_tokens = generation.max_new_tokens
        self._sink = sink
        self._runner = loop or LoopThread(name)
        self._loop = self._runner.loop
        self._running = False
        self._life = threading.Lock()
        """Orders start and stop when they run on different threads (a stop signal during start-up)."""
        self._stopped = False
        self._waiting: set[concurrent.futures.Future[Any]] = set()
        """What threads wait for on the loop (start-up, warm-up): `stop` cancels them, so no one waits forever."""
        self._client: httpx.AsyncClient | None = None
        """For start-up checks and health probes; generation goes over `_pool`."""
        self._pool: Pool | None = None
        self._free = 0
        """Requests that may still go on the wire: max_in_flight less those that are."""
        # Everything below is touched on the loop thread only.
        self._held: dict[int, GenerationRequest] = {}
        self._queue: deque[GenerationRequest] = deque()
        self._budget = budget or AttemptBudget()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._serving: dict[asyncio.Task[Any], GenerationRequest] = {}
        self._aborted: dict[asyncio.Task[Any], str] = {}
        """Attempts cancelled because the replica stalled, with the reason they fail with."""
        self._first_out: set[int] = set()
        """Samples whose first token LoadGen has: they cannot start over."""
        self._probe_prompt: list[int] | None = None
        self._health = ServerHealth(
            self.where,
            eject_after=settings.eject_after,
            probe_interval=settings.probe_interval,
            down_timeout=settings.down_timeout,
            stall_timeout=settings.stall_timeout,
        )
        self._closing = False
        self._busy_since: float | None = None
        self._stats = RemoteStats(name=name, devices=["remote"], endpoint=redact_url(self.endpoint))

    @property
    def where(self) -> str:
        return f"{self.name} ({redact_url(self.endpoint)})"

    # -- Replica ----------------------------------------------------------------------------------
    def start(self) -> None:
        with self._life:
            if self._stopped:
                raise HarnessError(f"{self.where} was stopped before it started")
            self._runner.acquire()
            self._running = True
        try:
            self._run(self._open())
        except BaseException:
            self.stop()
            raise

    def warm_up(self, prompts: Sequence[list[int]], max_new_tokens: int) -> None:
        requests = [GenerationRequest(-1 - i, -1, list(p), stream=False) for i, p in enumerate(prompts)]
        if requests and self._probe_prompt is None:
            self._probe_prompt = requests[0].prompt
        try:
            self._run(self._warm(requests, max_new_tokens))
        except AttemptError as exc:
            hint = ""
            if "return_token_ids" in str(exc):
                hint = f" The server does not take vLLM's return_token_ids: run with {setting('output_ids')} text."
            what = str(exc) if exc.kind == "stalled" else f"a request failed: {exc}"
            raise HarnessError(f"{self.where}: {what}.{hint}") from None

    def submit(self, requests: Sequence[GenerationRequest]) -> None:
        self._take(requests, offer=True)

    def keep(self, requests: Sequence[GenerationRequest]) -> None:
        """Take requests it offered back when it went out and that had nowhere else to go (`ResultSink.replica_down`
        answered across processes): it holds them until it is back, without offering them again."""
        self._take(requests, offer=False)

    def _take(self, requests: Sequence[GenerationRequest], *, offer: bool) -> None:
        if requests:
            try:
                self._loop.call_soon_threadsafe(self._accept, list(requests), offer)
            except RuntimeError:  # the loop is closed: the replica was stopped
                self._sink.failed(list(requests), f"{self.name} was stopped")

    def withdraw(self, count: int, give_back: GiveBack) -> None:
        """From the queue's end: what is not on the wire yet."""
        try:
            self._loop.call_soon_threadsafe(self._withdraw, count, give_back)
        except RuntimeError:  # the loop is closed: the replica was stopped
            give_back([])

    def stop(self) -> None:
        """Safe from any thread, also while `start` or `warm_up` wait in another: what they wait for is
        cancelled."""
        with self._life:
            self._stopped = True
            if not self._running:
                return
            self._running = False
            for future in list(self._waiting):
                future.cancel()
            try:
                self._run(self._close(), timeout=STOP_SECONDS)
            except (TimeoutError, RuntimeError, concurrent.futures.CancelledError):
                pass  # a stuck close still must not keep the harness from finishing
            self._runner.release()

    def stats(self) -> RemoteStats:
        return self._stats

    def engine_args(self) -> dict[str, Any]:
        """The server runs its own engine, with arguments of its own."""
        return {}

    # -- on the loop: requests in and out --------------------------------------------------------------
    def _accept(self, requests: list[GenerationRequest], offer: bool) -> None:
        if self._health.failure is not None or self._closing:
            self._sink.replica_failed(requests, self._health.failure or f"{self.name} was stopped")
            return
        if self._probe_prompt is None and requests:
            self._probe_prompt = list(requests[0].prompt)
        if not self._health.is_up and offer:
            # Sent while this replica was out: every replica is out, or this one just left.
            requests = list(self._sink.replica_down(requests, self._health.out_reason))
        self._queue.extend(self._keep(requests))
        self._pump()

    def _withdraw(self, count: int, give_back: GiveBack) -> None:
        taken: list[GenerationRequest] = []
        kept: list[GenerationRequest] = []
        for request in reversed(self._queue):
            (taken if len(taken) < count and not request.stream else kept).append(request)
        self._queue = deque(reversed(kept))
        give_back(self._release(taken))

    def _pump(self) -> None:
        while self._queue and self._free and self._health.is_up and not self._closing:
            if not self._serving:
                self._health.progressed()  # idle time is not a stall
            request = self._queue.popleft()
            self._free -= 1
            task = self._spawn(self._serve(request))
            self._serving[task] = request
            task.add_done_callback(lambda done: self._serving.pop(done, None))

    async def _serve(self, request: GenerationRequest) -> None:
        try:
            ids = await self._attempt(request, self._max_new_tokens)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            reason = self._aborted.pop(task, None) if task is not None else None
            if reason is None or task is None:
                raise  # the replica is being stopped
            task.uncancel()
            retriable = request.response_id not in self._first_out
            self._on_error(request, AttemptError("stalled", reason, retriable=retriable))
        except AttemptError as exc:
            self._on_error(request, exc)
        except Exception as exc:  # a bug must cost one sample, not hang the run
            self._answer(request, None, f"{self.name}: {type(exc).__name__}: {exc}")
        else:
            self._health.answered()
            self._answer(request, ids)
        finally:
            self._free += 1
            self._pump()

    def _answer(self, request: GenerationRequest, ids: list[int] | None, reason: str = "") -> None:
        """The one way a held sample leaves: completed with `ids`, or failed with `reason`."""
        if self._held.pop(request.response_id, None) is None:
            return
        self._budget.forget(request.response_id)
        self._first_out.discard(request.response_id)
        if ids is None:
            self._stats.failed += 1
            self._sink.failed([request], reason)
        else:
            self._health.progressed()
            self._stats.samples += 1
            self._stats.output_tokens += len(ids)
            self._sink.completed([(request, ids)])
        self._settle_busy()

    def _release(self, requests: Sequence[GenerationRequest]) -> list[GenerationRequest]:
        """Stop holding `requests` (they go to another replica); returns those that were held."""
        # Their failed attempts stay counted (`AttemptBudget`): they go on to another replica with them.
        released = [r for r in requests if self._held.pop(r.response_id, None) is not None]
        self._settle_busy()
        return released

    def _settle_busy(self) -> None:
        if not self._held and self._busy_since is not None:
            self._stats.busy_seconds += time.perf_counter() - self._busy_since
            self._busy_since = None

    # -- one attempt --------------------------------------------------------------------------------
    async def _attempt(self, request: GenerationRequest, max_tokens: int) -> list[int]:
        """Send once, read the answer; raises `AttemptError` saying what went wrong.

        Streams (Server) are read event by event, and the first token goes to LoadGen
        as soon as it is here. Offline answers come whole: nobody waits for their
        first token, and one response instead of an event per token saves the
        client and the server CPU time for every token.
        """
        assert self._pool is not None
        assembler = OutputAssembler(self._retokenizer, force_text=self.settings.output_ids == "text")
        stream = request.stream
        sent = self._loop.time()
        body = json.dumps(self.api.body(request, max_tokens, stream), separators=(",", ":")).encode()
        # One deadline, moved once: first the first token's, then the whole answer's.
        limit = asyncio.timeout_at(
            sent + (self.settings.first_token_timeout if stream else self.settings.request_timeout)
        )

        def on_event(payload: str) -> bool:
            """One streamed event, in the call that read its bytes; True at the protocol's end marker."""
            delta = self.api.parse(payload)
            if delta is None:
                return True
            self._health.progressed()
            if assembler.add(delta) is not None:
                limit.reschedule(sent + self.settings.request_timeout)
                if request.response_id in self._held:
                    self._first_out.add(request.response_id)
                    self._sink.first_token(request, assembler.first)
            return False

        connection = None
        try:
            async with limit:
                connection, response = await self._pool.exchange(self.api.path(stream), body)
                if response.status != 200:
                    raise _refusal(response, await connection.body(None))
                if stream:
                    await connection.body(on_event)
                else:
                    whole = self.api.parse((await connection.body(None)).decode())
                    if whole is None:
                        raise ValueError("an end-of-stream marker instead of an answer")
                    whole.finished = True
                    assembler.add(whole)
            if not assembler.finished and not (self.api.end_on_eof and assembler.started):
                raise AttemptError("stream_cut", "the stream ended before the answer was complete", retriable=True)
        except AttemptError as exc:
            # Once LoadGen has seen the first token, the sample cannot start over.
            exc.retriable = exc.retriable and not (request.stream and assembler.started)
            raise
        except TimeoutError:
            if stream and not assembler.started:
                raise AttemptError("first_token_timeout", "no first token in time", retriable=True) from None
            retriable = not (stream and assembler.started)
            raise AttemptError("timeout", "the answer was not complete in time", retriable=retriable) from None
        except ConnectFailed as exc:
            raise AttemptError("connect", f"cannot connect: {exc}", retriable=True) from None
        except ConnectionBroke as exc:
            retriable = not (request.stream and assembler.started)
            raise AttemptError("stream_cut", f"the connection broke mid-answer: {exc}", retriable=retriable) from None
        except StreamError as exc:
            retriable = not (request.stream and assembler.started)
            raise AttemptError("server_error", f"the server reported: {exc}", retriable=retriable) from None
        except (BadResponse, ValueError, KeyError, TypeError) as exc:
            raise AttemptError("protocol", f"an answer the client cannot read: {exc}", retriable=False) from None
        finally:
            if connection is not None:
                self._pool.release(connection)
        ids, mismatch = assembler.token_ids()
        if not ids:
            raise AttemptError("no_output", "the server returned no output tokens", retriable=False)
        if assembler.from_text:
            self._stats.text_outputs += 1
            self._stats.count_mismatches += mismatch
        return ids

    # -- on the loop: errors, ejection, probes ----------------------------------------------------------
    def _on_error(self, request: GenerationRequest, exc: AttemptError) -> None:
        self._stats.errors[exc.kind] = self._stats.errors.get(exc.kind, 0) + 1
        self._stats.first_errors.setdefault(exc.kind, str(exc))
        if not exc.retriable:
            self._answer(request, None, f"{self.name}: {exc}")
            return
        ejection = self._health.attempt_failed(str(exc))
        attempt = self._budget.fail(request.response_id)
        if attempt > self.settings.retries or self._closing:
            self._answer(request, None, f"{self.name}: {exc} (after {attempt} attempts)")
        else:
            self._stats.retries += 1
            delay = exc.retry_after if exc.retry_after is not None else 0.05 * 2**attempt
            self._loop.call_later(min(delay, MAX_BACKOFF_SECONDS), self._retry, request)
        if ejection is not None:
            self._eject(ejection)

    def _retry(self, request: GenerationRequest) -> None:
        if request.response_id not in self._held:
            return  # answered meanwhile (the replica was stopped)
        if self._health.failure is not None:
            self._sink.replica_failed(self._release([request]), self._health.failure)
        elif not self._health.is_up:
            self._queue.extend(self._keep(self._sink.replica_down(self._release([request]), self._health.out_reason)))
        else:
            self._queue.appendleft(request)
            self._pump()

    def _keep(self, requests: Sequence[GenerationRequest]) -> list[GenerationRequest]:
        """Take back what the dispatcher could not place elsewhere."""
        for request in requests:
            self._held[request.response_id] = request
        if self._held and self._busy_since is None:
            self._busy_since = time.perf_counter()
        return list(requests)

    def _eject(self, reason: str) -> None:
        self._health.eject(reason)
        self._stats.ejections += 1
        unstarted = list(self._queue)
        self._queue.clear()
        self._queue.extend(self._keep(self._sink.replica_down(self._release(unstarted), reason)))
        self._spawn(self._probe())

    async def _probe(self) -> None:
        """While out: check the endpoint until it passes (back in) or `down_timeout` runs out (failed)."""
        while not self._closing:
            await asyncio.sleep(self._health.probe_interval)
            try:
                assert self._client is not None
                await asyncio.wait_for(self.api.check(self._client), self.settings.connect_timeout)
                await self._generates()
            except (EndpointProblem, httpx.HTTPError, TimeoutError, ValueError, AttemptError):
                failure = self._health.probe_failed()
                if failure is None:
                    continue
                unstarted = self._release(list(self._queue))
                self._queue.clear()
                self._sink.replica_failed(unstarted, failure)
                return
            self._health.probe_passed()
            self._sink.replica_up()
            self._pump()
            return

    async def _generates(self) -> None:
        """A one-token generation must succeed: a server can list its models and still not generate."""
        if self._probe_prompt is None:
            return
        probe = GenerationRequest(-1, -1, self._probe_prompt, stream=False)
        await asyncio.wait_for(self._attempt(probe, 1), self.settings.stall_timeout)

    async def _watch_progress(self) -> None:
        """Take the replica out when requests are on the wire and nothing has come back for `stall_timeout`."""
        period = self._health.watch_period
        while not self._closing:
            await asyncio.sleep(period)
            reason = self._health.stalled(len(self._serving))
            if reason is not None:
                self._stall(reason)

    def _stall(self, reason: str) -> None:
        """Out, and every attempt on the wire aborted: each fails as an attempt and is placed again (or fails,
        when its first token is already out or its attempts are used up)."""
        self._eject(reason)
        for task in list(self._serving):
            self._aborted[task] = reason
            task.cancel()

    # -- start and stop -------------------------------------------------------------------------------
    def samplers(self) -> list[Sampler]:
        """The server's own metrics, from its Prometheus `/metrics` at the endpoint's root (vLLM's, TGI's,
        Triton's, SGLang's), read with the run's TLS settings and credentials: by the run's sampling thread, or,
        in a client worker, when the harness asks (`sut.client_worker.Scrapes`)."""
        _, _, options = credentials(self.endpoint, self.settings)
        metrics_url = httpx.URL(redact_url(self.endpoint)).copy_with(path="/metrics", query=None)
        return [PrometheusSampler(self.name, str(metrics_url), httpx.Client(**options))]

    async def _open(self) -> None:
        s = self.settings
        tls, token, options = credentials(self.endpoint, s)
        self._client = httpx.AsyncClient(**options, timeout=httpx.Timeout(s.connect_timeout * 3))
        self._pool = Pool(Target.of(self.endpoint, tls=tls, token=token), s.connect_timeout)
        self._free = s.max_in_flight
        try:
            await asyncio.wait_for(self.api.check(self._client), s.connect_timeout * 3)
        except EndpointProblem as exc:
            raise HarnessError(f"{self.where}: {exc}") from None
        except httpx.ConnectError as exc:
            hint = (
                f"pass {setting('ca_bundle')} with the CA that signed it" if "CERTIFICATE" in str(exc).upper() else None
            )
            raise HarnessError(
                f"{self.where}: cannot connect ({exc}). "
                + (f"TLS verification failed: {hint}." if hint else "Is the server up and the URL right?")
                + (" (Proxy variables are not used: the harness connects to servers directly.)" if getproxies() else "")
            ) from None
        except (httpx.HTTPError, TimeoutError) as exc:
            raise HarnessError(f"{self.where}: no answer to the start-up check ({exc or 'timed out'}).") from None
        if self.api.needs_tokenizer or s.output_ids == "text":
            self._retokenizer.load()
        self._spawn(self._watch_progress())

    async def _warm(self, requests: list[GenerationRequest], max_new_tokens: int) -> None:
        """As the timed run sends: at most max_in_flight at once, spread over the pooled clients, so a
        calibration measures the rate the run will see. As in the test, a server that returns no answer for
        `stall_timeout` is stuck; before the test there is nothing to move its work to, so the wait ends there."""
        slots = asyncio.Semaphore(self.settings.max_in_flight)
        stall = self.settings.stall_timeout
        answered = 0

        async def send(request: GenerationRequest) -> None:
            nonlocal answered
            async with slots:
                await self._attempt(request, max_new_tokens)
            answered += 1
            quiet.reschedule(self._loop.time() + stall)

        try:
            # The first failed request cancels the others: none is left running on the loop.
            async with asyncio.timeout(stall) as quiet, asyncio.TaskGroup() as group:
                for request in requests:
                    group.create_task(send(request))
        except TimeoutError:
            raise AttemptError(
                "stalled",
                f"it took {len(requests)} requests, answered {answered}, and then returned nothing for {stall:g} s "
                f"(stall_timeout): the server accepts requests but does not generate; check its logs",
                retriable=False,
            ) from None
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None

    async def _close(self) -> None:
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        leftover = list(self._held.values())
        for request in leftover:
            self._answer(request, None, f"{self.name} was stopped")
        if self._pool is not None:
            self._pool.close()
        if self._client is not None:
            await self._client.aclose()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run on the loop from another thread, and wait; a wait that ends early takes the coroutine with it."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        self._waiting.add(future)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise
        finally:
            self._waiting.discard(future)


def credentials(endpoint: str, settings: RemoteConfig) -> tuple[ssl.SSLContext, str | None, dict[str, Any]]:
    """The TLS context, the bearer token, and the settings every httpx client of this endpoint is made with."""
    verify = settings.tls_verify()
    token = settings.bearer_token()
    # user:password in the URL is Basic auth, which httpx would send instead of the bearer token.
    parts = httpx.URL(endpoint)
    basic = httpx.BasicAuth(parts.username, parts.password) if parts.username and not token else None
    # One TLS context for every connection: each new one reads the CA store again.
    tls = verify if isinstance(verify, ssl.SSLContext) else ssl.create_default_context()
    options: dict[str, Any] = {
        "base_url": redact_url(endpoint),
        "auth": basic,
        "headers": {"Authorization": f"Bearer {token}"} if token else None,
        "verify": tls,
        # The harness measures the server, so it connects to it directly, as the generation pool does.
        "trust_env": False,
    }
    return tls, token, options


def _refusal(response: Response, body: bytes) -> AttemptError:
    status = response.status
    return AttemptError(
        f"http_{status}",
        f"HTTP {status}: {error_message(body)}",
        retriable=status in RETRIABLE_STATUS,
        retry_after=_seconds(response.headers.get("retry-after")),
    )


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
