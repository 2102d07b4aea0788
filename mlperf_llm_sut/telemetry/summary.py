"""What the readings of a run say about its test window: per replica, per GPU and per process, the figures
that explain a result (a full KV cache, preemptions, a prefix cache that answered most prompts, the energy
each output token took), for run.json and for the lines of the run's summary."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mlperf_llm_sut.telemetry import metrics
from mlperf_llm_sut.telemetry.series import Reading

FULL_KV_CACHE = 0.99
"""A KV cache this full has no room for another sequence's blocks: vLLM preempts or queues."""
HIGH_PREFIX_HIT_RATE = 0.5
"""A prefix cache that answers this share of the prompt tokens has shaped the result: MLPerf's samples repeat
within a performance run (LoadGen draws them with replacement), and their prefills were mostly skipped."""


@dataclass(frozen=True)
class Window:
    """The LoadGen test, on the readings' clock (`time.monotonic()`)."""

    start: float
    end: float

    def __contains__(self, reading: Reading) -> bool:
        return self.start <= reading.time <= self.end

    @property
    def seconds(self) -> float:
        return max(self.end - self.start, 0.0)


@dataclass
class ReplicaTelemetry:
    """An engine's (or a server's) own figures over the test window; None where its source gave none."""

    kv_cache_usage_mean: float | None = None
    kv_cache_usage_peak: float | None = None
    kv_cache_full_share: float | None = None
    """The share of the window's readings with the cache at least `FULL_KV_CACHE` full."""
    running_mean: float | None = None
    """The mean running batch: requests the engine was generating for."""
    waiting_mean: float | None = None
    preemptions: int | None = None
    prefix_cache_hit_rate: float | None = None
    """Prompt tokens found in the prefix cache over those looked up, within the window."""
    prompt_tokens: int | None = None
    generation_tokens: int | None = None


@dataclass
class GpuTelemetry:
    utilization_mean: float | None = None
    memory_used_peak_bytes: float | None = None
    power_mean_watts: float | None = None
    power_peak_watts: float | None = None
    energy_joules: float | None = None
    """Energy over the window: the cumulative counter's difference between the window's ends."""


@dataclass
class ProcessTelemetry:
    cpu_percent_mean: float | None = None
    rss_peak_bytes: float | None = None


@dataclass
class Telemetry:
    """run.json's `telemetry`: the test window's figures, what kept a source from being read, and the sampling's
    own cost."""

    interval: float
    window_seconds: float
    replicas: dict[str, ReplicaTelemetry] = field(default_factory=dict)
    gpus: dict[str, GpuTelemetry] = field(default_factory=dict)
    processes: dict[str, ProcessTelemetry] = field(default_factory=dict)
    energy_joules: float | None = None
    """All GPUs' energy over the window."""
    joules_per_output_token: float | None = None
    tokens_per_second_per_watt: float | None = None
    sampling_cpu_seconds: float = 0.0
    """CPU time the sampling thread took, the whole run long."""
    warnings: list[str] = field(default_factory=list)
    window_start: float | None = None
    """The test window on the readings' clock (`time.monotonic()`, as telemetry.jsonl's `time`): where a plot of
    the series marks the test. None in records written before it was kept."""
    window_end: float | None = None


def summarize(
    readings: Iterable[Reading],
    window: Window,
    *,
    interval: float,
    output_tokens: int | None,
    sampling_cpu_seconds: float = 0.0,
    warnings: Sequence[str] = (),
) -> Telemetry:
    """The window's figures from every reading; `output_tokens`: what LoadGen counted over the test, for energy
    per token."""
    by_source: dict[str, dict[str, list[Reading]]] = defaultdict(lambda: defaultdict(list))
    for reading in readings:
        by_source[reading.source][reading.metric].append(reading)
    result = Telemetry(
        interval=interval,
        window_seconds=window.seconds,
        sampling_cpu_seconds=sampling_cpu_seconds,
        warnings=list(warnings),
        window_start=window.start,
        window_end=window.end,
    )
    for source, series in sorted(by_source.items()):
        if source.startswith("gpu:"):
            result.gpus[source] = _gpu(series, window)
        elif metrics.CPU_PERCENT in series or metrics.RSS in series:
            result.processes[source] = ProcessTelemetry(
                cpu_percent_mean=_mean(series.get(metrics.CPU_PERCENT, []), window),
                rss_peak_bytes=_peak(series.get(metrics.RSS, []), window),
            )
        else:
            result.replicas[source] = _replica(series, window)
    energies = [gpu.energy_joules for gpu in result.gpus.values() if gpu.energy_joules is not None]
    if energies:
        result.energy_joules = sum(energies)
        if output_tokens:
            result.joules_per_output_token = result.energy_joules / output_tokens
            if window.seconds > 0 and result.energy_joules > 0:
                # tokens/s over watts: tokens per joule, the same figure in the units people compare.
                result.tokens_per_second_per_watt = output_tokens / result.energy_joules
    return result


