"""A server's Prometheus `/metrics`, read into `Reading`s: what a remote replica's engine says while the run goes.

`PrometheusSampler` GETs the page once per `sample` with the `httpx.Client` it is given (the caller builds it
with the run's bearer token, Basic auth and TLS settings: this module knows none of them, and never logs a
header), keeps only the lines of the families it knows before parsing (the parser is
`prometheus_client.parser.text_string_to_metric_families`), and maps them onto
`mlperf_llm_sut.telemetry.metrics`' names.

What maps, by server (every series of a family is summed: a vLLM server exposes one per `engine` and
`model_name`, Triton one per `model` and `version`, SGLang one per data-parallel rank; a KV-cache fraction is
averaged over them instead):

- `running_requests`: vLLM `vllm:num_requests_running`; TGI `tgi_batch_current_size`; TensorRT-LLM
  `nv_trt_llm_request_metrics{request_type="scheduled"}`; SGLang `sglang:num_running_reqs`.
- `waiting_requests`: vLLM `vllm:num_requests_waiting`; TGI `tgi_queue_size`; TensorRT-LLM
  `nv_trt_llm_request_metrics{request_type="waiting"}` (newer backends only); SGLang `sglang:num_queue_reqs`.
- `kv_cache_usage`: vLLM `vllm:kv_cache_usage_perc`, else the older `vllm:gpu_cache_usage_perc`; TensorRT-LLM
  `nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="used"}` over `{...="max"}`, else `{...="fraction"}`;
  SGLang `sglang:token_usage`.
- `preemptions_total`: vLLM `vllm:num_preemptions_total`; SGLang `sglang:num_retracted_requests_total`.
- `prefix_cache_queries_total`, `prefix_cache_hits_total`: vLLM `vllm:prefix_cache_queries_total`,
  `vllm:prefix_cache_hits_total`, else the older `vllm:gpu_prefix_cache_queries_total`, `..._hits_total`;
  SGLang `sglang:prompt_tokens_total` and `sglang:cached_tokens_total`.
- `prompt_tokens_total`: vLLM `vllm:prompt_tokens_total`; TGI `tgi_request_input_length_sum`; SGLang
  `sglang:prompt_tokens_total`.
- `generation_tokens_total`: vLLM `vllm:generation_tokens_total`; TGI `tgi_request_generated_tokens_sum`; SGLang
  `sglang:generation_tokens_total`.

Sources: vLLM `vllm/v1/metrics/loggers.py` (`PrometheusStatLogger`; the older names in its V0
`vllm/engine/metrics.py` and the "Production Metrics" page of its docs); TGI `docs/source/reference/metrics.md`;
the Triton TensorRT-LLM backend's `README.md`, "Triton Metrics"; SGLang `python/sglang/srt/metrics/collector.py`
(`SchedulerMetricsCollector`, `TokenizerMetricsCollector`) and `managers/scheduler_metrics_mixin.py`.

Notes on the mapping:
- vLLM's `*_perc` gauges are fractions (0-1) despite the name: "KV-cache usage. 1 means 100 percent usage."
  The older names (`gpu_cache_usage_perc`: V0 and early V1; `gpu_prefix_cache_*`: V1 before its rename) are read
  only when the current one is absent, so a server exposing both (hidden deprecated metrics) is not counted twice.
- TGI's token figures are the `_sum` of per-request histograms: input lengths are recorded when a request is
  validated (`router/src/validation.rs`), generated tokens when a request succeeds (`router/src/server.rs`), so
  they grow in steps at admission and at completion rather than token by token, and a failed request's output
  is not counted. TGI exposes no KV-cache usage (`tgi_batch_current_max_tokens` is a token budget, not blocks in
  use), no preemption and no prefix-cache counter.
- TensorRT-LLM: `scheduled` is the requests in the current iteration's batch (what vLLM calls running); `active`
  (every request the executor holds, paused ones too) is not used. Its token figures
  (`nv_trt_llm_inflight_batcher_metrics{...="total_context_tokens"}`, `nv_trt_llm_v1_metrics`) are per-iteration
  gauges, not cumulative, and `paused_requests` is a gauge, not a preemption count: none of them maps.
  `nv_inference_pending_request_count` counts requests in Triton's own scheduler, before they reach the
  backend's queue, so it is no waiting count of the engine's either.
- SGLang (served with `--enable-metrics`): `token_usage` is the share of the KV pool's tokens held by requests
  (tokens the radix cache keeps but could evict count as free, as vLLM's free cached blocks do). A retraction is
  SGLang's preemption: a running request sent back to the queue when the pool runs out; the older
  `sglang:num_retracted_reqs` gauge is the count since the last stats report, not a total, and is not read. The
  token counters are per finished request (the tokenizer manager's, like TGI's): `prompt_tokens_total` is whole
  prompts, cached prefixes included, so it is also the prefix cache's lookups and `cached_tokens_total` its hits;
  SGLang creates `cached_tokens_total` at its first hit, so a page without it has no hit rate yet rather than
  a zero one. `sglang:cache_hit_rate` is not read: it is the latest prefill batch's share, and each decode report
  resets it to 0. Scheduler figures come from the first tensor-parallel rank of each attention group, one series
  per data-parallel group, which add up; `--enable-metrics-for-all-schedulers` makes every rank export its
  group's figures again, and those would be counted once per rank.

Failures (no `/metrics`, 401/403, a timeout, an unreachable server, a page that does not parse or holds none of
these families) give no readings and one line in `warnings()` per kind of failure, never an exception; readings
resume when the server answers again. After `BACKOFF_AFTER` failures in a row the sampler waits before trying
again, doubling from `BACKOFF_FIRST` to at most `BACKOFF_MAX` seconds, so that a server without metrics costs
the sampling loop at most one `timeout` every `BACKOFF_MAX` seconds.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from mlperf_llm_sut.telemetry import metrics
from mlperf_llm_sut.telemetry.series import Reading

logger = logging.getLogger(__name__)

TIMEOUT = 1.0
"""Seconds a scrape may take in all (connect, headers and body): one tick of the default sampling interval."""
BACKOFF_AFTER = 3
"""Failed scrapes in a row before the sampler stops trying at every tick."""
BACKOFF_FIRST = 2.0
BACKOFF_MAX = 30.0
"""Longest wait between tries of a failing server: how late a server that comes back is noticed."""
MAX_PAGE_BYTES = 16 * 1024 * 1024
"""A real vLLM page is ~50 KB; anything this big is not a metrics page, and is not read to its end."""


@dataclass(frozen=True)
class _Series:
    """The samples of one name (as the parser yields it: a typed counter's always end in `_total`) whose labels
    include `labels`."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def values(self, samples: Mapping[str, list[tuple[Mapping[str, str], float]]]) -> list[float]:
        return [
            value
            for labels, value in samples.get(self.name, ())
            if all(labels.get(key) == wanted for key, wanted in self.labels.items())
        ]


@dataclass(frozen=True)
class _Sum:
    """The sum over every series (engines of a server, models of a Triton)."""

    series: _Series

    def read(self, samples: Mapping[str, list[tuple[Mapping[str, str], float]]]) -> float | None:
        values = self.series.values(samples)
        return sum(values) if values else None


@dataclass(frozen=True)
class _Mean:
    """The mean over every series: for fractions, which do not add up (engines of one server have KV caches of
    the same size, so the mean is the fraction of the whole)."""

    series: _Series

    def read(self, samples: Mapping[str, list[tuple[Mapping[str, str], float]]]) -> float | None:
        values = self.series.values(samples)
        return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class _Ratio:
    """sum(numerator) / sum(denominator): blocks in use over blocks there are, over every model."""

    numerator: _Series
    denominator: _Series

    def read(self, samples: Mapping[str, list[tuple[Mapping[str, str], float]]]) -> float | None:
        above, below = self.numerator.values(samples), self.denominator.values(samples)
        return sum(above) / sum(below) if above and below and sum(below) > 0 else None


_Rule = _Sum | _Mean | _Ratio


def _trt_kv(block_type: str) -> _Series:
    return _Series("nv_trt_llm_kv_cache_block_metrics", {"kv_cache_block_type": block_type})


def _trt_requests(request_type: str) -> _Series:
    return _Series("nv_trt_llm_request_metrics", {"request_type": request_type})


RULES: dict[str, tuple[_Rule, ...]] = {
    metrics.RUNNING: (
        _Sum(_Series("vllm:num_requests_running")),
        _Sum(_Series("tgi_batch_current_size")),
        _Sum(_trt_requests("scheduled")),
        _Sum(_Series("sglang:num_running_reqs")),
    ),
    metrics.WAITING: (
        _Sum(_Series("vllm:num_requests_waiting")),
        _Sum(_Series("tgi_queue_size")),
        _Sum(_trt_requests("waiting")),
        _Sum(_Series("sglang:num_queue_reqs")),
    ),
    metrics.KV_CACHE_USAGE: (
        _Mean(_Series("vllm:kv_cache_usage_perc")),
        _Mean(_Series("vllm:gpu_cache_usage_perc")),
        _Ratio(_trt_kv("used"), _trt_kv("max")),
        _Mean(_trt_kv("fraction")),
        _Mean(_Series("sglang:token_usage")),
    ),
    metrics.PREEMPTIONS: (
        _Sum(_Series("vllm:num_preemptions_total")),
        _Sum(_Series("sglang:num_retracted_requests_total")),
    ),
    metrics.PREFIX_CACHE_QUERIES: (
        _Sum(_Series("vllm:prefix_cache_queries_total")),
        _Sum(_Series("vllm:gpu_prefix_cache_queries_total")),
        _Sum(_Series("sglang:prompt_tokens_total")),
    ),
    metrics.PREFIX_CACHE_HITS: (
        _Sum(_Series("vllm:prefix_cache_hits_total")),
        _Sum(_Series("vllm:gpu_prefix_cache_hits_total")),
        _Sum(_Series("sglang:cached_tokens_total")),
    ),
    metrics.PROMPT_TOKENS: (
        _Sum(_Series("vllm:prompt_tokens_total")),
        _Sum(_Series("tgi_request_input_length_sum")),
        _Sum(_Series("sglang:prompt_tokens_total")),
    ),
    metrics.GENERATION_TOKENS: (
        _Sum(_Series("vllm:generation_tokens_total")),
        _Sum(_Series("tgi_request_generated_tokens_sum")),
        _Sum(_Series("sglang:generation_tokens_total")),
    ),
}
"""For each canonical name, where to read it: the first rule the page has wins."""


def _series_of(rule: _Rule) -> tuple[_Series, ...]:
    return (rule.numerator, rule.denominator) if isinstance(rule, _Ratio) else (rule.series,)


def _prefixes(names: Iterable[str]) -> tuple[str, ...]:
    """How the lines that matter for samples named `names` start: the samples' own (the name, then its labels or
    its value), and the HELP and TYPE lines of their families (a histogram's is named without `_sum`). Each
    prefix ends where the name does, so `vllm:num_requests_waiting` keeps no `..._waiting_by_reason` line and
    a histogram's `_sum` none of its buckets."""
    prefixes: list[str] = []
    for name in sorted(set(names)):
        prefixes += (f"{name}{{", f"{name} ")
        for family in {name, name.removesuffix("_sum")}:
            prefixes += (f"# HELP {family} ", f"# TYPE {family} ")
    return tuple(prefixes)


_PREFIXES = _prefixes(series.name for rules in RULES.values() for rule in rules for series in _series_of(rule))


def known_lines(page: str) -> str:
    """The lines of `page` that the rules can use, so that the parser reads ~20 of a vLLM page's ~600 lines
    (its histograms are most of it): ~0.4 ms instead of ~7.7 ms for a whole page."""
    return "\n".join(line for line in page.splitlines() if line.startswith(_PREFIXES))


def parse(page: str) -> dict[str, float]:
    """The canonical figures a `/metrics` page holds (raises ValueError for text that is not the Prometheus text
    format)."""
    samples: dict[str, list[tuple[Mapping[str, str], float]]] = {}
    for family in text_string_to_metric_families(known_lines(page)):
        for sample in family.samples:
            if not math.isnan(sample.value):
                samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    figures: dict[str, float] = {}
    for metric, rules in RULES.items():
        for rule in rules:
            value = rule.read(samples)
            if value is not None:
                figures[metric] = value
                break
    return figures


def _where(url: str) -> str:
    """The URL for a warning: without user:password or a query, which could carry credentials."""
    try:
        return str(httpx.URL(url).copy_with(username=None, password=None, query=None, fragment=None))
    except (httpx.InvalidURL, TypeError, ValueError):
        return "its metrics URL"


class _TooBig(Exception):
    pass


class PrometheusSampler:
    """One server's `/metrics`, scraped at every `sample` (or less often while it keeps failing).

    `client`: built by the caller with the server's auth and TLS settings; the sampler owns it from then on, and
    `close` closes it. `timeout`: seconds one scrape may take in all.
    """

    def __init__(self, source: str, url: str, client: httpx.Client, *, timeout: float = TIMEOUT) -> None:
        self.source, self.url, self.timeout = source, url, timeout
        self.name = f"{source} /metrics"
        self._client = client
        self._where = _where(url)
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}  # why, and how many scrapes failed so
        self._in_a_row = 0
        self._next_try = -math.inf
        self._closed = False

    def sample(self, now: float) -> list[Reading]:
        if self._closed or now < self._next_try:
            return []
        try:
            figures = self._scrape()
        except Exception as exc:  # a sampler never raises: whatever went wrong is a warning
            self._failed(now, self._why(exc))
            return []
        if not figures:
            self._failed(now, "its answer holds no vLLM, TGI, TensorRT-LLM or SGLang metric this harness reads")
            return []
        self._in_a_row, self._next_try = 0, -math.inf
        return [Reading(now, self.source, metric, value) for metric, value in figures.items()]

    def warnings(self) -> list[str]:
        with self._lock:
            return [
                f"{self.source}: no server metrics from {self._where}: {why} ({count} scrape{'s' * (count > 1)})"
                for why, count in self._failures.items()
            ]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._client.close()

    def _scrape(self) -> dict[str, float]:
        deadline = time.monotonic() + self.timeout
        # A stream, so that a server dripping its page slowly or sending megabytes of something else is cut off
        # at the deadline or the size limit (httpx's timeouts apply to each read, not to the whole answer).
        with self._client.stream("GET", self.url, timeout=self.timeout) as response:
            if response.status_code != 200:
                raise httpx.HTTPStatusError("", request=response.request, response=response)
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_PAGE_BYTES:
                    raise _TooBig
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("", request=response.request)
        return parse(body.decode("utf-8", errors="replace"))  # the text format is UTF-8

    def _why(self, exc: Exception) -> str:
        """What went wrong, in words that stay the same from one scrape to the next (a warning is one line per
        kind of failure) and that hold no header or token: exception messages are not quoted, except the
        parser's."""
        if isinstance(exc, httpx.HTTPStatusError):
            status = exc.response.status_code
            if status == 404:
                return "the server has no /metrics (HTTP 404)"
            if status in (401, 403):
                return f"the server refused the scrape (HTTP {status}): check the token and TLS settings"
            return f"the server answered HTTP {status}"
        if isinstance(exc, httpx.TimeoutException):
            return f"no whole answer within {self.timeout:g} s"
        if isinstance(exc, httpx.ConnectError):
            return "could not connect (down, or TLS verification failed)"
        if isinstance(exc, httpx.HTTPError):
            return f"the connection failed ({type(exc).__name__})"
        if isinstance(exc, _TooBig):
            return f"its answer is over {MAX_PAGE_BYTES // 2**20} MiB: not a metrics page"
        if isinstance(exc, ValueError):
            return "its answer is not in the Prometheus text format"
        return f"the scrape failed ({type(exc).__name__})"

    def _failed(self, now: float, why: str) -> None:
        with self._lock:
            first = why not in self._failures
            self._failures[why] = self._failures.get(why, 0) + 1
        if first:
            logger.warning("%s: no server metrics from %s: %s", self.source, self._where, why)
        self._in_a_row += 1
        if self._in_a_row >= BACKOFF_AFTER:
            self._next_try = now + min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (self._in_a_row - BACKOFF_AFTER))
