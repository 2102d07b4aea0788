"""vLLM engines as Ray actors, anywhere in a Ray cluster: `--sut ray`.

Each replica is one actor that runs the same engine worker as a local replica
(`sut.engine_worker.serve`), in a placement group of its own with one bundle: the
GPUs its tensor-parallel size needs, so a TP group stays on one node (its ranks
are processes of the actor, vLLM's `mp` executor), or on a CPU cluster its
cores. The harness side is `EngineReplica` with a `RayLink`: a sender thread
puts whatever was submitted since its last call in one actor call (`put`; a
Ray call costs some 300 µs of CPU, so one a request would bound Server at a few
thousand QPS), and the receiver thread long-polls `take`, which returns every
message the worker produced since the last call. So
the contract is a local worker's: token ids both ways, one message per engine
step, no per-token traffic, no thread per query. An actor that dies (its process
killed, its node lost) fails that poll: the replica is dead, exactly as when a
worker process exits.

`connect` joins the cluster at `--ray-address` (`auto`: the one this node is
part of, if any, or the one this process has joined already); with none, it
starts a local one on 127.0.0.1, which ends with the last replica that uses it.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlperf_llm_sut.common.errors import HarnessError, setting
from mlperf_llm_sut.telemetry.hardware import NvmlApi, NvmlSampler
from sut.engine_logs import redirect_output
from sut.engine_worker import WorkerSpec, serve, take_all
from sut.layout import Placement, plan_layout
from sut.worker_protocol import EngineMetrics, FromWorker, GpuFigure, Ready, StartFailed, ToWorker

AUTO = "auto"
POLL_SECONDS = 1.0
"""How long one `take` waits for the worker's next message; a message ends the wait at once."""
PLACEMENT_SECONDS = 60.0
"""How long a replica may wait for the cluster to free the resources it reserves."""
REACH_SECONDS = 5.0
"""How long the head at `--ray-address` may take to accept a connection; Ray itself retries for a minute."""
JOIN_SECONDS = 10.0
"""How long joining a cluster whose head accepts connections may take."""
HARD_EXIT_DELAY = 2.0
"""Seconds an actor whose engine hung gives its last message to reach the harness before it exits."""


class GpuRelay:
    """The GPUs a Ray actor was given, read through NVML on a thread of their own, and sent to the harness with the
    engine's figures (`EngineMetrics.gpus`): the harness's NVML sees only its own host's GPUs.

    Each engine report going out takes the latest GPU figures with it; between reports (an idle engine reports
    nothing) each new sample goes out with the engine's last figures again, so that an idle GPU's power and energy
    are still seen. Nothing goes out before the engine's first report (an engine without vLLM's stat logger
    never makes one). `visible`: `CUDA_VISIBLE_DEVICES` in the actor, as Ray set it."""

    def __init__(
        self,
        visible: str,
        send: Callable[[EngineMetrics], None],
        *,
        interval: float,
        nvml: NvmlApi | None = None,
    ) -> None:
        self._sampler = NvmlSampler.visible(visible.split(","), nvml=nvml)
        self._send = send
        self._interval = interval
        self._lock = threading.Lock()
        """Held while a message is made and sent: reports and samples go out in the order they were made."""
        self._last: EngineMetrics | None = None
        self._figures: tuple[GpuFigure, ...] = ()
        self._warnings: tuple[str, ...] = ()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpu-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def forward(self, report: EngineMetrics) -> None:
        """Send the engine's report with the GPUs' latest figures."""
        with self._lock:
            self._last = dataclasses.replace(report, gpus=self._figures, gpu_warnings=self._warnings)
            self._send(self._last)

    def stop(self) -> None:
        """End the sampling (NVML is shut down on the way out); nothing is sent after this returns."""
        self._stop.set()
        with self._lock:
            pass  # a sample going out now is sent before this returns; the thread sends none after the stop
        if self._thread.is_alive():
            self._thread.join(timeout=5.0 + self._interval)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                began = time.monotonic()
                readings = self._sampler.sample(began)
                figures = tuple(GpuFigure(reading.source, reading.metric, reading.value) for reading in readings)
                warnings = tuple(self._sampler.warnings())
                with self._lock:
                    if self._stop.is_set():
                        return
                    news = bool(figures) or warnings != self._warnings
                    self._figures, self._warnings = figures, warnings
                    if news and self._last is not None:
                        self._last = dataclasses.replace(self._last, gpus=figures, gpu_warnings=warnings)
                        self._send(self._last)
                self._stop.wait(max(self._interval - (time.monotonic() - began), 0.0))
        finally:
            self._sampler.close()