def _replica(series: dict[str, list[Reading]], window: Window) -> ReplicaTelemetry:
    usage = [r.value for r in series.get(metrics.KV_CACHE_USAGE, []) if r in window]
    queries = _delta(series.get(metrics.PREFIX_CACHE_QUERIES, []), window)
    hits = _delta(series.get(metrics.PREFIX_CACHE_HITS, []), window)
    return ReplicaTelemetry(
        kv_cache_usage_mean=sum(usage) / len(usage) if usage else None,
        kv_cache_usage_peak=max(usage) if usage else None,
        kv_cache_full_share=sum(u >= FULL_KV_CACHE for u in usage) / len(usage) if usage else None,
        running_mean=_mean(series.get(metrics.RUNNING, []), window),
        waiting_mean=_mean(series.get(metrics.WAITING, []), window),
        preemptions=_count(series.get(metrics.PREEMPTIONS, []), window),
        prefix_cache_hit_rate=hits / queries if queries and hits is not None else None,
        prompt_tokens=_count(series.get(metrics.PROMPT_TOKENS, []), window),
        generation_tokens=_count(series.get(metrics.GENERATION_TOKENS, []), window),
    )


def _gpu(series: dict[str, list[Reading]], window: Window) -> GpuTelemetry:
    return GpuTelemetry(
        utilization_mean=_mean(series.get(metrics.GPU_UTILIZATION, []), window),
        memory_used_peak_bytes=_peak(series.get(metrics.GPU_MEMORY_USED, []), window),
        power_mean_watts=_mean(series.get(metrics.GPU_POWER, []), window),
        power_peak_watts=_peak(series.get(metrics.GPU_POWER, []), window),
        energy_joules=_delta(series.get(metrics.GPU_ENERGY, []), window),
    )


def _mean(readings: Sequence[Reading], window: Window) -> float | None:
    values = [r.value for r in readings if r in window]
    return sum(values) / len(values) if values else None


def _peak(readings: Sequence[Reading], window: Window) -> float | None:
    values = [r.value for r in readings if r in window]
    return max(values) if values else None


def _delta(readings: Sequence[Reading], window: Window) -> float | None:
    """A counter's growth over the window: from its last reading at or before the start (the first inside when
    there is none) to its last at or before the end."""
    before = [r for r in readings if r.time <= window.start]
    inside = [r for r in readings if r in window]
    if not inside:
        return None
    first = before[-1] if before else inside[0]
    return max(inside[-1].value - first.value, 0.0)


def _count(readings: Sequence[Reading], window: Window) -> int | None:
    delta = _delta(readings, window)
    return None if delta is None else round(delta)


def explain(telemetry: Telemetry) -> list[str]:
    """The lines of the run's summary that explain its result, most telling first."""
    lines = []
    for name, replica in telemetry.replicas.items():
        said = []
        if replica.kv_cache_full_share:
            said.append(f"KV cache full {replica.kv_cache_full_share:.0%} of the test")
        elif replica.kv_cache_usage_peak is not None:
            said.append(f"KV cache at most {replica.kv_cache_usage_peak:.0%} full")
        if replica.preemptions:
            said.append(f"{replica.preemptions:,} preemptions")
        if replica.running_mean is not None:
            said.append(f"{replica.running_mean:.1f} sequences running on average")
        if replica.prefix_cache_hit_rate is not None:
            said.append(f"prefix cache hit rate {replica.prefix_cache_hit_rate:.0%}")
        if said:
            lines.append(f"{name}: {', '.join(said)}")
        if replica.prefix_cache_hit_rate is not None and replica.prefix_cache_hit_rate >= HIGH_PREFIX_HIT_RATE:
            lines.append(
                f"{name}: {replica.prefix_cache_hit_rate:.0%} of the prompt tokens came from the prefix cache, "
                "so repeated samples skipped most of their prefill; to measure without it, run with "
                "--engine-arg enable_prefix_caching=false"
            )
    if telemetry.joules_per_output_token is not None:
        lines.append(
            f"energy: {telemetry.energy_joules:,.0f} J over the test, {telemetry.joules_per_output_token:.3g} J per "
            f"output token ({telemetry.tokens_per_second_per_watt:.3g} tokens/s per W)"
        )
    return lines
