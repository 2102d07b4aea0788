"""`python -m harness` in a process of its own, to be stopped with real signals as a user or a supervisor
would: Ctrl-C reaches the terminal's whole process group, SIGTERM the harness alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, read_samples

STOPPED_WITHIN = 15.0
"""Seconds from a stop signal to the process having ended (a few on an idle box; CI may be busy)."""


class HarnessProcess:
    def __init__(self, *args: str, output_dir: Path) -> None:
        self.output_dir = output_dir
        self._stderr: list[str] = []
        self._changed = threading.Condition()
        # A session of its own: its id finds every process the run starts, even those that lead a process
        # group of their own (engine workers), and Ctrl-C can go to its group as a terminal sends it.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness", *args, "--output-dir", str(output_dir)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.stdout = ""
        self._readers = [
            threading.Thread(target=self._read_stderr, daemon=True),
            threading.Thread(target=self._read_stdout, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def __enter__(self) -> HarnessProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        """Whatever the test did, nothing of this run outlives it."""
        for pid in session_processes(self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(30)

    @property
    def stderr(self) -> str:
        with self._changed:
            return "".join(self._stderr)

    def wait_for_line(self, text: str, timeout: float = 300.0) -> None:
        """Until the harness has written a line containing `text` to stderr."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(text in line for line in self._stderr):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"the harness never wrote {text!r}; stderr:\n{''.join(self._stderr)}")
                self._changed.wait(min(left, 0.5))

    def wait_for_file(self, pattern: str, timeout: float = 300.0) -> Path:
        """Until a file matching `pattern` (a glob under the output directory) exists."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = sorted(self.output_dir.glob(pattern))
            if found:
                return found[0]
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        raise AssertionError(f"no {pattern} under {self.output_dir}; stderr:\n{self.stderr}")

    def ctrl_c(self) -> None:
        """SIGINT to the harness's process group, as a terminal sends it."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def ended(self, within: float = STOPPED_WITHIN) -> int:
        """The exit code, which must come within `within` seconds; then no process of the run is left."""
        try:
            code = self.proc.wait(within)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {within:.0f} s after the signal; stderr:\n{self.stderr}") from None
        for reader in self._readers:
            reader.join(10)
        deadline = time.monotonic() + 10
        while (left := session_processes(self.proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, f"processes left behind: {[_command(pid) for pid in left]}"
        return code

    def run_record(self) -> dict[str, Any]:
        """run.json of the one run, after checking that every issued sample was answered exactly once."""
        (run_json,) = self.output_dir.glob("*/run.json")
        record = json.loads(run_json.read_text())
        samples = record["samples"]
        assert samples["issued"] == samples["completed"] + samples["failed"], samples
        assert samples["duplicates"] == 0 and samples["unanswered"] == 0, samples
        rows = read_samples(run_json.parent)
        assert len(rows) == samples["issued"]
        assert all("latency_ms" in row for row in rows), "an issued sample has no answer in samples.jsonl"
        return record

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self._stderr.append(line)
                self._changed.notify_all()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        self.stdout = self.proc.stdout.read()


def session_processes(session: int) -> list[int]:
    """Live processes (not zombies: those have ended) in the session `session`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        state, sid = fields[0], int(fields[3])
        if sid == session and state != "Z":
            found.append(int(entry.name))
    return found


def _command(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_text().replace("\0", " ")
    except OSError:
        return str(pid)


@dataclass
class Stopped:
    """A run stopped by a signal: its exit code, what it printed, and its checked run.json."""

    code: int
    stdout: str
    stderr: str
    record: dict[str, Any]


def stop_run(*args: str, output_dir: Path, when: str, delay: float = 0.0, signum: int = signal.SIGINT) -> Stopped:
    """`python -m harness ARGS`, sent `signum` `delay` seconds after `when` (a file glob under the output
    directory, or `line:TEXT` for a line on stderr): SIGINT as Ctrl-C sends it, any other to the harness alone.
    The process must end within STOPPED_WITHIN seconds, leaving nothing behind."""
    with HarnessProcess(*args, output_dir=output_dir) as run:
        if when.startswith("line:"):
            run.wait_for_line(when.removeprefix("line:"))
        else:
            run.wait_for_file(when)
        time.sleep(delay)
        if signum == signal.SIGINT:
            run.ctrl_c()
        else:
            run.proc.send_signal(signum)
        code = run.ended()
        return Stopped(code, run.stdout, run.stderr, run.run_record())
