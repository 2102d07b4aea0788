"""Inside an engine worker: one vLLM engine on its own devices, fed over a pipe or a Ray actor's mailbox.

The harness starts one of these per replica, as a process of its own
(`sut.engine_replica`) or inside a Ray actor (`sut.ray_replica`); vLLM's
engine core runs inside it. The main thread drives the engine: it adds whatever arrived since the last step, steps,
and sends one `Step` message with what that step produced. A reader thread
moves incoming messages to a queue, so the harness never waits on a busy
engine to take its requests. A watchdog thread notices what the engine loop
cannot: a step that never returns, or, where the engine core is a process of
its own (`VLLM_ENABLE_V1_MULTIPROCESSING=1`), that process dying (vLLM's
synchronous client then waits forever).

A worker process leads its own process group, so the harness can stop it and
every engine process under it at once; and it stops itself when the harness goes
away (its end of the pipe closes).
"""

from __future__ import annotations

import gc
import itertools
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from sut.engine_config import EngineConfig
from sut.engine_logs import engine_failure_reason, prefix_vllm_logs, redirect_output
from sut.generation import GenerationConfig
from sut.layout import Placement
from sut.worker_protocol import (
    Died,
    EngineMetrics,
    FromWorker,
    Ready,
    StartFailed,
    Step,
    Stop,
    Submit,
    ToWorker,
    Warmed,
    WarmUp,
    Withdraw,
    Withdrawn,
)

WATCH_INTERVAL = 0.5
METRICS_INTERVAL = 0.25
"""How often, at most, a working engine tells the harness what its stat logger saw: a small message, a few times
a second, finer than any telemetry interval a run asks for."""
STALL_SECONDS = 300.0
"""How long one engine step may take by default: a long prefill on a slow device, never a healthy step's time."""
START_SECONDS = 3600.0
"""How long an engine may take to come up by default: a large checkpoint from slow storage, then compilation."""


class Completion(Protocol):
    """One sequence of an `EngineOutput`: vLLM's `CompletionOutput`, as far as the worker reads it."""

    @property
    def token_ids(self) -> Sequence[int]:
        """The new tokens (a stream's delta), or all of them (an answer that comes whole)."""


class EngineOutput(Protocol):
    """What one engine step says of one request: vLLM's `RequestOutput`, as far as the worker reads it."""

    @property
    def request_id(self) -> str: ...

    @property
    def outputs(self) -> Sequence[Completion]: ...

    @property
    def finished(self) -> bool: ...


class Engine(Protocol):
    """What the worker calls on its engine: vLLM's `LLMEngine`, or a stand-in (`WorkerSpec.engine_factory`).

    An engine that has an `engine_core` (vLLM's) is also watched for its core process dying, and shut down
    through it."""

    def add_request(self, request_id: str, prompt: dict[str, Any], params: Any) -> object:
        """`prompt` is `{"prompt_token_ids": [...]}`; `params` vLLM's `SamplingParams`
        (`GenerationConfig.sampling_params`). A prompt it refuses raises ValueError, TypeError or vLLM's
        client error, and fails alone."""

    def step(self) -> Sequence[EngineOutput]: ...

    def has_unfinished_requests(self) -> bool: ...

    def abort_request(self, request_ids: list[str]) -> None:
        """Only when Offline work is withdrawn for another replica."""


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs; pickled to the new process."""

    name: str
    engine: EngineConfig
    generation: GenerationConfig
    placement: Placement
    log_path: Path | None = None
    step_delay: float = 0.0
    """Seconds slept after each engine step: emulates a slower device (tests, benchmarks)."""
    stall_timeout: float = STALL_SECONDS
    """An engine step that takes longer than this counts as a hung engine: the worker ends, and says why."""
    start_timeout: float = START_SECONDS
    """A worker whose engine is not up after this long is ended (a hung device or collective start-up)."""
    gpu_interval: float | None = None
    """Seconds between samples of the GPUs a Ray actor was given (`sut.ray_replica.GpuRelay`): the run's telemetry
    interval; None when the run samples nothing. A local worker's GPUs are sampled by the harness itself."""
    engine_factory: Callable[[WorkerSpec], Engine] | None = None
    """Builds the engine in the worker; None is vLLM's `LLMEngine`. Any `Engine` will do (the protocol
    benchmark uses an echo)."""


