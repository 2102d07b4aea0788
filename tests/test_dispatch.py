"""Dispatch over several replicas, on real LoadGen runs with scripted replicas (one of them slow)."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from harness.single.config import build_config
from harness.single.runner import run
from scenarios.requests import GenerationRequest
from sut.dispatch import ASK_AGAIN_SECONDS, POLICIES, STALE_SECONDS, DelayEstimate, Dispatcher
from sut.engine_worker import EngineQueue
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


@pytest.mark.parametrize("policy", POLICIES)
def test_every_policy_answers_every_sample_once_and_uses_both_replicas(tmp_path, policy):
    report, served = _server(tmp_path, policy)
    samples = report.record.samples
    assert samples.issued == samples.completed == sum(served)
    assert samples.duplicates == 0 and samples.unanswered == 0
    assert all(count > 0 for count in served)


def test_round_robin_alternates(tmp_path):
    _, served = _server(tmp_path, "round-robin")
    assert abs(served[0] - served[1]) <= 1


@pytest.mark.parametrize("policy", ["least-requests", "least-tokens", "least-delay"])
def test_load_aware_policies_send_a_slow_replica_less_than_round_robin(tmp_path, policy):
    _, even = _server(tmp_path / "rr", "round-robin", (SLOW, FAST))
    _, aware = _server(tmp_path / policy, policy, (SLOW, FAST))
    assert aware[0] < even[0]
    assert aware[0] < aware[1]


def test_offline_pool_lets_the_fast_replica_take_more(tmp_path):
    holder: list[Dispatcher] = []
    config = build_config(output_dir=tmp_path, min_query_count=400, min_duration_ms=0, warmup_samples=0)
    factory = _dispatched("round-robin", (SLOW, FAST), holder, batch=4)
    report = run(config, console=Console(file=io.StringIO()), replica_factory=factory)
    served = [stats.samples for stats in holder[0].replica_stats()]
    assert report.record.samples.completed == sum(served) == report.record.samples.issued
    assert served[1] > 3 * served[0]
    assert [r.samples for r in report.record.replicas] == served


def _stream(response_id: int, prompt_tokens: int = 10) -> GenerationRequest:
    return GenerationRequest(response_id, response_id, [1] * prompt_tokens, stream=True)


def test_a_delay_estimate_learns_the_step_from_finished_streams_and_the_prefill_from_first_tokens():
    estimate = DelayEstimate()
    estimate.sent(_stream(1, 100), now=0.0)
    assert estimate.waiting_tokens == 100
    estimate.first_token(_stream(1, 100), now=0.05, busy=False)  # no step known yet: no prefill sample
    assert (estimate.waiting_tokens, estimate.prefill) == (0, 0.0)
    estimate.finished(_stream(1, 100), output_tokens=11, now=0.25)
    assert estimate.step == pytest.approx(0.02)  # 10 steps after the first token
    estimate.sent(_stream(2, 100), now=1.0)
    estimate.first_token(_stream(2, 100), now=1.12, busy=False)  # 0.1 s beyond one step, for 100 tokens
    assert estimate.prefill == pytest.approx(0.2 * 0.001)
    assert estimate.delay(50, busy=True, step=0.02) == pytest.approx(0.03 + 0.0002 * 50)


def test_a_stream_that_fails_or_moves_before_its_first_token_stops_counting_as_waiting():
    estimate = DelayEstimate()
    estimate.sent(_stream(1, 30), now=0.0)
    estimate.finished(_stream(1, 30), output_tokens=None, now=0.1)
    assert estimate.waiting_tokens == 0 and not estimate.pending and estimate.step is None


def _learned(replica: _Holding, step: float, clock: float, response_id: int) -> None:
    """The replica streams one answer of 11 tokens, 10 steps of `step` s after its first token."""
    request = _stream(response_id, 100)
    estimate = replica.sink._dispatcher._loads[replica.sink._slot].delay
    estimate.sent(request, clock)
    estimate.first_token(request, clock + step, busy=False)
    estimate.finished(request, 11, clock + 11 * step)


def test_least_delay_sends_to_a_slow_replica_only_when_the_fast_one_would_answer_later():
    dispatcher = Dispatcher(_Holding, 2, sink=None, policy="least-delay")
    fast, slow = dispatcher.members
    now = time.perf_counter()
    _learned(fast, 0.010, now - 1, response_id=-1)
    _learned(slow, 0.050, now - 1, response_id=-2)
    for load in dispatcher._loads:
        load.delay.prefill = 0.0001  # s per prompt token
    for response_id in range(4):  # 1.5 x 10 ms + the prompts queued: still sooner than the idle slow one
        dispatcher.submit([_stream(response_id, 100)])
    assert (len(fast.got), len(slow.got)) == (4, 0)
    dispatcher.submit([_stream(9, 100)])  # 15 ms + 0.1 ms x 500 tokens = 65 ms > 50 ms
    assert (len(fast.got), len(slow.got)) == (4, 1)


def test_least_delay_tries_a_replica_again_once_its_measurement_is_stale():
    dispatcher = Dispatcher(_Holding, 2, sink=None, policy="least-delay")
    fast, slow = dispatcher.members
    now = time.perf_counter()
    _learned(fast, 0.010, now - 1, response_id=-1)
    _learned(slow, 0.050, now - STALE_SECONDS - 2, response_id=-2)
    dispatcher.submit([_stream(1)])
    dispatcher.submit([_stream(2)])  # the fast one is busy now; the idle, stale one counts as fast as it was
    assert (len(fast.got), len(slow.got)) == (1, 1)


def test_least_delay_gives_each_replica_a_request_before_it_has_measured_them():
    dispatcher = Dispatcher(_Holding, 3, sink=None, policy="least-delay")
    dispatcher.submit([_stream(i) for i in range(3)])
    assert [len(m.got) for m in dispatcher.members] == [1, 1, 1]


def test_offline_work_stealing_moves_a_slow_replicas_unstarted_work_and_answers_each_sample_once(tmp_path):
    holder: list[Dispatcher] = []
    config = build_config(output_dir=tmp_path, min_query_count=300, min_duration_ms=0, warmup_samples=0)
    report = run(
        config,
        console=Console(file=io.StringIO()),
        replica_factory=_dispatched("round-robin", (SLOW, FAST), holder, batch=52),
    )
    samples = report.record.samples
    assert samples.completed == samples.issued
    assert samples.duplicates == 0 and samples.unanswered == 0
    stolen = report.record.offline_stolen
    assert set(stolen) == {"scripted"} and stolen["scripted"] > 0  # only ever from the slow one
    served = [stats.samples for stats in holder[0].replica_stats()]
    # Unstarted work left the slow replica: what it finished is about what it could do meanwhile.
    assert served[0] < samples.issued / 4


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
            batch=7,
        )
        holder.append(dispatcher)
        return dispatcher

    options = {"target_qps": 200.0} if scenario == "Server" else {}
    config = build_config(
        output_dir=tmp_path, scenario=scenario, min_query_count=400, min_duration_ms=0, warmup_samples=0, **options
    )
    report = run(config, console=Console(file=io.StringIO()), replica_factory=factory)
    samples = report.record.samples
    assert samples.completed + samples.failed == samples.issued
    assert samples.duplicates == 0 and samples.unanswered == 0
    served = [r.samples for r in report.record.replicas]
    assert served[1] == 40 and served[0] == samples.completed - 40
    # Only a stream whose first token was out fails; everything else moved to replica-0.
    assert samples.failed == (1 if scenario == "Server" else 0)
    assert not report.result.valid
    assert any("scripted replica died" in reason for reason in report.result.invalid_reasons)
    assert "scripted" in report.record.replica_failures


class _Holding:
    """A replica that only keeps what it is given: the test decides when it is out or back."""

    def __init__(self, slot: int, sink) -> None:
        self.name, self.sink, self.got = f"replica-{slot}", sink, []

    def submit(self, requests) -> None:
        self.got += requests


def _requests(first: int, count: int, *, stream: bool) -> list[GenerationRequest]:
    return [GenerationRequest(i, i, [1, 2, 3], stream=stream) for i in range(first, first + count)]


def test_a_replica_that_is_out_gets_no_work_and_its_unstarted_work_moves_until_it_is_back():
    dispatcher = Dispatcher(_Holding, 2, sink=None, policy="round-robin", batch=8)  # nothing reaches the sink
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


class _Sink:
    """Records what reaches LoadGen's side."""

    def __init__(self) -> None:
        self.completed_ids: list[int] = []
        self.failed_ids: list[int] = []

    def first_token(self, request, token_id) -> None:
        pass

    def completed(self, results) -> None:
        self.completed_ids += [request.response_id for request, _ in results]

    def failed(self, requests, reason) -> None:
        self.failed_ids += [request.response_id for request in requests]


