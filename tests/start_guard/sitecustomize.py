"""The start guard: in a test run that selected no test marked `engine`, `server` or `ray`, starting what
that mark stands for is an error, in the pytest process and in every Python process it starts.

`tests/conftest.py` installs it in the pytest process once the tests are collected, and puts this folder on
PYTHONPATH, so that every Python process the tests start (`python -m harness`, its engine workers, a script)
imports this module at start-up (as `sitecustomize`) and installs it too. Only the standard library is used
here: it runs before anything else in those processes.

What is watched is the one place each thing starts:

* `engine`: a process whose target is `sut.engine_worker.main` with vLLM's own engine (no `engine_factory`);
* `server`: a `python -m vllm.entrypoints...` or `vllm serve` process;
* `ray`: Ray's `gcs_server` or `raylet`, which `ray.init` and `ray start` launch to make a cluster.

Each start is refused with an error, and appended to the file `LOG` names, from which conftest fails the
test that started it, whatever that test's process made of the error.
"""

from __future__ import annotations

import multiprocessing.process
import os
import subprocess
from collections.abc import Sequence
from typing import Any

FORBIDDEN = "MLPERF_TESTS_FORBIDDEN_STARTS"
"""The marks no selected test carries, comma-separated: what no process of the run may start."""
LOG = "MLPERF_TESTS_STARTS_LOG"
"""A file each refused start is appended to, one line each."""
WHAT = {
    "engine": "a vLLM engine worker",
    "server": "a vLLM OpenAI server",
    "ray": "a Ray cluster",
}


class ForbiddenStart(RuntimeError):
    pass


def install(forbidden: set[str], log: str) -> None:
    """Refuse, from now on in this process, to start any of `forbidden`; record each attempt in `log`."""

    def refuse(marker: str, detail: str) -> None:
        line = f"{marker}\t{WHAT[marker]} ({detail}) in process {os.getpid()}"
        with open(log, "a") as f:
            f.write(line + "\n")
        raise ForbiddenStart(
            f"this test run selected no test marked {marker!r}, yet {WHAT[marker]} was started ({detail}): "
            f"mark the test @pytest.mark.{marker}"
        )

    if "engine" in forbidden:
        start = multiprocessing.process.BaseProcess.start

        def guarded_start(self: Any) -> None:
            target = getattr(self, "_target", None)
            args = getattr(self, "_args", ())
            if (
                getattr(target, "__module__", None) == "sut.engine_worker"
                and getattr(target, "__name__", None) == "main"
                and len(args) > 1
                and getattr(args[1], "engine_factory", True) is None
            ):
                refuse("engine", f"worker {getattr(args[1], 'name', '?')}")
            start(self)

        multiprocessing.process.BaseProcess.start = guarded_start  # type: ignore[method-assign]

    if forbidden & {"server", "ray"}:
        popen_init = subprocess.Popen.__init__

        def guarded_init(self: Any, args: Any, *rest: Any, **options: Any) -> None:
            marker = _starts(args)
            if marker in forbidden:
                self._child_created = False  # what Popen.__del__ reads: nothing to reap
                argv = _argv(args)
                refuse(marker, " ".join([os.path.basename(argv[0]), *argv[1:3]])[:100])
            popen_init(self, args, *rest, **options)

        subprocess.Popen.__init__ = guarded_init  # type: ignore[method-assign]


def _argv(args: Any) -> list[str]:
    if isinstance(args, str | bytes | os.PathLike):
        return os.fsdecode(args).split()
    return [os.fsdecode(arg) if isinstance(arg, bytes | os.PathLike) else str(arg) for arg in args]


def _starts(args: Sequence[Any] | str) -> str | None:
    """What a command line starts, of what the guard watches (a `pgrep raylet` merely names it)."""
    argv = _argv(args)
    if not argv:
        return None
    program = os.path.basename(argv[0])
    if program in ("gcs_server", "raylet"):
        return "ray"
    if program == "vllm" and argv[1:2] == ["serve"]:
        return "server"
    modules = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "-m"]
    if any(module.startswith("vllm.entrypoints") for module in modules):
        return "server"
    return None


if os.environ.get(FORBIDDEN) and os.environ.get(LOG):
    install(set(os.environ[FORBIDDEN].split(",")), os.environ[LOG])