class EngineActor:
    """The actor: an engine worker fed through two queues instead of a pipe.

    Threaded (`max_concurrency`): `take` blocks while `put` and `join` still
    run. Calls may run out of order there, so the harness waits for each `put`
    before the next. An actor on GPUs samples them (`GpuRelay`); `nvml` stands in for NVML (tests)."""

    def __init__(self, nvml: NvmlApi | None = None) -> None:
        self._inbox: queue.SimpleQueue[ToWorker] = queue.SimpleQueue()
        self._outbox: queue.SimpleQueue[FromWorker | None] = queue.SimpleQueue()
        """What the worker sent; None once it has ended."""
        self._thread: threading.Thread | None = None
        self._nvml = nvml
        self._gpus: GpuRelay | None = None

    def start(self, spec: WorkerSpec) -> None:
        """Start the worker; `Ready` or `StartFailed` comes through `take`."""
        if spec.log_path is not None and spec.log_path.parent.is_dir():
            redirect_output(spec.log_path)  # the harness's own log, where this node shares its disk
        # Ray sets CUDA_VISIBLE_DEVICES to the GPUs it reserved for the actor (empty without any).
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        if spec.gpu_interval is not None and spec.placement.devices != ["cpu"] and visible.strip():
            self._gpus = GpuRelay(visible, self._outbox.put, interval=spec.gpu_interval, nvml=self._nvml)
            self._gpus.start()
        self._thread = threading.Thread(target=self._serve, args=(spec,), name="engine-worker", daemon=True)
        self._thread.start()

    def put(self, messages: list[ToWorker]) -> None:
        for message in messages:
            self._inbox.put(message)

    def take(self, timeout: float) -> list[FromWorker | None]:
        """What the worker sent since the last call, waiting up to `timeout` for the first; None ends it."""
        return take_all(self._outbox, timeout=timeout)

    def join(self, timeout: float) -> bool:
        """Whether the worker ended (after `Stop`) within `timeout` seconds."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()

    # -- the worker's mailbox ---------------------------------------------------------------------------
    def send(self, message: FromWorker) -> None:
        if isinstance(message, EngineMetrics) and self._gpus is not None:
            self._gpus.forward(message)
        else:
            self._outbox.put(message)

    def recv(self) -> ToWorker:
        return self._inbox.get()

    def _serve(self, spec: WorkerSpec) -> None:
        try:
            serve(self, spec, end=self._end)
        finally:
            if self._gpus is not None:
                self._gpus.stop()  # before the end mark: nothing follows it
            self._outbox.put(None)

    def _end(self) -> None:
        # The engine is stuck inside vLLM: the process goes, after its last message (Died) had time to leave.
        threading.Timer(HARD_EXIT_DELAY, os._exit, (1,)).start()


@dataclass
class RayCluster:
    """The connection to a Ray cluster, shared by the replicas of a run."""

    address: str
    started_here: bool
    users: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def gpus(self) -> float:
        import ray

        return float(ray.cluster_resources().get("GPU", 0))

    def layout(
        self, replicas: int, tensor_parallel: int, cpu_bind: list[str] | None
    ) -> list[tuple[Placement, dict[str, float]]]:
        """Each replica's placement and the bundle it reserves; raises `HarnessError` if the cluster cannot
        hold it."""
        if self.gpus:
            if cpu_bind:
                raise HarnessError(
                    f"{setting('cpu_bind')} pins cores on this host; Ray places GPU replicas itself: leave it out."
                )
            # Ray sets CUDA_VISIBLE_DEVICES in the actor to the GPUs it reserved.
            layout = [(Placement(devices=[]), {"GPU": float(tensor_parallel), "CPU": 1.0})] * replicas
        elif self.started_here:
            # A cluster of this host alone: its cores are split between the replicas as for local workers.
            placements = plan_layout(replicas, tensor_parallel, on_cpu=True, cpu_bind=cpu_bind)
            layout = [(p, {"CPU": float(len(p.cpus or [0]))}) for p in placements]
        else:
            if cpu_bind:
                raise HarnessError(
                    f"{setting('cpu_bind')} pins cores on this host, and the Ray cluster spans other hosts."
                )
            layout = [(Placement(devices=["cpu"]), {"CPU": 1.0})] * replicas
        self._check_fits([bundle for _, bundle in layout], tensor_parallel)
        return layout

    def _check_fits(self, bundles: list[dict[str, float]], tensor_parallel: int) -> None:
        import ray

        nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
        need = bundles[0]
        if not any(all(node.get(kind, 0) >= amount for kind, amount in need.items()) for node in nodes):
            largest = max((node.get("GPU" if "GPU" in need else "CPU", 0) for node in nodes), default=0)
            raise HarnessError(
                f"a replica needs {_resources(need)} on one node (tensor parallel {tensor_parallel}), and no node "
                f"of the Ray cluster at {self.address} has that (the largest has {largest:g} "
                f"{'GPUs' if 'GPU' in need else 'CPUs'}): lower {setting('tensor_parallel_size')} or add a larger node."
            )
        total = ray.cluster_resources()
        for kind in need:
            wanted = sum(bundle[kind] for bundle in bundles)
            if wanted > total.get(kind, 0):
                raise HarnessError(
                    f"{len(bundles)} replicas need {wanted:g} {kind}s in all, and the Ray cluster at {self.address} "
                    f"has {total.get(kind, 0):g}: lower {setting('replicas')}, or add nodes."
                )

    def close_if_unused(self) -> None:
        """End a local cluster no replica uses (the run failed before it had any)."""
        self.acquire()
        self.release()

    def acquire(self) -> None:
        with self.lock:
            self.users += 1

    def release(self) -> None:
        """One user fewer; a local cluster this process started ends with its last user."""
        global _cluster
        with self.lock:
            self.users -= 1
            if self.users > 0 or not self.started_here:
                return
        import ray

        ray.shutdown()
        with _lock:
            if _cluster is self:
                _cluster = None


_cluster: RayCluster | None = None
_lock = threading.Lock()


def connect(address: str = AUTO) -> RayCluster:
    """The cluster at `address`, joined once per process; `auto` with no cluster to join starts a local one."""
    global _cluster
    with _lock:
        if _cluster is not None:
            if address not in (AUTO, _cluster.address):
                raise HarnessError(
                    f"this process is connected to the Ray cluster at {_cluster.address}; "
                    f"it cannot join {address} as well."
                )
            return _cluster
        # Answers of actors that died after their answer was no longer wanted are not news.
        os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")
        try:
            import ray
        except ImportError:
            raise HarnessError(
                f'{setting("sut")} ray needs Ray: pip install -e ".[ray]" (or pip install ray).'
            ) from None
        if ray.is_initialized():  # the caller joined a cluster already (library use): the run uses that one
            _cluster = RayCluster(ray.get_runtime_context().gcs_address, started_here=False)
            return _cluster
        # ray.init sets a SIGTERM handler that exits on the spot; the run's own handler stops it cleanly.
        main = threading.current_thread() is threading.main_thread()
        sigterm = signal.getsignal(signal.SIGTERM) if main else None
        try:
            _cluster = _join(address)
        finally:
            if main:
                signal.signal(signal.SIGTERM, sigterm)
        return _cluster


def _join(address: str) -> RayCluster:
    import ray

    options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    # A local cluster keeps Ray's token authentication; its notice that it is on is not the run's business.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    if address != AUTO:
        _check_reachable(address)
        # Something that is not a Ray head may listen there: Ray's own default tries it for 20 s.
        os.environ.setdefault("RAY_gcs_server_port_wait_time_s", str(int(JOIN_SECONDS)))
    try:
        ray.init(address=address, **options)
        return RayCluster(address, started_here=False)
    except ConnectionError as exc:
        if address != AUTO:
            raise HarnessError(
                f"{setting('ray_address')} {address}: cannot join that Ray cluster ({exc}). Give the head's address "
                f"(host:6379), or leave {setting('ray_address')} out to join this node's cluster or start a local one."
            ) from None
    ray.init(
        address="local",
        num_cpus=len(os.sched_getaffinity(0)),
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        **options,
    )
    return RayCluster("127.0.0.1 (local)", started_here=True)


def _check_reachable(address: str) -> None:
    """One clear error at once for a head that is not there, instead of Ray's minute of retries and warnings."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise HarnessError(
            f"{setting('ray_address')} {address}: not a Ray address. Give the head's host:port (e.g. 10.0.0.5:6379), "
            f"or leave {setting('ray_address')} out to join this node's cluster or start a local one."
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=REACH_SECONDS).close()
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        raise HarnessError(
            f"{setting('ray_address')} {address}: nothing accepts connections there ({reason}). Check that the Ray "
            "head "
            f"runs (ray start --head) and that this host can reach that port."
        ) from None