class _Giving(_Holding):
    """A `_Holding` replica whose newest `unstarted` Offline requests can be withdrawn."""

    def __init__(self, slot: int, sink) -> None:
        super().__init__(slot, sink)
        self.unstarted, self.asked = 0, 0

    def withdraw(self, count, give_back) -> None:
        self.asked += 1
        taken = [r for r in self.got if not r.stream][-min(count, self.unstarted) :] if self.unstarted else []
        self.got = [r for r in self.got if r not in taken]
        self.unstarted -= len(taken)
        give_back(taken)

    def finish(self, count: int) -> None:
        done, self.got = self.got[:count], self.got[count:]
        self.sink.completed([(request, [1, 2]) for request in done])


def test_stolen_work_goes_to_the_replica_that_asked_not_the_first_with_room():
    sink = _Sink()
    dispatcher = Dispatcher(_Giving, 3, sink, batch=8)  # a target of 10 each
    first, second, third = dispatcher.members
    dispatcher.submit(_requests(0, 30, stream=False))
    assert [len(m.got) for m in dispatcher.members] == [10, 10, 10]
    first.unstarted = 6
    second.finish(3)  # 7 left: 3 fewer than the others, not worth a trip
    assert first.asked == 0
    third.finish(8)  # 2 left: it asks the busiest for half the gap of 8
    assert first.asked == 1
    assert (len(first.got), len(second.got), len(third.got)) == (6, 7, 6)
    assert dispatcher.stolen() == {"replica-0": 4}


