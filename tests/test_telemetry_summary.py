"""A run's telemetry summed up over its LoadGen test window: gauges averaged and peaked inside it, counters
differenced across it, energy per output token, and the summary lines that explain a result."""

from __future__ import annotations

import pytest

from mlperf_llm_sut.telemetry import metrics
from mlperf_llm_sut.telemetry.series import Reading
from mlperf_llm_sut.telemetry.summary import Window, explain, summarize

WINDOW = Window(10.0, 20.0)


def _series(source: str, metric: str, points: list[tuple[float, float]]) -> list[Reading]:
    return [Reading(t, source, metric, v) for t, v in points]


def test_gauges_count_only_inside_the_window_and_counters_count_across_it():
    readings = [
        *_series("replica-0", metrics.KV_CACHE_USAGE, [(5, 0.0), (12, 0.5), (15, 1.0), (19, 0.99), (25, 0.0)]),
        *_series("replica-0", metrics.RUNNING, [(5, 100), (12, 8), (15, 16), (25, 100)]),
        # A counter's growth from its last reading before the window to its last inside: 40 - 10.
        *_series("replica-0", metrics.PREEMPTIONS, [(2, 3), (9, 10), (14, 25), (20, 40), (30, 90)]),
        *_series("replica-0", metrics.PREFIX_CACHE_QUERIES, [(9, 100), (20, 1100)]),
        *_series("replica-0", metrics.PREFIX_CACHE_HITS, [(9, 50), (20, 850)]),
    ]
    replica = summarize(readings, WINDOW, interval=1.0, output_tokens=None).replicas["replica-0"]
    assert replica.kv_cache_usage_mean == pytest.approx((0.5 + 1.0 + 0.99) / 3)
    assert replica.kv_cache_usage_peak == 1.0 and replica.kv_cache_full_share == pytest.approx(2 / 3)
    assert replica.running_mean == 12 and replica.waiting_mean is None
    assert replica.preemptions == 30
    assert replica.prefix_cache_hit_rate == pytest.approx(800 / 1000)


def test_energy_per_output_token_is_the_window_s_energy_over_loadgen_s_tokens():
    readings = [
        *_series("gpu:0", metrics.GPU_ENERGY, [(8, 1000.0), (10, 1500.0), (20, 5500.0), (22, 6000.0)]),
        *_series("gpu:1", metrics.GPU_ENERGY, [(10, 0.0), (20, 2000.0)]),
        *_series("gpu:0", metrics.GPU_POWER, [(12, 390.0), (18, 410.0)]),
    ]
    telemetry = summarize(readings, WINDOW, interval=1.0, output_tokens=12_000)
    assert telemetry.gpus["gpu:0"].energy_joules == 4000 and telemetry.gpus["gpu:1"].energy_joules == 2000
    assert telemetry.gpus["gpu:0"].power_mean_watts == 400 and telemetry.gpus["gpu:0"].power_peak_watts == 410
    assert telemetry.energy_joules == 6000 and telemetry.joules_per_output_token == pytest.approx(0.5)
    # 1,200 tokens/s on 600 W.
    assert telemetry.tokens_per_second_per_watt == pytest.approx(2.0)


def test_a_run_without_gpus_or_engine_metrics_has_none_of_their_figures():
    readings = _series("harness", metrics.CPU_PERCENT, [(12, 50.0), (14, 70.0)])
    readings += _series("harness", metrics.RSS, [(12, 1e9), (14, 2e9)])
    telemetry = summarize(readings, WINDOW, interval=1.0, output_tokens=500, warnings=["replica-0: no /metrics"])
    assert not telemetry.replicas and not telemetry.gpus and telemetry.energy_joules is None
    assert (
        telemetry.processes["harness"].cpu_percent_mean == 60 and telemetry.processes["harness"].rss_peak_bytes == 2e9
    )
    assert telemetry.warnings == ["replica-0: no /metrics"] and explain(telemetry) == []


def test_the_summary_says_what_shaped_the_result():
    readings = [
        *_series("replica-1", metrics.KV_CACHE_USAGE, [(11, 1.0), (12, 1.0), (13, 0.6)]),
        *_series("replica-1", metrics.PREEMPTIONS, [(10, 0), (20, 1204)]),
        *_series("replica-1", metrics.PREFIX_CACHE_QUERIES, [(10, 0), (20, 1000)]),
        *_series("replica-1", metrics.PREFIX_CACHE_HITS, [(10, 0), (20, 900)]),
        *_series("gpu:0", metrics.GPU_ENERGY, [(10, 0), (20, 3000)]),
    ]
    lines = explain(summarize(readings, WINDOW, interval=1.0, output_tokens=6000))
    assert lines[0] == "replica-1: KV cache full 67% of the test, 1,204 preemptions, prefix cache hit rate 90%"
    assert "90% of the prompt tokens came from the prefix cache" in lines[1]
    assert "--engine-arg enable_prefix_caching=false" in lines[1]
    assert lines[2] == "energy: 3,000 J over the test, 0.5 J per output token (2 tokens/s per W)"
