"""The names readings go under, whichever source they come from (vLLM's stat logger or its `/metrics`, TGI's,
Triton's, NVML, psutil): a summary or a plot asks for one name, not for each server's spelling of it."""

from __future__ import annotations

# Engine and server: gauges (the value now) and counters (`_total`: cumulative since the engine started).
RUNNING = "running_requests"
WAITING = "waiting_requests"
KV_CACHE_USAGE = "kv_cache_usage"
"""The fraction (0-1) of the KV cache's blocks in use."""
PREEMPTIONS = "preemptions_total"
PREFIX_CACHE_QUERIES = "prefix_cache_queries_total"
"""Prompt tokens looked up in the prefix cache."""
PREFIX_CACHE_HITS = "prefix_cache_hits_total"
"""Of those, tokens found there."""
PROMPT_TOKENS = "prompt_tokens_total"
GENERATION_TOKENS = "generation_tokens_total"

# Hardware, per GPU.
GPU_UTILIZATION = "gpu_utilization"
"""The fraction (0-1) of the last sample period in which a kernel ran (NVML's utilization.gpu)."""
GPU_MEMORY_USED = "gpu_memory_used_bytes"
GPU_POWER = "gpu_power_watts"
GPU_ENERGY = "gpu_energy_joules"
"""Cumulative since the sampler started."""

# Processes: the harness's and each engine worker's.
CPU_PERCENT = "cpu_percent"
"""Of one core, as psutil counts it (200 = two cores busy)."""
RSS = "rss_bytes"

COUNTERS = frozenset(
    {PREEMPTIONS, PREFIX_CACHE_QUERIES, PREFIX_CACHE_HITS, PROMPT_TOKENS, GENERATION_TOKENS, GPU_ENERGY}
)
"""Metrics that only grow: a window's figure is the difference of its ends, not a mean."""
