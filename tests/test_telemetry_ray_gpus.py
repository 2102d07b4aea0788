"""A Ray replica's GPUs: sampled through NVML inside its actor (recorded answers here: no GPU), sent with the
engine's reports, and read by the harness as GPU figures of that replica. The actor is the real `EngineActor`,
run in this process without Ray, its worker driving a stand-in engine."""

from __future__ import annotations

import gc
import pickle
import time
from collections.abc import Iterator

import pytest

from mlperf_llm_sut.telemetry import metrics
from mlperf_llm_sut.telemetry.hardware import NvmlFrame, RecordedNvml
from mlperf_llm_sut.telemetry.series import Reading
from mlperf_llm_sut.telemetry.summary import Window, summarize
from sut.engine_config import EngineConfig
from sut.engine_replica import EngineReplica, EngineSampler, ProcessLink
from sut.engine_worker import WorkerSpec
from sut.generation import GenerationConfig
from sut.layout import Placement
from sut.ray_replica import EngineActor
from sut.worker_protocol import EngineMetrics, FromWorker, GpuFigure, Ready, Stop

GIB = 2**30
INTERVAL = 0.05


class Idle:
    """An engine that is never asked for anything: the worker around it is what runs."""

    def add_request(self, *args: object) -> object:
        raise AssertionError("no request is sent")

    def step(self) -> list[object]:
        return []

    def has_unfinished_requests(self) -> bool:
        return False


