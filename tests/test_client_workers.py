"""Remote replicas whose HTTP clients run in client worker processes (`sut.client_worker`, `sut.client_replica`).

Real LoadGen runs against in-process fault servers (tests/fault_server.py) and real client worker processes; the
runs against real vLLM servers are in tests/test_remote_replicas.py, the faults in tests/test_remote_faults.py
(both now go through a client worker by default), the stop signals in tests/test_stopping.py.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from harness.single.config import build_config
from harness.single.runner import RunReport, run
from harness.single.sampling import SERIES_FILE
from mlperf_llm_sut.telemetry import metrics
from mlperf_llm_sut.telemetry.loop import read_jsonl
from mlperf_llm_sut.telemetry.prometheus import PrometheusSampler
from mlperf_llm_sut.telemetry.series import Reading
from scenarios.requests import GenerationRequest
from sut.client_protocol import Down, Results
from sut.client_worker import Outbox, SlotSink
from sut.remote_replica import AttemptBudget, LoopThread, RemoteStats
from tests.conftest import read_samples
from tests.fault_server import FaultServer, expected_token_ids
from tests.harness_process import HarnessProcess, session_processes

LOADGEN_STARTED = "*/mlperf_log_detail.txt"


def remote_run(tmp_path: Path, servers: list[FaultServer], **options: Any) -> RunReport:
    remote = {"endpoints": [s.url for s in servers], "served_model_name": "tiny"} | options.pop("remote", {})
    options.setdefault("total_sample_count", 120)
    options.setdefault("min_query_count", options["total_sample_count"])
    config = build_config(
        sut="remote", remote=remote, output_dir=tmp_path, save_outputs=True, min_duration_ms=0, **options
    )
    return run(config)


def assert_every_sample_answered_once_with_the_servers_tokens(report: RunReport, tokenizer, prompts) -> None:
    samples = report.record.samples
    assert samples.issued == samples.completed + samples.failed
    assert samples.duplicates == 0 and samples.unanswered == 0
    for row in read_samples(report.run_dir):
        if "error" not in row:
            assert row["output_token_ids"] == expected_token_ids(tokenizer, prompts[row["qsl_idx"]], 1024)


def no_client_workers_left() -> bool:
    return not [child for child in multiprocessing.active_children() if child.name.startswith("client-")]


def test_a_server_run_reads_its_streams_and_its_servers_metrics_in_a_client_worker_and_reports_the_first_token_hop(
    tokenizer, prompts, tmp_path, monkeypatch
):
    def not_here(self: PrometheusSampler, now: float) -> list[Reading]:
        raise AssertionError("a server's /metrics was read in LoadGen's process")

    monkeypatch.setattr(PrometheusSampler, "sample", not_here)  # in this process; the worker is a fresh one
    with FaultServer(tokenizer) as server:
        server.metrics("vllm")
        report = remote_run(tmp_path, [server], scenario="Server", target_qps=40, telemetry_interval=0.2)

    # A Server run this short is too short for LoadGen's early stopping to call it VALID: what counts is the samples.
    assert report.record.samples.failed == 0
    assert_every_sample_answered_once_with_the_servers_tokens(report, tokenizer, prompts)
    (row,) = report.record.replicas
    assert row.details["client_process"] == "client-0"
    hop = row.details["first_token_hop_ms"]
    # Milliseconds at most on a quiet loopback; the bound only says it is measured, not faked or unbounded.
    assert 0 < hop["p50"] <= hop["p99"] <= hop["max"] < 1000
    series = read_jsonl(report.run_dir / SERIES_FILE)
    assert any(r.source == "client-0 worker" and r.metric == metrics.CPU_PERCENT for r in series)
    # The worker read the server's page when the run's sampling asked, at its own times.
    telemetry = report.record.telemetry
    assert telemetry is not None and not telemetry.warnings, telemetry
    kv = [r for r in series if r.source == "replica-0" and r.metric == metrics.KV_CACHE_USAGE]
    assert len(kv) >= 3 and len({r.time for r in kv}) == len(kv)
    assert telemetry.replicas["replica-0"].kv_cache_usage_peak is not None
    assert no_client_workers_left()


def test_endpoints_are_dealt_over_the_client_processes_and_offline_work_moves_between_them(
    tokenizer, prompts, tmp_path
):
    # One slow server: the work it queued moves to the others, across processes, and each sample is answered once.
    with (
        FaultServer(tokenizer, token_delay=0.03) as slow,
        FaultServer(tokenizer) as a,
        FaultServer(tokenizer) as b,
    ):
        report = remote_run(tmp_path, [slow, a, b], remote={"client_processes": 2, "max_in_flight": 4})

    assert report.result.valid, report.result.invalid_reasons
    assert_every_sample_answered_once_with_the_servers_tokens(report, tokenizer, prompts)
    assert [row.details["client_process"] for row in report.record.replicas] == ["client-0", "client-1", "client-0"]
    assert (report.record.offline_stolen or {}).get("replica-0", 0) > 0
    assert no_client_workers_left()


def test_a_client_worker_killed_mid_run_fails_its_started_streams_and_moves_the_rest(tokenizer, prompts, tmp_path):
    killed: list[int] = []

    def kill_client_1() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            workers = [c for c in multiprocessing.active_children() if c.name == "client-1-worker"]
            if workers and list(tmp_path.glob(LOADGEN_STARTED)):
                time.sleep(0.5)
                assert workers[0].pid is not None
                os.kill(workers[0].pid, signal.SIGKILL)
                killed.append(workers[0].pid)
                return
            time.sleep(0.02)

    with FaultServer(tokenizer, token_delay=0.01) as a, FaultServer(tokenizer, token_delay=0.01) as b:
        killer = threading.Thread(target=kill_client_1, daemon=True)
        killer.start()
        report = remote_run(
            tmp_path,
            [a, b],
            scenario="Server",
            target_qps=40,
            total_sample_count=150,
            warmup_samples=0,
            remote={"client_processes": 2},
        )
        killer.join()

    assert killed, "the run ended before its second client worker could be killed"
    assert_every_sample_answered_once_with_the_servers_tokens(report, tokenizer, prompts)
    assert not report.result.valid
    failure = report.record.replica_failures["replica-1"]
    assert failure["reason"].startswith("client-1 failed: its worker process exited (code -9)")
    rows = read_samples(report.run_dir)
    assert any(row["replica"] == "replica-0" and "error" not in row for row in rows)
    # Streams whose first token LoadGen had cannot start over: they fail, saying why.
    assert all("client-1 failed" in row["error"] for row in rows if "error" in row)
    assert no_client_workers_left()


def test_a_client_worker_ends_within_seconds_when_its_harness_is_killed(tokenizer, tmp_path):
    with FaultServer(tokenizer) as server:
        server.first_token_delay(3600)
        args = ("--sut", "remote", "--served-model-name", "tiny", "--endpoint", server.url, "--warmup-samples", "0")
        with HarnessProcess(*args, "--scenario", "Server", "--min-duration", "60000", output_dir=tmp_path) as harness:
            harness.wait_for_file(LOADGEN_STARTED)
            left = [pid for pid in session_processes(harness.proc.pid) if pid != harness.proc.pid]
            assert left, "no client worker in the run's session"
            harness.proc.kill()
            harness.proc.wait(10)
            deadline = time.monotonic() + 10
            while session_processes(harness.proc.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not session_processes(harness.proc.pid), "a client worker outlived its harness"


# -- the worker's outbox, on a real pipe and event loop --------------------------------------------------------
def _outbox() -> tuple[Outbox, Connection, LoopThread]:
    ours, theirs = multiprocessing.Pipe()
    loop = LoopThread("test")
    loop.acquire()
    outbox = Outbox(theirs, loop)
    outbox.counters[0] = lambda: RemoteStats(name="replica-0")
    return outbox, ours, loop


def test_what_one_loop_turn_delivers_goes_to_the_harness_as_one_message_with_the_first_tokens_arrival_times():
    outbox, harness, loop = _outbox()
    sink = SlotSink(outbox, 0, AttemptBudget())
    requests = [GenerationRequest(i, i, [1, 2], stream=True) for i in range(3)]

    def one_turn() -> None:
        for request in requests:
            sink.first_token(request, 100 + request.response_id)
        sink.completed([(requests[0], [100, 7, 8])])
        sink.failed([requests[1]], "a reason")

    before = time.perf_counter()
    loop.loop.call_soon_threadsafe(one_turn)
    assert harness.poll(10)
    message = harness.recv()
    loop.release()

    assert isinstance(message, Results) and not harness.poll(0.2)
    assert message.step.first() == [(0, 100), (1, 101), (2, 102)]
    assert [(i, t.tolist()) for i, t in message.step.done()] == [(0, [100, 7, 8])]
    assert message.step.failed == [(1, "a reason")]
    assert all(before <= t <= time.perf_counter() for t in message.arrival_times())
    assert message.stats == RemoteStats(name="replica-0")  # the first results carry the counters


def test_work_a_replica_offers_back_as_it_goes_out_follows_the_results_before_it_with_its_failed_attempts():
    outbox, harness, loop = _outbox()
    budget = AttemptBudget()
    budget.fail(5)
    sink = SlotSink(outbox, 0, budget)
    done, moved = GenerationRequest(4, 4, [1], stream=False), GenerationRequest(5, 5, [1], stream=False)

    def one_turn() -> None:
        sink.completed([(done, [9])])
        assert sink.replica_down([moved], "3 errors in a row") == []

    loop.loop.call_soon_threadsafe(one_turn)
    first, second = harness.recv(), harness.recv()
    loop.release()

    assert isinstance(first, Results) and [i for i, _ in first.step.done()] == [4]
    assert isinstance(second, Down) and second.reason == "3 errors in a row" and second.attempts == {5: 1}
    assert budget.fail(5) == 1  # the count left with the sample
