"""Several replicas behind one `Replica`: a dispatch policy for streams, balanced pulls for Offline.

Server requests (streams) go one by one to the replica a policy picks:

* `round-robin`: in turn;
* `least-requests`: the fewest outstanding requests;
* `least-tokens`: the fewest outstanding tokens, prompt plus expected output
  (the running mean of the outputs seen so far);
* `least-delay`: the shortest expected time to first token, from what each
  replica's own streams have shown (`DelayEstimate`): a slow or overloaded
  replica gets a request only when it would still answer first.

Offline requests are not spread up front. They wait in one pool, longest prompt
first; the replicas are filled in small round-robin chunks up to a target of
outstanding requests (a quarter more than a replica runs at once), and each one
pulls from the pool as its requests finish. Once the pool is empty, a replica
with free batch slots that finishes a request while another holds many more asks
that one for half the difference back: what waits unstarted there (in its
engine's queue, or a remote replica's) moves to it (work stealing). No replica idles while
another still has a queue, and the run ends with every replica finishing at
nearly the same time.

A replica that is out for now (a remote one failing its health checks) gets no
new work, and its unstarted work moves to the others; when it is back it pulls
again. A replica that failed for good hands its unstarted work on for good.

The dispatcher sees every result on its way to the real sink, which is how it
knows what is outstanding; it adds no thread of its own.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mlperf_llm_sut.common.errors import HarnessError
from mlperf_llm_sut.telemetry.series import Sampler
from scenarios.requests import GenerationRequest, ResultSink
from sut.replica import Member, Replica, ReplicaStats

POLICIES = ("round-robin", "least-requests", "least-tokens", "least-delay")
# Before any output is seen, expect this many output tokens per request.
INITIAL_EXPECTED_OUTPUT = 256
# The first Offline fill goes round-robin in chunks this small, so replicas start even.
FILL_CHUNK = 16
# Work is taken back from a replica only when it holds at least this many requests more than the one
# asking: fewer are not worth a round trip.
STEAL_GAP = 4
# A replica that had nothing to give back is asked again after this long at the soonest, not after every
# completion: one round trip per engine step would be wasted.
ASK_AGAIN_SECONDS = 0.05
# How much each new measurement moves a delay estimate: about the last ten count.
SMOOTHING = 0.2
# A replica measured this long ago is given the benefit of the doubt once more (the fleet's best step), so
# one that was slow for a while is tried again, and its estimate refreshed, instead of never again.
STALE_SECONDS = 5.0


@dataclass
class DelayEstimate:
    """One replica's expected time to first token, learned from its own streams.

    A new request waits for the step under way (half a step on average, when the replica is busy), then
    for the prompts queued before it and its own to be prefilled, in the step that makes its first token:

        delay = step x (1.5 if busy else 1) + prefill x (prompt tokens waiting + its own)

    `step` is the moving average of the time per output token of finished streams (an engine step, at the
    batch the replica runs), and `prefill` of the first-token wait beyond that, per prompt token ahead.
    Both are measured where the harness sees the replica (at the end of its pipe or HTTP stream), so a
    replica that is far away or shared is judged by what it delivers."""

    step: float | None = None
    prefill: float = 0.0
    measured_at: float = 0.0
    waiting_tokens: int = 0
    """Prompt tokens of its streams that have no first token yet."""
    pending: dict[int, tuple[float, int]] = field(default_factory=dict)
    """Stream without a first token: when it was sent, and the prompt tokens waiting then (its own too)."""
    started: dict[int, float] = field(default_factory=dict)
    """Stream with a first token: when it came."""

    def delay(self, prompt_tokens: int, busy: bool, step: float) -> float:
        return step * (1.5 if busy else 1.0) + self.prefill * (self.waiting_tokens + prompt_tokens)

    def sent(self, request: GenerationRequest, now: float) -> None:
        self.waiting_tokens += len(request.prompt)
        self.pending[request.response_id] = (now, self.waiting_tokens)

    def first_token(self, request: GenerationRequest, now: float, busy: bool) -> None:
        sent = self.pending.pop(request.response_id, None)
        if sent is None:
            return
        self.waiting_tokens -= len(request.prompt)
        self.started[request.response_id] = now
        if self.step is not None:
            waited, ahead = now - sent[0], max(sent[1], 1)
            # The wait minus the step it was due anyway; `busy` is the replica's state now, near enough.
            sample = max(0.0, waited - self.step * (1.5 if busy else 1.0)) / ahead
            self.prefill += SMOOTHING * (sample - self.prefill)

    def finished(self, request: GenerationRequest, output_tokens: int | None, now: float) -> None:
        if self.pending.pop(request.response_id, None) is not None:  # ended or moved before a first token
            self.waiting_tokens -= len(request.prompt)
        first = self.started.pop(request.response_id, None)
        if first is None or not output_tokens or output_tokens < 2:
            return
        sample = (now - first) / (output_tokens - 1)
        self.step = sample if self.step is None else self.step + SMOOTHING * (sample - self.step)
        self.measured_at = now


@dataclass
class _Load:
    requests: int = 0
    tokens: int = 0
    last_finish: float | None = None
    expected: dict[int, int] = field(default_factory=dict)
    failure: str | None = None
    """Why the replica stopped for good; it then gets no more work."""
    out: bool = False
    """Out for now (a remote replica failing health); it gets work again when it is back."""
    moved: int = 0
    """Unstarted requests it handed back when it failed."""
    delay: DelayEstimate = field(default_factory=DelayEstimate)
    withdrawing: bool = False
    """A `withdraw` sent to it is unanswered: no second one goes out meanwhile."""
    dry_since: float | None = None
    """When it last gave nothing back (None: it got work since). Asked again only after ASK_AGAIN_SECONDS: its
    queue grows again only when its engine preempts running requests."""
    stolen: int = 0
    """Unstarted Offline requests taken back from it and moved to others."""


class _ReplicaSink:
    """The sink one replica reports to: accounts the result, then passes it on."""

    def __init__(self, dispatcher: Dispatcher, slot: int) -> None:
        self._dispatcher = dispatcher
        self._slot = slot

    def first_token(self, request: GenerationRequest, token_id: int) -> None:
        # LoadGen first: the first token must not wait for the dispatcher's lock.
        now = time.perf_counter()
        self._dispatcher._sink.first_token(request, token_id)
        self._dispatcher._started(self._slot, request, now)

    def completed(self, results: Sequence[tuple[GenerationRequest, Sequence[int]]]) -> None:
        self._dispatcher._settle(self._slot, [request for request, _ in results], [len(t) for _, t in results])
        self._dispatcher._sink.completed(results)
        self._dispatcher._refill_or_steal(self._slot)

    def failed(self, requests: Sequence[GenerationRequest], reason: str) -> None:
        self._dispatcher._settle(self._slot, list(requests), None)
        self._dispatcher._sink.failed(requests, reason)
        self._dispatcher._refill_or_steal(self._slot)

    def replica_failed(self, unstarted: Sequence[GenerationRequest], reason: str) -> None:
        self._dispatcher._lose(self._slot, list(unstarted), reason)

    def replica_down(self, unstarted: Sequence[GenerationRequest], reason: str) -> Sequence[GenerationRequest]:
        return self._dispatcher._set_aside(self._slot, list(unstarted))

    def replica_up(self) -> None:
        self._dispatcher._back(self._slot)


class Dispatcher:
    """A `ReplicaGroup` of several replicas; see the module docstring for how work is placed."""

    name = "dispatcher"

    def __init__(
        self,
        build: Callable[[int, ResultSink], Member],
        count: int,
        sink: ResultSink,
        *,
        policy: str = "round-robin",
        batch: int = 256,
        work_stealing: bool = True,
    ) -> None:
        """`batch`: how many requests a replica runs at once (an engine's max_num_seqs, a server's in-flight
        limit)."""
        if policy not in POLICIES:
            raise ValueError(f"unknown dispatch policy {policy!r}; use one of {', '.join(POLICIES)}")
        if count < 1:
            raise ValueError("a dispatcher needs at least one replica")
        self.policy = policy
        self.batch = batch
        # A quarter more in hand than a replica runs covers the time a finished request's replacement takes
        # to arrive.
        self.target = batch * 5 // 4
        self.work_stealing = work_stealing
        self._sink = sink
        self._lock = threading.Lock()
        self._loads = [_Load() for _ in range(count)]
        self._turn = itertools.cycle(range(count))
        self._pool: deque[GenerationRequest] = deque()
        self._output_seen = [0, 0]  # tokens, samples
        self._pooled = False
        """Offline work has come: only that can be taken back."""
        self._placed: dict[int, int] = {}
        self._stopping = False
        self.members = [build(slot, _ReplicaSink(self, slot)) for slot in range(count)]

    # -- Replica -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start every replica at once (each loads its own weights); if one fails, stop the rest."""
        with ThreadPoolExecutor(len(self.members)) as pool:
            outcomes = list(pool.map(_start, self.members))
        errors = [error for error in outcomes if error is not None]
        if errors:
            for replica, error in zip(self.members, outcomes, strict=True):
                if error is None:
                    replica.stop()
            failed = [error for error in errors if isinstance(error, HarnessError)]
            if len(errors) > 1 and len(failed) == len(errors):
                # Every replica that cannot start says so, on a line of its own.
                raise HarnessError("\n".join(error.message for error in failed))
            raise errors[0]

    def warm_up(self, prompts: Sequence[list[int]], max_new_tokens: int) -> None:
        """Each replica warms up on its share of the prompts, all at once: the time this takes is the
        group's, as a calibration needs it (and start-up is not longer for more replicas)."""
        shares = [list(prompts[i :: len(self.members)]) or list(prompts[:1]) for i in range(len(self.members))]
        with ThreadPoolExecutor(len(self.members)) as pool:
            list(pool.map(lambda replica, share: replica.warm_up(share, max_new_tokens), self.members, shares))

    def submit(self, requests: Sequence[GenerationRequest]) -> None:
        streams = [r for r in requests if r.stream]
        pooled = sorted((r for r in requests if not r.stream), key=lambda r: -len(r.prompt))
        for request in streams:
            with self._lock:
                slot = self._pick(request)
                if slot is not None:
                    self._assign(slot, [request])
            if slot is None:
                self._sink.failed([request], "every replica has failed")
            else:
                self.members[slot].submit([request])
        if pooled:
            with self._lock:
                self._pooled = True
                self._pool.extend(pooled)
            while any([self._refill(slot, limit=FILL_CHUNK) for slot in range(len(self.members))]):
                pass

    def stop(self) -> None:
        """Stop every replica; what one hands back meanwhile, and what is still in the pool, fails."""
        with self._lock:
            self._stopping = True
        for replica in self.members:
            replica.stop()
        leftover = self._drain_pool()
        if leftover:
            self._sink.failed(leftover, "the run was stopped before a replica took it")

    def stats(self) -> ReplicaStats:
        total = ReplicaStats(name=self.name)
        for stats in self.replica_stats():
            total.devices += stats.devices
            total.samples += stats.samples
            total.output_tokens += stats.output_tokens
            total.failed += stats.failed
            total.busy_seconds = max(total.busy_seconds, stats.busy_seconds)
        return total

    def engine_args(self) -> dict[str, Any]:
        """Every member's engine is built from one configuration."""
        return self.members[0].engine_args()

    def samplers(self) -> list[Sampler]:
        return [sampler for replica in self.members for sampler in replica.samplers()]

    # -- what the runner reports ------------------------------------------------------------------
    def replica_stats(self) -> list[ReplicaStats]:
        return [replica.stats() for replica in self.members]

    def replica_failures(self) -> dict[str, dict[str, object]]:
        """Replicas that failed during the run: why, and how many unstarted requests moved on."""
        return {
            replica.name: {"reason": load.failure, "moved": load.moved}
            for replica, load in zip(self.members, self._loads, strict=True)
            if load.failure is not None
        }

    def assignments(self) -> dict[int, str]:
        """Which replica each request (by LoadGen response id) went to last."""
        with self._lock:
            return {response_id: self.members[slot].name for response_id, slot in self._placed.items()}

    def stolen(self) -> dict[str, int]:
        """Offline requests taken back from each replica that gave some, and moved to another."""
        loads = zip(self.members, self._loads, strict=True)
        return {replica.name: load.stolen for replica, load in loads if load.stolen}

    def finish_spread(self) -> float | None:
        """Seconds between the first and the last replica finishing its last request."""
        finishes = [load.last_finish for load in self._loads if load.last_finish is not None]
        return max(finishes) - min(finishes) if len(finishes) > 1 else None

    # -- placement --------------------------------------------------------------------------------
    def _expected_output(self) -> int:
        tokens, samples = self._output_seen
        return round(tokens / samples) if samples else INITIAL_EXPECTED_OUTPUT

    def _pick(self, request: GenerationRequest) -> int | None:
        """The policy's replica for `request`, among those up; None when every one has failed.

        When every live replica is out, one of them keeps the request until it is back."""
        live = [slot for slot, load in enumerate(self._loads) if load.failure is None]
        if not live:
            return None
        live = [slot for slot in live if not self._loads[slot].out] or live
        # Every policy starts looking at the next replica in turn, so ties rotate instead of
        # always going to replica 0 (at light load every replica has nothing outstanding).
        start = next(self._turn)
        ordered = sorted(live, key=lambda slot: (slot - start) % len(self._loads))
        if self.policy == "round-robin":
            return ordered[0]
        if self.policy == "least-requests":
            return min(ordered, key=lambda slot: self._loads[slot].requests)
        if self.policy == "least-tokens":
            return min(ordered, key=lambda slot: self._loads[slot].tokens)
        return self._least_delay(ordered, request)

    def _least_delay(self, ordered: list[int], request: GenerationRequest) -> int:
        """Until a candidate has a measured step, the least requests (which is also how each gets one). A
        replica not measured yet, or idle and measured long ago, counts as fast as the best: it is tried, and
        its estimate made or refreshed, instead of never again."""
        now = time.perf_counter()
        steps = [step for slot in ordered if (step := self._loads[slot].delay.step) is not None]
        if not steps:
            return min(ordered, key=lambda slot: self._loads[slot].requests)
        best = min(steps)

        def delay(slot: int) -> float:
            load = self._loads[slot]
            estimate = load.delay
            stale = load.requests == 0 and now - estimate.measured_at > STALE_SECONDS
            step = best if estimate.step is None or stale else estimate.step
            return estimate.delay(len(request.prompt), load.requests > 0, step)

        return min(ordered, key=delay)

    def _lose(self, slot: int, unstarted: list[GenerationRequest], reason: str) -> None:
        """A replica failed for good: its unstarted work goes to the others (Offline: back to the pool)."""
        with self._lock:
            load = self._loads[slot]
            first_report = load.failure is None
            load.failure = reason
            load.moved += len(unstarted)
            self._requeue(load, unstarted)
            stranded = not any(other.failure is None for other in self._loads)
        if first_report or stranded:
            # The responder records the failure (the run is then INVALID) and fails what nobody can take.
            self._sink.replica_failed(self._drain_pool() if stranded else [], reason)
        self.submit([r for r in unstarted if r.stream])
        self._refill_all()

    def _set_aside(self, slot: int, unstarted: list[GenerationRequest]) -> list[GenerationRequest]:
        """A replica is out for now: its unstarted work moves on, unless no replica is in to take it."""
        with self._lock:
            load = self._loads[slot]
            load.out = True
            if not any(other.failure is None and not other.out for other in self._loads):
                return unstarted
            self._requeue(load, unstarted)
        self.submit([r for r in unstarted if r.stream])
        self._refill_all()
        return []

    def _back(self, slot: int) -> None:
        with self._lock:
            self._loads[slot].out = False
        self._refill(slot)

    def _requeue(self, load: _Load, unstarted: Sequence[GenerationRequest]) -> None:
        """Under the lock: `unstarted` leaves its replica; the Offline requests go to the front of the pool."""
        self._unplace(load, unstarted, None)
        self._pool.extendleft(reversed([r for r in unstarted if not r.stream]))

    def _refill_all(self, first: int | None = None, skip: int | None = None) -> None:
        for slot in sorted(range(len(self.members)), key=lambda slot: slot != first):
            if slot != skip:
                self._refill(slot)

    def _drain_pool(self) -> list[GenerationRequest]:
        with self._lock:
            drained = list(self._pool)
            self._pool.clear()
        return drained

    def _assign(self, slot: int, requests: Sequence[GenerationRequest]) -> None:
        load = self._loads[slot]
        load.dry_since = None
        delays = self.policy == "least-delay"
        now = time.perf_counter() if delays else 0.0
        for request in requests:
            self._placed[request.response_id] = slot
            if delays and request.stream:
                load.delay.sent(request, now)
            cost = len(request.prompt) + self._expected_output()
            load.requests += 1
            load.tokens += cost
            load.expected[request.response_id] = cost

    def _settle(self, slot: int, requests: Sequence[GenerationRequest], outputs: Sequence[int] | None) -> None:
        with self._lock:
            load = self._loads[slot]
            self._unplace(load, requests, outputs)
            if outputs:
                self._output_seen[0] += sum(outputs)
                self._output_seen[1] += len(outputs)
            load.last_finish = time.perf_counter()

    def _unplace(self, load: _Load, requests: Sequence[GenerationRequest], outputs: Sequence[int] | None) -> None:
        """The requests leave the replica: answered (`outputs`: their lengths), failed or moved (None)."""
        delays = self.policy == "least-delay"
        now = time.perf_counter() if delays else 0.0
        for i, request in enumerate(requests):
            load.requests -= 1
            load.tokens -= load.expected.pop(request.response_id, 0)
            if delays and request.stream:
                load.delay.finished(request, outputs[i] if outputs else None, now)

    def _started(self, slot: int, request: GenerationRequest, now: float) -> None:
        if self.policy == "least-delay":
            with self._lock:
                load = self._loads[slot]
                load.delay.first_token(request, now, load.requests > 1)

    def _refill_or_steal(self, slot: int) -> None:
        """After a replica finished something: it pulls from the pool; when the pool is empty, the replica with
        the least work, if it has free batch slots, asks the one with the most for half the difference
        (whichever finished: the idle one finishes nothing more that could make it ask)."""
        if self._refill(slot) or self._pool or not (self.work_stealing and self._pooled):
            return
        with self._lock:
            live = [i for i, load in enumerate(self._loads) if load.failure is None and not load.out]
            if self._stopping or len(live) < 2:
                return
            thief = min(live, key=lambda i: self._loads[i].requests)
            now = time.perf_counter()
            donors = [i for i in live if i != thief and self._may_ask(self._loads[i], now)]
            if not donors:
                return
            donor = max(donors, key=lambda i: self._loads[i].requests)
            gap = self._loads[donor].requests - self._loads[thief].requests
            count = min(gap // 2, self.batch - self._loads[thief].requests)
            if gap < STEAL_GAP or count < 1:
                return
            self._loads[donor].withdrawing = True
        self.members[donor].withdraw(count, lambda requests: self._returned(donor, thief, requests))

    @staticmethod
    def _may_ask(load: _Load, now: float) -> bool:
        return not load.withdrawing and (load.dry_since is None or now - load.dry_since >= ASK_AGAIN_SECONDS)

    def _returned(self, donor: int, thief: int, requests: list[GenerationRequest]) -> None:
        """What a replica handed back unstarted goes to the one that asked (or, if it cannot take it, on)."""
        with self._lock:
            load = self._loads[donor]
            load.withdrawing = False
            load.dry_since = None if requests else time.perf_counter()
            load.stolen += len(requests)
            self._requeue(load, requests)
        if not self._stopping:
            self._refill_all(first=thief, skip=donor)

    def _refill(self, slot: int, limit: int | None = None) -> bool:
        """Top the replica up from the Offline pool to the target; False when it took nothing."""
        with self._lock:
            if self._stopping or self._loads[slot].failure is not None or self._loads[slot].out:
                return False
            room = self.target - self._loads[slot].requests
            count = min(len(self._pool), room if limit is None else min(room, limit))
            if count <= 0:
                return False
            chunk = [self._pool.popleft() for _ in range(count)]
            self._assign(slot, chunk)
        self.members[slot].submit(chunk)
        return True


def _start(replica: Replica) -> BaseException | None:
    try:
        replica.start()
    except BaseException as exc:
        return exc
    return None
