"""No phase of a run waits longer than the time-outs the user set: a server or an engine that stalls in each phase
(the remote warm-up, the case that hung, is in tests/test_bad_inputs.py, through the command line).

Each test gives the stall a time-out far shorter than the stall itself, and asserts that the run ended within
that time-out (and a margin for this machine), with one error that names the replica, the phase and what it did;
or, once LoadGen is running, with every issued sample answered once and the run INVALID.
"""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from harness.single.config import RunConfig, build_config
from harness.single.runner import RunReport, run
from mlperf_llm_sut.common.errors import HarnessError
from scenarios.requests import ResultSink
from sut.engine_replica import EngineReplica
from sut.engine_worker import WorkerSpec
from sut.layout import Placement
from sut.solo import Solo
from tests.fault_server import FaultServer

STALL = 1.0
"""The time-out each test sets."""
HUNG = 3600.0
"""How long the stalled part would keep the run waiting without it."""
MARGIN = 10.0
"""Seconds over the time-out a run may take to end on a loaded 2-core machine (start-up included)."""
REMOTE = {"served_model_name": "tiny", "probe_interval": 0.2}


@pytest.fixture
def server(tokenizer) -> Iterator[FaultServer]:
    with FaultServer(tokenizer) as s:
        yield s


def _remote(tmp_path, url: str, remote: dict[str, Any] | None = None, **options: Any) -> RunReport:
    options = {"total_sample_count": 50, "min_query_count": 50, "min_duration_ms": 0} | options
    config = build_config(
        sut="remote", remote={"endpoints": [url], **REMOTE, **(remote or {})}, output_dir=tmp_path, **options
    )
    return run(config, console=Console(file=io.StringIO()))


def _ends_in_time(started: float, timeout: float) -> None:
    took = time.monotonic() - started
    assert took < timeout + MARGIN, f"took {took:.1f} s with a {timeout:g} s time-out"


# -- remote replicas -----------------------------------------------------------------------------------------------
def test_start_up_against_a_server_that_accepts_connections_and_never_answers_ends_with_its_check(tmp_path):
    with socket.create_server(("127.0.0.1", 0), backlog=16) as silent:  # accepts (in the kernel), never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(HarnessError) as error:
            _remote(tmp_path, url, {"connect_timeout": STALL / 3})
    _ends_in_time(started, STALL)
    assert str(error.value).startswith(f"start-up: replica-0 ({url}): no answer to the start-up check")


def test_calibration_against_a_server_that_stalls_after_the_warm_up_ends_at_the_stall_timeout(server, tmp_path):
    server.first_token_delay(HUNG, after=4)
    started = time.monotonic()
    with pytest.raises(HarnessError) as error:
        remote = {"stall_timeout": STALL}
        _remote(tmp_path, server.url, remote, warmup_samples=4, target_qps="auto", min_duration_ms=1000)
    _ends_in_time(started, STALL)
    assert str(error.value).startswith(f"calibration: replica-0 ({server.url}): it took 50 requests, answered 0, ")


def test_an_offline_test_against_a_lone_server_that_stalls_ends_with_every_sample_answered(server, tmp_path):
    """Taken out after the stall time-out; its probe cannot generate either; failed for good after the down
    time-out: every sample fails, once."""
    server.first_token_delay(HUNG, after=8)
    started = time.monotonic()
    remote = {"stall_timeout": STALL, "down_timeout": STALL, "eject_after": 1000}
    report = _remote(tmp_path, server.url, remote)
    _ends_in_time(started, 2 * STALL)
    samples = report.record.samples
    assert samples.issued == samples.failed == 50 and samples.unanswered == samples.duplicates == 0
    assert not report.result.valid
    assert any("returned nothing for 1 s with 50 requests on the wire" in r for r in report.result.invalid_reasons)


# -- local engines -------------------------------------------------------------------------------------------------
@pytest.mark.engine
def test_warm_up_on_an_engine_whose_step_never_comes_back_ends_at_the_stall_timeout(tmp_path):
    """A step that takes an hour (a delay of the real engine's step, as a hung device would): the worker's watchdog
    ends it after the stall time-out, in warm-up as in the test."""
    config = build_config(output_dir=tmp_path, step_delays={0: HUNG}, stall_timeout=STALL)
    with pytest.raises(HarnessError) as error:
        run(config, console=Console(file=io.StringIO()))
    assert str(error.value) == "warm-up: replica-0 failed: an engine step made no progress for 1 s (stall_timeout)"
    (run_dir,) = tmp_path.iterdir()
    assert "[replica-0]" in (run_dir / "engine.log").read_text()  # the real engine started, then hung


def _never_up(spec: WorkerSpec) -> None:
    """An engine whose start-up hangs (a device or a collective that never answers)."""
    time.sleep(HUNG)


def test_start_up_of_an_engine_that_never_comes_up_ends_at_the_start_timeout(tmp_path):
    config = build_config(output_dir=tmp_path, start_timeout=STALL)

    def hanging(config: RunConfig, sink: ResultSink, run_dir: Path) -> Solo:
        spec = WorkerSpec(
            name="replica-0",
            engine=config.engine,
            generation=config.generation,
            placement=Placement(devices=["cpu"]),
            start_timeout=config.layout.start_timeout,
            engine_factory=_never_up,
        )
        return Solo(EngineReplica(spec, sink))

    began = time.monotonic()
    with pytest.raises(HarnessError) as error:
        run(config, console=Console(file=io.StringIO()), replica_factory=hanging)
    _ends_in_time(began, STALL)
    assert str(error.value).startswith("start-up: replica-0: the vLLM engine for model ")
    assert "failed to start: it was not up after 1 s (start_timeout)." in str(error.value)
