"""An engine worker never outlives its harness, even when the engine is busy for a long time."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
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
    replica = _endless_replica()
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


def _endless_replica() -> Any:
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
    return EngineReplica(spec, sink=None)  # type: ignore[arg-type]


def _in_thread(work: Any) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, errors


def test_stopping_a_replica_whose_worker_was_just_spawned_ends_the_worker():
    # The worker does not lead a process group of its own in its first moments: the stop must still reach it.
    replica = _endless_replica()
    starting, errors = _in_thread(replica.start)
    from sut.engine_replica import ProcessLink

    link = replica._link
    assert isinstance(link, ProcessLink)
    while link._process is None:
        time.sleep(0.001)
    worker = link._process.pid
    stopping, _ = _in_thread(replica.stop)
    stopping.join(10)
    starting.join(10)
    assert not stopping.is_alive() and not starting.is_alive(), "stop or start hung"
    assert errors and "failed to start" in str(errors[0])
    assert not _alive(worker)


def test_stopping_a_replica_mid_warm_up_ends_the_warm_up_at_its_next_step():
    replica = _endless_replica()
    replica.start()
    warming, errors = _in_thread(lambda: replica.warm_up([[1, 2, 3]], 4))
    time.sleep(0.5)
    t0 = time.monotonic()
    replica.stop()
    warming.join(5)
    # Without looking at Stop during its warm-up, the worker would be killed only after the 30 s grace.
    assert time.monotonic() - t0 < 5
    assert not warming.is_alive()
    assert "stopped during its warm-up" in str(errors[0])
