"""`python -m harness compare`: two runs side by side, and a planted regression caught by the exit code."""

from __future__ import annotations

import io
import json
import shutil

import pytest
from rich.console import Console

from harness.single.config import build_config
from harness.single.runner import run
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
