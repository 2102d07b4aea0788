"""`--target-qps search`: the highest Server target QPS whose run is VALID, and its curve."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.research.peak import search_peak
from harness.single.config import RunConfig, build_config
from harness.single.results import RunResult
from harness.single.runner import RunReport
from mlperf_llm_sut.common.errors import HarnessError
from tests.conftest import run_cli


def test_the_search_brackets_then_bisects_to_within_its_tolerance_and_runs_the_peak_in_full(tmp_path):
    """The search's own logic, against a system whose runs are VALID up to 37 QPS exactly."""
    capacity = 37.0
    runs: list[RunConfig] = []

    def system(config: RunConfig) -> RunReport:
        runs.append(config)
        config.output_dir.mkdir(parents=True, exist_ok=True)
        qps = config.loadgen.target_qps
        assert qps is not None
        valid = qps <= capacity
        latency = {"p50": qps, "p90": qps, "p99": qps * 2}
        result = RunResult(valid, tokens_per_second=qps * 10, ttft_ms=latency, tpot_ms=latency)
        if not valid:
            result.invalid_reasons = ["latency constraints not met: lower the target QPS"]
        return RunReport(config.output_dir, result, {})

    config = build_config(scenario="Server", output_dir=tmp_path, min_duration_ms=20_000, min_query_count=2000)
    search = search_peak(config, offline_samples_per_second=20.0, tolerance=0.05, max_runs=10, runner=system)
    tried = [step.target_qps for step in search.steps]
    assert tried[:3] == [10.0, 15.0, 22.5]  # from half the Offline rate, up by 1.5x while VALID
    assert len(tried) <= 10
    assert search.peak_qps is not None and capacity / 1.05 <= search.peak_qps <= capacity
    # Search runs are shortened; the final run keeps the configuration's own settings.
    assert all(run.loadgen.min_duration_ms == 20_000 and run.loadgen.min_query_count == 500 for run in runs[:-1])
    final = runs[-1].loadgen
    assert (final.target_qps, final.min_duration_ms, final.min_query_count) == (search.peak_qps, 20_000, 2000)
    saved = json.loads((search.directory / "search.json").read_text())
    assert saved["peak_qps"] == search.peak_qps and len(saved["steps"]) == len(tried)
    assert all(step["reasons"] for step in saved["steps"] if not step["valid"])
    assert (search.directory / "search.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target-qps", "search"], "--target-qps search is for Server and Interactive"),
        (["--scenario", "Server", "--search-from", "100"], "--search-from goes with --target-qps search"),
        (["--scenario", "Server", "--target-qps", "search", "--search-from", "fast"], "neither a number nor a run"),
    ],
)
def test_search_options_used_wrongly_are_one_error(tmp_path, args, message):
    code, _, err = run_cli(*args, "--output-dir", str(tmp_path))
    assert code == 2
    assert message in err and "Traceback" not in err
    assert not list(tmp_path.glob("*/run.json"))


@pytest.mark.engine
def test_the_peak_of_a_slowed_replica_is_found_below_what_it_can_do(tmp_path):
    # 16 sequences at a time, exactly 8 tokens each, every engine step at least 20 ms: at most
    # 16 / (8 x 0.02) = 100 samples a second, whatever the machine.
    config = build_config(
        scenario="Server",
        output_dir=tmp_path,
        engine={"max_num_seqs": 16},
        generation={"max_new_tokens": 8, "min_new_tokens": 8},
        step_delays={0: 0.02},
        min_duration_ms=2000,
        min_query_count=500,
    )
    search = search_peak(config, offline_samples_per_second=80.0, tolerance=0.35, max_runs=3)
    assert search.peak_qps is not None and 10 <= search.peak_qps <= 100
    invalid = [step for step in search.steps if not step.valid]
    assert all(step.target_qps > search.peak_qps for step in invalid)
    assert search.final is not None
    record = json.loads((Path(search.final.run_dir) / "run.json").read_text())
    assert record["loadgen"]["effective"]["target_qps"] == pytest.approx(search.peak_qps)
    assert record["samples"]["issued"] == record["samples"]["completed"]


