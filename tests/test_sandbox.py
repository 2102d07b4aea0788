"""The LiveCodeBench sandbox: each limit and each refusal, proven by a program that tries to break it."""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from accuracy import sandbox
from accuracy.sandbox import Limits, Outcome, run_python
from mlperf_llm_sut.common.errors import HarnessError

SMALL = Limits(cpu_seconds=1, wall_seconds=2.0, memory_bytes=256 << 20, file_bytes=1 << 16, open_files=32)


def run(source: str, *, stdin: str = "", limits: Limits = SMALL, max_output: int = 1 << 20) -> Outcome:
    return run_python(source, stdin=stdin, limits=limits, max_output=max_output)


@pytest.fixture
def without_audit_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the kernel and out-of-process layers: what holds when a program gets past the audit hook."""
    assert "sys.addaudithook(hook)" in sandbox._BOOTSTRAP
    monkeypatch.setattr(sandbox, "_BOOTSTRAP", sandbox._BOOTSTRAP.replace("sys.addaudithook(hook)", "pass"))


def landlock_abi() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.syscall(ctypes.c_long(444), None, ctypes.c_long(0), ctypes.c_long(1)))


def gone(pid: int, within: float = 3.0) -> bool:
    """The process has ended (a zombie left to a parent that does not reap counts as ended)."""
    until = time.monotonic() + within
    while time.monotonic() < until:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rpartition(")")[2].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_a_correct_program_reads_stdin_and_gets_ok() -> None:
    outcome = run("a, b = map(int, input().split())\nprint(a + b)\nexit()", stdin="2 40\n")
    assert (outcome.status, outcome.returncode, outcome.stdout, outcome.stderr) == ("ok", 0, "42\n", "")


def test_an_uncaught_exception_is_an_error() -> None:
    outcome = run("raise ValueError('wrong answer')")
    assert (outcome.status, outcome.returncode) == ("error", 1)
    assert "ValueError: wrong answer" in outcome.stderr


@pytest.mark.parametrize("forever", ["time.sleep(60)", "while True:\n    pass"], ids=["sleeps", "loops"])
def test_a_program_that_never_ends_ends_at_the_wall_clock(forever: str) -> None:
    outcome = run(f"print('started', flush=True)\nimport time\n{forever}", limits=Limits(wall_seconds=2.0))
    assert (outcome.status, outcome.stdout) == ("timeout", "started\n")
    assert 2.0 <= outcome.seconds < 3.0


@pytest.mark.parametrize("then", ["sleeps", "exits"])
def test_the_whole_process_group_is_killed(without_audit_hook: None, then: str) -> None:
    # Past the audit hook a root program can fork (root ignores RLIMIT_NPROC): its child must not outlive it.
    tail = "time.sleep(60)" if then == "sleeps" else "os._exit(0)"
    source = f"import os, time\npid = os.fork()\nif pid == 0:\n    time.sleep(60)\nprint(pid, flush=True)\n{tail}"
    outcome = run(source, limits=Limits(cpu_seconds=1, wall_seconds=2.0, processes=2))
    assert outcome.status == ("timeout" if then == "sleeps" else "ok"), outcome
    assert outcome.seconds < 3.0
    assert gone(int(outcome.stdout))


def test_the_cpu_limit() -> None:
    outcome = run("while True:\n    pass")
    assert outcome.status == "cpu"
    assert outcome.seconds < 2.0


def test_the_cpu_limit_holds_when_the_program_ignores_sigxcpu() -> None:
    source = "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass"
    outcome = run(source, limits=Limits(cpu_seconds=1, wall_seconds=5.0))  # SIGKILL comes 1 s after SIGXCPU
    assert (outcome.status, outcome.returncode) == ("cpu", -9)


def test_the_memory_limit() -> None:
    outcome = run(f"data = bytearray({10 * SMALL.memory_bytes})")
    assert outcome.status == "memory"
    assert "MemoryError" in outcome.stderr


def test_the_file_size_limit() -> None:
    source = (
        "try:\n    open('big', 'wb').write(bytes(200_000))\nexcept OSError as error:\n    print(error.errno)\n"
        "import os\nprint(os.path.getsize('big'))"
    )
    assert run(source).stdout.split() == [str(errno.EFBIG), str(SMALL.file_bytes)]


def test_the_open_files_limit() -> None:
    source = (
        "files = []\ntry:\n    while True:\n        files.append(open('f', 'w'))\n"
        "except OSError as error:\n    print(error.errno, len(files))"
    )
    code, opened = map(int, run(source).stdout.split())
    assert code == errno.EMFILE
    assert opened <= SMALL.open_files - 3


def test_no_core_files() -> None:
    assert run("import resource\nprint(resource.getrlimit(resource.RLIMIT_CORE))").stdout == "(0, 0)\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores RLIMIT_NPROC (the audit hook refuses forks instead)")
def test_the_process_limit_counts_threads() -> None:
    outcome = run("import threading\nthreading.Thread(target=print).start()")
    assert outcome.status == "error"
    assert "can't start new thread" in outcome.stderr


@pytest.mark.parametrize(
    "source",
    [
        "import os\nos.fork()",
        "import subprocess\nsubprocess.run(['true'])",
        "import os\nos.system('true')",
        "import os\nos.execv('/bin/true', ['true'])",
        "import os\nos.posix_spawn('/bin/true', ['true'], {})",
        "import os\nos.spawnv(os.P_WAIT, '/bin/true', ['true'])",
        "import pty\npty.fork()",
        "import multiprocessing\nmultiprocessing.Process(target=print).start()",
    ],
    ids=["fork", "subprocess", "system", "exec", "posix_spawn", "spawn", "forkpty", "multiprocessing"],
)
def test_starting_a_process_is_refused(source: str) -> None:
    outcome = run(source)
    assert outcome.status == "refused", outcome
    assert "sandbox refused" in outcome.stderr and "may not start processes" in outcome.stderr


@pytest.mark.parametrize(
    "source",
    [
        "import ctypes",
        "import os\nos.kill(os.getppid(), 0)",
        "import resource\nresource.setrlimit(resource.RLIMIT_CPU, (5, 5))",
    ],
    ids=["ctypes", "kill-another", "raise-a-limit"],
)
def test_other_escapes_are_refused(source: str) -> None:
    assert run(source).status == "refused"


def test_a_refusal_caught_by_the_program_leaves_it_running() -> None:
    outcome = run("import os\ntry:\n    os.fork()\nexcept PermissionError as error:\n    print(error)")
    assert outcome.status == "ok"
    assert outcome.stdout.startswith("sandbox refused os.fork")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server


@pytest.mark.parametrize("layers", ["all", "kernel"])
def test_the_network_is_out_of_reach(listener: socket.socket, layers: str, request: pytest.FixtureRequest) -> None:
    if layers == "kernel":
        request.getfixturevalue("without_audit_hook")
    port = listener.getsockname()[1]
    outcome = run(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\nprint('connected')")
    assert outcome.status == ("refused" if layers == "all" else "error"), outcome
    listener.settimeout(0.2)
    with pytest.raises(TimeoutError):
        listener.accept()


def test_nothing_is_inherited_from_the_harness(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPERF_TOKEN", "s3cret-token")
    with open(os.devnull) as inherited:
        os.set_inheritable(inherited.fileno(), True)
        source = f"import os\nprint(sorted(os.environ))\nos.fstat({inherited.fileno()})"
        outcome = run(source)
    names = ["HOME", "LANG", "PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED", "TMPDIR"]
    assert outcome.stdout == f"{names}\n"
    assert "s3cret" not in outcome.stdout + outcome.stderr
    assert outcome.status == "error" and "Bad file descriptor" in outcome.stderr


def test_the_working_folder_is_deleted_whatever_the_program_did() -> None:
    source = (
        "import os\nopen('answer.txt', 'w').write('42')\nos.makedirs('a/b')\nopen('a/b/c', 'w').close()\n"
        "os.chmod('a/b/c', 0o400)\nos.chmod('a/b', 0o500)\nos.chmod('a', 0)\nos.symlink('/etc', 'link')\n"
        "print(os.getcwd())"
    )
    outcome = run(source)
    assert outcome.status == "ok", outcome
    folder = outcome.stdout.strip()
    assert os.path.basename(folder) == "work"
    assert not os.path.exists(os.path.dirname(folder))
    assert os.path.isdir("/etc")


@pytest.mark.parametrize(
    "source",
    [
        "open({outside!r}, 'w')",
        "import os\nos.open({outside!r}, os.O_WRONLY | os.O_CREAT)",
        "import os\nos.mkdir({outside!r})",
        "import os\nos.symlink({outside!r}, 'link')\nopen('link', 'w')",
        "import os\nopen('mine', 'w').close()\nos.rename('mine', {outside!r})",
        "import pathlib\npathlib.Path({outside!r}).write_text('x')",
    ],
    ids=["open", "os.open", "mkdir", "symlink", "rename", "pathlib"],
)
def test_writing_outside_the_folder_is_refused(source: str, tmp_path: Path) -> None:
    outside = os.path.join(tmp_path, "elsewhere")
    assert run(source.format(outside=outside)).status == "refused"
    assert not os.path.lexists(outside)


@pytest.mark.skipif(landlock_abi() < 1, reason="this kernel has no Landlock")
@pytest.mark.parametrize(
    "source",
    [
        pytest.param("open({outside!r}, 'w')", id="write"),
        pytest.param("import os\nos.execv('/bin/true', ['true'])", id="exec"),
        pytest.param("import os\nos.kill(1, 0)", id="signal", marks=pytest.mark.skipif(landlock_abi() < 6, reason="")),
    ],
)
def test_the_kernel_refuses_too(without_audit_hook: None, source: str, tmp_path: Path) -> None:
    outside = os.path.join(tmp_path, "elsewhere")
    outcome = run(source.format(outside=outside))
    assert outcome.status == "error", outcome
    assert "PermissionError" in outcome.stderr
    assert not os.path.lexists(outside)


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_endless_output_is_cut_short(stream: str) -> None:
    outcome = run(f"import sys\nwhile True:\n    sys.{stream}.write('x' * 1000)", max_output=10_000)
    assert outcome.status == "output"
    assert getattr(outcome, stream) == "x" * 10_000
    assert outcome.seconds < 1.5


def test_concurrent_runs_each_get_their_own_answer() -> None:
    source = "import sys\nprint(sum(map(int, sys.stdin.read().split())))"
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda n: run(source, stdin=" ".join(map(str, range(n)))), range(8)))
    assert [(o.status, o.stdout) for o in outcomes] == [("ok", f"{n * (n - 1) // 2}\n") for n in range(8)]


def test_bad_limits_are_a_harness_error() -> None:
    with pytest.raises(HarnessError, match="cpu_seconds is 0"):
        Limits(cpu_seconds=0)
    with pytest.raises(HarnessError, match="max_output is -1"):
        run_python("", max_output=-1)
