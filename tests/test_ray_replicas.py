"""`--sut ray`: replicas as Ray actors on a local Ray cluster (127.0.0.1), with real vLLM engines."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest

from harness.single.config import build_config
from harness.single.runner import RunReport, configured_replicas, run
from mlperf_llm_sut.common.errors import HarnessError
from scenarios.responder import SampleCounts
from sut.ray_replica import RayCluster, connect
from tests.conftest import ROOT, kill_member_after, read_samples
from tests.harness_process import stop_run

pytestmark = [pytest.mark.engine, pytest.mark.ray]

# 500 queries (what LoadGen's early stopping needs at p99) at 40 QPS, a tenth of what two CPU replicas of the
# embedded model answer: VALID on any machine, in about 13 s rather than the demo's 50.
SERVER = {"scenario": "Server", "target_qps": 40.0, "min_duration_ms": 4000, "total_sample_count": 600}


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    """One local cluster for the module's runs: holding it keeps it up between them."""
    cluster = connect()
    assert cluster.started_here
    cluster.acquire()
    yield cluster
    cluster.release()


def _run(tmp_path, factory=None, **options: Any) -> RunReport:
    config = build_config(output_dir=tmp_path, save_outputs=True, **options)
    return run(config, replica_factory=factory)


def _answered_exactly_once(samples: SampleCounts) -> None:
    assert samples.issued == samples.completed + samples.failed
    assert samples.duplicates == 0 and samples.unanswered == 0


def test_two_ray_replicas_give_a_valid_offline_run_generating_what_a_local_replica_generates(cluster, tmp_path):
    """Greedy in float32, so batch composition cannot flip near-ties."""
    options = {"total_sample_count": 200, "engine": {"dtype": "float32"}}
    local = _run(tmp_path / "local", mode="accuracy", **options)
    ray = _run(tmp_path / "ray", sut="ray", replicas=2, **options)

    assert local.result.valid and ray.result.valid, ray.result.invalid_reasons
    _answered_exactly_once(ray.record.samples)
    rows = ray.record.replicas
    assert [r.cpus for r in rows] == ["0", "1"] and all(r.samples > 0 for r in rows)
    assert all(r.node for r in rows)
    assert ray.record.sut == "ray" and ray.record.config.ray_address == "auto"
    one = {row["qsl_idx"]: row["output_token_ids"] for row in read_samples(local.run_dir)}
    assert len(one) == 200
    for row in read_samples(ray.run_dir):  # the Offline query issues each sample several times
        assert row["output_token_ids"] == one[row["qsl_idx"]]


def test_two_ray_replicas_give_a_valid_server_run(cluster, tmp_path):
    report = _run(tmp_path, sut="ray", replicas=2, **SERVER)

    assert report.result.valid, report.result.invalid_reasons
    _answered_exactly_once(report.record.samples)
    assert all(r.samples > 0 for r in report.record.replicas)


def test_a_ray_actor_killed_mid_run_loses_no_sample_and_the_run_says_so(cluster, tmp_path):
    factory, killer = kill_member_after(configured_replicas, 1, 50)
    report = _run(tmp_path, factory, sut="ray", replicas=2, dispatch="least-requests", **SERVER)
    killer.join()

    record = report.record
    assert not report.result.valid
    _answered_exactly_once(record.samples)
    assert list(record.replica_failures) == ["replica-1"]
    assert "replica-1 failed: its Ray actor died" in record.replica_failures["replica-1"]["reason"]
    survivor, killed = record.replicas
    assert killed.samples >= 50 and survivor.samples > killed.samples
    assert survivor.samples + killed.samples + record.samples.failed == record.samples.issued


def test_a_layout_the_cluster_cannot_hold_is_one_error_before_any_actor_starts(cluster):
    with pytest.raises(HarnessError, match=r"a replica needs 2 GPU, 1 CPU on one node .*the largest has 0 GPUs"):
        cluster._check_fits([{"GPU": 2.0, "CPU": 1.0}], 2)
    with pytest.raises(HarnessError, match=r"3 replicas need 3 CPUs in all, and the Ray cluster at .* has 2"):
        cluster._check_fits([{"CPU": 1.0}] * 3, 1)


def test_gpu_replicas_reserve_their_tensor_parallel_gpus_on_one_node_and_get_them_from_ray():
    """A cluster that declares 4 GPUs (Ray hands out their ids; an idle engine never touches them): 2 replicas
    x TP2 each reserve 2 GPUs in one bundle, and each actor reports the 2 GPUs Ray gave it."""
    script = textwrap.dedent(
        """
        import json, ray
        from sut.engine_config import EngineConfig
        from sut.engine_replica import EngineReplica
        from sut.engine_worker import WorkerSpec
        from sut.generation import GenerationConfig
        from sut.ray_replica import RayLink, connect

        class Idle:
            def add_request(self, *args): raise AssertionError("no request is sent")
            def step(self): return []
            def has_unfinished_requests(self): return False

        ray.init(address="local", num_cpus=2, num_gpus=4, include_dashboard=False, logging_level="ERROR")
        cluster = connect()
        layout = cluster.layout(2, 2, None)
        replicas = []
        for slot, (placement, bundle) in enumerate(layout):
            spec = WorkerSpec(f"replica-{slot}", EngineConfig(model="idle"), GenerationConfig(), placement,
                              engine_factory=lambda spec: Idle())
            replica = EngineReplica(spec, None, RayLink(cluster, bundle))
            replica.start()
            replicas.append(replica)
        print(json.dumps({
            "joined": not cluster.started_here,
            "bundles": [bundle for _, bundle in layout],
            "devices": [replica.stats().devices for replica in replicas],
        }))
        for replica in replicas:
            replica.stop()
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=180, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["joined"] is True
    assert seen["bundles"] == [{"GPU": 2.0, "CPU": 1.0}] * 2
    assert all(len(devices) == 2 for devices in seen["devices"])
    assert len({gpu for devices in seen["devices"] for gpu in devices}) == 4  # no GPU given to both


def _ray_processes() -> set[int]:
    """Ray's own processes on this host (head services, actor workers), of any session."""
    out = subprocess.run(["pgrep", "-f", "raylet|gcs_server|ray::"], capture_output=True, text=True, check=False)
    return {int(pid) for pid in out.stdout.split()}


def test_sigterm_during_a_ray_server_test_ends_the_run_its_actors_and_its_local_cluster(tmp_path):
    before = _ray_processes()
    args = ("--sut", "ray", "--replicas", "2", "--scenario", "Server", "--min-duration", "60000")
    run = stop_run(*args, output_dir=tmp_path, when="*/mlperf_log_detail.txt", delay=2.0, signum=signal.SIGTERM)

    assert run.code == 143
    assert run.record["interrupted"] == {"signal": "SIGTERM", "phase": "the LoadGen test"}
    _answered_exactly_once(SampleCounts(**run.record["samples"]))  # run.json as read from disk
    deadline = time.monotonic() + 10
    while _ray_processes() - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _ray_processes() - before, "Ray processes of the run were left behind"
