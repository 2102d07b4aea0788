"""A remote server's health state machine (`sut.remote_health`), on a clock the tests move."""

from __future__ import annotations

import pytest

from sut.remote_health import HealthState, ServerHealth


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _health(clock: Clock, *, eject_after: int = 3, down_timeout: float = 120.0) -> ServerHealth:
    return ServerHealth(
        "replica-0 (http://server:8000)",
        eject_after=eject_after,
        probe_interval=2.0,
        down_timeout=down_timeout,
        stall_timeout=120.0,
        clock=clock,
    )


def test_errors_in_a_row_up_to_eject_after_say_why_the_server_goes_out(clock: Clock) -> None:
    health = _health(clock)
    assert health.attempt_failed("HTTP 503: busy") is None
    assert health.attempt_failed("HTTP 503: busy") is None
    reason = health.attempt_failed("cannot connect: refused")
    assert reason == "replica-0 (http://server:8000) had 3 errors in a row, the last: cannot connect: refused"
    assert health.state is HealthState.UP  # the caller ejects once it has dealt with the attempt


def test_an_answer_ends_the_run_of_errors(clock: Clock) -> None:
    health = _health(clock)
    health.attempt_failed("timeout")
    health.attempt_failed("timeout")
    health.answered()
    assert health.attempt_failed("timeout") is None
    assert health.attempt_failed("timeout") is None
    assert health.attempt_failed("timeout") is not None


def test_errors_while_out_count_but_eject_no_one(clock: Clock) -> None:
    health = _health(clock, eject_after=1)
    health.eject("errors")
    assert health.attempt_failed("stream cut") is None
    assert health.errors_in_a_row == 1


def test_an_ejected_server_is_out_with_its_reason(clock: Clock) -> None:
    health = _health(clock)
    health.eject("it stalled")
    assert health.state is HealthState.OUT and not health.is_up
    assert health.out_reason == "it stalled" and health.failure is None


def test_a_probe_that_passes_brings_the_server_back_with_no_errors_counted(clock: Clock) -> None:
    health = _health(clock)
    for _ in range(3):
        health.attempt_failed("HTTP 500")
    health.eject("errors")
    health.probe_passed()
    assert health.is_up and health.errors_in_a_row == 0
    assert health.attempt_failed("HTTP 500") is None


def test_failed_probes_keep_the_server_out_until_down_timeout_then_fail_it_for_good(clock: Clock) -> None:
    health = _health(clock, down_timeout=120.0)
    health.eject("HTTP 500s")
    clock.now += 119.9
    assert health.probe_failed() is None
    assert not health.is_up and health.failure is None
    clock.now += 0.1
    failure = health.probe_failed()
    assert failure == "replica-0 (http://server:8000) stayed out for 120 s: HTTP 500s"
    assert health.state is HealthState.FAILED and health.failure == failure
    assert health.out_reason == "HTTP 500s"


def test_down_timeout_counts_from_the_latest_ejection(clock: Clock) -> None:
    health = _health(clock, down_timeout=10.0)
    health.eject("first")
    clock.now += 9
    health.probe_passed()
    clock.now += 5
    health.eject("second")
    clock.now += 9
    assert health.probe_failed() is None
    clock.now += 1
    assert health.probe_failed() == "replica-0 (http://server:8000) stayed out for 10 s: second"


def test_requests_on_the_wire_with_nothing_back_for_stall_timeout_are_a_stall(clock: Clock) -> None:
    health = _health(clock)
    clock.now += 120.0
    assert health.stalled(on_wire=4) is None  # at the limit, not past it
    clock.now += 0.5
    assert health.stalled(on_wire=4) == (
        "replica-0 (http://server:8000) returned nothing for 120 s with 4 requests on the wire"
    )


def test_progress_restarts_the_stall_clock(clock: Clock) -> None:
    health = _health(clock)
    clock.now += 100
    health.progressed()
    clock.now += 100
    assert health.stalled(on_wire=1) is None


def test_quiet_without_requests_on_the_wire_is_no_stall(clock: Clock) -> None:
    health = _health(clock)
    clock.now += 1000
    assert health.stalled(on_wire=0) is None


def test_a_server_that_is_out_or_failed_does_not_stall(clock: Clock) -> None:
    health = _health(clock, down_timeout=0.0)
    health.eject("errors")
    clock.now += 1000
    assert health.stalled(on_wire=3) is None
    health.probe_failed()
    assert health.state is HealthState.FAILED
    assert health.stalled(on_wire=3) is None


def test_the_watchdog_looks_every_second_or_four_times_per_short_stall_timeout(clock: Clock) -> None:
    assert _health(clock).watch_period == 1.0
    short = ServerHealth("r", eject_after=3, probe_interval=1, down_timeout=1, stall_timeout=2.0, clock=clock)
    assert short.watch_period == 0.5


def test_only_an_up_server_can_be_ejected_and_only_an_out_one_probed(clock: Clock) -> None:
    health = _health(clock)
    with pytest.raises(AssertionError):
        health.probe_passed()
    with pytest.raises(AssertionError):
        health.probe_failed()
    health.eject("errors")
    with pytest.raises(AssertionError):
        health.eject("again")
