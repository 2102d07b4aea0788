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


SCENARIOS = ("Offline", "Server")


def _start_example(folder: Path, scenario: str) -> subprocess.Popen[str]:
    """The script in a folder of its own, as a user runs it: nothing of the repository on its path but the
    installed packages."""
    folder.mkdir()
    user_conf = folder / "user.conf"
    user_conf.write_text(USER_CONF)
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
        str(folder / "logs"),
        *EMBEDDED_ENGINE,
    ]
    return subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def example_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, str, Path]]:
    """Both scenarios at once: each waits on its engine's start-up and its Server schedule more than it computes."""
    root = tmp_path_factory.mktemp("example")
    started = {scenario: _start_example(root / scenario, scenario) for scenario in SCENARIOS}
    runs = {}
    try:
        for scenario, proc in started.items():
            out, err = proc.communicate(timeout=600)
            runs[scenario] = (proc.returncode, out, err, root / scenario / "logs")
    finally:
        for proc in started.values():
            proc.kill()
    return runs


@pytest.mark.engine
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_reference_main_flow_runs_loadgen_through_local_vllm(example_runs, scenario):
    code, out, err, logs = example_runs[scenario]
    assert code == 0, out[-3000:] + err[-3000:]
    answered = re.search(r"(\d+) of (\d+) samples answered, (\d+) failed", out)
    assert answered, out[-3000:]
    completed, issued, failed = map(int, answered.groups())
    assert completed == issued and failed == 0 and issued % SAMPLES == 0
    assert f"replica-0: {issued} samples" in out
    # LoadGen's own view: its summary (copied to stdout, as the reference asks) and its logs, with no error.
    summary = (logs / "mlperf_log_summary.txt").read_text()
    assert f"Scenario : {scenario}" in summary
    assert "No errors encountered during test." in summary
    assert "tokens per second" in summary.lower()  # LoadGen counted the output tokens of each answer
    detail = (logs / "mlperf_log_detail.txt").read_text()
    # What LoadGen itself counted: Offline's one query of every sample, or Server's queries, one sample each.
    key = "generated_samples_per_query" if scenario == "Offline" else "result_query_count"
    assert f'"key": "{key}", "value": {issued},' in detail


def test_the_example_given_a_missing_data_set_says_so_in_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--model-path", str(embedded.MODEL_DIR), "--dataset-path", "missing.pkl"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [line for line in proc.stderr.strip().splitlines() if "error:" in line]
    assert "error: dataset missing.pkl does not exist" in proc.stderr


def test_the_library_guide_shows_the_example_that_the_tests_run():
    """docs/library.md includes the script itself, so the guide cannot drift from what is tested."""
    assert '--8<-- "examples/loadgen_main.py"' in (ROOT / "docs" / "library.md").read_text()
