"""What the harness and an engine worker process say to each other, over one pipe.

Messages are batches, never one per token and never one per sample where a
batch will do:

* harness -> worker (`ToWorker`): `Submit` (requests as packed int arrays),
  `WarmUp`, `Withdraw` (Offline work stealing), `Stop`;
* worker -> harness (`FromWorker`): `Ready` or `StartFailed` once; then one
  `Step` per engine step that produced something: the first tokens of streams
  that started in it (Server only) and the finished samples with all their token
  ids; `Withdrawn` for each `Withdraw`; `Warmed`; `Died` if the engine fails;
  `EngineMetrics` now and then while it works (what vLLM's stat logger saw).

Token ids travel as raw int32 bytes, so a message costs one pickle of a few
byte strings however many tokens it holds.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeAlias, cast

import numpy as np

from scenarios.requests import GenerationRequest

IDS = np.int64
TOKENS = np.int32
_IDS_CODE, _TOKENS_CODE = np.dtype(IDS).char, np.dtype(TOKENS).char
"""Their `struct` codes, for memoryviews."""


@dataclass(frozen=True, slots=True)
class Submit:
    ids: bytes
    sample_indices: bytes
    streams: bytes
    lengths: bytes
    tokens: bytes

    @classmethod
    def pack(cls, requests: Sequence[GenerationRequest]) -> Submit:
        lengths = [len(r.prompt) for r in requests]
        prompts = itertools.chain.from_iterable(r.prompt for r in requests)
        return cls(
            ids=np.fromiter((r.response_id for r in requests), IDS, len(requests)).tobytes(),
            sample_indices=np.fromiter((r.sample_index for r in requests), IDS, len(requests)).tobytes(),
            streams=np.fromiter((r.stream for r in requests), np.bool_, len(requests)).tobytes(),
            lengths=np.array(lengths, TOKENS).tobytes(),
            tokens=np.fromiter(prompts, TOKENS, sum(lengths)).tobytes(),
        )

    def unpack(self) -> list[GenerationRequest]:
        ids = np.frombuffer(self.ids, IDS).tolist()
        indices = np.frombuffer(self.sample_indices, IDS).tolist()
        streams = np.frombuffer(self.streams, np.bool_).tolist()
        # The engine takes prompts as lists: slices of one list are far cheaper than a list per array view.
        tokens = np.frombuffer(self.tokens, TOKENS).tolist()
        ends = np.cumsum(np.frombuffer(self.lengths, TOKENS), dtype=np.int64).tolist()
        prompts = [tokens[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]
        return list(map(GenerationRequest, ids, indices, prompts, streams))


@dataclass(frozen=True, slots=True)
class WarmUp:
    prompts: list[list[int]]
    max_new_tokens: int


@dataclass(frozen=True, slots=True)
class Stop:
    pass


@dataclass(frozen=True, slots=True)
class Withdraw:
    """Hand back up to `count` Offline requests the engine has not started (the dispatcher moves them)."""

    count: int


@dataclass(frozen=True, slots=True)
class Withdrawn:
    """The answer to one `Withdraw`: the response ids taken out of the engine (maybe none)."""

    ids: bytes = b""

    @classmethod
    def pack(cls, response_ids: Sequence[int]) -> Withdrawn:
        return cls(np.fromiter(response_ids, IDS, len(response_ids)).tobytes())

    def unpack(self) -> list[int]:
        ids: list[int] = np.frombuffer(self.ids, IDS).tolist()
        return ids


@dataclass(frozen=True, slots=True)
class Ready:
    pid: int
    cpus: list[int]
    """The cores the worker may run on, as the worker itself sees them."""
    devices: str | None
    """`CUDA_VISIBLE_DEVICES` as the worker sees it."""
    node: str = ""
    """The host the worker runs on."""


@dataclass(frozen=True, slots=True)
class StartFailed:
    reason: str


@dataclass(frozen=True, slots=True)
class Step:
    """What one engine step produced."""

    first_ids: bytes = b""
    first_tokens: bytes = b""
    done_ids: bytes = b""
    done_lengths: bytes = b""
    done_tokens: bytes = b""
    failed: list[tuple[int, str]] = field(default_factory=list)
    """Requests that ended without output (e.g. vLLM refused a prompt longer than max_model_len), with why."""

    @classmethod
    def pack(
        cls,
        first: Sequence[tuple[int, int]],
        done: Sequence[tuple[int, Sequence[int]]],
        failed: list[tuple[int, str]],
    ) -> Step:
        return cls(
            first_ids=np.fromiter((i for i, _ in first), IDS, len(first)).tobytes(),
            first_tokens=np.fromiter((t for _, t in first), TOKENS, len(first)).tobytes(),
            done_ids=np.fromiter((i for i, _ in done), IDS, len(done)).tobytes(),
            done_lengths=np.fromiter((len(t) for _, t in done), TOKENS, len(done)).tobytes(),
            done_tokens=np.fromiter(itertools.chain.from_iterable(t for _, t in done), TOKENS).tobytes(),
            failed=failed,
        )

    # Read with memoryviews and slices, not numpy's functions: a step read after the receiver slept (a few
    # messages a second) runs with cold caches, where the time grows with the code touched (97 against 187 us for
    # a first token and a finished sample, 5.7 against 18.7 us warm).
    def first(self) -> list[tuple[int, int]]:
        return list(zip(_ints(self.first_ids, _IDS_CODE), _ints(self.first_tokens, _TOKENS_CODE), strict=True))

    def done(self) -> list[tuple[int, np.ndarray]]:
        """Each finished request's tokens: views into one int32 buffer, which the responder hands to LoadGen
        without a copy."""
        flat = np.frombuffer(self.done_tokens, TOKENS)
        done, start = [], 0
        ids, lengths = _ints(self.done_ids, _IDS_CODE), _ints(self.done_lengths, _TOKENS_CODE)
        for response_id, length in zip(ids, lengths, strict=True):
            done.append((response_id, flat[start : start + length]))
            start += length
        return done


@dataclass(frozen=True, slots=True)
class Warmed:
    pass


@dataclass(frozen=True, slots=True)
class GpuFigure:
    """One figure of a GPU the engine runs on, read through NVML where the engine runs (a Ray actor's node, whose
    GPUs the harness's own NVML cannot see)."""

    gpu: str
    """`gpu:<NVML's index on that node>`."""
    metric: str
    """One of `mlperf_llm_sut.telemetry.metrics`' GPU names."""
    value: float


@dataclass(frozen=True, slots=True)
class EngineMetrics:
    """The engine's scheduler after its latest step, and its counters since it started, as vLLM's stat logger
    reports them (`SchedulerStats`, `IterationStats`); for an engine in a Ray actor on GPUs, also its GPUs' latest
    figures."""

    running: int = 0
    waiting: int = 0
    kv_cache_usage: float = 0.0
    """The fraction (0-1) of KV cache blocks in use."""
    preemptions: int = 0
    prefix_cache_queries: int = 0
    prefix_cache_hits: int = 0
    prompt_tokens: int = 0
    generation_tokens: int = 0
    gpus: tuple[GpuFigure, ...] = ()
    """The actor's GPUs as last sampled (energy: joules since its first sample); empty for a local worker, whose
    GPUs the harness samples itself, and on CPUs."""
    gpu_warnings: tuple[str, ...] = ()
    """What kept the actor from reading its GPUs (no NVML on its node, a GPU it could not find), one line each."""


@dataclass(frozen=True, slots=True)
class Died:
    reason: str


ToWorker: TypeAlias = Submit | WarmUp | Withdraw | Stop
"""What the harness sends an engine worker."""
FromWorker: TypeAlias = Ready | StartFailed | Step | Withdrawn | Warmed | Died | EngineMetrics
"""What an engine worker sends the harness."""


def _ints(data: bytes, code: str) -> Sequence[int]:
    """The integers `data` packs, as a view (`code`: their `struct` code)."""
    return cast(Sequence[int], memoryview(data).cast(code))  # type: ignore[call-overload]
