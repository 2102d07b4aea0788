"""Real LoadGen runs against a scripted in-process replica: the answer path and its faults."""

from __future__ import annotations

import io
import json

import numpy as np
from rich.console import Console

from accuracy.log import read_accuracy_log
from harness.single.config import build_config
from harness.single.runner import run
from tests.conftest import read_samples
from tests.scripted_replica import ScriptedReplica, tokens_for


def _run(tmp_path, replica_factory, **overrides):
    options = {"total_sample_count": 100, "warmup_samples": 0} | overrides
    config = build_config(output_dir=tmp_path, **options)
    return run(config, console=Console(file=io.StringIO()), replica_factory=replica_factory)


def test_accuracy_log_holds_each_sample_once_as_int32_with_n_tokens(tmp_path):
    report = _run(tmp_path, ScriptedReplica.factory(), mode="accuracy")
    outputs = read_accuracy_log(report.run_dir / "mlperf_log_accuracy.json", dtype="int32")
    assert sorted(outputs) == list(range(100))
    for index, data in outputs.items():
        assert data.tolist() == tokens_for(index)
    rows = read_samples(report.run_dir)
    assert all(row["n_tokens"] == len(outputs[row["qsl_idx"]]) for row in rows)
    assert report.result.valid


def test_server_first_token_is_the_first_output_token(tmp_path):
    report = _run(tmp_path, ScriptedReplica.factory(), scenario="Server", mode="accuracy", target_qps=500.0)
    outputs = read_accuracy_log(report.run_dir / "mlperf_log_accuracy.json")
    rows = read_samples(report.run_dir)
    assert len(rows) == 100
    assert all(row["first_token"] == outputs[row["qsl_idx"]][0] for row in rows)


def test_failed_samples_are_answered_so_the_run_ends_invalid_with_the_reason(tmp_path):
    failing = {0, 17, 42}
    report = _run(tmp_path, ScriptedReplica.factory(fail=failing), min_query_count=100, min_duration_ms=0)
    samples = report.record.samples
    assert samples.issued == samples.completed + samples.failed
    assert samples.unanswered == 0 and samples.failed >= len(failing)
    assert not report.result.valid
    reasons = report.result.invalid_reasons
    assert any("samples failed (" in reason and "scripted failure" in reason for reason in reasons)
    on_disk = json.loads((report.run_dir / "run.json").read_text())
    assert on_disk["result"]["valid"] is False


def test_a_second_answer_for_a_sample_is_dropped_and_reported(tmp_path):
    report = _run(tmp_path, ScriptedReplica.factory(duplicate={5}), mode="accuracy")
    entries = json.loads((report.run_dir / "mlperf_log_accuracy.json").read_text())
    assert sum(1 for e in entries if e["qsl_idx"] == 5) == 1
    assert report.record.samples.duplicates == 1
    assert not report.result.valid
    assert "1 duplicate answers were dropped" in report.result.invalid_reasons


def test_fast_server_run_is_valid_and_reports_ttft_tpot_percentiles(tmp_path):
    report = _run(
        tmp_path,
        ScriptedReplica.factory(),
        scenario="Server",
        target_qps=400.0,
        min_query_count=500,
        min_duration_ms=1000,
    )
    result = report.result
    assert result.valid, result.invalid_reasons
    assert set(result.ttft_ms) == {"p50", "p90", "p99"} and set(result.tpot_ms) == {"p50", "p90", "p99"}
    assert result.ttft_ms["p50"] <= result.ttft_ms["p99"]
    assert result.tokens_per_second > 0 and result.samples_per_second > 0


def test_too_short_a_run_is_invalid_and_says_why(tmp_path):
    report = _run(tmp_path, ScriptedReplica.factory(), min_query_count=100, min_duration_ms=60_000, target_qps=1.0)
    assert not report.result.valid
    assert any("minimum duration not met" in reason for reason in report.result.invalid_reasons)