class Mailbox(Protocol):
    """The worker's end of its link to the harness: a `multiprocessing` pipe, or a Ray actor's queues."""

    def send(self, message: FromWorker) -> None: ...

    def recv(self) -> ToWorker:
        """The next message; raises EOFError or OSError when the harness is gone."""


@dataclass
class _Live:
    response_id: int
    stream: bool
    tokens: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Inherited:
    """What a spawned process takes from the harness as it is at the start, and a forked one must be given:
    the forkserver it comes from kept the harness's state of an earlier moment."""

    environ: dict[str, str]
    cwd: str


def main(conn: Mailbox, spec: WorkerSpec, inherited: Inherited | None = None) -> None:
    """The worker process's entry point."""
    os.setpgrp()
    if inherited is not None:
        os.environ.clear()
        os.environ.update(inherited.environ)
        os.chdir(inherited.cwd)
    if spec.log_path is not None:
        redirect_output(spec.log_path)
    serve(conn, spec, end=_end_group)


def _end_group() -> None:
    os.killpg(os.getpgrp(), signal.SIGKILL)


def serve(conn: Mailbox, spec: WorkerSpec, *, end: Callable[[], None]) -> None:
    """Build the engine, say `Ready` (or `StartFailed`), then run it until `Stop`.

    `end` ends this worker and its engine processes at once: when the harness is
    gone, or the engine hangs inside vLLM where no message reaches it."""
    os.environ.update(spec.placement.env)
    os.environ.setdefault("VLLM_LOGGING_PREFIX", f"[{spec.name}] ")
    prefix_vllm_logs()
    # The worker is the engine process: vLLM's engine core runs in it rather than in one more
    # process behind a socket. Measured on the embedded model (2 CPU cores), Offline went from
    # about 2,300 to 3,600 tokens/s; and a dead engine is simply a dead worker. Tensor-parallel
    # ranks still run in processes of their own, started from here.
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    if spec.placement.cpus:
        os.sched_setaffinity(0, spec.placement.cpus)
    _size_threads_to_cores()
    waiting, tally = EngineQueue(), EngineTally()
    try:
        engine = spec.engine_factory(spec) if spec.engine_factory else build_engine(spec, waiting, tally)
        worker = _Worker(conn, engine, spec, end, waiting, tally)
    except BaseException as exc:
        conn.send(StartFailed(engine_failure_reason(spec.log_path, exc)))
        return
    # The engine's objects live as long as the worker: out of the collector's way, which otherwise walks
    # them all again and again while requests come and go (vLLM's engine core does the same after start-up).
    gc.collect()
    gc.freeze()
    ready = Ready(
        os.getpid(), sorted(os.sched_getaffinity(0)), os.environ.get("CUDA_VISIBLE_DEVICES"), socket.gethostname()
    )
    conn.send(ready)
    worker.run()


