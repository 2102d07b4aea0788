"""`python -m harness compare`: two runs side by side, and a planted regression caught by the exit code."""

from __future__ import annotations

import io
import json
import shutil

import pytest
from rich.console import Console

from harness.research.regression import compare_dirs
from harness.single.config import build_config
from harness.single.runner import run
from mlperf_llm_sut.common.typed_json import to_json
from mlperf_llm_sut.telemetry.summary import ReplicaTelemetry, Telemetry
from tests.conftest import run_cli
from tests.scripted_replica import ScriptedReplica


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """A real Server run (LoadGen, runner, responder) with a scripted replica."""
    config = build_config(
        scenario="Server",
        output_dir=tmp_path_factory.mktemp("runs"),
        warmup_samples=0,
        target_qps=200,
        min_duration_ms=0,
        min_query_count=500,
        total_sample_count=100,
    )
    report = run(config, console=Console(file=io.StringIO()), replica_factory=ScriptedReplica.factory())
    assert report.result.valid, report.result.invalid_reasons
    return report.run_dir


def _candidate(baseline, tmp_path, **result_changes):
    candidate = tmp_path / "candidate"
    shutil.copytree(baseline, candidate)
    record = json.loads((candidate / "run.json").read_text())
    record["result"].update(result_changes)
    (candidate / "run.json").write_text(json.dumps(record))
    return candidate, record


def test_a_run_compared_with_itself_has_no_regression(baseline):
    code, out, _ = run_cli("compare", str(baseline), str(baseline))
    assert code == 0, out
    assert "no regression in 1 compared runs" in out


def test_a_planted_throughput_drop_is_a_regression_and_exits_1(baseline, tmp_path):
    before = json.loads((baseline / "run.json").read_text())["result"]["tokens_per_second"]
    candidate, _ = _candidate(baseline, tmp_path, tokens_per_second=before * 0.9)
    code, out, _ = run_cli("compare", str(baseline), str(candidate))
    assert code == 1
    assert "REGRESSION" in out and "1 regressions" in out
    # Allowed for that figure, it passes.
    code, out, _ = run_cli("compare", str(baseline), str(candidate), "--max-regression", "tokens_per_second=15%")
    assert code == 0, out


def test_a_run_that_became_invalid_or_slower_to_first_token_is_a_regression(baseline, tmp_path):
    record = json.loads((baseline / "run.json").read_text())
    ttft = dict(record["result"]["ttft_ms"], p99=record["result"]["ttft_ms"]["p99"] * 1.5)
    candidate, _ = _candidate(baseline, tmp_path, valid=False, ttft_ms=ttft)
    code, out, _ = run_cli("compare", str(baseline), str(candidate))
    assert code == 1
    assert "2 regressions" in out


def _sampled(baseline, path, joules_per_output_token, preemptions, usage):
    """A copy of `baseline` whose run.json has the telemetry of two replicas."""
    shutil.copytree(baseline, path)
    record = json.loads((path / "run.json").read_text())
    record["telemetry"] = to_json(
        Telemetry(
            interval=1.0,
            window_seconds=60.0,
            replicas={
                "replica-0": ReplicaTelemetry(kv_cache_usage_mean=usage, preemptions=preemptions),
                "replica-1": ReplicaTelemetry(kv_cache_usage_mean=usage, preemptions=preemptions),
            },
            energy_joules=1000.0,
            joules_per_output_token=joules_per_output_token,
            tokens_per_second_per_watt=1 / joules_per_output_token,
        )
    )
    (path / "run.json").write_text(json.dumps(record))
    return path


def test_telemetry_of_both_runs_is_shown_with_its_change_and_not_gated(baseline, tmp_path):
    before = _sampled(baseline, tmp_path / "before", 0.5, 10, 0.4)
    after = _sampled(baseline, tmp_path / "after", 0.75, 30, 0.6)
    [pair] = compare_dirs(before, after, {"*": 0.02})
    changes = {change.figure: change for change in pair.changes}
    assert (changes["joules_per_output_token"].baseline, changes["joules_per_output_token"].candidate) == (0.5, 0.75)
    assert changes["joules_per_output_token"].change == pytest.approx(0.5)
    assert (changes["preemptions"].baseline, changes["preemptions"].candidate) == (20, 60)  # summed over replicas
    assert changes["preemptions"].change == pytest.approx(2.0)
    assert changes["kv_cache_usage_mean"].change == pytest.approx(0.5)
    assert not pair.regressions  # shown, not gated
    code, out, _ = run_cli("compare", str(before), str(after))
    assert code == 0, out
    assert "joules_per_output_token" in out and "+50.0%" in out and "+200.0%" in out


def test_telemetry_is_left_out_where_one_run_has_none(baseline, tmp_path):
    sampled = _sampled(baseline, tmp_path / "sampled", 0.5, 10, 0.4)
    old, _ = _candidate(baseline, tmp_path)  # as a run recorded before telemetry
    record = json.loads((old / "run.json").read_text())
    record.pop("telemetry", None)
    (old / "run.json").write_text(json.dumps(record))
    for first, second in ((sampled, old), (old, sampled)):
        [pair] = compare_dirs(first, second, {"*": 0.02})
        figures = {change.figure for change in pair.changes}
        assert "tokens_per_second" in figures
        assert not figures & {"joules_per_output_token", "preemptions", "kv_cache_usage_mean"}


@pytest.mark.parametrize(
    ("option", "message"),
    [("speed=5%", "no figure 'speed'"), ("lots", "give a share like 2% or 0.02")],
)
def test_a_bad_threshold_is_one_error(baseline, option, message):
    code, out, _ = run_cli("compare", str(baseline), str(baseline), "--max-regression", option)
    assert code == 2
    assert message in out and "Traceback" not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "RUN", "--output", "/etc/passwd/report"], "cannot create the report folder /etc/passwd/report"),
        (["report", "/nonexistent", "--output", "OUT"], "/nonexistent is neither a run directory nor a folder"),
        (["sweep", "/tmp"], "sweep plan /tmp is a directory, not a file; give a .yaml or .toml plan"),
        (["compare", "/nonexistent", "RUN"], "/nonexistent is neither a run directory (run.json) nor a sweep"),
    ],
)
def test_research_commands_given_bad_paths_say_so_in_one_line(baseline, tmp_path, args, message):
    args = [str(baseline) if a == "RUN" else str(tmp_path / "out") if a == "OUT" else a for a in args]
    code, out, err = run_cli(*args)
    assert code == 2
    assert message in out + err and "Traceback" not in out + err
