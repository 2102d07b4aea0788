"""A vLLM engine in an engine worker (`sut.engine_worker`), as a `Replica`.

The harness side of the worker: it starts it with the replica's devices and
cores, sends requests in batches, and turns the worker's step messages into sink
calls on one receiver thread per replica (not per query). It keeps the requests
the worker holds, so when the worker dies, for whatever reason, it knows at once
which samples had started streaming (those fail) and which can go to another
replica. A `WorkerLink` carries the messages: `ProcessLink` to a worker process
on this host (a pipe, and the process sentinel for its death), or a Ray actor's
(`sut.ray_replica`).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import signal
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from mlperf_llm_sut.common.errors import HarnessError, setting
from mlperf_llm_sut.telemetry import metrics
from mlperf_llm_sut.telemetry.hardware import ProcessSampler
from mlperf_llm_sut.telemetry.series import Reading, Sampler
from scenarios.requests import GenerationRequest, ResultSink
from sut import engine_worker
from sut.engine_logs import memory_hint
from sut.engine_worker import WorkerSpec
from sut.held_requests import HeldRequests
from sut.replica import GiveBack, ReplicaStats
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

STOP_GRACE_SECONDS = 30.0
SUBMIT_SLICE = 4096
"""Requests per `Submit` message at most."""


class WorkerLink(Protocol):
    """How the harness reaches one engine worker, and learns that it is gone."""

    on_this_host: bool
    """Whether the worker is a process of this host, which the harness can read (CPU, memory) by its pid."""

    def launch(self, spec: WorkerSpec) -> None:
        """Start the worker; returns at once (the engine comes up in `wait_ready`)."""

    def wait_ready(self) -> Ready | str:
        """The worker's `Ready`, or why it never came; `kill` from another thread ends the wait."""

    def send(self, message: ToWorker) -> None:
        """Raises OSError when the worker is gone."""

    def receive(self) -> FromWorker | None:
        """The worker's next message; None once it is gone."""

    def join(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for a worker told to stop to end."""

    def kill(self) -> None:
        """End the worker and its engine processes now; idempotent."""

    def exit_reason(self) -> str:
        """Why a worker that `receive` found gone went: "its worker process exited (code -9)"."""


class ProcessLink:
    """A worker process on this host, over a pipe: a vLLM engine's on a CPU host forked from
    `worker_forkserver`, others spawned fresh (on GPUs, see `sut.worker_imports`)."""

    on_this_host = True

    def __init__(self) -> None:
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._alone = False

    def launch(self, spec: WorkerSpec) -> None:
        preloaded = spec.placement.devices == ["cpu"] and spec.engine_factory is None
        # A forked worker would otherwise live in the forkserver's environment, as it was when that started.
        inherited = engine_worker.Inherited(environ=dict(os.environ), cwd=os.getcwd())
        self.start(engine_worker.main, (spec, inherited), name=f"{spec.name}-worker", spawn=not preloaded)

    def start(
        self, main: Callable[..., None], args: tuple[Any, ...], *, name: str, spawn: bool, alone: bool = False
    ) -> None:
        """Start `main(connection, *args)` in a new process: spawned, or forked from `worker_forkserver`.

        `alone`: the worker starts no process of its own (a client worker), so its end of the pipe closes when it
        ends and `receive` can wait in a plain read, which costs half the CPU of a wakeup from waiting on the pipe
        and the process's sentinel (75 against 140 us a message here, at 20 messages a second). An engine worker's
        children (vLLM's engine core) may hold the pipe open after it died: its end is seen by its sentinel."""
        self._alone = alone
        context = multiprocessing.get_context("spawn") if spawn else worker_forkserver()
        self._conn, theirs = context.Pipe()
        process = context.Process(target=main, args=(theirs, *args), name=name)
        process.start()
        self._process = process
        theirs.close()

    def wait_ready(self) -> Ready | str:
        assert self._conn is not None and self._process is not None
        ready = wait([self._conn, self._process.sentinel])
        if self._conn in ready:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                message = None
            if isinstance(message, Ready):
                return message
            if isinstance(message, StartFailed):
                return message.reason
        self._process.join(5)
        return f"its worker process exited with code {self._process.exitcode} before it was up"

    def send(self, message: Any) -> None:
        """`message`: a `ToWorker` for an engine worker."""
        assert self._conn is not None
        self._conn.send(message)

    def receive(self) -> Any:
        """The worker's next message (a `FromWorker` of an engine worker); None once it is gone."""
        assert self._conn is not None and self._process is not None
        if not self._alone and self._conn not in wait([self._conn, self._process.sentinel]):
            return None
        try:
            message = self._conn.recv()
        except (EOFError, OSError):
            return None
        return message

    def join(self, timeout: float) -> None:
        assert self._process is not None
        self._process.join(timeout)

    def kill(self) -> None:
        process = self._process
        if process is None or process.pid is None:  # never launched: set only once started, with its pid
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # the group is gone already, or not made yet (the worker has not reached os.setpgrp)
        # The worker itself, which a group kill misses in its first moments, before it leads a group of its own.
        process.kill()
        process.join()

    def exit_reason(self) -> str:
        assert self._process is not None
        self._process.join(5)
        return f"its worker process exited (code {self._process.exitcode})"


def worker_forkserver(*, start: bool = False) -> ForkServerContext:
    """Where vLLM engine workers on a CPU host come from: a forkserver that imported vLLM once
    (`sut.worker_imports`). It starts with the first such worker, or now with `start`."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["sut.worker_imports"])
    if start:
        multiprocessing.forkserver.ensure_running()
    return context


class EngineReplica:
    """One engine worker, seen from the harness."""

    def __init__(self, spec: WorkerSpec, sink: ResultSink, link: WorkerLink | None = None) -> None:
        self.name = spec.name
        self.spec = spec
        self._sink = sink
        self._link = link or ProcessLink()
        self._launched = False
        self._stats = ReplicaStats(name=spec.name, devices=list(spec.placement.devices))
        self._held = HeldRequests(self._stats)
        self._lock = self._held.lock
        """Guards the link's sending end and the request table."""
        self._dead: str | None = None
        self._receiver: threading.Thread | None = None
        self._warmed = threading.Event()
        self._stopping = False
        self.pid: int | None = None
        self.engine_metrics: EngineMetrics | None = None
        """The latest of what its engine's stat logger saw (None until its engine first steps)."""

    def engine_args(self) -> dict[str, Any]:
        """The `vllm.EngineArgs` this replica's engine is built with."""
        return self.spec.engine.engine_kwargs(on_cpu=self.spec.placement.devices == ["cpu"])

    # -- Replica ----------------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:  # `stop` from another thread sees either no worker or a launched one
            if self._stopping:
                raise HarnessError(f"{self.name} was stopped before it started")
            self._link.launch(self.spec)
            self._launched = True
        # A worker still starting its engine reads no messages: a hung start-up ends by the kill, which ends the wait.
        timed_out = threading.Event()

        def too_late() -> None:
            timed_out.set()
            self._kill()

        late = threading.Timer(self.spec.start_timeout, too_late)
        late.daemon = True
        late.start()
        try:
            message = self._link.wait_ready()
        except BaseException:
            self._kill()
            raise
        finally:
            late.cancel()
        if timed_out.is_set():
            message = f"it was not up after {self.spec.start_timeout:g} s ({setting('start_timeout')})"
        if not isinstance(message, Ready):
            self._kill()
            where = f" Full engine log: {self.spec.log_path}." if self.spec.log_path else ""
            raise HarnessError(
                f"{self.name}: the vLLM engine for model {self.spec.engine.model} failed to start: "
                f"{message.rstrip('.')}.{where}{memory_hint(message)}"
            )
        self.pid = message.pid
        self._stats.node = message.node
        if not self._stats.devices and message.devices:  # a Ray actor: the GPUs Ray gave it
            self._stats.devices = message.devices.split(",")
        if self.spec.placement.cpus is not None:
            self._stats.cpus = message.cpus
        self._receiver = threading.Thread(target=self._receive, name=f"{self.name}-receiver", daemon=True)
        self._receiver.start()

    def warm_up(self, prompts: Sequence[list[int]], max_new_tokens: int) -> None:
        if not prompts:
            return
        # Warm-ups can follow one another (a calibration follows the warm-up): each waits for its own end.
        # A worker that dies sets the event too, before or after this clear; `_dead` tells which.
        self._warmed.clear()
        if self._dead is None:
            self._send(WarmUp([list(p) for p in prompts], max_new_tokens))
            self._warmed.wait()
        if self._dead:
            raise HarnessError(self._dead)
        if self._stopping:
            raise HarnessError(f"{self.name} was stopped during its warm-up")

    def submit(self, requests: Sequence[GenerationRequest]) -> None:
        if not requests:
            return
        with self._lock:
            dead, stopping = self._dead, self._stopping
            if dead is None and not stopping:
                self._held.hold(requests)
                try:
                    # In slices, so the worker starts on the first while the rest are packed and sent.
                    for start in range(0, len(requests), SUBMIT_SLICE):
                        self._send_locked(Submit.pack(requests[start : start + SUBMIT_SLICE]))
                except OSError:
                    pass  # the worker is gone: the receiver sees it and hands these on with the rest
                return
        if dead is not None:
            self._sink.replica_failed(list(requests), dead)
        else:  # what stop() fails as left over may be counted already: these are answered here
            self._fail(list(requests), "the replica was stopped")

    def withdraw(self, count: int, give_back: GiveBack) -> None:
        with self._lock:
            if self._dead is None and not self._stopping:
                self._held.await_give_back(give_back)
                try:
                    self._send_locked(Withdraw(count))
                    return
                except OSError:
                    self._held.forget_give_back()
        give_back([])

    def stop(self) -> None:
        """Safe from any thread, also while `start` or `warm_up` wait in another: a worker still starting its
        engine reads no messages, so it is killed; a running one stops after its current engine step."""
        with self._lock:
            self._stopping = True
            if not self._launched:
                return
        if self._receiver is not None:
            try:
                self._send(Stop())
            except OSError:
                pass
            self._link.join(STOP_GRACE_SECONDS)
        self._kill()
        if self._receiver is not None:
            self._receiver.join()
        self._warmed.set()  # a warm-up waiting for its end ends with the worker
        started, unstarted = self._held.take_all()
        self._held.answer_withdrawals()
        self._fail(started + unstarted, "the replica was stopped")
        self._launched = False

    def stats(self) -> ReplicaStats:
        return self._stats

    def samplers(self) -> list[Sampler]:
        samplers: list[Sampler] = [EngineSampler(self)]
        if self._link.on_this_host and self.pid is not None:
            # vLLM's engine core, and tensor-parallel ranks, run in the worker's child processes.
            worker = f"{self.name} worker"
            samplers.append(ProcessSampler({worker: self.pid}, with_children=[worker]))
        return samplers

    # -- the receiving thread -------------------------------------------------------------------------
    def _receive(self) -> None:
        while True:
            message = self._link.receive()
            if message is None:
                break
            if isinstance(message, Step):
                self._on_step(message)
            elif isinstance(message, Withdrawn):
                self._held.given_back(message.unpack())
            elif isinstance(message, Warmed):
                self._warmed.set()
            elif isinstance(message, EngineMetrics):
                self.engine_metrics = message
            elif isinstance(message, Died):
                self._on_death(message.reason)
                return
        if not self._stopping:
            self._on_death(f"{self.name} failed: {self._link.exit_reason()}")

    def _on_step(self, step: Step) -> None:
        self._held.step(step).to(self._sink, self._fail)

    def _on_death(self, reason: str) -> None:
        with self._lock:
            if self._dead is not None:
                return
            self._dead = reason
        self._warmed.set()
        self._kill()
        self._held.lose_all(reason, self._sink, self._fail)

    # -- helpers ----------------------------------------------------------------------------------------
    def _fail(self, requests: list[GenerationRequest], reason: str) -> None:
        if requests:
            self._stats.failed += len(requests)
            self._sink.failed(requests, reason)

    def _send(self, message: ToWorker) -> None:
        with self._lock:
            self._send_locked(message)

    def _send_locked(self, message: ToWorker) -> None:
        self._link.send(message)

    def _kill(self) -> None:
        """End the worker and every engine process under it."""
        self._link.kill()


class EngineSampler:
    """A replica's engine metrics as telemetry: the latest its worker sent (a few times a second while it works),
    read at each tick of the run's sampling. A Ray actor's GPUs come with them, under `gpu:<index>@<replica>`:
    GPU figures to the summary, and the replica's (its node's indices are not this host's)."""

    def __init__(self, replica: EngineReplica) -> None:
        self.name = replica.name
        self._replica = replica

    def sample(self, now: float) -> list[Reading]:
        latest = self._replica.engine_metrics
        if latest is None:
            return []
        engine = [
            Reading(now, self.name, metric, float(value))
            for metric, value in (
                (metrics.RUNNING, latest.running),
                (metrics.WAITING, latest.waiting),
                (metrics.KV_CACHE_USAGE, latest.kv_cache_usage),
                (metrics.PREEMPTIONS, latest.preemptions),
                (metrics.PREFIX_CACHE_QUERIES, latest.prefix_cache_queries),
                (metrics.PREFIX_CACHE_HITS, latest.prefix_cache_hits),
                (metrics.PROMPT_TOKENS, latest.prompt_tokens),
                (metrics.GENERATION_TOKENS, latest.generation_tokens),
            )
        ]
        gpus = [Reading(now, f"{figure.gpu}@{self.name}", figure.metric, figure.value) for figure in latest.gpus]
        return engine + gpus

    def warnings(self) -> list[str]:
        latest = self._replica.engine_metrics
        return [] if latest is None else [f"{self.name}: {line}" for line in latest.gpu_warnings]

    def close(self) -> None:
        pass
