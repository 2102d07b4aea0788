"""An engine worker never outlives its harness, even when the engine is busy for a long time."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

from tests.conftest import ROOT


class EndlessEngine:
    """vLLM's engine interface, never finishing: each step takes 50 ms and there is always more to do."""

    def add_request(self, key: str, prompt: dict[str, Any], params: Any) -> None:
        pass

    def has_unfinished_requests(self) -> bool:
        return True

    def step(self) -> list[Any]:
        time.sleep(0.05)
        return []


def endless_engine(spec: Any) -> EndlessEngine:
    return EndlessEngine()


def harness_main() -> None:
    """A harness process: starts a worker with the endless engine, says its pid, warms up forever."""
    from sut.engine_config import EngineConfig
    from sut.engine_replica import EngineReplica
    from sut.engine_worker import WorkerSpec
    from sut.generation import GenerationConfig
    from sut.layout import Placement

    spec = WorkerSpec(
        name="endless",
        engine=EngineConfig(model="endless"),
        generation=GenerationConfig(max_new_tokens=4),
        placement=Placement(devices=["cpu"]),
        engine_factory=endless_engine,
    )
    replica = EngineReplica(spec, sink=None)  # type: ignore[arg-type]
    replica.start()
    print(replica.pid, flush=True)
    replica.warm_up([[1, 2, 3]], 4)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_a_worker_whose_harness_is_killed_mid_warm_up_is_gone_within_seconds():
    harness = subprocess.Popen(
        [sys.executable, "-c", "from tests.test_worker_lifetime import harness_main; harness_main()"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        worker = int(harness.stdout.readline())
        time.sleep(0.5)  # well into its endless warm-up
        assert _alive(worker)
        harness.kill()
        harness.wait(10)
        deadline = time.monotonic() + 10
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker), "the worker outlived its harness"
    finally:
        harness.kill()
