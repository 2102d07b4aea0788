"""An in-process HTTP server with scripted faults, for tests of the remote-replica client.

A real vLLM server cannot be told to fail the next request with a 503, to cut a
stream after three tokens or to stop listening for a moment; this one can. It
speaks the OpenAI completions protocol (as vLLM's server does), the KServe v2
generate extension and text-generation-inference's `generate(_stream)`, serves a
Prometheus `/metrics` page in vLLM's, TGI's or Triton's shape (or fails it: see `metrics`), and
answers every prompt with a deterministic text that tests can predict with
`expected_token_ids` / `expected_text`.

It runs uvicorn on a thread of its own (with its own event loop) on 127.0.0.1.
Faults are set from the test thread while it runs; each applies to the next
completion/generate requests that pass the auth and model checks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# Most output tokens any request gets, so that runs stay short whatever max_tokens says.
OUTPUT_CAP = 24
# Words of the answers; they tokenize to 1 to 6 tokens each with the tiny Llama tokenizer.
WORDS = (
    "the", "model", "answer", "water", "time", "people", "year", "way", "day", "man",
    "thing", "woman", "life", "child", "world", "school", "state", "family", "student", "group",
    "country", "problem", "hand", "part", "place", "case", "week", "company", "system", "program",
    "question", "work", "number", "night", "point", "home", "room", "fact", "month", "book",
    "word", "business", "issue", "side", "kind", "head", "house", "service", "friend", "city",
)  # fmt: skip
WORD_STRIDE = 7  # coprime with len(WORDS): consecutive words differ
DEFAULT_MAX_TOKENS = 16  # OpenAI's default when a request gives none
TGI_MAX_TOTAL_TOKENS = 4096  # prompt and output together, as TGI's --max-total-tokens
STARTUP_TIMEOUT = 10.0
_ERROR_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    404: "NotFoundError",
    429: "RateLimitError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


def prompt_ids_for_text(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """The ids a text prompt (KServe `text_input`, TGI `inputs`, OpenAI string prompt) is hashed by: BOS included."""
    return tokenizer.encode(text)


def expected_text(tokenizer: PreTrainedTokenizerBase, prompt_ids: Sequence[int], max_tokens: int) -> str:
    """The answer to `prompt_ids`: " word word ...", encoding to exactly min(max_tokens, OUTPUT_CAP) tokens.

    Words are picked by a hash of the prompt; a word that would overshoot the
    count is replaced by the next one that fits, so the text is never cut inside
    a word (a cut word can re-encode to other ids) and decoding the ids and
    encoding the result again gives back the same ids.
    """
    target = max(0, min(max_tokens, OUTPUT_CAP))
    words: list[str] = []
    count = 0
    while count < target:
        start = sum(prompt_ids) + len(words) * WORD_STRIDE
        for offset in range(len(WORDS)):
            candidate = [*words, WORDS[(start + offset) % len(WORDS)]]
            size = len(tokenizer.encode("".join(" " + word for word in candidate), add_special_tokens=False))
            if size <= target:
                words, count = candidate, size
                break
        else:
            raise ValueError(f"no word of WORDS encodes to at most {target - count} more tokens")
    return "".join(" " + word for word in words)


def expected_token_ids(tokenizer: PreTrainedTokenizerBase, prompt_ids: Sequence[int], max_tokens: int) -> list[int]:
    """The output token ids the server streams for `prompt_ids` (one per chunk)."""
    return tokenizer.encode(expected_text(tokenizer, prompt_ids, max_tokens), add_special_tokens=False)


class _StreamCut(Exception):
    """Raised inside a streaming body so that uvicorn aborts the connection mid-response."""


def _drop_stream_cuts(record: logging.LogRecord) -> bool:
    """Keep uvicorn from logging the tracebacks of streams cut on purpose."""
    return not (record.exc_info and isinstance(record.exc_info[1], _StreamCut))


_TGI_GENERATION = ("/generate", "/generate_stream")
_TGI_ERROR_TYPES = {422: "validation", 424: "generation", 429: "overloaded"}

# /metrics pages in each server's shape, with known values (what `tests/test_telemetry_prometheus.py` expects).
VLLM_METRICS_PAGE = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="tiny"} 2.0
vllm:num_requests_running{engine="1",model_name="tiny"} 3.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="tiny"} 1.0
vllm:num_requests_waiting{engine="1",model_name="tiny"} 0.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="tiny"} 0.5
vllm:kv_cache_usage_perc{engine="1",model_name="tiny"} 0.25
# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{engine="0",model_name="tiny"} 1.0
vllm:num_preemptions_total{engine="1",model_name="tiny"} 2.0
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="tiny"} 100.0
vllm:prefix_cache_queries_total{engine="1",model_name="tiny"} 50.0
# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="tiny"} 40.0
vllm:prefix_cache_hits_total{engine="1",model_name="tiny"} 10.0
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="tiny"} 1000.0
vllm:prompt_tokens_total{engine="1",model_name="tiny"} 500.0
# HELP vllm:prompt_tokens_created Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_created gauge
vllm:prompt_tokens_created{engine="0",model_name="tiny"} 1.7e+09
vllm:prompt_tokens_created{engine="1",model_name="tiny"} 1.7e+09
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="tiny"} 300.0
vllm:generation_tokens_total{engine="1",model_name="tiny"} 200.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="tiny"} 3.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="tiny"} 4.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="tiny"} 4.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="tiny"} 0.5
"""
"""Two engines of one server: running 5, waiting 1, KV usage 0.375 (their mean), preemptions 3, prefix-cache
queries 150 and hits 50, prompt tokens 1500, generation tokens 500."""

