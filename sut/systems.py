"""Systems under test for a LoadGen script of your own: replicas behind a scenario driver.

The MLCommons reference harnesses build a SUT object, hand its `issue_queries` and `flush_queries` to
`lg.ConstructSUT` and its QSL to `lg.StartTest`; these classes fit that flow (see docs/library.md)::

    library = SampleLibrary.from_path("open_orca.pkl", benchmark="llama2-70b", tokenizer="/models/llama2-70b")
    engine = EngineConfig(model="/models/llama2-70b", quantization="fp8")
    engines = EnginesConfig(engine, layout=ReplicaLayout(replicas=2))
    with LocalVLLM(engines, library, "Server") as sut:
        lg.StartTestWithLogSettings(sut.handle, library.handle, settings, log_settings)
    print([stats.tokens_per_second for stats in sut.stats()], sut.accounts().failed)

`harness.run` drives the same classes, with LoadGen's settings, logs and results around them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from mlperf_llm_sut.common.errors import HarnessError
from scenarios import DRIVERS
from scenarios.qsl import SampleLibrary
from scenarios.requests import ResultSink
from scenarios.responder import Accounts, LoadGenResponder
from sut.build import EnginesConfig, ServersConfig, local_engines, ray_engines, remote_servers
from sut.replica import ReplicaGroup, ReplicaStats

SCENARIOS = tuple(DRIVERS)
"""The LoadGen scenarios a system under test drives (`lg.TestScenario` names); the Interactive benchmark
scenario is LoadGen's Server with tighter latency limits."""


class SystemUnderTest:
    """Replicas behind a scenario driver and a responder: what LoadGen's `StartTest` drives.

    `start` brings the replicas up and `warm_up` runs a few samples untimed; `issue_queries` and
    `flush_queries` are LoadGen's callbacks, and `handle` a ready `lg.ConstructSUT` of them; `stop` fails
    what is still open and ends every replica. As a context manager it starts, warms up and stops itself.
    Every sample LoadGen issues is answered exactly once, with its output token ids (int32) or, when it
    failed, with none; `accounts` says afterwards what became of each, `stats` what each replica did.

    `replicas` builds the `ReplicaGroup` from the sink its results go to; `LocalVLLM`, `RayActors` and
    `RemoteServers` pass the builders of `sut.build`."""

    def __init__(
        self,
        replicas: Callable[[ResultSink], ReplicaGroup],
        library: SampleLibrary,
        scenario: str = "Offline",
        *,
        keep_tokens: bool = False,
        first_token_in_completion: bool = True,
    ) -> None:
        """`keep_tokens`: keep every answer's token ids in `accounts().records` (what an accuracy run scores).
        `first_token_in_completion`: whether a streamed answer's completion repeats its first token (the
        benchmark's convention: `Benchmark.first_token_in_completion`)."""
        if scenario not in DRIVERS:
            raise HarnessError(f"scenario {scenario!r}: a system under test drives one of {', '.join(SCENARIOS)}.")
        self.scenario = scenario
        self.library = library
        self.responder = LoadGenResponder(keep_tokens=keep_tokens, first_token_in_completion=first_token_in_completion)
        self.replicas = replicas(self.responder)
        self.driver = DRIVERS[scenario](library, self.replicas, self.responder)
        self._handle: Any = None

    @property
    def name(self) -> str:
        return self.replicas.name

    # -- life ----------------------------------------------------------------------------------------
    def start(self) -> None:
        """Bring every replica up (engines load their weights, servers are checked); raises `HarnessError`
        naming the replica that cannot start."""
        self.replicas.start()

    def warm_up(self, samples: int = 8, max_new_tokens: int = 16) -> None:
        """Generate the library's first `samples` prompts, untimed and unreported, so LoadGen's test
        starts on warm replicas."""
        prompts = self.library.dataset.prompts[:samples]
        if prompts:
            self.replicas.warm_up(prompts, max_new_tokens)

    def abandon(self, reason: str) -> None:
        """Fail every open sample now, and every sample issued from now on, with `reason`, so that LoadGen
        can return: what the replicas answer later is ignored."""
        self.responder.stop(reason)

    def stop(self) -> None:
        """End every replica (idempotent) and release `handle`."""
        self.replicas.stop()
        if self._handle is not None:
            self.driver.close()
            self._handle = None

    def __enter__(self) -> SystemUnderTest:
        try:
            self.start()
            self.warm_up()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # -- what LoadGen calls ----------------------------------------------------------------------------
    def issue_queries(self, query_samples: list[Any]) -> None:
        """LoadGen's `IssueQuery` callback: queues each sample on the replicas and returns at once."""
        self.driver.issue_queries(query_samples)

    def flush_queries(self) -> None:
        """LoadGen's `FlushQueries` callback: nothing is held back, so nothing to flush."""
        self.driver.flush_queries()

    @property
    def handle(self) -> Any:
        """`lg.ConstructSUT(issue_queries, flush_queries)`, made once; `stop` destroys it."""
        if self._handle is None:
            self._handle = self.driver.open()
        return self._handle

    # -- afterwards ----------------------------------------------------------------------------------
    def stats(self) -> list[ReplicaStats]:
        """What each replica did: samples, output tokens, failures, busy time (and a server's errors)."""
        return [member.stats() for member in self.replicas.members]

    def accounts(self) -> Accounts:
        """What became of every sample LoadGen issued: answered, failed (and why), duplicate, unanswered."""
        return self.responder.accounts()


class LocalVLLM(SystemUnderTest):
    """vLLM engines on this host, each in a worker process of its own with its devices (or cores): one, or
    several behind a dispatcher (`python -m harness --sut local`)."""

    def __init__(
        self,
        config: EnginesConfig,
        library: SampleLibrary,
        scenario: str = "Offline",
        *,
        log_path: Path | None = None,
        keep_tokens: bool = False,
        first_token_in_completion: bool = True,
    ) -> None:
        """`log_path`: the file the engines' output goes to (None: this process's standard output)."""
        super().__init__(
            lambda sink: local_engines(config, sink, log_path),
            library,
            scenario,
            keep_tokens=keep_tokens,
            first_token_in_completion=first_token_in_completion,
        )


class RayActors(SystemUnderTest):
    """vLLM engines as Ray actors anywhere in a Ray cluster, each in a placement group of its own
    (`python -m harness --sut ray`; needs `pip install ray`)."""

    def __init__(
        self,
        config: EnginesConfig,
        library: SampleLibrary,
        scenario: str = "Offline",
        *,
        address: str = "auto",
        log_path: Path | None = None,
        keep_tokens: bool = False,
        first_token_in_completion: bool = True,
    ) -> None:
        """`address`: the cluster to join; `auto` joins this node's, or starts a local one on 127.0.0.1."""
        super().__init__(
            lambda sink: ray_engines(config, sink, log_path, address=address),
            library,
            scenario,
            keep_tokens=keep_tokens,
            first_token_in_completion=first_token_in_completion,
        )


class RemoteServers(SystemUnderTest):
    """Inference servers (vLLM's OpenAI server, KServe v2, TGI), each endpoint a replica, streamed over
    HTTP from one event loop per endpoint (`python -m harness --sut remote`)."""

    def __init__(
        self,
        config: ServersConfig,
        library: SampleLibrary,
        scenario: str = "Offline",
        *,
        keep_tokens: bool = False,
        first_token_in_completion: bool = True,
    ) -> None:
        super().__init__(
            lambda sink: remote_servers(config, sink),
            library,
            scenario,
            keep_tokens=keep_tokens,
            first_token_in_completion=first_token_in_completion,
        )
