"""GPU layout of replicas, checked here without GPUs: argument mapping only."""

from __future__ import annotations

import os

import pytest

from harness.config import build_config
from harness.errors import HarnessError
from sut.vllm_engine import gpu_layout, visible_devices


def test_replica_i_gets_devices_i_times_tp_to_i_plus_one_times_tp(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    assert [gpu_layout(slot, 2, 2) for slot in range(2)] == [["0", "1"], ["2", "3"]]
    assert [gpu_layout(slot, 4, 1) for slot in range(4)] == [["0"], ["1"], ["2"], ["3"]]


def test_layout_follows_the_visible_device_ids(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    assert gpu_layout(1, 2, 2) == ["6", "7"]


def test_more_devices_than_visible_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    with pytest.raises(HarnessError, match="3 replicas x tensor parallel 2 need 6 GPUs, but 4 are visible"):
        gpu_layout(0, 3, 2)


def test_engine_processes_see_only_their_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    with visible_devices(["2", "3"]):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1,2,3"


def test_replica_and_dispatch_options_are_checked():
    with pytest.raises(HarnessError, match="--replicas must be positive"):
        build_config(replicas=0)
    with pytest.raises(HarnessError, match="--dispatch 'fastest'"):
        build_config(replicas=2, dispatch="fastest")