TGI_METRICS_PAGE = """\
# TYPE tgi_queue_size gauge
tgi_queue_size 3
# TYPE tgi_batch_current_size gauge
tgi_batch_current_size 7
# TYPE tgi_batch_current_max_tokens gauge
tgi_batch_current_max_tokens 16000
# TYPE tgi_request_count counter
tgi_request_count 12
# TYPE tgi_request_input_length histogram
tgi_request_input_length_bucket{le="100"} 2
tgi_request_input_length_bucket{le="1000"} 12
tgi_request_input_length_bucket{le="+Inf"} 12
tgi_request_input_length_sum 2345
tgi_request_input_length_count 12
# TYPE tgi_request_generated_tokens histogram
tgi_request_generated_tokens_bucket{le="100"} 9
tgi_request_generated_tokens_bucket{le="+Inf"} 9
tgi_request_generated_tokens_sum 678
tgi_request_generated_tokens_count 9
"""
"""TGI's shape (metrics-exporter-prometheus: TYPE lines, no labels, token histograms): running 7, waiting 3,
prompt tokens 2345, generation tokens 678."""

TRITON_METRICS_PAGE = """\
# HELP nv_inference_pending_request_count Instantaneous number of pending requests awaiting execution per-model.
# TYPE nv_inference_pending_request_count gauge
nv_inference_pending_request_count{model="tensorrt_llm",version="1"} 0
nv_inference_pending_request_count{model="ensemble",version="1"} 0
# HELP nv_trt_llm_request_metrics TRT LLM request metrics
# TYPE nv_trt_llm_request_metrics gauge
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="waiting",version="1"} 2
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="context",version="1"} 1
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="scheduled",version="1"} 4
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="max",version="1"} 512
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="active",version="1"} 6
# HELP nv_trt_llm_kv_cache_block_metrics TRT LLM KV cache block metrics
# TYPE nv_trt_llm_kv_cache_block_metrics gauge
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction",model="tensorrt_llm",version="1"} 0.25
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="tokens_per",model="tensorrt_llm",version="1"} 64
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="used",model="tensorrt_llm",version="1"} 1000
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="free",model="tensorrt_llm",version="1"} 3000
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max",model="tensorrt_llm",version="1"} 4000
# HELP nv_trt_llm_inflight_batcher_metrics TRT LLM inflight_batcher-specific metrics
# TYPE nv_trt_llm_inflight_batcher_metrics gauge
nv_trt_llm_inflight_batcher_metrics{inflight_batcher_specific_metric="paused_requests",model="tensorrt_llm",version="1"} 1
nv_trt_llm_inflight_batcher_metrics{inflight_batcher_specific_metric="total_context_tokens",model="tensorrt_llm",version="1"} 90
"""  # noqa: E501 - as Triton writes it
"""Triton with the TensorRT-LLM backend (the shape of its README's "Triton Metrics"): running 4 (scheduled),
waiting 2, KV usage 0.25 (1000 of 4000 blocks)."""