def test_a_replica_that_gave_nothing_back_is_asked_again_only_after_a_while():
    sink = _Sink()
    dispatcher = Dispatcher(_Giving, 2, sink, batch=8)
    busy, idle = dispatcher.members
    dispatcher.submit(_requests(0, 20, stream=False))
    for _ in range(5):
        idle.finish(1)
    assert busy.asked == 1 and dispatcher.stolen() == {}  # asked once the gap was 4; not after each finish
    time.sleep(ASK_AGAIN_SECONDS)
    busy.unstarted = 3  # its engine preempted some
    idle.finish(1)
    assert busy.asked == 2 and dispatcher.stolen() == {"replica-0": 3}


def test_stopping_fails_what_is_still_in_the_offline_pool():
    sink = _Sink()
    dispatcher = Dispatcher(_Giving, 2, sink, batch=8)
    for member in dispatcher.members:
        member.stop = lambda: None
    dispatcher.submit(_requests(0, 25, stream=False))
    dispatcher.stop()
    assert sorted(sink.failed_ids) == list(range(20, 25))
    dispatcher.members[0].finish(10)  # a replica answering while it stops pulls nothing more
    assert len(dispatcher.members[1].got) == 10


def test_a_step_the_engine_says_nothing_about_leaves_nothing_counted_as_waiting():
    queue = EngineQueue()
    queue.added_since = 5
    queue.stepping()
    queue.report(3)
    queue.stepped()
    assert queue.waiting == 3
    queue.added_since = 2
    queue.stepping()
    queue.stepped()  # no report: with stats off, vLLM never calls the logger
    assert queue.waiting == 0
