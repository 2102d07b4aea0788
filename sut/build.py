"""Replicas built from their typed configuration: vLLM engines in worker processes on this host, vLLM
engines in Ray actors, or inference servers; several go behind a dispatcher, one on its own.

The public systems under test (`sut.systems`) and the harness's runs build their replicas here, so
there is one way a configuration becomes replicas.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from scenarios.requests import ResultSink
from sut.client_replica import ClientProcess, ClientReplica
from sut.client_worker import ClientReplicaSpec, ClientSpec
from sut.dispatch import Dispatcher
from sut.engine_config import EngineConfig
from sut.engine_logs import route_vllm_logs
from sut.engine_replica import EngineReplica
from sut.engine_worker import STALL_SECONDS, START_SECONDS, WorkerSpec
from sut.generation import GenerationConfig
from sut.layout import Placement, plan_layout, running_on_cpu
from sut.output_ids import Retokenizer
from sut.remote_config import RemoteConfig
from sut.remote_replica import AttemptBudget, RemoteReplica
from sut.replica import Member, ReplicaGroup
from sut.solo import Solo

if TYPE_CHECKING:
    from sut.ray_replica import RayCluster


@dataclass
class ReplicaLayout:
    """How many engines, where each runs, how they share the work, and how long each may take."""

    replicas: int = 1
    """Engines; each gets `engine.tensor_parallel_size` devices of its own."""
    dispatch: str = "round-robin"
    """How several replicas share the work (`sut.dispatch.POLICIES`)."""
    work_stealing: bool = True
    """Offline: a replica that runs low takes back unstarted work from a busier one."""
    devices: list[str] | None = None
    """Explicit GPUs per replica (CUDA_VISIBLE_DEVICES ids, comma-separated), one entry per replica."""
    cpu_bind: list[str] | None = None
    """Cores per replica (`0-15`, `0,2,4`, `node:1`), one entry per replica."""
    stall_timeout: float = STALL_SECONDS
    """Seconds one engine step may take before the engine counts as hung and is ended."""
    start_timeout: float = START_SECONDS
    """Seconds an engine may take to come up."""
    step_delays: dict[int, float] = field(default_factory=dict)
    """Seconds a replica (by slot) sleeps after each engine step: emulates a slower device in tests and
    benchmarks (and makes a run non-compliant)."""


@dataclass
class EnginesConfig:
    """vLLM engines as replicas: in worker processes on this host, or in Ray actors."""

    engine: EngineConfig
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    layout: ReplicaLayout = field(default_factory=ReplicaLayout)
    gpu_interval: float | None = None
    """Seconds between samples of each Ray actor's GPUs, on its own node (the run's telemetry interval); None:
    not sampled."""


@dataclass
class ServersConfig:
    """Inference servers as replicas, one per endpoint of `remote`."""

    remote: RemoteConfig
    tokenizer: str
    """A local directory with the served model's tokenizer (prompts go as token ids, answers come back as
    ids, or as text that is re-tokenized with it)."""
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    dispatch: str = "round-robin"
    work_stealing: bool = True


def local_engines(config: EnginesConfig, sink: ResultSink, log_path: Path | None = None) -> ReplicaGroup:
    """`config.layout.replicas` vLLM engines on this host, each in a worker process. `log_path`: where the engines'
    output goes (None: this process's standard output and error)."""
    if log_path is not None:
        route_vllm_logs(log_path)
    on_cpu = running_on_cpu()
    config.engine.to_engine_args(on_cpu=on_cpu)  # bad engine arguments fail here, before any process starts
    config.generation.check_engine(on_cpu=on_cpu)
    layout = config.layout
    placements = plan_layout(
        layout.replicas,
        config.engine.tensor_parallel_size,
        on_cpu=on_cpu,
        devices=layout.devices,
        cpu_bind=layout.cpu_bind,
    )
    return _engines(config, sink, [(placement, None) for placement in placements], config.engine, log_path)


def ray_engines(
    config: EnginesConfig, sink: ResultSink, log_path: Path | None = None, *, address: str = "auto"
) -> ReplicaGroup:
    """`config.layout.replicas` vLLM engines as Ray actors (`sut.ray_replica`) of the cluster at `address` (`auto`
    joins this node's, or starts a local one on 127.0.0.1)."""
    from sut.ray_replica import connect

    if log_path is not None:
        route_vllm_logs(log_path)
    cluster = connect(address)
    engine = config.engine
    try:
        on_gpus = cluster.gpus > 0
        engine.to_engine_args(on_cpu=not on_gpus)
        config.generation.check_engine(on_cpu=not on_gpus)
        if on_gpus and engine.tensor_parallel_size > 1:
            # The actor holds its replica's GPUs, and its tensor-parallel ranks are its own processes; vLLM's
            # Ray executor would instead look for one placement bundle per rank.
            engine = dataclasses.replace(engine, extra={"distributed_executor_backend": "mp", **engine.extra})
        bundles = cluster.layout(config.layout.replicas, engine.tensor_parallel_size, config.layout.cpu_bind)
    except BaseException:
        cluster.close_if_unused()
        raise
    return _engines(config, sink, bundles, engine, log_path, cluster)


def _engines(
    config: EnginesConfig,
    sink: ResultSink,
    placed: Sequence[tuple[Placement, dict[str, float] | None]],
    engine_config: EngineConfig,
    log_path: Path | None,
    cluster: RayCluster | None = None,
) -> ReplicaGroup:
    """One `EngineReplica` per placement: a local worker process, or (with a Ray bundle) a Ray actor."""

    def engine(slot: int, replica_sink: ResultSink) -> Member:
        placement, bundle = placed[slot]
        layout = config.layout
        spec = WorkerSpec(
            name=f"replica-{slot}",
            engine=engine_config,
            generation=config.generation,
            placement=placement,
            log_path=log_path,
            step_delay=layout.step_delays.get(slot, 0.0),
            stall_timeout=layout.stall_timeout,
            start_timeout=layout.start_timeout,
            gpu_interval=config.gpu_interval if cluster is not None else None,
        )
        if cluster is None or bundle is None:
            return EngineReplica(spec, replica_sink)
        from sut.ray_replica import RayLink

        return EngineReplica(spec, replica_sink, RayLink(cluster, bundle))

    layout = config.layout
    return _group(
        engine, layout.replicas, sink, engine_config.max_num_seqs or 256, layout.dispatch, layout.work_stealing
    )


def remote_servers(config: ServersConfig, sink: ResultSink) -> ReplicaGroup:
    """One replica per endpoint: its HTTP client in a client worker process (`sut.client_replica`), the endpoints
    dealt round-robin over `remote.client_process_count()` of them; or, with none, a `RemoteReplica` in this
    process."""
    remote = config.remote
    # One count of failed attempts per sample for all endpoints: the retries hold for the whole run.
    budget = AttemptBudget()
    count = len(remote.endpoints)
    processes = remote.client_process_count()
    if processes == 0:
        return _group(
            _in_process(config, budget), count, sink, remote.max_in_flight, config.dispatch, config.work_stealing
        )
    workers = [
        ClientProcess(
            ClientSpec(
                name=f"client-{index}",
                replicas=[
                    ClientReplicaSpec(slot, f"replica-{slot}", remote.endpoints[slot])
                    for slot in range(index, count, processes)
                ],
                remote=remote,
                tokenizer=config.tokenizer,
                generation=config.generation,
            )
        )
        for index in range(processes)
    ]

    def endpoint(slot: int, replica_sink: ResultSink) -> Member:
        return ClientReplica(
            f"replica-{slot}", slot, remote.endpoints[slot], remote, workers[slot % processes], replica_sink, budget
        )

    return _group(endpoint, count, sink, remote.max_in_flight, config.dispatch, config.work_stealing)


def _in_process(config: ServersConfig, budget: AttemptBudget) -> Callable[[int, ResultSink], Member]:
    remote = config.remote
    retokenizer = Retokenizer(config.tokenizer)

    def endpoint(slot: int, replica_sink: ResultSink) -> Member:
        return RemoteReplica(
            f"replica-{slot}", remote.endpoints[slot], remote, config.generation, retokenizer, replica_sink, budget
        )

    return endpoint


def _group(
    build: Callable[[int, ResultSink], Member],
    count: int,
    sink: ResultSink,
    batch: int,
    dispatch: str,
    work_stealing: bool,
) -> ReplicaGroup:
    """A lone replica on its own; several behind a dispatcher. `batch`: how many requests one runs at once."""
    if count == 1:
        return Solo(build(0, sink))
    return Dispatcher(build, count, sink, policy=dispatch, batch=batch, work_stealing=work_stealing)