def test_a_peak_that_does_not_hold_in_the_full_run_steps_back_to_the_next_valid_target(tmp_path):
    """Full runs are VALID only up to 34 QPS, search runs up to 37: the final run steps back."""

    def system(config: RunConfig) -> RunReport:
        config.output_dir.mkdir(parents=True, exist_ok=True)
        qps = config.loadgen.target_qps or 0.0
        full = config.loadgen.min_query_count == 2000
        return RunReport(config.output_dir, RunResult(qps <= (34.0 if full else 37.0)), {})

    config = build_config(scenario="Server", output_dir=tmp_path, min_duration_ms=20_000, min_query_count=2000)
    search = search_peak(config, offline_samples_per_second=20.0, tolerance=0.05, max_runs=10, runner=system)
    assert [final["valid"] for final in search.finals] == [False, False, True]
    assert search.peak_qps == search.finals[-1]["target_qps"] <= 34.0
    assert search.final is not None and search.final.result.valid


def test_without_an_offline_rate_a_short_offline_probe_gives_the_first_estimate(tmp_path):
    """The probe is a calibrated Offline run of at most 10 s; the search starts at half its samples/s."""
    runs: list[RunConfig] = []

    def system(config: RunConfig) -> RunReport:
        runs.append(config)
        config.output_dir.mkdir(parents=True, exist_ok=True)
        if config.loadgen.scenario == "Offline":
            return RunReport(config.output_dir, RunResult(True, samples_per_second=24.0), {})
        return RunReport(config.output_dir, RunResult((config.loadgen.target_qps or 0.0) <= 20.0), {})

    config = build_config(scenario="Server", output_dir=tmp_path, min_duration_ms=600_000, min_query_count=2000)
    search = search_peak(config, tolerance=0.1, max_runs=6, runner=system)

    probe = runs[0].loadgen
    assert (probe.scenario, probe.calibrate, probe.target_qps, probe.min_duration_ms) == ("Offline", True, None, 10_000)
    assert runs[0].output_dir == search.directory / "probe"
    assert search.steps[0].target_qps == 12.0 and search.estimate_from == "an Offline probe run"
    assert search.peak_qps is not None and 20.0 / 1.1 <= search.peak_qps <= 20.0
    assert json.loads((search.directory / "search.json").read_text())["estimate_from"] == "an Offline probe run"


def test_a_probe_without_throughput_is_one_error_naming_its_run(tmp_path):
    def system(config: RunConfig) -> RunReport:
        config.output_dir.mkdir(parents=True, exist_ok=True)
        return RunReport(config.output_dir, RunResult(False, invalid_reasons=["2 samples failed"]), {})

    config = build_config(scenario="Server", output_dir=tmp_path)
    with pytest.raises(HarnessError, match=r"the Offline probe run gave no throughput to start from: see .*probe"):
        search_peak(config, runner=system)


def test_search_runs_are_never_longer_than_what_the_user_conf_or_the_demo_sets(tmp_path):
    """Search runs are shortened to at most 60 s and 500 queries; a configuration whose own settings are shorter
    (in its user.conf, or the embedded model's demo settings) keeps its own."""
    runs: list[RunConfig] = []

    def system(config: RunConfig) -> RunReport:
        runs.append(config)
        config.output_dir.mkdir(parents=True, exist_ok=True)
        return RunReport(config.output_dir, RunResult((config.loadgen.target_qps or 0.0) <= 20.0), {})

    conf = tmp_path / "user.conf"
    conf.write_text("*.Server.min_duration = 5000\n*.Server.min_query_count = 300\n")
    for config, own in (
        (build_config(scenario="Server", output_dir=tmp_path / "conf", user_conf=conf), (5000, 300)),
        (build_config(scenario="Server", output_dir=tmp_path / "demo"), (10_000, 500)),
    ):
        runs.clear()
        search_peak(config, offline_samples_per_second=20.0, tolerance=0.2, max_runs=4, runner=system)
        assert {(run.loadgen.min_duration_ms, run.loadgen.min_query_count) for run in runs[:-1]} == {own}