def _spec(devices: list[str], name: str = "replica-0", gpu_interval: float | None = INTERVAL) -> WorkerSpec:
    return WorkerSpec(
        name,
        EngineConfig(model="idle"),
        GenerationConfig(),
        Placement(devices),
        engine_factory=lambda _: Idle(),
        gpu_interval=gpu_interval,
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _nvml(clock: Clock, **options: bool) -> RecordedNvml:
    """Two GPUs; gpu:1 draws 300 W, then 500 W from 10 s on, its energy counter following."""
    frames = {
        0: [NvmlFrame(0.0, 5, GIB, 60_000, 1_000_000)],
        1: [NvmlFrame(0.0, 90, 70 * GIB, 300_000, 2_000_000), NvmlFrame(10.0, 100, 70 * GIB, 500_000, 5_000_000)],
    }
    return RecordedNvml(frames, clock=clock, **options)


@pytest.fixture
def worker_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What `serve` sets in its process, kept to this test; and the collector, which it freezes, thawed after."""
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    monkeypatch.setenv("VLLM_LOGGING_PREFIX", "[replica-0] ")
    yield
    gc.unfreeze()


def _take_until(actor: EngineActor, done: type | None, seconds: float = 60.0) -> list[FromWorker | None]:
    """Messages until one of type `done` (None: the end mark) arrives (the first worker imports vLLM)."""
    messages: list[FromWorker | None] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        messages += actor.take(0.1)
        if any((message is None) if done is None else isinstance(message, done) for message in messages):
            return messages
    raise AssertionError(f"no {done} within {seconds} s: {messages}")


def _gpu_figures(message: EngineMetrics) -> dict[tuple[str, str], float]:
    return {(figure.gpu, figure.metric): figure.value for figure in message.gpus}


def test_an_actor_on_gpus_sends_their_figures_with_the_engines_reports_and_between_them(
    worker_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # as Ray sets it: the second of the node's two GPUs
    clock = Clock()
    nvml = _nvml(clock)
    actor = EngineActor(nvml=nvml)
    actor.start(_spec([]))
    assert isinstance(_take_until(actor, Ready)[-1], Ready)
    time.sleep(3 * INTERVAL)
    # Sampled, but nothing sent before the engine's first report.
    assert actor.take(0.0) == [] and "field_values" in nvml.calls

    actor.send(EngineMetrics(running=7, generation_tokens=100))  # the worker's stat logger reports
    report = actor.take(1.0)[0]
    assert isinstance(report, EngineMetrics) and (report.running, report.generation_tokens) == (7, 100)
    assert _gpu_figures(report) == {
        ("gpu:1", metrics.GPU_UTILIZATION): 0.9,
        ("gpu:1", metrics.GPU_MEMORY_USED): 70.0 * GIB,
        ("gpu:1", metrics.GPU_POWER): 300.0,
        ("gpu:1", metrics.GPU_ENERGY): 0.0,
    }
    assert report.gpu_warnings == ()

    # The engine falls silent; the GPU goes on drawing power, and its samples go out with the last report.
    clock.now = 12.0
    deadline = time.monotonic() + 5.0
    latest = report
    while _gpu_figures(latest)[("gpu:1", metrics.GPU_POWER)] != 500.0 and time.monotonic() < deadline:
        latest = next((m for m in reversed(actor.take(1.0)) if isinstance(m, EngineMetrics)), latest)
    assert (latest.running, latest.generation_tokens) == (7, 100)
    assert _gpu_figures(latest)[("gpu:1", metrics.GPU_ENERGY)] == 3000.0  # (5,000,000 - 2,000,000) mJ
    assert pickle.loads(pickle.dumps(latest)) == latest  # as Ray carries it

    actor.put([Stop()])
    rest = _take_until(actor, None)
    assert rest[-1] is None and all(isinstance(message, EngineMetrics) for message in rest[:-1])
    assert actor.join(5.0) and nvml.calls[-1] == "shutdown"
    assert actor.take(0.2) == []  # nothing after the end mark


def test_an_actor_without_nvml_says_so_in_its_reports(worker_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    actor = EngineActor(nvml=_nvml(Clock(), available=False))
    actor.start(_spec([]))
    _take_until(actor, Ready)
    time.sleep(2 * INTERVAL)
    actor.send(EngineMetrics(running=1))
    report = actor.take(1.0)[0]
    assert isinstance(report, EngineMetrics) and report.gpus == ()
    assert report.gpu_warnings == (
        "nvml: no GPU readings, NVML is not available here (nvmlInit: NVML Shared Library Not Found)",
    )
    actor.put([Stop()])
    _take_until(actor, None)


def test_an_actor_on_cpus_passes_the_engines_reports_on_unchanged(
    worker_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # what Ray sets for an actor without GPUs
    nvml = _nvml(Clock())
    actor = EngineActor(nvml=nvml)
    actor.start(_spec(["cpu"]))
    _take_until(actor, Ready)
    actor.send(EngineMetrics(running=2))
    assert actor.take(1.0) == [EngineMetrics(running=2)]
    actor.put([Stop()])
    _take_until(actor, None)
    assert nvml.calls == []


def test_an_actor_on_gpus_in_a_run_that_samples_nothing_leaves_nvml_alone(
    worker_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    nvml = _nvml(Clock())
    actor = EngineActor(nvml=nvml)
    actor.start(_spec([], gpu_interval=None))  # --telemetry-interval 0
    _take_until(actor, Ready)
    time.sleep(3 * INTERVAL)
    actor.send(EngineMetrics(running=2))
    assert actor.take(1.0) == [EngineMetrics(running=2)]
    actor.put([Stop()])
    _take_until(actor, None)
    assert nvml.calls == []


def _replica(report: EngineMetrics | None, name: str = "replica-0") -> EngineReplica:
    replica = EngineReplica(_spec([], name), sink=None, link=ProcessLink())  # type: ignore[arg-type]  # never started
    replica.engine_metrics = report
    return replica


def test_the_harness_reads_an_actors_gpus_as_gpu_figures_of_its_replica() -> None:
    report = EngineMetrics(
        running=3,
        gpus=(
            GpuFigure("gpu:0", metrics.GPU_POWER, 450.0),
            GpuFigure("gpu:0", metrics.GPU_ENERGY, 120.0),
            GpuFigure("gpu:1", metrics.GPU_POWER, 410.0),
        ),
        gpu_warnings=("gpu:1: NVML does not report utilization on this GPU",),
    )
    sampler = EngineSampler(_replica(report))
    readings = sampler.sample(50.0)
    assert [r for r in readings if r.source.startswith("gpu:")] == [
        Reading(50.0, "gpu:0@replica-0", metrics.GPU_POWER, 450.0),
        Reading(50.0, "gpu:0@replica-0", metrics.GPU_ENERGY, 120.0),
        Reading(50.0, "gpu:1@replica-0", metrics.GPU_POWER, 410.0),
    ]
    assert Reading(50.0, "replica-0", metrics.RUNNING, 3.0) in readings
    assert sampler.warnings() == ["replica-0: gpu:1: NVML does not report utilization on this GPU"]
    assert EngineSampler(_replica(None)).sample(50.0) == [] and EngineSampler(_replica(None)).warnings() == []

    # Two replicas' gpu:0 (on two nodes) are two GPUs in the run's figures, and their energy adds up.
    def energy(joules: float) -> EngineMetrics:
        return EngineMetrics(gpus=(GpuFigure("gpu:0", metrics.GPU_ENERGY, joules),))

    series = [
        *readings,  # replica-0 at 50 s: 120 J
        *EngineSampler(_replica(energy(1120.0))).sample(60.0),
        *EngineSampler(_replica(energy(0.0), "replica-1")).sample(50.0),
        *EngineSampler(_replica(energy(1120.0), "replica-1")).sample(60.0),
    ]
    telemetry = summarize(series, Window(50.0, 60.0), interval=1.0, output_tokens=2000)
    assert set(telemetry.gpus) == {"gpu:0@replica-0", "gpu:1@replica-0", "gpu:0@replica-1"}
    assert telemetry.gpus["gpu:0@replica-0"].energy_joules == 1000.0
    assert telemetry.energy_joules == 2120.0 and "replica-0" in telemetry.replicas


def test_a_ray_actor_samples_its_gpus_at_the_runs_telemetry_interval_and_not_at_all_without_telemetry() -> None:
    from harness.single.config import build_config

    assert build_config(sut="ray", telemetry_interval=0.5).engines().gpu_interval == 0.5
    assert build_config(sut="ray", telemetry_interval=0).engines().gpu_interval is None
