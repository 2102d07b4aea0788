"""An in-process vLLM engine as a replica.

One driver thread per engine moves requests in and token ids out: it adds
whatever was submitted since the last step, steps the engine, and hands finished
samples to the sink in one batch per step. There is no thread per query, no
detokenization and no fixed batch: vLLM's continuous batching sees every
submitted request at once.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from sut.engine_config import EngineConfig
from sut.engine_logs import engine_failure_reason, output_to, route_vllm_logs, with_engine_logging
from sut.generation import GenerationConfig
from sut.replica import GenerationRequest, ReplicaStats, ResultSink

_STOP = None


@dataclass
class _Live:
    request: GenerationRequest
    tokens: list[int] = field(default_factory=list)


def running_on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


class VllmReplica:
    """One vLLM `LLMEngine` in this process, driven by one thread."""

    def __init__(
        self,
        engine_config: EngineConfig,
        generation: GenerationConfig,
        sink: ResultSink,
        *,
        name: str = "replica-0",
        log_path: Path | None = None,
        slot: int = 0,
        replicas: int = 1,
    ) -> None:
        self.name = name
        self.slot, self.replica_count = slot, replicas
        self.engine_config = engine_config
        self.generation = generation
        self._sink = sink
        self._log_path = log_path
        self._engine: Any = None
        self._inbox: queue.SimpleQueue[list[GenerationRequest] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._dead: str | None = None
        self._death = threading.Lock()
        self._stats = ReplicaStats(name=name)
        self._params: dict[bool, Any] = {}
        self._rejections: tuple[type[Exception], ...] = (ValueError, TypeError)
        self.resolved_engine_args: dict[str, Any] = {}

    def start(self) -> None:
        logging_config = route_vllm_logs(self._log_path) if self._log_path is not None else None
        try:
            with output_to(self._log_path):
                from vllm import LLMEngine

                on_cpu = running_on_cpu()
                args = self.engine_config.to_engine_args(on_cpu=on_cpu)
                if logging_config is not None:
                    args = with_engine_logging(args, logging_config)
                self.resolved_engine_args = self.engine_config.engine_kwargs(on_cpu=on_cpu)
                if on_cpu:
                    self._stats.devices = ["cpu"]
                    self._engine = LLMEngine.from_engine_args(args)
                else:
                    self._stats.devices = gpu_layout(
                        self.slot, self.replica_count, self.engine_config.tensor_parallel_size
                    )
                    with visible_devices(self._stats.devices):
                        self._engine = LLMEngine.from_engine_args(args)
        except HarnessError:
            raise
        except Exception as exc:
            where = f" Full engine log: {self._log_path}." if self._log_path else ""
            raise HarnessError(
                f"the vLLM engine for model {self.engine_config.model} failed to start: "
                f"{engine_failure_reason(self._log_path, exc).rstrip('.')}.{where} If it ran out of "
                "memory, lower --max-model-len or --max-num-seqs, or adjust "
                "--gpu-memory-utilization."
            ) from None
        self._params = {stream: self.generation.sampling_params(stream=stream) for stream in (False, True)}
        self._rejections = (ValueError, TypeError, *_client_errors())
        self._thread = threading.Thread(target=self._drive, name=f"{self.name}-driver", daemon=True)
        self._thread.start()

    def warm_up(self, prompts: Sequence[list[int]], max_new_tokens: int) -> None:
        """Runs on the caller's thread before the driver sees any request."""
        done = threading.Event()
        pending = set(range(len(prompts)))

        class _WarmSink:
            def first_token(self, request: GenerationRequest, token_id: int) -> None:
                pass

            def completed(self, results: Sequence[tuple[GenerationRequest, Sequence[int]]]) -> None:
                for request, _ in results:
                    pending.discard(request.sample_index)
                if not pending:
                    done.set()

            def failed(self, requests: Sequence[GenerationRequest], reason: str) -> None:
                self.completed([(request, ()) for request in requests])

            def replica_failed(self, unstarted: Sequence[GenerationRequest], reason: str) -> None:
                self.failed(unstarted, reason)

        if not prompts:
            return
        real_sink, self._sink = self._sink, _WarmSink()
        warm_params = self.generation.sampling_params(stream=True, max_new_tokens=max_new_tokens)
        saved, self._params = self._params, {False: warm_params, True: warm_params}
        try:
            self.submit([GenerationRequest(-1 - i, i, list(p), stream=True) for i, p in enumerate(prompts)])
            done.wait()
        finally:
            self._sink, self._params = real_sink, saved
            self._stats = ReplicaStats(name=self.name, devices=self._stats.devices)
        if self._dead:
            raise HarnessError(f"the vLLM engine failed during warm-up: {self._dead}")

    def submit(self, requests: Sequence[GenerationRequest]) -> None:
        with self._death:
            if self._dead is None:
                self._inbox.put(list(requests))
                return
        self._sink.replica_failed(list(requests), self._dead)

    def stop(self) -> None:
        if self._thread is not None:
            self._inbox.put(_STOP)
            self._thread.join()
            self._thread = None
        if self._engine is not None:
            core = getattr(self._engine, "engine_core", None)
            if core is not None:
                core.shutdown()
            self._engine = None

    def stats(self) -> ReplicaStats:
        return self._stats

    def _drive(self) -> None:
        live: dict[str, _Live] = {}
        incoming: deque[GenerationRequest] = deque()  # taken from the inbox, not yet in the engine
        busy_since = 0.0
        try:
            while True:
                batches = self._take(block=not live)
                if batches is _STOP:
                    if live:
                        self._fail([entry.request for entry in live.values()], "the replica was stopped")
                    return
                if not live and batches:
                    busy_since = time.perf_counter()
                incoming.extend(request for batch in batches for request in batch)
                while incoming:
                    request = incoming[0]
                    # Outputs carry this id; vLLM's return value is its internal, randomised variant.
                    key = str(request.response_id)
                    try:
                        self._engine.add_request(
                            key, {"prompt_token_ids": request.prompt}, self._params[request.stream]
                        )
                    except self._rejections as exc:  # this prompt only, e.g. longer than max_model_len
                        self._fail([request], f"vLLM rejected sample {request.sample_index}: {exc}")
                    else:
                        live[key] = _Live(request)
                    incoming.popleft()
                if live:
                    self._step(live)
                    if live and not self._engine.has_unfinished_requests():
                        # Never wait on an engine that has nothing left to say.
                        self._fail([e.request for e in live.values()], "the engine dropped the request")
                        live.clear()
                    if not live:
                        self._stats.busy_seconds += time.perf_counter() - busy_since
        except BaseException as exc:
            # A stream whose first token LoadGen has seen cannot move; anything else can.
            started = [e.request for e in live.values() if e.request.stream and e.tokens]
            unstarted = [e.request for e in live.values() if not (e.request.stream and e.tokens)]
            unstarted += incoming
            with self._death:  # from here on submit() hands requests straight back
                self._dead = f"{self.name} failed: {type(exc).__name__}: {exc}".strip()
                while True:
                    try:
                        batch = self._inbox.get_nowait()
                    except queue.Empty:
                        break
                    if batch is not None:
                        unstarted.extend(batch)
            self._fail(started, self._dead)
            self._sink.replica_failed(unstarted, self._dead)

    def _fail(self, requests: list[GenerationRequest], reason: str) -> None:
        if requests:
            self._stats.failed += len(requests)
            self._sink.failed(requests, reason)

    def _take(self, *, block: bool) -> list[list[GenerationRequest]] | None:
        """Everything submitted so far; waits for something when the engine is idle."""
        batches: list[list[GenerationRequest]] = []
        try:
            item = self._inbox.get(block=block)
            while True:
                if item is _STOP:
                    return _STOP if not batches else self._requeue_stop(batches)
                batches.append(item)
                item = self._inbox.get_nowait()
        except queue.Empty:
            return batches

    def _requeue_stop(self, batches: list[list[GenerationRequest]]) -> list[list[GenerationRequest]]:
        # Requests that raced the stop still get served before the loop ends.
        self._inbox.put(_STOP)
        return batches

    def _step(self, live: dict[str, _Live]) -> None:
        finished: list[tuple[GenerationRequest, Sequence[int]]] = []
        for output in self._engine.step():
            entry = live.get(output.request_id)
            if entry is None:
                continue
            delta = output.outputs[0].token_ids
            if entry.request.stream and not entry.tokens and delta:
                self._sink.first_token(entry.request, int(delta[0]))
            entry.tokens.extend(delta)
            if output.finished:
                del live[output.request_id]
                finished.append((entry.request, entry.tokens))
                self._stats.samples += 1
                self._stats.output_tokens += len(entry.tokens)
        if finished:
            self._sink.completed(finished)


def _client_errors() -> tuple[type[Exception], ...]:
    """vLLM's "this request is invalid" errors, where the installed version has them."""
    try:
        from vllm.exceptions import VLLMClientError
    except ImportError:
        return ()
    return (VLLMClientError,)


def gpu_layout(slot: int, replicas: int, tensor_parallel: int) -> list[str]:
    """Replica `slot`'s devices: [slot*TP, (slot+1)*TP) of the visible ones, as CUDA_VISIBLE_DEVICES ids."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [d.strip() for d in visible.split(",") if d.strip()]
    else:
        import torch

        ids = [str(i) for i in range(torch.cuda.device_count())]
    needed = replicas * tensor_parallel
    if needed > len(ids):
        raise HarnessError(
            f"{replicas} replicas x tensor parallel {tensor_parallel} need {needed} GPUs, but {len(ids)} are "
            f"visible ({','.join(ids) or 'none'}): lower --replicas or --tensor-parallel-size."
        )
    return ids[slot * tensor_parallel : (slot + 1) * tensor_parallel]


@contextlib.contextmanager
def visible_devices(ids: list[str]) -> Iterator[None]:
    """The engine processes started meanwhile see only `ids` (they inherit the environment)."""
    previous = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(ids)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = previous
