"""Two runs side by side: the figures people compare (validity, throughput, p99 latencies, accuracy, and where
both runs sampled them the energy per output token, preemptions and KV cache usage), and in accuracy mode the
share of samples whose output tokens are identical. A rerun is judged by it, and the
regression gate (`python -m harness compare`) reads it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.single.record import RunRecord, read_samples
from mlperf_llm_sut.telemetry.summary import Telemetry

TELEMETRY_FIGURES = ("joules_per_output_token", "preemptions", "kv_cache_usage_mean")
"""The telemetry figures two runs are compared by, where both have them (`telemetry_figures`)."""


@dataclass
class Comparison:
    figures: dict[str, tuple[Any, Any]]
    """figure -> (before, after)."""
    identical_outputs: float | None
    """Accuracy mode: the share of samples whose output tokens are the same both times."""
    compared_samples: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def compare_runs(
    before_dir: Path,
    before: RunRecord,
    after_dir: Path,
    after: RunRecord,
    *,
    before_outputs: dict[int, list[int]] | None = None,
) -> Comparison:
    """The figures of two runs; in accuracy mode also their output tokens (`before_outputs`: the first run's,
    when they were read already)."""
    old, new = before.result, after.result
    figures: dict[str, tuple[Any, Any]] = {
        "valid": (old.valid, new.valid),
        "tokens_per_second": (old.tokens_per_second, new.tokens_per_second),
        "samples_per_second": (old.samples_per_second, new.samples_per_second),
    }
    for name, was, now in (("ttft_ms", old.ttft_ms, new.ttft_ms), ("tpot_ms", old.tpot_ms, new.tpot_ms)):
        if was and now:
            figures[f"{name} p99"] = (was["p99"], now["p99"])
    was_sampled, now_sampled = telemetry_figures(before.telemetry), telemetry_figures(after.telemetry)
    for name in TELEMETRY_FIGURES:
        if was_sampled[name] is not None and now_sampled[name] is not None:
            figures[name] = (was_sampled[name], now_sampled[name])
    if before.accuracy and after.accuracy:
        for metric in ("rouge1", "rouge2", "rougeL", "tokens_per_sample"):
            figures[metric] = (before.accuracy.metrics[metric], after.accuracy.metrics[metric])
    identical, compared = None, 0
    if before.mode == "accuracy":
        first = read_outputs(before_dir) if before_outputs is None else before_outputs
        second = read_outputs(after_dir)
        common = set(first) & set(second)
        compared = len(common)
        identical = sum(first[i] == second[i] for i in common) / compared if compared else None
    return Comparison(figures, identical, compared)


def telemetry_figures(telemetry: Telemetry | None) -> dict[str, Any]:
    """A run's telemetry in single figures (None where it has none, as a run recorded before telemetry):
    the energy per output token and tokens/s per W, the preemptions of all replicas, and the mean over the
    replicas of their mean KV cache usage (0-1) and prefix cache hit rate (0-1)."""
    replicas = list(telemetry.replicas.values()) if telemetry else []
    preemptions = [r.preemptions for r in replicas if r.preemptions is not None]
    usage = [r.kv_cache_usage_mean for r in replicas if r.kv_cache_usage_mean is not None]
    hits = [r.prefix_cache_hit_rate for r in replicas if r.prefix_cache_hit_rate is not None]
    return {
        "joules_per_output_token": telemetry.joules_per_output_token if telemetry else None,
        "tokens_per_second_per_watt": telemetry.tokens_per_second_per_watt if telemetry else None,
        "preemptions": sum(preemptions) if preemptions else None,
        "kv_cache_usage_mean": sum(usage) / len(usage) if usage else None,
        "prefix_cache_hit_rate": sum(hits) / len(hits) if hits else None,
    }


def read_outputs(run_dir: Path) -> dict[int, list[int]]:
    """Each sample's output token ids (by QSL index, its first answer), from the run's samples.jsonl."""
    outputs: dict[int, list[int]] = {}
    for row in read_samples(run_dir):
        if "output_token_ids" in row:
            outputs.setdefault(row["qsl_idx"], row["output_token_ids"])
    return outputs
