"""`mlperf_llm_sut.telemetry.prometheus`: a server's `/metrics` read under the canonical names, from recorded pages
of vLLM (current and older names), TGI, Triton and SGLang, and from the fault server's faults. A real vLLM server's
page is read in test_remote_replicas.py, whose servers are started once for both."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator

import httpx
import pytest
from transformers import PreTrainedTokenizerBase

from mlperf_llm_sut.telemetry import metrics, prometheus
from mlperf_llm_sut.telemetry.prometheus import BACKOFF_AFTER, BACKOFF_FIRST, BACKOFF_MAX, PrometheusSampler, parse
from mlperf_llm_sut.telemetry.series import Reading
from tests.fault_server import TGI_METRICS_PAGE, TRITON_METRICS_PAGE, VLLM_METRICS_PAGE, FaultServer

TOKEN = "metrics-test-secret-51d2e8"
SOURCE = "replica-3"

# An excerpt of a real vLLM 0.32 server's page (`vllm.entrypoints.openai.api_server`, the embedded model, after
# three completions), with the families around the ones read, which must not be mistaken for them.
VLLM_032_PAGE = """\
# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 14990.0
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="tiny"} 0.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="tiny"} 0.0
# HELP vllm:num_requests_waiting_by_reason Number of waiting requests by reason.
# TYPE vllm:num_requests_waiting_by_reason gauge
vllm:num_requests_waiting_by_reason{engine="0",model_name="tiny",reason="capacity"} 7.0
vllm:num_requests_waiting_by_reason{engine="0",model_name="tiny",reason="deferred"} 0.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="tiny"} 0.0
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="tiny"} 111.0
# HELP vllm:prefix_cache_queries_created Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_created gauge
vllm:prefix_cache_queries_created{engine="0",model_name="tiny"} 1.7964086880267305e+09
# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="tiny"} 0.0
# HELP vllm:external_prefix_cache_queries_total External prefix cache queries from KV connector.
# TYPE vllm:external_prefix_cache_queries_total counter
vllm:external_prefix_cache_queries_total{engine="0",model_name="tiny"} 5.0
# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{engine="0",model_name="tiny"} 0.0
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="tiny"} 111.0
# HELP vllm:prompt_tokens_created Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_created gauge
vllm:prompt_tokens_created{engine="0",model_name="tiny"} 1.7964086880268567e+09
# HELP vllm:prompt_tokens_by_source_total Number of prompt tokens by source.
# TYPE vllm:prompt_tokens_by_source_total counter
vllm:prompt_tokens_by_source_total{engine="0",model_name="tiny",source="local_compute"} 111.0
# HELP vllm:prompt_tokens_cached_total Number of cached prompt tokens (local + external).
# TYPE vllm:prompt_tokens_cached_total counter
vllm:prompt_tokens_cached_total{engine="0",model_name="tiny"} 0.0
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="tiny"} 24.0
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="length",model_name="tiny"} 3.0
# HELP vllm:request_prompt_tokens Number of prefill tokens processed.
# TYPE vllm:request_prompt_tokens histogram
vllm:request_prompt_tokens_sum{engine="0",model_name="tiny"} 111.0
vllm:request_prompt_tokens_bucket{engine="0",le="1.0",model_name="tiny"} 0.0
vllm:request_prompt_tokens_bucket{engine="0",le="+Inf",model_name="tiny"} 3.0
vllm:request_prompt_tokens_count{engine="0",model_name="tiny"} 3.0
"""

# vLLM's V0 engine (`vllm/engine/metrics.py`): no engine label, the GPU cache gauges and a hit *rate*, which is no
# counter and is not read; and early V1's `gpu_prefix_cache_*` counters.
VLLM_V0_PAGE = """\
# HELP vllm:num_requests_running Number of requests currently running on GPU.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="meta-llama/Llama-3.1-8B"} 12.0
# HELP vllm:num_requests_swapped Number of requests swapped to CPU.
# TYPE vllm:num_requests_swapped gauge
vllm:num_requests_swapped{model_name="meta-llama/Llama-3.1-8B"} 0.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="meta-llama/Llama-3.1-8B"} 4.0
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="meta-llama/Llama-3.1-8B"} 0.875
# HELP vllm:cpu_cache_usage_perc CPU KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:cpu_cache_usage_perc gauge
vllm:cpu_cache_usage_perc{model_name="meta-llama/Llama-3.1-8B"} 0.0
# HELP vllm:gpu_prefix_cache_hit_rate GPU prefix cache block hit rate.
# TYPE vllm:gpu_prefix_cache_hit_rate gauge
vllm:gpu_prefix_cache_hit_rate{model_name="meta-llama/Llama-3.1-8B"} 0.5
# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{model_name="meta-llama/Llama-3.1-8B"} 9.0
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{model_name="meta-llama/Llama-3.1-8B"} 70000.0
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{model_name="meta-llama/Llama-3.1-8B"} 25000.0
"""

VLLM_EARLY_V1_PAGE = """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 1.0
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.125
# TYPE vllm:gpu_prefix_cache_queries_total counter
vllm:gpu_prefix_cache_queries_total{engine="0",model_name="m"} 640.0
# TYPE vllm:gpu_prefix_cache_hits_total counter
vllm:gpu_prefix_cache_hits_total{engine="0",model_name="m"} 320.0
"""

# A vLLM between the renames, with the deprecated names shown too (--show-hidden-metrics-for-version): each
# figure is read once, under the current name.
VLLM_BOTH_NAMES_PAGE = """\
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.5
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="m"} 64.0
# TYPE vllm:gpu_prefix_cache_queries_total counter
vllm:gpu_prefix_cache_queries_total{engine="0",model_name="m"} 64.0
"""

# An older TensorRT-LLM backend: no `waiting` request type and no `fraction` (its README's other example), and
# two Triton models with the backend.
TRITON_OLD_PAGE = """\
# HELP nv_trt_llm_request_metrics TRT LLM request metrics
# TYPE nv_trt_llm_request_metrics gauge
nv_trt_llm_request_metrics{model="llama",request_type="context",version="1"} 1
nv_trt_llm_request_metrics{model="llama",request_type="scheduled",version="1"} 3
nv_trt_llm_request_metrics{model="llama",request_type="max",version="1"} 512
nv_trt_llm_request_metrics{model="llama",request_type="active",version="1"} 5
nv_trt_llm_request_metrics{model="mistral",request_type="scheduled",version="1"} 2
# HELP nv_trt_llm_kv_cache_block_metrics TRT LLM KV cache block metrics
# TYPE nv_trt_llm_kv_cache_block_metrics gauge
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="tokens_per",model="llama",version="1"} 64
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="used",model="llama",version="1"} 100
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max",model="llama",version="1"} 400
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="used",model="mistral",version="1"} 300
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max",model="mistral",version="1"} 400
"""

# An SGLang server's page (`python -m sglang.launch_server --enable-metrics`, one tensor-parallel group), as its
# `collector.py` writes it through prometheus_client's multiprocess collector (labels sorted, no `_created`
# samples, a pid on gauges without a multiprocess mode), with the families around the ones read, which must not
# be mistaken for them: the offline batch's running count, the grammar queue, the SWA pool's usage, the
# per-report retraction gauge and the last prefill's hit rate. `@` stands for the scheduler's labels.
SGLANG_PAGE = (
    "# HELP sglang:num_running_reqs The number of running requests.\n"
    "# TYPE sglang:num_running_reqs gauge\n"
    "sglang:num_running_reqs{@} 37.0\n"
    "# HELP sglang:num_running_reqs_offline_batch The number of r"
    "unning low-priority offline batch requests(label is 'batch').\n"
    "# TYPE sglang:num_running_reqs_offline_batch gauge\n"
    "sglang:num_running_reqs_offline_batch{@} 5.0\n"
    "# HELP sglang:num_used_tokens The number of used tokens.\n"
    "# TYPE sglang:num_used_tokens gauge\n"
    "sglang:num_used_tokens{@} 98304.0\n"
    "# HELP sglang:token_usage The token usage.\n"
    "# TYPE sglang:token_usage gauge\n"
    "sglang:token_usage{@} 0.75\n"
    "# HELP sglang:swa_token_usage The token usage for SWA layers.\n"
    "# TYPE sglang:swa_token_usage gauge\n"
    "sglang:swa_token_usage{@} 0.0\n"
    "# HELP sglang:gen_throughput The generation throughput (token/s).\n"
    "# TYPE sglang:gen_throughput gauge\n"
    "sglang:gen_throughput{@} 1523.4\n"
    "# HELP sglang:num_queue_reqs The number of requests in the waiting queue.\n"
    "# TYPE sglang:num_queue_reqs gauge\n"
    "sglang:num_queue_reqs{@} 12.0\n"
    "# HELP sglang:num_grammar_queue_reqs The number of requests in the grammar waiting queue.\n"
    "# TYPE sglang:num_grammar_queue_reqs gauge\n"
    "sglang:num_grammar_queue_reqs{@} 2.0\n"
    "# HELP sglang:cache_hit_rate The prefix cache hit rate.\n"
    "# TYPE sglang:cache_hit_rate gauge\n"
    "sglang:cache_hit_rate{@} 0.0\n"
    "# HELP sglang:max_total_num_tokens Maximum total number of tokens in the KV cache pool.\n"
    "# TYPE sglang:max_total_num_tokens gauge\n"
    "sglang:max_total_num_tokens{@} 131072.0\n"
    "# HELP sglang:num_retracted_reqs The number of retracted requests.\n"
    "# TYPE sglang:num_retracted_reqs gauge\n"
    'sglang:num_retracted_reqs{engine_type="unified",model_name="llam'
    'a-2-70b",moe_ep_rank="0",pid="2817",pp_rank="0",tp_rank="0"} 1.0\n'
    "# HELP sglang:num_retracted_requests_total Total number of retracted requests.\n"
    "# TYPE sglang:num_retracted_requests_total counter\n"
    "sglang:num_retracted_requests_total{@} 4.0\n"
    "# HELP sglang:num_retracted_input_tokens_total Total number of retracted input tokens.\n"
    "# TYPE sglang:num_retracted_input_tokens_total counter\n"
    "sglang:num_retracted_input_tokens_total{@} 4096.0\n"
    "# HELP sglang:realtime_tokens_total Total number of tokens processed (upd"
    "ated on each log interval). mode: prefill_compute, prefill_cache, decode.\n"
    "# TYPE sglang:realtime_tokens_total counter\n"
    'sglang:realtime_tokens_total{engine_type="unified",mode="prefill_compute",'
    'model_name="llama-2-70b",moe_ep_rank="0",pp_rank="0",tp_rank="0"} 290112.0\n'
    'sglang:realtime_tokens_total{engine_type="unified",mode="prefill_cache",m'
    'odel_name="llama-2-70b",moe_ep_rank="0",pp_rank="0",tp_rank="0"} 120320.0\n'
    'sglang:realtime_tokens_total{engine_type="unified",mode="decode",mode'
    'l_name="llama-2-70b",moe_ep_rank="0",pp_rank="0",tp_rank="0"} 95811.0\n'
    "# HELP sglang:prompt_tokens_total Number of prefill tokens processed.\n"
    "# TYPE sglang:prompt_tokens_total counter\n"
    'sglang:prompt_tokens_total{model_name="llama-2-70b"} 401408.0\n'
    "# HELP sglang:generation_tokens_total Number of generation tokens processed.\n"
    "# TYPE sglang:generation_tokens_total counter\n"
    'sglang:generation_tokens_total{model_name="llama-2-70b"} 91205.0\n'
    "# HELP sglang:cached_tokens_total Number of cached prompt tokens.\n"
    "# TYPE sglang:cached_tokens_total counter\n"
    'sglang:cached_tokens_total{model_name="llama-2-70b"} 117760.0\n'
    "# HELP sglang:num_requests_total Number of requests processed.\n"
    "# TYPE sglang:num_requests_total counter\n"
    'sglang:num_requests_total{model_name="llama-2-70b"} 784.0\n'
    "# HELP sglang:time_to_first_token_seconds Histogram of time to first token in seconds.\n"
    "# TYPE sglang:time_to_first_token_seconds histogram\n"
    'sglang:time_to_first_token_seconds_sum{model_name="llama-2-70b"} 612.25\n'
    'sglang:time_to_first_token_seconds_bucket{le="0.1",model_name="llama-2-70b"} 12.0\n'
    'sglang:time_to_first_token_seconds_bucket{le="+Inf",model_name="llama-2-70b"} 821.0\n'
    'sglang:time_to_first_token_seconds_count{model_name="llama-2-70b"} 821.0\n'
).replace("@", 'engine_type="unified",model_name="llama-2-70b",moe_ep_rank="0",pp_rank="0",tp_rank="0"')

SGLANG_FIGURES = {
    metrics.RUNNING: 37.0,  # not the offline batch's
    metrics.WAITING: 12.0,  # not the grammar queue's
    metrics.KV_CACHE_USAGE: 0.75,
    metrics.PREEMPTIONS: 4.0,  # the total, not the gauge of the last report
    metrics.PREFIX_CACHE_QUERIES: 401408.0,
    metrics.PREFIX_CACHE_HITS: 117760.0,
    metrics.PROMPT_TOKENS: 401408.0,
    metrics.GENERATION_TOKENS: 91205.0,
}

VLLM_FIGURES = {
    metrics.RUNNING: 5.0,
    metrics.WAITING: 1.0,
    metrics.KV_CACHE_USAGE: 0.375,
    metrics.PREEMPTIONS: 3.0,
    metrics.PREFIX_CACHE_QUERIES: 150.0,
    metrics.PREFIX_CACHE_HITS: 50.0,
    metrics.PROMPT_TOKENS: 1500.0,
    metrics.GENERATION_TOKENS: 500.0,
}
"""What `VLLM_METRICS_PAGE` (the fault server's) holds."""


# -- recorded pages --------------------------------------------------------------------------------------------


def test_a_real_vllm_032_page_reads_every_canonical_figure_and_nothing_of_its_neighbours() -> None:
    assert parse(VLLM_032_PAGE) == {
        metrics.RUNNING: 0.0,
        metrics.WAITING: 0.0,  # not the 7 of num_requests_waiting_by_reason
        metrics.KV_CACHE_USAGE: 0.0,
        metrics.PREEMPTIONS: 0.0,
        metrics.PREFIX_CACHE_QUERIES: 111.0,  # not the external cache's
        metrics.PREFIX_CACHE_HITS: 0.0,
        metrics.PROMPT_TOKENS: 111.0,
        metrics.GENERATION_TOKENS: 24.0,
    }


def test_engines_of_one_server_add_up_and_their_kv_usage_is_averaged() -> None:
    assert parse(VLLM_METRICS_PAGE) == VLLM_FIGURES


def test_older_vllm_names_are_read() -> None:
    assert parse(VLLM_V0_PAGE) == {
        metrics.RUNNING: 12.0,
        metrics.WAITING: 4.0,
        metrics.KV_CACHE_USAGE: 0.875,
        metrics.PREEMPTIONS: 9.0,
        metrics.PROMPT_TOKENS: 70000.0,
        metrics.GENERATION_TOKENS: 25000.0,
    }
    assert parse(VLLM_EARLY_V1_PAGE) == {
        metrics.RUNNING: 1.0,
        metrics.KV_CACHE_USAGE: 0.125,
        metrics.PREFIX_CACHE_QUERIES: 640.0,
        metrics.PREFIX_CACHE_HITS: 320.0,
    }


def test_a_figure_under_both_its_names_is_read_once() -> None:
    assert parse(VLLM_BOTH_NAMES_PAGE) == {metrics.KV_CACHE_USAGE: 0.5, metrics.PREFIX_CACHE_QUERIES: 64.0}


def test_tgi_page() -> None:
    assert parse(TGI_METRICS_PAGE) == {
        metrics.RUNNING: 7.0,
        metrics.WAITING: 3.0,
        metrics.PROMPT_TOKENS: 2345.0,
        metrics.GENERATION_TOKENS: 678.0,
    }


def test_triton_tensorrt_llm_pages() -> None:
    assert parse(TRITON_METRICS_PAGE) == {
        metrics.RUNNING: 4.0,  # scheduled, not active
        metrics.WAITING: 2.0,
        metrics.KV_CACHE_USAGE: 0.25,
    }
    # No waiting figure without `waiting`; blocks over blocks, over both models, without `fraction`.
    assert parse(TRITON_OLD_PAGE) == {metrics.RUNNING: 5.0, metrics.KV_CACHE_USAGE: 0.5}
    only_fraction = TRITON_METRICS_PAGE.replace('"used"', '"used_x"')
    assert parse(only_fraction)[metrics.KV_CACHE_USAGE] == 0.25


def test_an_sglang_page_reads_the_same_figures_under_sglangs_names() -> None:
    assert parse(SGLANG_PAGE) == SGLANG_FIGURES


def test_sglang_data_parallel_ranks_add_up_and_their_token_usage_is_averaged() -> None:
    """Two data-parallel schedulers (`--dp-size 2`), each its own series under `dp_rank`."""
    rank_0 = 'engine_type="unified",model_name="m",moe_ep_rank="0",pp_rank="0",tp_rank="0"'
    page = "".join(
        f'sglang:{name}{{dp_rank="{rank}",{rank_0}}} {value}\n'
        for rank, running, queued, usage in ((0, 30.0, 2.0, 0.5), (1, 10.0, 0.0, 0.25))
        for name, value in (("num_running_reqs", running), ("num_queue_reqs", queued), ("token_usage", usage))
    )
    assert parse(page) == {metrics.RUNNING: 40.0, metrics.WAITING: 2.0, metrics.KV_CACHE_USAGE: 0.375}


def test_an_sglang_server_before_its_first_prefix_hit_has_lookups_and_no_hit_rate() -> None:
    """SGLang creates its cached-tokens counter at the first hit: no hit count yet, rather than a zero one."""
    before = "\n".join(line for line in SGLANG_PAGE.splitlines() if "cached_tokens" not in line)
    figures = parse(before)
    assert figures[metrics.PREFIX_CACHE_QUERIES] == 401408.0 and metrics.PREFIX_CACHE_HITS not in figures


@pytest.mark.parametrize(
    "page", [VLLM_032_PAGE, VLLM_METRICS_PAGE, VLLM_V0_PAGE, TGI_METRICS_PAGE, TRITON_OLD_PAGE, SGLANG_PAGE]
)
def test_the_line_filter_loses_nothing_the_rules_read(page: str, monkeypatch: pytest.MonkeyPatch) -> None:
    filtered = parse(page)
    monkeypatch.setattr(prometheus, "known_lines", lambda page: page)
    assert parse(page) == filtered


def test_a_page_of_other_metrics_holds_no_figure_and_a_broken_known_line_does_not_parse() -> None:
    assert parse("# TYPE process_open_fds gauge\nprocess_open_fds 32.0\n") == {}
    assert parse("<html><body>hello</body></html>\n") == {}
    with pytest.raises(ValueError):
        parse('vllm:num_requests_running{engine="0" twelve\n')


# -- the fault server ----------------------------------------------------------------------------------------


@pytest.fixture
def server(tokenizer: PreTrainedTokenizerBase) -> Iterator[FaultServer]:
    with FaultServer(tokenizer, api_key=TOKEN) as fault_server:
        yield fault_server


def _sampler(url: str, *, token: str | None = TOKEN, timeout: float = 2.0) -> PrometheusSampler:
    """As the runner builds it: the client carries the token, the sampler knows only the client."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return PrometheusSampler(SOURCE, url, httpx.Client(headers=headers, trust_env=False), timeout=timeout)


def _figures(readings: list[Reading]) -> dict[str, float]:
    return {reading.metric: reading.value for reading in readings}


@pytest.mark.parametrize(
    ("mode", "figures"),
    [
        ("vllm", VLLM_FIGURES),
        ("tgi", parse(TGI_METRICS_PAGE)),
        ("triton", {metrics.RUNNING: 4.0, metrics.WAITING: 2.0, metrics.KV_CACHE_USAGE: 0.25}),
    ],
)
def test_each_servers_page_is_read_with_its_time_and_source(
    server: FaultServer, mode: str, figures: dict[str, float]
) -> None:
    server.metrics(mode)
    sampler = _sampler(f"{server.url}/metrics")
    readings = sampler.sample(123.5)
    assert _figures(readings) == figures
    assert all(reading.time == 123.5 and reading.source == SOURCE for reading in readings)
    assert sampler.warnings() == []
    sampler.close()
    sampler.close()  # idempotent
    assert sampler.sample(124.5) == []


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("missing", "the server has no /metrics (HTTP 404)"),
        ("refusing", "the server refused the scrape (HTTP 401): check the token and TLS settings"),
        ("garbage", "its answer holds no vLLM, TGI, TensorRT-LLM or SGLang metric this harness reads"),
    ],
)
def test_a_failing_page_gives_no_readings_and_one_warning_however_often_it_fails(
    server: FaultServer, mode: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    server.metrics(mode)
    sampler = _sampler(f"{server.url}/metrics")
    with caplog.at_level(logging.WARNING, logger="mlperf_llm_sut.telemetry.prometheus"):
        assert all(sampler.sample(float(tick)) == [] for tick in range(BACKOFF_AFTER))
    assert sampler.warnings() == [f"{SOURCE}: no server metrics from {server.url}/metrics: {why} (3 scrapes)"]
    logged = [record.getMessage() for record in caplog.records if record.name == "mlperf_llm_sut.telemetry.prometheus"]
    assert logged == [sampler.warnings()[0].rsplit(" (", 1)[0]]
    sampler.close()


def test_a_page_that_does_not_parse_is_a_warning(server: FaultServer) -> None:
    server.metrics("vllm", page='vllm:num_requests_running{engine="0" twelve\n')
    sampler = _sampler(f"{server.url}/metrics")
    assert sampler.sample(0.0) == []
    assert sampler.warnings() == [
        f"{SOURCE}: no server metrics from {server.url}/metrics: its answer is not in the Prometheus text format "
        "(1 scrape)"
    ]


def test_a_slow_server_costs_one_timeout_per_scrape_then_less_often(server: FaultServer) -> None:
    server.metrics("slow", delay=1.0)  # past the timeout, and over before the server's 1 s graceful stop
    sampler = _sampler(f"{server.url}/metrics", timeout=0.3)
    started = time.monotonic()
    ticks = [0.0, 1.0, 2.0, 2.5, 3.0, 2.0 + BACKOFF_FIRST - 0.1]
    assert [sampler.sample(tick) for tick in ticks] == [[]] * len(ticks)
    elapsed = time.monotonic() - started
    # Three timeouts, then the sampler waits BACKOFF_FIRST s (of the caller's clock) before it asks again.
    assert 0.9 <= elapsed < 2.5, elapsed
    assert len(server.metrics_requests) == BACKOFF_AFTER
    assert sampler.warnings() == [
        f"{SOURCE}: no server metrics from {server.url}/metrics: no whole answer within 0.3 s (3 scrapes)"
    ]
    sampler.close()


def test_backoff_doubles_up_to_its_bound_and_a_server_that_recovers_is_read_again(server: FaultServer) -> None:
    sampler = _sampler(f"{server.url}/metrics")
    now = 0.0
    asked = []
    for _ in range(100):  # ticks a second apart, long enough for the backoff to reach its bound
        before = len(server.metrics_requests)
        sampler.sample(now)
        if len(server.metrics_requests) > before:
            asked.append(now)
        now += 1.0
    gaps = [b - a for a, b in itertools.pairwise(asked)]
    assert gaps[: BACKOFF_AFTER - 1] == [1.0] * (BACKOFF_AFTER - 1)
    assert gaps[BACKOFF_AFTER - 1 :][:4] == [BACKOFF_FIRST, 2 * BACKOFF_FIRST, 4 * BACKOFF_FIRST, 8 * BACKOFF_FIRST]
    assert max(gaps) == gaps[-1] == BACKOFF_MAX
    server.metrics("vllm")
    now = asked[-1] + BACKOFF_MAX  # the next try falls due at the latest now
    assert _figures(sampler.sample(now)) == VLLM_FIGURES
    assert _figures(sampler.sample(now + 1.0)) == VLLM_FIGURES  # back to every tick
    assert len(sampler.warnings()) == 1  # the failures are still told
    sampler.close()


def test_an_unreachable_server_is_a_warning_and_readings_resume_when_it_is_back(server: FaultServer) -> None:
    server.metrics("vllm")
    sampler = _sampler(f"{server.url}/metrics")
    assert _figures(sampler.sample(0.0)) == VLLM_FIGURES
    server.down()
    assert sampler.sample(1.0) == []
    assert sampler.sample(2.0) == []
    server.up()
    server.metrics("tgi")
    assert _figures(sampler.sample(3.0)) == parse(TGI_METRICS_PAGE)
    assert sampler.warnings() == [
        f"{SOURCE}: no server metrics from {server.url}/metrics: could not connect (down, or TLS verification "
        "failed) (2 scrapes)"
    ]
    sampler.close()


def test_the_clients_token_reaches_metrics_and_no_warning_or_log_shows_it(
    server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.metrics("vllm", require_key=True)
    with_token = _sampler(f"{server.url}/metrics")
    assert _figures(with_token.sample(0.0)) == VLLM_FIGURES
    assert server.metrics_requests[-1]["authorization"] == f"Bearer {TOKEN}"

    wrong = _sampler(f"{server.url}/metrics", token="not-" + TOKEN)
    # Credentials in the URL (Basic auth, a token in the query) stay out of warnings too.
    parts = httpx.URL(server.url)
    url = f"http://someone:pass-{TOKEN}@{parts.host}:{parts.port}/metrics?token={TOKEN}"
    in_url = PrometheusSampler(SOURCE, url, httpx.Client(trust_env=False), timeout=2.0)
    with caplog.at_level(logging.DEBUG, logger="mlperf_llm_sut.telemetry.prometheus"):
        assert wrong.sample(0.0) == []
        assert in_url.sample(0.0) == []
    assert server.metrics_requests[-2]["authorization"] == f"Bearer not-{TOKEN}"
    warnings = wrong.warnings() + in_url.warnings()
    assert len(warnings) == 2 and all("HTTP 401" in warning for warning in warnings)
    assert in_url.warnings()[0].startswith(f"{SOURCE}: no server metrics from {server.url}/metrics: ")
    assert TOKEN not in "\n".join(warnings) and TOKEN not in caplog.text and "pass-" not in caplog.text
    for sampler in (with_token, wrong, in_url):
        sampler.close()


def test_a_closed_client_is_a_warning_not_an_exception(server: FaultServer) -> None:
    server.metrics("vllm")
    client = httpx.Client()
    sampler = PrometheusSampler(SOURCE, f"{server.url}/metrics", client)
    client.close()
    assert sampler.sample(0.0) == []
    assert len(sampler.warnings()) == 1


def test_a_bad_url_is_a_warning_not_an_exception() -> None:
    sampler = PrometheusSampler(SOURCE, "nonsense://nowhere/metrics", httpx.Client())
    assert sampler.sample(0.0) == []
    assert len(sampler.warnings()) == 1
    sampler.close()


def test_parse_cost_of_a_real_vllm_page_is_small() -> None:
    """The filter is what keeps it small: a whole real page is ~600 lines, mostly histogram buckets."""
    buckets = "".join(
        f'vllm:time_to_first_token_seconds_bucket{{engine="0",le="{k}.0",model_name="tiny"}} 0.0\n' for k in range(500)
    )
    page = VLLM_032_PAGE + buckets
    started = time.perf_counter()
    for _ in range(20):
        parse(page)
    assert (time.perf_counter() - started) / 20 < 0.01
