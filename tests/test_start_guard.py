"""The start guard (tests/start_guard): what it takes for a start of an engine, a server or a Ray cluster,
and that a process of a guarded run refuses each one and logs it. It starts none of them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.start_guard import sitecustomize as start_guard

PROCESS = textwrap.dedent(
    """
    import multiprocessing, subprocess, sys, types
    from sut import engine_worker

    def attempt(start):
        try:
            start()
        except Exception as exc:
            print(type(exc).__name__)

    spec = types.SimpleNamespace(name="replica-0", engine_factory=None)
    worker = multiprocessing.get_context("spawn").Process(target=engine_worker.main, args=(None, spec))
    attempt(worker.start)
    attempt(lambda: subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.no_such_server"]))
    attempt(lambda: subprocess.Popen(["/nowhere/ray/core/src/ray/gcs/gcs_server", "--gcs_server_port=0"]))
    """
)


@pytest.mark.parametrize(
    ("argv", "starts"),
    [
        ([sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", "m"], "server"),
        (["vllm", "serve", "m"], "server"),
        (["/venv/lib/site-packages/ray/core/src/ray/gcs/gcs_server", "--gcs_server_port=0"], "ray"),
        (["/venv/lib/site-packages/ray/core/src/ray/raylet/raylet", "--node_ip_address=1.2.3.4"], "ray"),
        (["pgrep", "-f", "raylet|gcs_server|ray::"], None),
        (["pgrep", "-f", "vllm.entrypoints.openai.api_server"], None),
        ([sys.executable, "-m", "harness", "--sut", "remote"], None),
        ("vllm serve m", "server"),
    ],
)
def test_a_command_that_starts_a_server_or_a_ray_cluster_is_told_from_one_that_names_it(argv, starts):
    assert start_guard._starts(argv) == starts


def test_a_process_of_a_guarded_run_refuses_to_start_an_engine_a_server_or_ray_and_logs_each(tmp_path: Path):
    log = tmp_path / "starts.log"
    env = os.environ | {
        start_guard.FORBIDDEN: "engine,server,ray",
        start_guard.LOG: str(log),
        "PYTHONPATH": str(Path(start_guard.__file__).parent),
    }
    proc = subprocess.run(
        [sys.executable, "-c", PROCESS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.split() == ["ForbiddenStart"] * 3, proc.stderr[-2000:]
    marks = [line.split("\t")[0] for line in log.read_text().splitlines()]
    assert marks == ["engine", "server", "ray"]
    assert "replica-0" in log.read_text()