def _size_threads_to_cores() -> None:
    """torch imported fresh sizes its thread pool to the cores it may use; where it came imported (a worker
    forked from the forkserver) it kept the forkserver's count, and vLLM's CPU backend then forbids changing
    it. Two threads spinning on each replica's one core made a two-replica Server run several times slower."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(len(os.sched_getaffinity(0)))


Message = TypeVar("Message")


def take_all(inbox: queue.SimpleQueue[Message], *, block: bool = True, timeout: float | None = None) -> list[Message]:
    """Every message in `inbox`, waiting for the first as `block` and `timeout` say (none there: [])."""
    messages: list[Message] = []
    try:
        messages.append(inbox.get(block=block, timeout=timeout))
        while True:
            messages.append(inbox.get_nowait())
    except queue.Empty:
        return messages


class EngineQueue:
    """How many requests wait in the engine unscheduled: vLLM's scheduler says during each step (through a
    stat logger), and whatever was added since then waits too. A step the engine said nothing about counts
    as nothing waiting: withdrawing a request that runs would throw its progress away."""

    def __init__(self) -> None:
        self.after_step = 0
        self.added_since = 0
        self._reported = False

    @property
    def waiting(self) -> int:
        return self.after_step + self.added_since

    def stepping(self) -> None:
        self._reported = False

    def report(self, waiting: int) -> None:
        self.after_step, self._reported = waiting, True

    def stepped(self) -> None:
        if not self._reported:
            self.after_step = 0
        self.added_since = 0

    def withdrawn(self, count: int) -> None:
        newest = min(count, self.added_since)
        self.added_since -= newest
        self.after_step = max(0, self.after_step - (count - newest))


class EngineTally:
    """What vLLM's stat logger says of the engine, kept for the harness's telemetry (`EngineMetrics`): the
    scheduler's state after the latest step, and counters summed over the steps. vLLM hands each step's prefix
    cache lookups, preemptions and tokens as that step's own (it resets them after each report)."""

    def __init__(self) -> None:
        self.recorded = False
        """Whether the stat logger has said anything (a stand-in engine has none: nothing to send)."""
        self.running = self.waiting = 0
        self.kv_cache_usage = 0.0
        self.preemptions = self.prefix_cache_queries = self.prefix_cache_hits = 0
        self.prompt_tokens = self.generation_tokens = 0

    def record(self, scheduler_stats: Any, iteration_stats: Any) -> None:
        # vLLM's stats are "not a stable interface": a field a version lacks reads as nothing.
        if scheduler_stats is not None:
            self.running = int(getattr(scheduler_stats, "num_running_reqs", 0))
            self.waiting = int(getattr(scheduler_stats, "num_waiting_reqs", 0))
            self.kv_cache_usage = float(getattr(scheduler_stats, "kv_cache_usage", 0.0))
            prefix = getattr(scheduler_stats, "prefix_cache_stats", None)
            if prefix is not None:
                self.prefix_cache_queries += int(getattr(prefix, "queries", 0))
                self.prefix_cache_hits += int(getattr(prefix, "hits", 0))
        if iteration_stats is not None:
            self.preemptions += int(getattr(iteration_stats, "num_preempted_reqs", 0))
            self.prompt_tokens += int(getattr(iteration_stats, "num_prompt_tokens", 0))
            self.generation_tokens += int(getattr(iteration_stats, "num_generation_tokens", 0))
        self.recorded = True

    def snapshot(self) -> EngineMetrics:
        return EngineMetrics(
            running=self.running,
            waiting=self.waiting,
            kv_cache_usage=self.kv_cache_usage,
            preemptions=self.preemptions,
            prefix_cache_queries=self.prefix_cache_queries,
            prefix_cache_hits=self.prefix_cache_hits,
            prompt_tokens=self.prompt_tokens,
            generation_tokens=self.generation_tokens,
        )


def build_engine(spec: WorkerSpec, waiting: EngineQueue, tally: EngineTally | None = None) -> Engine:
    from vllm import LLMEngine
    from vllm.platforms import current_platform
    from vllm.v1.metrics.loggers import StatLoggerBase

    class QueueWatch(StatLoggerBase):  # type: ignore[misc]  # vLLM's types are not followed (pyproject)
        # vLLM calls record() inside step(), with the scheduler's state after that step's scheduling. Its
        # stats are "not a stable interface": a version without the field reads as nothing waiting.
        def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
            pass

        def record(self, scheduler_stats: Any, iteration_stats: Any, *args: Any, **kwargs: Any) -> None:
            if scheduler_stats is not None:
                waiting.report(int(getattr(scheduler_stats, "num_waiting_reqs", 0)))
            if tally is not None:
                tally.record(scheduler_stats, iteration_stats)

        def log_engine_initialized(self) -> None:
            pass

    args = spec.engine.to_engine_args(on_cpu=current_platform.is_cpu())
    # An `Engine` as the worker drives it: it adds token prompts with sampling parameters only, so each step
    # returns `RequestOutput`s (never the pooling outputs vLLM's signature allows as well).
    return cast(Engine, LLMEngine.from_engine_args(args, stat_loggers=[QueueWatch]))