def test_run_json_records_what_a_submitter_needs(tmp_path):
    report = _run(tmp_path, ScriptedReplica.factory())
    record = json.loads((report.run_dir / "run.json").read_text())
    assert record["scenario"] == "Offline" and record["mode"] == "performance"
    assert record["benchmark"] == "llama2-70b-99.9"
    assert record["versions"]["mlcommons-loadgen"]
    assert record["loadgen"]["seeds"]["qsl_rng_seed"] == 2085463073848966840
    assert record["dataset"]["sha256"] and record["dataset"]["sample_count"] == 600
    assert record["dataset"]["total_sample_count"] == 100
    assert record["config"]["engine"]["model"].endswith("tiny-llama")
    assert record["compliant"] is False and record["non_compliant"]
    assert {"valid", "tokens_per_second", "samples_per_second"} <= set(record["result"])
    for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlperf_log_accuracy.json"):
        assert (report.run_dir / name).is_file()
    assert np.isfinite(record["result"]["tokens_per_second"])


def test_the_demo_is_valid_however_fast_the_replica(tmp_path):
    """A replica ~40x faster than vLLM on 2 CPU cores: a fixed 600-sample query would end before the
    1 s minimum; the calibrated one outlasts it."""
    report = _run(tmp_path, ScriptedReplica.factory(delay=0.00005), total_sample_count=None)
    assert report.result.valid, report.result.invalid_reasons
    calibration = report.record.calibration
    assert calibration is not None
    assert calibration.samples == 600 and calibration.samples_per_second > 5000
    effective = report.record.loadgen.effective
    assert effective["samples_per_query"] > 600
    assert report.record.wall_seconds >= effective["min_duration_ms"] / 1000


def test_target_qps_auto_is_reported_and_non_compliant(tmp_path):
    from mlperf_llm_sut.common import embedded

    options = {"model": embedded.MODEL_DIR, "target_qps": "auto", "min_duration_ms": 500, "min_query_count": 100}
    report = _run(tmp_path, ScriptedReplica.factory(), **options)
    assert report.record.calibration.offline_expected_qps > 0
    assert any(r.startswith("--target-qps auto") for r in report.record.non_compliant)
    assert report.result.valid, report.result.invalid_reasons


def test_target_qps_auto_is_for_offline_only():
    import pytest

    from mlperf_llm_sut.common.errors import HarnessError

    with pytest.raises(HarnessError, match="calibrates the Offline query only"):
        build_config(scenario="Server", target_qps="auto")


def test_the_users_settings_win_over_the_demos_and_the_summary_names_each_source(tmp_path):
    """The embedded model with a user.conf (its minimum duration) and an override (its query count): LoadGen runs
    with those, the demo fills in only the expected QPS (by calibration), and the summary says where each came from."""
    from harness.single.summary import print_summary

    conf = tmp_path / "user.conf"
    conf.write_text("*.Offline.min_duration = 2000\nllama3_1-8b.Offline.min_query_count = 50\n")
    options = {"benchmark": "llama3.1-8b", "user_conf": conf, "min_query_count": 700, "total_sample_count": None}
    report = _run(tmp_path / "runs", ScriptedReplica.factory(), **options)
    assert report.result.valid, report.result.invalid_reasons
    effective = report.record.loadgen.effective
    assert effective["min_duration_ms"] == 2000 and effective["samples_per_query"] >= 700
    assert report.record.wall_seconds >= 2.0
    sources = report.record.loadgen.sources
    assert (sources["min_duration_ms"], sources["min_query_count"]) == ("user.conf", "--min-query-count")
    assert sources["offline_expected_qps"] == "calibration"
    shown = Console(file=io.StringIO(), width=300)
    print_summary(report, shown)
    text = shown.file.getvalue()
    assert "min duration 2 s (user.conf), min queries 700 (--min-query-count)" in text
    assert "(calibration)" in text and "performance samples 300 (data set)" in text
