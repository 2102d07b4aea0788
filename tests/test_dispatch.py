"""Dispatch over several replicas, on real LoadGen runs with scripted replicas (one of them slow)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from harness.config import build_config
from harness.runner import run
from sut.dispatch import Dispatcher
from sut.replica import GenerationRequest
from tests.scripted_replica import ScriptedReplica

FAST, SLOW = 0.0005, 0.01


def _dispatched(policy: str, delays: tuple[float, ...], holder: list[Dispatcher], **kwargs):
    def factory(config, sink, run_dir):
        dispatcher = Dispatcher(
            lambda slot, replica_sink: ScriptedReplica(replica_sink, delay=delays[slot]),
            len(delays),
            sink,
            policy=policy,
            **kwargs,
        )
        holder.append(dispatcher)
        return dispatcher

    return factory


def _server(tmp_path, policy, delays=(FAST, FAST)):
    holder: list[Dispatcher] = []
    config = build_config(
        output_dir=tmp_path,
        scenario="Server",
        target_qps=150.0,
        min_query_count=300,
        min_duration_ms=0,
        warmup_samples=0,
    )
    report = run(config, console=Console(file=io.StringIO()), replica_factory=_dispatched(policy, delays, holder))
    return report, [stats.samples for stats in holder[0].replica_stats()]


@pytest.mark.parametrize("policy", ["round-robin", "least-requests", "least-tokens"])
def test_every_policy_answers_every_sample_once_and_uses_both_replicas(tmp_path, policy):
    report, served = _server(tmp_path, policy)
    samples = report.record["samples"]
    assert samples["issued"] == samples["completed"] == sum(served)
    assert samples["duplicates"] == 0 and samples["unanswered"] == 0
    assert all(count > 0 for count in served)


def test_round_robin_alternates(tmp_path):
    _, served = _server(tmp_path, "round-robin")
    assert abs(served[0] - served[1]) <= 1


@pytest.mark.parametrize("policy", ["least-requests", "least-tokens"])
def test_load_aware_policies_send_a_slow_replica_less_than_round_robin(tmp_path, policy):
    _, even = _server(tmp_path / "rr", "round-robin", (SLOW, FAST))
    _, aware = _server(tmp_path / policy, policy, (SLOW, FAST))
    assert aware[0] < even[0]
    assert aware[0] < aware[1]


def test_offline_pool_lets_the_fast_replica_take_more(tmp_path):
    holder: list[Dispatcher] = []
    config = build_config(output_dir=tmp_path, min_query_count=400, min_duration_ms=0, warmup_samples=0)
    factory = _dispatched("round-robin", (SLOW, FAST), holder, target=4)
    report = run(config, console=Console(file=io.StringIO()), replica_factory=factory)
    served = [stats.samples for stats in holder[0].replica_stats()]
    assert report.record["samples"]["completed"] == sum(served) == report.record["samples"]["issued"]
    assert served[1] > 3 * served[0]
    assert [r["samples"] for r in report.record["replicas"]] == served


def test_unknown_policy_is_an_error():
    with pytest.raises(ValueError, match="unknown dispatch policy"):
        Dispatcher(lambda slot, sink: None, 2, None, policy="fastest")


@pytest.mark.parametrize("scenario", ["Offline", "Server"])
def test_a_replica_that_dies_mid_run_hands_its_unstarted_work_to_the_other(tmp_path, scenario):
    holder: list[Dispatcher] = []

    def factory(config, sink, run_dir):
        dispatcher = Dispatcher(
            lambda slot, replica_sink: ScriptedReplica(replica_sink, die_after=40 if slot == 1 else None),
            2,
            sink,
            policy="least-requests",
            target=8,
        )
        holder.append(dispatcher)
        return dispatcher

    options = {"target_qps": 200.0} if scenario == "Server" else {}
    config = build_config(
        output_dir=tmp_path, scenario=scenario, min_query_count=400, min_duration_ms=0, warmup_samples=0, **options
    )
    report = run(config, console=Console(file=io.StringIO()), replica_factory=factory)
    samples = report.record["samples"]
    assert samples["completed"] + samples["failed"] == samples["issued"]
    assert samples["duplicates"] == 0 and samples["unanswered"] == 0
    served = [r["samples"] for r in report.record["replicas"]]
    assert served[1] == 40 and served[0] == samples["completed"] - 40
    # Only a stream whose first token was out fails; everything else moved to replica-0.
    assert samples["failed"] == (1 if scenario == "Server" else 0)
    assert not report.result.valid
    assert any("scripted replica died" in reason for reason in report.result.invalid_reasons)
    assert "scripted" in report.record["replica_failures"]


class _Holding:
    """A replica that only keeps what it is given: the test decides when it is out or back."""

    def __init__(self, slot: int, sink) -> None:
        self.name, self.sink, self.got = f"replica-{slot}", sink, []

    def submit(self, requests) -> None:
        self.got += requests


def _requests(first: int, count: int, *, stream: bool) -> list[GenerationRequest]:
    return [GenerationRequest(i, i, [1, 2, 3], stream=stream) for i in range(first, first + count)]


def test_a_replica_that_is_out_gets_no_work_and_its_unstarted_work_moves_until_it_is_back():
    dispatcher = Dispatcher(_Holding, 2, sink=None, policy="round-robin", target=10)  # nothing reaches the sink
    out, other = dispatcher.members
    dispatcher.submit(_requests(0, 4, stream=True))
    assert [r.response_id for r in out.got] == [0, 2]

    kept = out.sink.replica_down(out.got, "5 errors in a row")
    assert kept == []
    assert [r.response_id for r in other.got] == [1, 3, 0, 2]
    dispatcher.submit(_requests(4, 2, stream=True))
    assert [r.response_id for r in other.got][-2:] == [4, 5]

    dispatcher.submit(_requests(10, 6, stream=False))  # Offline: the pool tops up only the replica that is in
    assert len([r for r in other.got if not r.stream]) == 4  # its 6 outstanding + 4 = the target
    assert not [r for r in out.got if not r.stream]

    out.sink.replica_up()
    assert len([r for r in out.got if not r.stream]) == 2  # back: it pulls the rest of the pool at once
    dispatcher.submit(_requests(20, 2, stream=True))
    assert {r.response_id for r in out.got} & {20, 21}


def test_when_every_replica_is_out_they_keep_their_work_for_when_they_are_back():
    dispatcher = Dispatcher(_Holding, 2, sink=None, policy="least-requests")
    first, second = dispatcher.members
    assert first.sink.replica_down(_requests(0, 1, stream=True), "down") == []
    dispatcher.submit(_requests(1, 1, stream=True))
    kept = second.sink.replica_down(second.got, "down")
    assert [r.response_id for r in kept] == [0, 1]  # no one is in: the replica keeps them
    dispatcher.submit(_requests(2, 1, stream=True))  # and new work still goes to a replica that may come back
    assert len(first.got + second.got) == 3
