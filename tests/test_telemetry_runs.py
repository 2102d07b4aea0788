"""Telemetry in a run: a real engine's stat logger, this process and its worker sampled through the test, the
test window's figures in run.json, the time series beside the logs, and the summary lines."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from harness.single.config import build_config
from harness.single.runner import run
from harness.single.sampling import SERIES_FILE
from harness.single.summary import print_summary
from mlperf_llm_sut.telemetry import metrics


@pytest.mark.engine
def test_a_run_records_what_its_engine_and_processes_did_during_the_test(tmp_path):
    config = build_config(scenario="Offline", output_dir=tmp_path, telemetry_interval=0.2)
    report = run(config, console=Console(file=io.StringIO()))
    assert report.result.valid, report.result.invalid_reasons
    telemetry = report.record.telemetry
    assert telemetry is not None and telemetry.interval == 0.2 and telemetry.window_seconds > 0
    engine = telemetry.replicas["replica-0"]
    # The embedded model's answers, counted by vLLM's stat logger over the test window.
    assert engine.generation_tokens and engine.generation_tokens >= report.record.samples.output_tokens * 0.9
    assert engine.prompt_tokens and engine.running_mean and engine.running_mean > 0
    assert engine.kv_cache_usage_peak is not None and 0 < engine.kv_cache_usage_peak <= 1
    # Every sample repeats a few of the data set's prompts: the prefix cache answers some of their tokens.
    assert engine.prefix_cache_hit_rate is not None and 0 <= engine.prefix_cache_hit_rate <= 1
    assert telemetry.processes["harness"].rss_peak_bytes
    assert not telemetry.gpus and telemetry.energy_joules is None  # no GPU here
    assert 0 < telemetry.sampling_cpu_seconds < report.record.wall_seconds

    series = [json.loads(line) for line in (report.run_dir / SERIES_FILE).read_text().splitlines()]
    assert {row["metric"] for row in series if row["source"] == "replica-0"} >= {
        metrics.RUNNING,
        metrics.KV_CACHE_USAGE,
        metrics.GENERATION_TOKENS,
    }
    assert json.loads((report.run_dir / "run.json").read_text())["telemetry"]["replicas"]["replica-0"]

    shown = io.StringIO()
    print_summary(report, Console(file=shown, width=200))
    assert "replica-0: KV cache" in shown.getvalue() and "sequences running on average" in shown.getvalue()


def test_a_zero_interval_samples_nothing(tmp_path):
    from tests.scripted_replica import ScriptedReplica

    config = build_config(output_dir=tmp_path, telemetry_interval=0)
    report = run(config, console=Console(file=io.StringIO()), replica_factory=ScriptedReplica.factory())
    assert report.record.telemetry is None and not (report.run_dir / SERIES_FILE).exists()