METRICS_PAGES = {"vllm": VLLM_METRICS_PAGE, "tgi": TGI_METRICS_PAGE, "triton": TRITON_METRICS_PAGE}
GARBAGE_PAGE = "<html><body><h1>Welcome</h1><p>Nothing to see here.</p></body></html>\n"
METRICS_MODES = ("missing", "refusing", "garbage", "slow", *METRICS_PAGES)


def _is_generation(method: str, path: str) -> bool:
    """Whether a request is one that faults apply to and counters count."""
    return method == "POST" and (
        path in ("/v1/completions", *_TGI_GENERATION)
        or (path.startswith("/v2/models/") and path.endswith(("/generate", "/generate_stream")))
    )


def _error(path: str, status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error in the protocol's own shape: OpenAI's error object, KServe's `{"error": message}`, or TGI's
    `{"error", "error_type"}`."""
    if path.startswith("/v2/"):
        return JSONResponse({"error": message}, status_code=status, headers=headers)
    if path in _TGI_GENERATION or path == "/info":
        body = {"error": message, "error_type": _TGI_ERROR_TYPES.get(status, "error")}
        return JSONResponse(body, status_code=status, headers=headers)
    error = {"message": message, "type": _ERROR_TYPES.get(status, "Error"), "code": status}
    return JSONResponse({"error": error}, status_code=status, headers=headers)


@dataclass
class _Faults:
    """Faults set by the test thread; counts of None mean "until reset"."""

    fail_count: int = 0
    fail_status: int = 500
    retry_after: float | None = None
    fail_every: int | None = None
    cut_after: int | None = None
    cut_count: int | None = None
    first_token_delay: float = 0.0
    delay_count: int | None = None
    delay_after: int = 0
    usage_delta: int = 0


@dataclass(frozen=True)
class _MetricsMode:
    """How /metrics answers (`FaultServer.metrics`); "missing" is what it did before it had modes: a 404."""

    mode: str = "missing"
    page: str | None = None
    delay: float = 0.0
    require_key: bool = False


@dataclass(frozen=True)
class _Plan:
    """The faults one request gets, taken from `_Faults` once when it arrives."""

    fail_status: int | None
    retry_after: float | None
    cut_after: int | None
    first_token_delay: float
    usage_delta: int


class _Gate:
    """ASGI wrapper: counts generation requests over their whole life (streams included) and checks the API key."""

    def __init__(self, app: ASGIApp, server: FaultServer) -> None:
        self._app, self._server = app, server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        counted = _is_generation(scope["method"], path)
        if counted:
            self._server._arrive(scope.get("client"))
        try:
            key = self._server.api_key
            guarded = path.startswith(("/v1/", "/v2/models/")) or path in (*_TGI_GENERATION, "/info")
            if guarded and key is not None and Headers(scope=scope).get("authorization") != f"Bearer {key}":
                await _error(path, 401, "Unauthorized")(scope, receive, send)
            else:
                await self._app(scope, receive, send)
        finally:
            if counted:
                self._server._leave()


class FaultServer:
    """OpenAI-compatible, KServe v2 and TGI server whose faults tests script while it runs."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        *,
        model: str = "tiny",
        api_key: str | None = None,
        token_ids: bool = True,
        port: int = 0,
        token_delay: float = 0.001,
        tls: tuple[str, str] | None = None,
        max_total_tokens: int = TGI_MAX_TOTAL_TOKENS,
    ) -> None:
        """`tls`: (certificate file, key file) to serve https instead of http. `max_total_tokens`: what TGI's
        /info reports, and the prompt and output tokens a TGI request may ask for together."""
        self.tokenizer, self.model, self.api_key = tokenizer, model, api_key
        self.max_total_tokens = max_total_tokens
        self.token_ids, self.token_delay = token_ids, token_delay
        self._port = port
        self._tls = tls
        self._lock = threading.Lock()
        self._faults = _Faults()
        self._requests = 0
        self._in_flight = 0
        self._max_concurrent = 0
        self._clients: set[tuple[str, int]] = set()
        self._arrivals: list[float] = []
        self._outputs: dict[tuple[int, int], tuple[list[int], list[str]]] = {}
        self._metrics = _MetricsMode()
        self._metrics_headers: list[dict[str, str]] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        routes = [
            Route("/health", self._health),
            Route("/v1/models", self._models),
            Route("/v1/completions", self._completions, methods=["POST"]),
            Route("/v2/health/ready", self._health),
            Route("/v2/models/{name}/ready", self._kserve_ready),
            Route("/v2/models/{name}/generate", self._kserve_generate, methods=["POST"]),
            Route("/v2/models/{name}/generate_stream", self._kserve_generate_stream, methods=["POST"]),
            Route("/info", self._tgi_info),
            Route("/generate", self._tgi_generate, methods=["POST"]),
            Route("/generate_stream", self._tgi_generate_stream, methods=["POST"]),
            Route("/metrics", self._metrics_page),
        ]
        self._app = _Gate(Starlette(routes=routes), self)
        logging.getLogger("uvicorn.error").addFilter(_drop_stream_cuts)

    # -- life cycle ------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self._port}"

    def start(self) -> FaultServer:
        """Listen (on a free port the first time if port=0); returns once connections are accepted."""
        self.up()
        return self

    def stop(self) -> None:
        """Stop listening and serving; idempotent, and `start` may follow."""
        self.down()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def up(self) -> None:
        """Listen again, on the same port as before."""
        if self._server is not None:
            return
        # proto=IPPROTO_TCP, not socket.create_server's 0: asyncio sets TCP_NODELAY on accepted sockets only when
        # it sees that proto, and without it Nagle holds each response body ~40 ms behind its headers.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # bind again at once after down()
        sock.bind(("127.0.0.1", self._port))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_config=None,  # leave the test process's logging configuration alone
            log_level="warning",
            access_log=False,
            lifespan="off",
            ssl_certfile=self._tls[0] if self._tls else None,
            ssl_keyfile=self._tls[1] if self._tls else None,
            timeout_graceful_shutdown=1,  # keep-alive connections must not hold down()/stop()
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])), name=f"fault-server-{self._port}", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join()
                sock.close()
                raise RuntimeError(f"fault server did not start on port {self._port}")
            time.sleep(0.005)
        self._server, self._thread = server, thread

    def down(self) -> None:
        """Close the listening socket (connections are refused) and the server; in-flight streams get 1 s to finish."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join()
        self._server = self._thread = None

    # -- faults ------------------------------------------------------------------

    def fail_next(self, count: int, status: int = 500, retry_after: float | None = None) -> None:
        """The next `count` requests get `status` and an error body (and Retry-After if given) instead of an answer."""
        with self._lock:
            self._faults.fail_count, self._faults.fail_status, self._faults.retry_after = count, status, retry_after

    def fail_every(self, status: int | None) -> None:
        """Every request fails with `status` (after any fail_next ones) until set to None."""
        with self._lock:
            self._faults.fail_every = status

    def cut_after(self, tokens: int | None, count: int | None = None) -> None:
        """The next `count` streams (None: all) send `tokens` events, then the connection is aborted mid-body.

        Token events come first, so `tokens` below the answer's length means no
        finish_reason was sent; at the length, only usage and [DONE] are missing.
        """
        with self._lock:
            self._faults.cut_after, self._faults.cut_count = tokens, count

    def first_token_delay(self, seconds: float, count: int | None = None, *, after: int = 0) -> None:
        """The next `count` requests (None: all) wait `seconds` before their first output; with `after`, only
        once that many more requests have come and gone undelayed (a server that stalls mid-run)."""
        with self._lock:
            self._faults.first_token_delay, self._faults.delay_count = seconds, count
            self._faults.delay_after = after

    def wrong_usage(self, delta: int) -> None:
        """Reported usage.completion_tokens is off by `delta` from the tokens actually sent."""
        with self._lock:
            self._faults.usage_delta = delta

    def metrics(self, mode: str, *, page: str | None = None, delay: float = 0.0, require_key: bool = False) -> None:
        """How /metrics answers from now on: "missing" (404: no such route, as before any call), "refusing" (401),
        "garbage" (200 and an HTML page), "vllm", "tgi" or "triton" (200 and `METRICS_PAGES`' page of that
        server), or "slow" (the vLLM page, after `delay` seconds). `page`: this text instead of the mode's page.
        `require_key`: with an `api_key`, a request without its bearer token gets 401, as a guarded server's."""
        if mode not in METRICS_MODES:
            raise ValueError(f"metrics mode {mode!r} is not one of {METRICS_MODES}")
        with self._lock:
            self._metrics = _MetricsMode(mode, page, delay, require_key)

    def reset(self) -> None:
        """Clear all faults and counters (requests in flight still count as in flight)."""
        with self._lock:
            self._faults = _Faults()
            self._metrics = _MetricsMode()
            self._metrics_headers.clear()
            self._requests = self._max_concurrent = 0
            self._clients.clear()
            self._arrivals.clear()

    def _take_plan(self, stream: bool) -> _Plan:
        """Decide one request's faults and use up the counted ones it takes."""
        with self._lock:
            faults = self._faults
            if faults.fail_count > 0:
                faults.fail_count -= 1
                return _Plan(faults.fail_status, faults.retry_after, None, 0.0, 0)
            if faults.fail_every is not None:
                return _Plan(faults.fail_every, None, None, 0.0, 0)
            cut_after = faults.cut_after
            if cut_after is not None and faults.cut_count is not None:
                faults.cut_count -= 1
                if faults.cut_count <= 0:
                    faults.cut_after = faults.cut_count = None
            delay = faults.first_token_delay
            if delay and faults.delay_after > 0:
                faults.delay_after -= 1
                delay = 0.0
            elif delay and faults.delay_count is not None:
                faults.delay_count -= 1
                if faults.delay_count <= 0:
                    faults.first_token_delay, faults.delay_count = 0.0, None
            return _Plan(None, None, cut_after, delay, faults.usage_delta)

    # -- observations --------------------------------------------------------------

    @property
    def requests(self) -> int:
        """Completion/generate requests received, failed ones included."""
        with self._lock:
            return self._requests

    @property
    def max_concurrent(self) -> int:
        """Most completion/generate requests in progress at once (a stream is in progress until its last byte)."""
        with self._lock:
            return self._max_concurrent

    @property
    def connections(self) -> int:
        """Distinct client (host, port) pairs that sent completion/generate requests: TCP connections used."""
        with self._lock:
            return len(self._clients)

    @property
    def metrics_requests(self) -> list[dict[str, str]]:
        """The headers (names in lower case) of each /metrics request, in order."""
        with self._lock:
            return [dict(headers) for headers in self._metrics_headers]

    def received_after(self, t: float) -> int:
        """Completion/generate requests received after `time.monotonic()` was `t`."""
        with self._lock:
            return sum(arrival > t for arrival in self._arrivals)

    def _arrive(self, client: tuple[str, int] | None) -> None:
        with self._lock:
            self._requests += 1
            self._arrivals.append(time.monotonic())
            if client is not None:
                self._clients.add((client[0], client[1]))
            self._in_flight += 1
            self._max_concurrent = max(self._max_concurrent, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    # -- answers ---------------------------------------------------------------

    def _answer(self, prompt_ids: Sequence[int], max_tokens: int) -> tuple[list[int], list[str]]:
        """Output ids and their incremental text pieces (which concatenate to the decoded ids)."""
        key = (sum(prompt_ids) % len(WORDS), min(max_tokens, OUTPUT_CAP))  # all the answer depends on
        if key not in self._outputs:
            ids = expected_token_ids(self.tokenizer, prompt_ids, max_tokens)
            texts = [self.tokenizer.decode(ids[:k]) for k in range(len(ids) + 1)]
            self._outputs[key] = ids, [texts[k + 1][len(texts[k]) :] for k in range(len(ids))]
        return self._outputs[key]

    async def _events(self, events: list[str], plan: _Plan, field: str = "data: ") -> AsyncIterator[str]:
        """SSE body: `plan.first_token_delay`, then the events `token_delay` apart, cut if the plan says so.

        `field`: how each event starts; TGI's server (axum) writes `data:` without the space."""
        await asyncio.sleep(plan.first_token_delay)
        for k, event in enumerate(events):
            if k == plan.cut_after:
                raise _StreamCut(f"stream cut after {k} events")
            if k:
                await asyncio.sleep(self.token_delay)
            yield f"{field}{event}\n\n"

    async def _whole(self, payload: dict[str, Any], tokens: int, plan: _Plan) -> Response:
        """A non-streamed answer, after as long as its stream would take; a cut sends half the body, then aborts."""
        await asyncio.sleep(plan.first_token_delay + self.token_delay * max(0, tokens - 1))
        if plan.cut_after is None:
            return JSONResponse(payload)
        body = json.dumps(payload).encode()

        async def half() -> AsyncIterator[bytes]:
            yield body[: len(body) // 2]
            raise _StreamCut("answer cut mid-body")

        return StreamingResponse(half(), media_type="application/json")

    @staticmethod
    async def _json_body(request: Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    @staticmethod
    def _fail(path: str, plan: _Plan) -> JSONResponse:
        assert plan.fail_status is not None
        headers = None if plan.retry_after is None else {"Retry-After": f"{plan.retry_after:g}"}
        return _error(path, plan.fail_status, f"injected failure ({plan.fail_status})", headers)

    # -- OpenAI routes --------------------------------------------------------------

    async def _metrics_page(self, request: Request) -> Response:
        with self._lock:
            self._metrics_headers.append(dict(request.headers))
            setting = self._metrics
        key = self.api_key
        if setting.mode == "missing":
            return Response("Not Found", status_code=404, media_type="text/plain")
        if setting.mode == "refusing" or (
            setting.require_key and key is not None and request.headers.get("authorization") != f"Bearer {key}"
        ):
            return Response("Unauthorized", status_code=401, media_type="text/plain")
        if setting.mode == "slow":
            await asyncio.sleep(setting.delay)
        page = setting.page
        if page is None:
            page = GARBAGE_PAGE if setting.mode == "garbage" else METRICS_PAGES.get(setting.mode, VLLM_METRICS_PAGE)
        media_type = "text/html" if setting.mode == "garbage" else "text/plain; version=0.0.4; charset=utf-8"
        return Response(page, media_type=media_type)

    async def _health(self, request: Request) -> Response:
        return Response(status_code=200)

    async def _models(self, request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    async def _completions(self, request: Request) -> Response:
        """Streaming completions in vLLM's shape; `token_ids` per chunk when asked for and enabled."""
        path = request.url.path
        body = await self._json_body(request)
        if body is None:
            return _error(path, 400, "The request body must be a JSON object.")
        if body.get("model") != self.model:
            return _error(path, 404, f"The model `{body.get('model')}` does not exist.")
        prompt, max_tokens = body.get("prompt"), body.get("max_tokens", DEFAULT_MAX_TOKENS)
        if isinstance(prompt, str):
            prompt = prompt_ids_for_text(self.tokenizer, prompt)
        if not isinstance(prompt, list) or not all(isinstance(token, int) for token in prompt):
            return _error(path, 400, "prompt must be a string or a list of token ids.")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            return _error(path, 400, "max_tokens must be a positive integer.")
        stream = body.get("stream") is True
        plan = self._take_plan(stream=stream)
        if plan.fail_status is not None:
            return self._fail(path, plan)
        ids, pieces = self._answer(prompt, max_tokens)
        head = {
            "id": f"cmpl-{self.requests}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.model,
        }
        with_ids = self.token_ids and body.get("return_token_ids") is True
        finish_reason = "length" if len(ids) == max_tokens else "stop"
        if not stream:
            whole: dict[str, Any] = {"index": 0, "text": "".join(pieces), "finish_reason": finish_reason}
            if with_ids:
                whole["token_ids"] = ids
            completion = len(ids) + plan.usage_delta
            usage = {"prompt_tokens": len(prompt), "completion_tokens": completion}
            return await self._whole({**head, "choices": [whole], "usage": usage}, len(ids), plan)
        events = []
        for k, (token, piece) in enumerate(zip(ids, pieces, strict=True)):
            choice: dict[str, Any] = {"index": 0, "text": piece}
            if with_ids:
                choice["token_ids"] = [token]
            last = k == len(ids) - 1
            choice["finish_reason"] = finish_reason if last else None
            events.append(json.dumps({**head, "choices": [choice]}))
        if (body.get("stream_options") or {}).get("include_usage"):
            completion = len(ids) + plan.usage_delta
            usage = {
                "prompt_tokens": len(prompt),
                "completion_tokens": completion,
                "total_tokens": len(prompt) + completion,
            }
            events.append(json.dumps({**head, "choices": [], "usage": usage}))
        events.append("[DONE]")
        return StreamingResponse(self._events(events, plan), media_type="text/event-stream")

    # -- KServe v2 routes ---------------------------------------------------------

    async def _kserve_ready(self, request: Request) -> Response:
        if request.path_params["name"] != self.model:
            return _error(request.url.path, 404, f"Model {request.path_params['name']} not found")
        return Response(status_code=200)

    async def _kserve_request(
        self, request: Request, stream: bool
    ) -> tuple[list[int], list[str], int, _Plan] | Response:
        """Validation and faults shared by generate and generate_stream: the answer and plan, or an error response."""
        path, name = request.url.path, request.path_params["name"]
        if name != self.model:
            return _error(path, 404, f"Model {name} not found")
        body = await self._json_body(request)
        text = None if body is None else body.get("text_input")
        parameters = (body or {}).get("parameters") or {}
        max_tokens = parameters.get("max_tokens", DEFAULT_MAX_TOKENS)
        if not isinstance(text, str) or not isinstance(max_tokens, int) or max_tokens < 1:
            return _error(path, 400, "expected {text_input: str, parameters: {max_tokens: positive int}}")
        plan = self._take_plan(stream)
        if plan.fail_status is not None:
            return self._fail(path, plan)
        ids, pieces = self._answer(prompt_ids_for_text(self.tokenizer, text), max_tokens)
        return ids, pieces, max_tokens, plan

    async def _kserve_generate(self, request: Request) -> Response:
        prepared = await self._kserve_request(request, stream=False)
        if isinstance(prepared, Response):
            return prepared
        ids, pieces, _, plan = prepared
        return await self._whole({"model_name": self.model, "text_output": "".join(pieces)}, len(ids), plan)

    async def _kserve_generate_stream(self, request: Request) -> Response:
        """One event per token, the last with finish_reason; KServe streams end without [DONE]."""
        prepared = await self._kserve_request(request, stream=True)
        if isinstance(prepared, Response):
            return prepared
        ids, pieces, max_tokens, plan = prepared
        events = []
        for k, piece in enumerate(pieces):
            event: dict[str, Any] = {"model_name": self.model, "text_output": piece}
            if k == len(pieces) - 1:
                event["finish_reason"] = "length" if len(ids) == max_tokens else "stop"
            events.append(json.dumps(event))
        return StreamingResponse(self._events(events, plan), media_type="text/event-stream")

    # -- text-generation-inference routes ---------------------------------------------

    async def _tgi_info(self, request: Request) -> JSONResponse:
        info = {
            "model_id": self.model,
            "max_input_tokens": self.max_total_tokens - 1,
            "max_total_tokens": self.max_total_tokens,
            "version": "fault-server",
        }
        return JSONResponse(info)

    async def _tgi_request(
        self, request: Request, stream: bool
    ) -> tuple[list[int], list[str], int, bool, _Plan] | Response:
        """Validation (TGI's 422s) and faults shared by generate and generate_stream."""
        path = request.url.path
        body = await self._json_body(request)
        inputs = None if body is None else body.get("inputs")
        parameters = (body or {}).get("parameters") or {}
        max_tokens = parameters.get("max_new_tokens", DEFAULT_MAX_TOKENS)
        if not isinstance(inputs, str) or not inputs or not isinstance(max_tokens, int) or max_tokens < 1:
            return _error(path, 422, "expected {inputs: non-empty str, parameters: {max_new_tokens: positive int}}")
        if parameters.get("temperature") is not None and parameters["temperature"] <= 0:
            return _error(path, 422, "Input validation error: `temperature` must be strictly positive")
        prompt = prompt_ids_for_text(self.tokenizer, inputs)
        if len(prompt) + max_tokens > self.max_total_tokens:
            message = (
                f"Input validation error: `inputs` tokens + `max_new_tokens` must be <= {self.max_total_tokens}. "
                f"Given: {len(prompt)} `inputs` tokens and {max_tokens} `max_new_tokens`"
            )
            return _error(path, 422, message)
        plan = self._take_plan(stream)
        if plan.fail_status is not None:
            return self._fail(path, plan)
        ids, pieces = self._answer(prompt, max_tokens)
        return ids, pieces, max_tokens, parameters.get("details") is True, plan

    def _tgi_details(self, ids: list[int], max_tokens: int, plan: _Plan) -> dict[str, Any]:
        reason = "length" if len(ids) == max_tokens else "eos_token"
        return {"finish_reason": reason, "generated_tokens": len(ids) + plan.usage_delta, "seed": None}

    async def _tgi_generate(self, request: Request) -> Response:
        prepared = await self._tgi_request(request, stream=False)
        if isinstance(prepared, Response):
            return prepared
        ids, pieces, max_tokens, details, plan = prepared
        answer: dict[str, Any] = {"generated_text": "".join(pieces)}
        if details:
            tokens = [{"id": i, "text": t, "logprob": -0.5, "special": False} for i, t in zip(ids, pieces, strict=True)]
            answer["details"] = self._tgi_details(ids, max_tokens, plan) | {"prefill": [], "tokens": tokens}
        return await self._whole(answer, len(ids), plan)

    async def _tgi_generate_stream(self, request: Request) -> Response:
        """One event per token; the last has generated_text (and details if asked); no [DONE]."""
        prepared = await self._tgi_request(request, stream=True)
        if isinstance(prepared, Response):
            return prepared
        ids, pieces, max_tokens, details, plan = prepared
        events = []
        for k, (token, piece) in enumerate(zip(ids, pieces, strict=True)):
            last = k == len(ids) - 1
            event = {
                "index": k + 1,
                "token": {"id": token, "text": piece, "logprob": -0.5, "special": False},
                "generated_text": "".join(pieces) if last else None,
                "details": self._tgi_details(ids, max_tokens, plan) if last and details else None,
            }
            events.append(json.dumps(event))
        return StreamingResponse(self._events(events, plan, field="data:"), media_type="text/event-stream")