class RayLink:
    """One replica's actor, in its own placement group, as an `EngineReplica`'s `WorkerLink`."""

    on_this_host = False  # the actor may be on any node; Ray accounts for its processes

    def __init__(self, cluster: RayCluster, bundle: dict[str, float]) -> None:
        self._cluster = cluster
        self._bundle = bundle
        self._group: Any = None
        self._actor: Any = None
        self._outgoing: list[ToWorker] = []
        self._wake = threading.Condition()
        self._buffer: collections.deque[FromWorker | None] = collections.deque()
        self._gone: str | None = None
        self._killed = False
        cluster.acquire()

    def launch(self, spec: WorkerSpec) -> None:
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        self._group = placement_group([self._bundle], strategy="STRICT_PACK", name=f"{spec.name}-placement")
        actor = _remote_actor().options(
            name=None,
            num_cpus=self._bundle.get("CPU", 0),
            num_gpus=self._bundle.get("GPU", 0),
            max_concurrency=4,
            scheduling_strategy=PlacementGroupSchedulingStrategy(self._group, placement_group_bundle_index=0),
        )
        self._actor = actor.remote()
        self._actor.start.remote(spec)
        threading.Thread(target=self._send_loop, name=f"{spec.name}-sender", daemon=True).start()

    def wait_ready(self) -> Ready | str:
        import ray

        placed = self._group.ready()
        waited = 0.0
        while not self._killed:
            ready, _ = ray.wait([placed], timeout=POLL_SECONDS)
            if ready:
                break
            waited += POLL_SECONDS
            if waited >= PLACEMENT_SECONDS:
                free = _resources(ray.available_resources())
                return (
                    f"the Ray cluster did not place it in {PLACEMENT_SECONDS:.0f} s: it reserves "
                    f"{_resources(self._bundle)} on one node, and the cluster has {free} free"
                )
        while True:
            message = self.receive()
            if message is None:
                return f"its Ray actor ended before the engine was up: {self.exit_reason()}"
            if isinstance(message, Ready):
                return message
            if isinstance(message, StartFailed):
                return message.reason

    def send(self, message: ToWorker) -> None:
        if self._gone is not None or self._killed:
            raise OSError(self._gone or "the actor was killed")
        with self._wake:
            self._outgoing.append(message)
            self._wake.notify()

    def _send_loop(self) -> None:
        """One `put` at a time, each with everything sent since the last: batches grow with the load."""
        import ray
        from ray.exceptions import RayError

        while True:
            with self._wake:
                while not self._outgoing and not self._killed:
                    self._wake.wait()
                if self._killed:
                    return
                messages, self._outgoing = self._outgoing, []
            try:
                ray.get(self._actor.put.remote(messages))
            except RayError:
                return  # the actor is gone; the receiver finds out and says why

    def receive(self) -> FromWorker | None:
        import ray
        from ray.exceptions import RayError

        while not self._buffer:
            if self._killed or self._gone is not None:
                return None
            try:
                self._buffer.extend(ray.get(self._actor.take.remote(POLL_SECONDS)))
            except RayError as exc:
                self._gone = _death(exc)
                return None
        return self._buffer.popleft()

    def join(self, timeout: float) -> None:
        import ray
        from ray.exceptions import GetTimeoutError, RayError

        try:
            ray.get(self._actor.join.remote(timeout), timeout=timeout + POLL_SECONDS)
        except (GetTimeoutError, RayError):
            pass

    def kill(self) -> None:
        with self._wake:
            if self._killed:
                return
            self._killed = True
            self._wake.notify()
        import ray
        from ray.util.placement_group import remove_placement_group

        if self._actor is not None:
            ray.kill(self._actor, no_restart=True)
        if self._group is not None:
            remove_placement_group(self._group)
        self._cluster.release()

    def exit_reason(self) -> str:
        return self._gone or "its Ray actor ended"


@functools.cache
def _remote_actor() -> Any:
    import ray

    return ray.remote(EngineActor)


def _death(exc: Exception) -> str:
    """The first line of Ray's account of an actor's death."""
    text = str(exc).strip().splitlines()
    return f"its Ray actor died ({text[0][:300] if text else type(exc).__name__})"


def _resources(resources: dict[str, float]) -> str:
    return ", ".join(f"{amount:g} {kind}" for kind, amount in resources.items() if kind in ("GPU", "CPU"))
