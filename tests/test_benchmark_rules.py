"""Benchmarks as data: official names, the Interactive scenario, effective settings and stray audit configs."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from rich.console import Console

from harness.single.config import build_config
from harness.single.results import RunResult
from harness.single.runner import run
from harness.single.settings import LoadGenConfig, build_settings
from mlperf_llm_sut.benchmarks import BENCHMARKS, DEFAULT_BENCHMARK, get_benchmark
from mlperf_llm_sut.common.errors import HarnessError
from tests.conftest import run_cli
from tests.scripted_replica import ScriptedReplica

FULL = 24576


def _run(tmp_path, **overrides):
    options = {"total_sample_count": 100, "warmup_samples": 0, "output_dir": tmp_path} | overrides
    return run(build_config(**options), console=Console(file=io.StringIO()), replica_factory=ScriptedReplica.factory())


def test_the_registry_has_the_official_llama2_names_and_the_rounds_default():
    assert {
        "llama2-70b-99",
        "llama2-70b-99.9",
        "llama2-70b-interactive-99",
        "llama2-70b-interactive-99.9",
    } <= set(BENCHMARKS)
    assert DEFAULT_BENCHMARK == "llama2-70b-99.9"
    assert [name for name, b in BENCHMARKS.items() if b.current_round and b.family == "llama2-70b"] == [
        "llama2-70b-99.9"
    ]
    bench = BENCHMARKS["llama2-70b-99.9"]
    assert bench.dataset_size == bench.performance_sample_count == FULL
    assert bench.rules("Interactive").ttft_ms == 450 and bench.rules("Interactive").tpot_ms == 40
    assert bench.rules("Server").ttft_ms == 2000 and bench.rules("Server").tpot_ms == 200
    assert [test.name for test in bench.compliance] == ["TEST06"]


@pytest.mark.parametrize("name, closest", [("llama2-70b", "llama2-70b-99"), ("bogus", None), ("llama2-70b-99.8", "99")])
def test_an_unknown_benchmark_is_one_error_naming_the_closest(name, closest):
    with pytest.raises(HarnessError) as err:
        get_benchmark(name)
    assert f"{name!r} is not an MLPerf benchmark" in str(err.value)
    if closest:
        assert "Did you mean llama2-70b-" in str(err.value) and closest in str(err.value)


@pytest.mark.parametrize("argv", [["--benchmark", "bogus"], ["--benchmark", "llama2-70b"]])
def test_the_cli_refuses_an_unknown_benchmark_before_running(argv):
    code, _, err = run_cli(*argv, timeout=120)
    assert code == 2 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "not an MLPerf benchmark" in errors[0]


def test_accuracy_cli_takes_the_same_benchmark_names(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "accuracy", "--accuracy-log", "x.json", "--dataset", "y.jsonl", "--benchmark", "bogus"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env=os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    assert proc.returncode == 2 and "not an MLPerf benchmark" in proc.stderr and "Traceback" not in proc.stderr


def test_interactive_is_loadgens_server_with_the_interactive_limits():
    built, _ = build_settings(LoadGenConfig(scenario="Interactive"), FULL)
    s = built.settings
    assert s.scenario.name == "Server"
    assert s.ttft_latency == 450_000_000 and s.tpot_latency == 40_000_000
    assert s.use_token_latencies and built.rules.conf_model == "llama2-70b-interactive"


def test_interactive_user_conf_keys_use_the_interactive_model_key(tmp_path):
    conf = tmp_path / "user.conf"
    conf.write_text("llama2-70b-interactive.Server.target_qps = 4.5\nllama2-70b.Server.target_qps = 9\n")
    built, warnings = build_settings(LoadGenConfig(scenario="Interactive", user_conf=conf), FULL)
    assert built.settings.server_target_qps == 4.5 and warnings == []
    conf.write_text("llama2-70b.Interactive.target_qps = 4.5\n")
    with pytest.raises(HarnessError, match=r"llama2-70b-interactive\.Server\.target_qps"):
        build_settings(LoadGenConfig(scenario="Interactive", user_conf=conf), FULL)


def test_interactive_benchmark_names_run_only_interactive():
    with pytest.raises(HarnessError, match=r"not a scenario of llama2-70b-interactive-99\.9"):
        build_config(benchmark="llama2-70b-interactive-99.9", scenario="Server")


def test_an_interactive_run_is_reported_as_interactive_with_token_latencies(tmp_path):
    report = _run(tmp_path, scenario="Interactive", target_qps=400.0, min_query_count=500, min_duration_ms=1000)
    assert report.record.scenario == "Interactive" and report.record.loadgen_scenario == "Server"
    assert report.run_dir.name.startswith("llama2-70b-99.9-Interactive-performance-")
    assert report.result.ttft_ms is not None and report.result.valid, report.result.invalid_reasons
    assert report.record.loadgen.effective["scenario"] == "Server"


def test_run_json_reports_loadgens_effective_settings_and_each_rule_they_break(tmp_path):
    report = _run(tmp_path, min_duration_ms=500)
    effective = report.record.loadgen.effective
    assert effective["min_duration_ms"] == 500 and effective["performance_sample_count"] == 100
    reasons = report.record.non_compliant
    assert any("effective min_duration_ms is 500" in r and ">= 600000" in r for r in reasons)
    assert any("effective performance_sample_count is 100" in r for r in reasons)
    assert report.record.compliant is False


def test_a_stray_audit_config_in_the_working_directory_is_not_applied(tmp_path, monkeypatch):
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    (workdir / "audit.config").write_text("*.*.min_query_count = 1\n*.*.accuracy_log_sampling_target = 100\n")
    monkeypatch.chdir(workdir)
    out = io.StringIO()
    config = build_config(total_sample_count=100, warmup_samples=0, output_dir=tmp_path / "runs")
    report = run(config, console=Console(file=out, width=200), replica_factory=ScriptedReplica.factory())
    effective = report.record.loadgen.effective
    assert effective["accuracy_log_sampling_target"] == 0 and effective["samples_per_query"] >= 600
    assert "is not applied" in out.getvalue()
    assert not (report.run_dir / "audit.config").exists()
    assert not any("audit" in w.lower() for w in report.record.loadgen.warnings)


def test_settings_that_loosen_the_token_latency_rules_are_not_compliant(tmp_path):
    # LoadGen keeps mlperf.conf's latency limits against a user.conf; turning token latencies off it allows.
    conf = tmp_path / "user.conf"
    conf.write_text("llama2-70b.Server.ttft_latency = 99999\nllama2-70b.Server.use_token_latencies = 0\n")
    built, _ = build_settings(LoadGenConfig(scenario="Server", user_conf=conf), FULL)
    assert built.non_compliant == ["use_token_latencies is off; llama2-70b-99.9 measures token latencies"]
    loose = {"use_token_latencies": True, "ttft_latency": 99_999_000_000, "tpot_latency": 40_000_000}
    (reason,) = BENCHMARKS["llama2-70b-99.9"].check_requested("Interactive", loose)
    assert reason == "ttft_latency is 99999 ms; llama2-70b-99.9 Interactive limits it to 450 ms"
    plain, _ = build_settings(LoadGenConfig(scenario="Interactive"), FULL)
    assert plain.non_compliant == []


def test_the_submission_check_holds_p99_token_latencies_to_the_limits():
    from harness.submission.tree import latency_problems

    bench = BENCHMARKS["llama2-70b-99.9"]
    fast = RunResult(valid=True, ttft_ms={"p99": 449.0}, tpot_ms={"p99": 39.9})
    assert latency_problems(bench, "Interactive", fast) == []
    slow_result = RunResult(valid=True, ttft_ms={"p99": 451.0}, tpot_ms={"p99": 40.0})
    slow = latency_problems(bench, "Interactive", slow_result)
    assert len(slow) == 2 and "TTFT p99 451 ms is not below the 450 ms limit" in slow[0]
    assert latency_problems(bench, "Offline", RunResult(valid=True)) == []
