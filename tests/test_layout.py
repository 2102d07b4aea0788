"""Where replicas run, checked without GPUs: the mapping from options to devices, cores and environment."""

from __future__ import annotations

import os

import pytest

from harness.single.config import build_config
from mlperf_llm_sut.common.errors import HarnessError
from sut.layout import format_cpus, omp_bind, parse_cpus, plan_layout


@pytest.fixture
def four_gpus(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")


def test_replica_i_gets_devices_i_times_tp_to_i_plus_one_times_tp(four_gpus):
    assert [p.devices for p in plan_layout(2, 2, on_cpu=False)] == [["0", "1"], ["2", "3"]]
    assert [p.devices for p in plan_layout(4, 1, on_cpu=False)] == [["0"], ["1"], ["2"], ["3"]]


def test_each_worker_sees_only_its_devices(four_gpus):
    assert [p.env for p in plan_layout(2, 2, on_cpu=False)] == [
        {"CUDA_VISIBLE_DEVICES": "0,1"},
        {"CUDA_VISIBLE_DEVICES": "2,3"},
    ]


def test_layout_follows_the_visible_device_ids(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    assert plan_layout(2, 2, on_cpu=False)[1].devices == ["6", "7"]


def test_more_devices_than_visible_is_a_clear_error(four_gpus):
    with pytest.raises(HarnessError, match="3 replicas x tensor parallel 2 need 6 GPUs, but 4 are visible"):
        plan_layout(3, 2, on_cpu=False)


def test_an_explicit_device_map_is_used_as_given(four_gpus):
    placements = plan_layout(2, 2, on_cpu=False, devices=["3,1", "0,2"])
    assert [p.devices for p in placements] == [["3", "1"], ["0", "2"]]
    assert placements[0].env == {"CUDA_VISIBLE_DEVICES": "3,1"}


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        (["0,1"], "devices has 1 entries for 2 replicas"),
        (["0,1", "2"], r"devices '2' \(replica 1\) lists 1 GPUs, but each replica needs tensor_parallel_size 2"),
        (["0,1", "2,7"], r"GPU 7 is not visible; visible GPUs are 0,1,2,3"),
        (["0,1", "1,2"], "GPU 1 is given to more than one replica"),
    ],
)
def test_a_device_map_that_cannot_work_is_one_clear_error(four_gpus, devices, message):
    with pytest.raises(HarnessError, match=message):
        plan_layout(2, 2, on_cpu=False, devices=devices)


def test_device_maps_do_not_apply_to_cpu_engines():
    with pytest.raises(HarnessError, match="use cpu_bind"):
        plan_layout(2, 1, on_cpu=True, devices=["0", "1"])


def test_cpu_replicas_split_the_available_cores_evenly_by_default():
    available = sorted(os.sched_getaffinity(0))
    placements = plan_layout(2, 1, on_cpu=True)
    share = len(available) // 2
    assert [p.cpus for p in placements] == [available[:share], available[share : 2 * share]]
    assert placements[0].env == {"VLLM_CPU_OMP_THREADS_BIND": format_cpus(available[:share])}
    assert plan_layout(1, 1, on_cpu=True)[0].cpus is None  # one replica keeps vLLM's own binding


def test_cpu_binding_pins_each_replica_and_its_openmp_threads():
    first = min(os.sched_getaffinity(0))
    placements = plan_layout(2, 1, on_cpu=True, cpu_bind=[str(first), str(first)])
    assert [p.cpus for p in placements] == [[first], [first]]
    assert placements[1].env["VLLM_CPU_OMP_THREADS_BIND"] == str(first)


def test_gpu_replicas_are_pinned_only_when_asked(four_gpus):
    first = min(os.sched_getaffinity(0))
    assert plan_layout(2, 2, on_cpu=False)[0].cpus is None
    pinned = plan_layout(2, 2, on_cpu=False, cpu_bind=[str(first), str(first)])[0]
    assert pinned.cpus == [first]
    assert "VLLM_CPU_OMP_THREADS_BIND" not in pinned.env


def test_core_lists_read_like_taskset():
    assert parse_cpus("0-3,8, 10-11") == [0, 1, 2, 3, 8, 10, 11]
    assert format_cpus([0, 1, 2, 3, 8, 10, 11]) == "0-3,8,10-11"
    assert omp_bind(list(range(8)), 2) == "0-3|4-7"


def test_a_numa_node_stands_for_its_cores():
    node0 = parse_cpus("node:0")
    assert node0 and set(node0) <= set(range(os.cpu_count() or 1))


@pytest.mark.parametrize(
    ("bind", "message"),
    [
        (["0-x"], "is not a core list: write it like 0-15, 0,2,4 or node:1"),
        (["node:99"], "no such NUMA node"),
        (["100000"], "cores 100000 are not available to this process"),
    ],
)
def test_a_cpu_binding_that_cannot_work_is_one_clear_error(bind, message):
    with pytest.raises(HarnessError, match=message):
        plan_layout(1, 1, on_cpu=True, cpu_bind=bind)


def test_cpu_binding_needs_one_entry_per_replica():
    with pytest.raises(HarnessError, match="cpu_bind has 1 entries for 2 replicas"):
        plan_layout(2, 1, on_cpu=True, cpu_bind=["0"])


def test_replica_and_dispatch_options_are_checked():
    with pytest.raises(HarnessError, match="replicas must be at least 1"):
        build_config(replicas=0)
    with pytest.raises(HarnessError, match="dispatch 'fastest'"):
        build_config(replicas=2, dispatch="fastest")
    with pytest.raises(HarnessError, match=r"step delay 0\.1 for replica 2: needs a replica slot below 2"):
        build_config(replicas=2, step_delays={2: 0.1})