class _Worker:
    def __init__(
        self,
        conn: Mailbox,
        engine: Engine,
        spec: WorkerSpec,
        end: Callable[[], None],
        waiting: EngineQueue,
        tally: EngineTally | None = None,
    ) -> None:
        self._conn = conn
        self._engine = engine
        self._waiting = waiting
        self._tally = tally or EngineTally()
        self._metrics_sent = 0.0
        self._spec = spec
        self._end = end
        self._inbox: queue.SimpleQueue[ToWorker] = queue.SimpleQueue()
        self._send_lock = threading.Lock()
        self._params = {stream: spec.generation.sampling_params(stream=stream) for stream in (False, True)}
        self._rejections: tuple[type[Exception], ...] = (ValueError, TypeError, *_client_errors())
        self._stepping_since: float | None = None
        self._stop_requested = False
        """Set by the reader the moment Stop arrives: a warm-up, which does not look at the inbox, ends early."""

    def run(self) -> None:
        threading.Thread(target=self._read, name="reader", daemon=True).start()
        threading.Thread(target=self._watch, name="watchdog", daemon=True).start()
        live: dict[str, _Live] = {}
        try:
            while True:
                messages = self._take(block=not live)
                failed: list[tuple[int, str]] = []
                for message in messages:
                    if isinstance(message, Submit):
                        failed += self._add(message, live)
                    elif isinstance(message, Withdraw):
                        self._withdraw(message.count, live)
                    elif isinstance(message, WarmUp):
                        self._warm_up(message)
                if any(isinstance(m, Stop) for m in messages):
                    return
                self._step(live, failed)
        except BaseException as exc:
            self._die(f"{type(exc).__name__}: {exc}".strip(": "))
        finally:
            self._shutdown()

    # -- messages in --------------------------------------------------------------------------------
    def _read(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                # The harness is gone: nobody is left to answer, and the engine may be deep in a long warm-up
                # or step loop that would not look at the inbox for minutes. The worker goes now.
                self._end()
                return
            if isinstance(message, Stop):
                self._stop_requested = True
            self._inbox.put(message)
            if isinstance(message, Stop):
                return

    def _take(self, *, block: bool) -> list[ToWorker]:
        """Everything that arrived so far; waits for something when the engine is idle."""
        return take_all(self._inbox, block=block)

    def _add(self, submit: Submit, live: dict[str, _Live]) -> list[tuple[int, str]]:
        rejected = []
        for request in submit.unpack():
            # Outputs carry this id; vLLM's return value is its internal, randomised variant.
            key = str(request.response_id)
            try:
                self._engine.add_request(key, {"prompt_token_ids": request.prompt}, self._params[request.stream])
            except self._rejections as exc:  # this prompt only, e.g. longer than max_model_len
                rejected.append((request.response_id, f"vLLM rejected the prompt: {exc}"))
            else:
                live[key] = _Live(request.response_id, request.stream)
                self._waiting.added_since += 1
        return rejected

    def _withdraw(self, count: int, live: dict[str, _Live]) -> None:
        """The newest Offline requests, as many as wait unscheduled: vLLM schedules first come, first served,
        so those are the ones not started. Had one started after all, nothing of it was reported (Offline
        answers only when finished), so it simply starts again where it goes."""
        count = min(count, self._waiting.waiting)
        taken = list(itertools.islice((key for key in reversed(live) if not live[key].stream), max(count, 0)))
        if taken:
            self._engine.abort_request(taken)
            self._waiting.withdrawn(len(taken))
        self._send(Withdrawn.pack([live.pop(key).response_id for key in taken]))

    # -- the engine -------------------------------------------------------------------------------
    def _step(self, live: dict[str, _Live], failed: list[tuple[int, str]]) -> None:
        first: list[tuple[int, int]] = []
        done: list[tuple[int, list[int]]] = []
        if live:
            self._waiting.stepping()
            outputs = self._engine_step()
            self._waiting.stepped()
            for output in outputs:
                entry = live.get(output.request_id)
                if entry is None:
                    continue
                delta = output.outputs[0].token_ids
                if entry.stream and not entry.tokens and delta:
                    first.append((entry.response_id, int(delta[0])))
                entry.tokens.extend(delta)
                if output.finished:
                    del live[output.request_id]
                    done.append((entry.response_id, entry.tokens))
            if live and not self._engine.has_unfinished_requests():
                # Never wait on an engine that has nothing left to say.
                failed += [(entry.response_id, "the engine dropped the request") for entry in live.values()]
                live.clear()
        if first or done or failed:
            self._send(Step.pack(first, done, failed))
        self._send_metrics(final=not live)

    def _send_metrics(self, *, final: bool) -> None:
        """What the stat logger saw, every `METRICS_INTERVAL` while the engine works, and once as it falls idle
        (so the harness does not keep a busy engine's last figures while it waits)."""
        now = time.monotonic()
        if self._tally.recorded and (final or now - self._metrics_sent >= METRICS_INTERVAL):
            self._send(self._tally.snapshot())
            self._metrics_sent = now
            self._tally.recorded = not final  # idle: nothing new until the next step

    def _warm_up(self, warm: WarmUp) -> None:
        """Untimed generation before any real request; runs to completion here."""
        params = self._spec.generation.sampling_params(stream=True, max_new_tokens=warm.max_new_tokens)
        for i, prompt in enumerate(warm.prompts):
            try:
                self._engine.add_request(f"warm-up-{i}", {"prompt_token_ids": prompt}, params)
            except self._rejections:
                continue  # the timed run reports this prompt; warming up needs only the others
        while self._engine.has_unfinished_requests() and not self._stop_requested:
            self._engine_step()
        self._send(Warmed())

    def _engine_step(self) -> Sequence[EngineOutput]:
        """One engine step, watched: one that takes longer than the stall timeout ends the worker (`_watch`).
        A step delay is part of the step, warm-up included, as it would be on the slower device it stands for."""
        self._stepping_since = time.monotonic()
        outputs = self._engine.step()
        if self._spec.step_delay:
            time.sleep(self._spec.step_delay)
        self._stepping_since = None
        return outputs

    # -- ending -----------------------------------------------------------------------------------
    def _watch(self) -> None:
        resources = getattr(getattr(self._engine, "engine_core", None), "resources", None)
        while True:
            time.sleep(WATCH_INTERVAL)
            if getattr(resources, "engine_dead", False):
                self._die("the vLLM engine core process exited unexpectedly", hard=True)
            since = self._stepping_since
            if since is not None and time.monotonic() - since > self._spec.stall_timeout:
                self._die(
                    f"an engine step made no progress for {self._spec.stall_timeout:g} s (stall_timeout)", hard=True
                )

    def _die(self, reason: str, *, hard: bool = False) -> None:
        try:
            self._send(Died(f"{self._spec.name} failed: {reason}"))
        except OSError:
            pass
        if hard:
            # The engine loop is stuck inside vLLM; end the worker and its engine processes now.
            self._end()

    def _send(self, message: FromWorker) -> None:
        with self._send_lock:
            self._conn.send(message)

    def _shutdown(self) -> None:
        core = getattr(self._engine, "engine_core", None)
        if core is not None:
            core.shutdown()


def _client_errors() -> tuple[type[Exception], ...]:
    """vLLM's "this request is invalid" errors, where the installed version has them."""
    try:
        from vllm.exceptions import VLLMClientError
    except ImportError:
        return ()
    return (VLLMClientError,)
