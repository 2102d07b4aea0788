"""The public systems under test in a LoadGen script of the user's own: examples/loadgen_main.py (the
MLCommons reference's main.py flow with `sut.LocalVLLM`) run as a script, with real LoadGen and a real
engine on the embedded model."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlperf_llm_sut.common import embedded
from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "loadgen_main.py"
# Short settings for a 2-core machine: a handful of queries, and a Server rate it keeps up with.
USER_CONF = """\
llama2-70b.Offline.min_duration = 0
llama2-70b.Offline.min_query_count = 24
llama2-70b.Offline.offline_expected_qps = 1
llama2-70b.Server.min_duration = 2000
llama2-70b.Server.min_query_count = 16
llama2-70b.Server.target_qps = 4
"""
SAMPLES = 24
"""The QSL's size: llama2-70b's sample_concatenate_permutation makes every query count a whole number of passes
over the performance samples, so this bounds both runs."""
EMBEDDED_ENGINE = [
    "--engine-arg",
    "max_model_len=2048",
    "--engine-arg",
    "enforce_eager=true",
    "--engine-arg",
    f"kv_cache_memory_bytes={embedded.KV_CACHE_BYTES}",
]


def _run_example(tmp_path: Path, scenario: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    user_conf = tmp_path / "user.conf"
    user_conf.write_text(USER_CONF)
    logs = tmp_path / "logs"
    command = [
        sys.executable,
        str(EXAMPLE),
        "--scenario",
        scenario,
        "--model-path",
        str(embedded.MODEL_DIR),
        "--dataset-path",
        str(embedded.DATASET),
        "--user-conf",
        str(user_conf),
        "--total-sample-count",
        str(SAMPLES),
        "--output-log-dir",
        str(logs),
        *EMBEDDED_ENGINE,
    ]
    # The script's own working directory, as a user runs it: nothing of the repository on its path but the
    # installed packages.
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    return proc, logs


@pytest.mark.engine
@pytest.mark.parametrize("scenario", ["Offline", "Server"])
def test_the_reference_main_flow_runs_loadgen_through_local_vllm(tmp_path, scenario):
    proc, logs = _run_example(tmp_path, scenario)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    answered = re.search(r"(\d+) of (\d+) samples answered, (\d+) failed", proc.stdout)
    assert answered, proc.stdout[-3000:]
    completed, issued, failed = map(int, answered.groups())
    assert completed == issued and failed == 0 and issued % SAMPLES == 0
    assert f"replica-0: {issued} samples" in proc.stdout
    # LoadGen's own view: its summary (copied to stdout, as the reference asks) and its logs, with no error.
    summary = (logs / "mlperf_log_summary.txt").read_text()
    assert f"Scenario : {scenario}" in summary
    assert "No errors encountered during test." in summary
    assert "tokens per second" in summary.lower()  # LoadGen counted the output tokens of each answer
    detail = (logs / "mlperf_log_detail.txt").read_text()
    # What LoadGen itself counted: Offline's one query of every sample, or Server's queries, one sample each.
    key = "generated_samples_per_query" if scenario == "Offline" else "result_query_count"
    assert f'"key": "{key}", "value": {issued},' in detail


def test_the_library_guide_shows_the_example_that_the_tests_run():
    """docs/library.md includes the script itself, so the guide cannot drift from what is tested."""
    assert '--8<-- "examples/loadgen_main.py"' in (ROOT / "docs" / "library.md").read_text()
