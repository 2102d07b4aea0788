"""Running model-written Python (LiveCodeBench) in a sandbox with limits.

`run_python` starts a fresh interpreter (`sys.executable -S -s -P -B`: no site, no user site, no script folder on
`sys.path`; `-E` is left out only because the environment is a fixed one and must set PYTHONHASHSEED) whose `-c`
bootstrap confines itself before it compiles the program. The layers, outermost first, and why each is there:

* Out of process (the harness): a new session, so on the wall clock, on too much output, and at the end in every
  case the whole process group is SIGKILLed; a fixed environment (no secrets inherited), no fds but 0/1/2, stdin
  from a file, a throw-away working folder deleted afterwards whatever the program did to it.
* Kernel, set in the child before the program exists: new user and network namespaces (`unshare`; the network
  one has only a downed loopback), Landlock (writes only beneath the working folder, no execve; from ABI 4 no
  TCP, from ABI 6 no signals or abstract sockets to anything outside), and rlimits (CPU, address space, file
  size, open files, processes, no core files). Each namespace/Landlock step is skipped where the kernel
  refuses it: the run never fails for that. RLIMIT_NPROC counts threads too, and root ignores it (the tests
  run as root), so for root no kernel layer stops a fork: only the next layer does.
* In process: an audit hook (`sys.addaudithook`) that refuses fork/exec/spawn/system/Popen, killing other
  processes, ctypes, sockets, native helper modules and writes outside the folder, with a PermissionError
  that says what was refused. A program that dies of a refusal gets status "refused".

It is for grading model outputs, as LiveCodeBench's own `reliability_guard` is, but stronger: that guard only
replaces Python functions in the grader's own process. It does NOT protect against a determined attacker:
the audit hook can be defeated from inside Python (e.g. through interpreter memory bugs), which leaves the
kernel layers, and those do not stop a kernel exploit, nor reading files the harness user may read.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, fields

from mlperf_llm_sut.common.errors import HarnessError

STATUSES = ("ok", "error", "timeout", "cpu", "memory", "refused", "output")
_REFUSED_EXIT = 97  # the bootstrap's exit code when the program died of a refusal
_MEMORY_EXIT = 98  # ... of a MemoryError
_GRACE_SECONDS = 1.0  # after a kill or the exit: how long the pipes may take to reach EOF


@dataclass(frozen=True)
class Limits:
    """What one program may use. `processes` is RLIMIT_NPROC, which Linux counts in threads: raise it to let a
    program start threads (fork and exec stay refused)."""

    cpu_seconds: int = 10  # RLIMIT_CPU
    wall_seconds: float = 20.0  # whole-run wall clock; the process group is killed after it
    memory_bytes: int = 2 << 30  # RLIMIT_AS
    file_bytes: int = 1 << 20  # RLIMIT_FSIZE
    open_files: int = 64  # RLIMIT_NOFILE
    processes: int = 1  # the program alone: it may not start other processes

    def __post_init__(self) -> None:
        for field in fields(self):
            if not getattr(self, field.name) > 0:
                raise HarnessError(f"sandbox Limits.{field.name} is {getattr(self, field.name)!r}: it must be positive")


@dataclass(frozen=True)
class Outcome:
    status: str  # one of STATUSES
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float


# argv: work folder, program file, cpu, memory, file size, open files, processes. Everything up to the audit hook
# runs before the program is even compiled; ctypes is dropped from sys.modules before the hook refuses it.
_BOOTSTRAP = r"""
import builtins, os, resource, struct, sys, traceback
WORK, PROGRAM, TRUSTED = sys.argv[1], sys.argv[2], sys.argv[3]
CPU, MEMORY, FILE, FILES, PROCESSES = map(int, sys.argv[4:9])
with open(PROGRAM, "rb") as f:
    SOURCE = f.read()
with open(TRUSTED, "rb") as f:
    PRELUDE = f.read()

try:
    import ctypes
    libc, L = ctypes.CDLL(None, use_errno=True), ctypes.c_long
    libc.unshare(0x10000000 | 0x40000000)  # CLONE_NEWUSER | CLONE_NEWNET
    abi = libc.syscall(L(444), None, L(0), L(1))  # landlock_create_ruleset(NULL, 0, VERSION)
    if abi > 0:
        fs = ((1 << (13, 14, 15)[min(abi, 3) - 1]) - 1) & ~0b1100  # every right this ABI has, but reading
        attr = struct.pack("QQQ", fs, 3, 3)[: (8, 8, 8, 16, 16, 24)[min(abi, 6) - 1]]  # + TCP, + signals/sockets
        ruleset, folder = libc.syscall(L(444), attr, L(len(attr)), L(0)), os.open(WORK, os.O_PATH)
        if ruleset >= 0:
            libc.syscall(L(445), L(ruleset), L(1), struct.pack("=Qi", fs & ~1, folder), L(0))  # all but execute
            if libc.prctl(38, L(1), L(0), L(0), L(0)) == 0:  # PR_SET_NO_NEW_PRIVS, which Landlock needs
                libc.syscall(L(446), L(ruleset), L(0))
            os.close(ruleset)
        os.close(folder)
except Exception:
    pass  # a kernel or a container that refuses a layer: the others still hold
for name in [name for name in sys.modules if name.partition(".")[0] in ("ctypes", "_ctypes")]:
    del sys.modules[name]

for which, soft, hard in ((resource.RLIMIT_CPU, CPU, CPU + 1), (resource.RLIMIT_AS, MEMORY, MEMORY),
        (resource.RLIMIT_FSIZE, FILE, FILE), (resource.RLIMIT_NOFILE, FILES, FILES),
        (resource.RLIMIT_NPROC, PROCESSES, PROCESSES), (resource.RLIMIT_CORE, 0, 0)):
    old = resource.getrlimit(which)[1]
    resource.setrlimit(which, tuple(v if old == resource.RLIM_INFINITY else min(v, old) for v in (soft, hard)))
exec(compile(PRELUDE, "<trusted>", "exec"), {"__name__": "<trusted>"})
for name in [name for name in sys.modules if name.partition(".")[0] in ("ctypes", "_ctypes")]:
    del sys.modules[name]

class Refused(PermissionError):
    pass

REFUSED = []  # what was refused: a program that caught a refusal (pty.fork does) and then died, died of it

PROCESSES_ = "model-written programs may not start processes"
DENIED = dict.fromkeys(("os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "os.system",
    "subprocess.Popen"), PROCESSES_) | dict.fromkeys(("resource.setrlimit", "resource.prlimit"),
    "the sandbox's limits may not be changed")
PREFIXES = {"ctypes.": "model-written programs may not call native code", "socket.": "there is no network"}
MODULES = {"_posixsubprocess": PROCESSES_, "_ctypes": PREFIXES["ctypes."], "ctypes": PREFIXES["ctypes."],
    "_testcapi": PREFIXES["ctypes."], "_testinternalcapi": PREFIXES["ctypes."]}
PATHS = {"os.chmod": ((0,), (2,)), "os.chown": ((0,), (3,)), "os.mkdir": ((0,), (2,)), "os.remove": ((0,), (1,)),
    "os.rmdir": ((0,), (1,)), "os.rename": ((0, 1), (2, 3)), "os.link": ((0, 1), (2, 3)),
    "os.symlink": ((1,), (2,)), "os.utime": ((0,), (3,)), "os.truncate": ((0,), ()),
    "os.setxattr": ((0,), ()), "os.removexattr": ((0,), ())}  # event: (path arguments, dir_fd arguments)
OUTSIDE = "only the working folder " + WORK + " may be written, by str paths"
WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

def inside(path):
    # Only exact str/bytes: a path-like or str subclass could run the program's code inside the hook.
    if type(path) not in (str, bytes):
        return False
    real = os.path.realpath(os.fsdecode(path))
    return real == WORK or real.startswith(WORK + os.sep)

def hook(event, args):
    why = None
    if event == "open" and type(args[0]) is not int and args[0] not in ("/dev/stdout", "/dev/stderr"):
        path, mode, flags = args
        writing = flags & WRITES or (mode is not None and any(c in mode for c in "wax+"))
        if (writing or mode is None) and not inside(path):  # mode None: os.open, whose dir_fd could escape
            if writing or type(path) not in (str, bytes) or os.path.isdir(path):
                why = OUTSIDE if writing else "os.open of a folder outside the working folder"
    elif event in PATHS:
        where, dir_fds = PATHS[event]
        if not all(inside(args[i]) for i in where) or any(args[i] not in (None, -1) for i in dir_fds):
            why = OUTSIDE + ", without dir_fd"
    elif event in DENIED:
        why = DENIED[event]
    elif event.startswith(("ctypes.", "socket.")):
        why = PREFIXES[event.partition(".")[0] + "."]
    elif event == "import" and isinstance(args[0], str):
        why = MODULES.get(str.__str__(args[0]).partition(".")[0])
    elif event in ("os.kill", "os.killpg") and (event == "os.killpg" or args[0] != os.getpid()):
        why = "model-written programs may signal only themselves"
    if why:
        what = f" {args[0]!r}" if args and type(args[0]) in (str, bytes, int) else ""
        REFUSED.append(f"sandbox refused {event}{what}: {why}")
        raise Refused(REFUSED[-1])

sys.addaudithook(hook)
sys.argv = ["<program>"]
builtins.exit = builtins.quit = sys.exit  # what `site` would give, which -S leaves out
main = type(sys)("__main__")
sys.modules["__main__"] = main
try:
    exec(compile(SOURCE, "<program>", "exec"), main.__dict__)
except SystemExit:
    raise
except BaseException as error:
    memory, seen, cause = False, set(), error
    while cause is not None and id(cause) not in seen:  # MemoryError may surface as another error
        seen.add(id(cause))
        memory, cause = memory or isinstance(cause, MemoryError), cause.__cause__ or cause.__context__
    try:
        traceback.print_exc()
        if REFUSED and not isinstance(error, Refused):  # the refusal was caught on the way (pty.fork does)
            sys.stderr.write(f"(the program died after {REFUSED[0]})\n")
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(98 if memory else 97 if REFUSED else 1)  # _MEMORY_EXIT, _REFUSED_EXIT
"""


def run_python(
    source: str, *, stdin: str = "", limits: Limits = Limits(), max_output: int = 1 << 20, trusted: str = ""
) -> Outcome:
    """Runs `source` as a fresh Python program in the sandbox (module docstring), `stdin` as its input; never
    raises for what the program does. Safe to call from many threads or processes at once.

    `trusted`: the harness's own code, run inside the kernel layers and limits but before the audit hook,
    for what the program needs and model-written code may not do itself: importing libraries that load native
    code through ctypes (sympy's). Model output never goes there."""
    if max_output < 0:
        raise HarnessError(f"run_python max_output is {max_output}: it must be 0 or more bytes")
    try:
        base = tempfile.mkdtemp(prefix="mlperf-sandbox-")
    except OSError as error:
        raise HarnessError(
            f"cannot create a sandbox folder in {tempfile.gettempdir()}: {error}; set TMPDIR to a writable folder"
        ) from error
    try:
        work = os.path.join(os.path.realpath(base), "work")  # realpath: the hook compares real paths
        os.mkdir(work, 0o700)
        program = os.path.join(base, "program.py")  # beside, not in, the folder the program may write
        prelude = os.path.join(base, "trusted.py")
        for path, text in ((program, source), (prelude, trusted)):
            with open(path, "wb") as f:
                f.write(text.encode("utf-8", "surrogatepass"))
        numbers = (limits.cpu_seconds, limits.memory_bytes, limits.file_bytes, limits.open_files, limits.processes)
        argv = [sys.executable, "-S", "-s", "-P", "-B", "-c", _BOOTSTRAP, work, program, prelude, *map(str, numbers)]
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
        with tempfile.TemporaryFile(dir=base) as input_file:
            input_file.write(stdin.encode("utf-8", "surrogatepass"))
            input_file.seek(0)
            started = time.monotonic()
            try:
                process = subprocess.Popen(
                    argv,
                    stdin=input_file,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    cwd=work,
                    env=env | {"HOME": work, "TMPDIR": work},
                    close_fds=True,
                    start_new_session=True,
                )
            except OSError as error:
                raise HarnessError(
                    f"cannot start the sandboxed interpreter {sys.executable}: {error}; check that it runs"
                ) from error
        with process:
            return _watch(process, limits, max_output, started)
    finally:
        _remove(base)


def _watch(process: subprocess.Popen[bytes], limits: Limits, max_output: int, started: float) -> Outcome:
    """Waits for the program's end, its wall clock or too much output, then kills its group and reaps it."""
    assert process.stdout is not None and process.stderr is not None
    output = {process.stdout.fileno(): bytearray(), process.stderr.fileno(): bytearray()}
    reason: str | None = None
    try:
        exited = os.pidfd_open(process.pid)  # readable once it exits; unreaped, so its pid (= pgid) stays ours
        try:
            reason = _read(process.pid, exited, output, started + limits.wall_seconds, max_output)
        finally:
            os.close(exited)
    finally:
        _kill_group(process.pid)  # before reaping, so that the group id cannot be someone else's yet
        _, wait_status, usage = os.wait4(process.pid, 0)
        process.returncode = code = os.waitstatus_to_exitcode(wait_status)
    cpu_limit = limits.cpu_seconds  # SIGKILL comes at the hard limit, one second over this
    if reason is None:
        if code in (0, _REFUSED_EXIT):
            reason = "ok" if code == 0 else "refused"
        elif code == -signal.SIGXCPU or (code == -signal.SIGKILL and usage.ru_utime + usage.ru_stime > cpu_limit):
            reason = "cpu"
        else:  # a SIGKILL neither ours nor the CPU limit's: the kernel's out-of-memory killer
            reason = "memory" if code in (_MEMORY_EXIT, -signal.SIGKILL) else "error"
    stdout, stderr = (bytes(data[:max_output]).decode("utf-8", "replace") for data in output.values())
    return Outcome(reason, code, stdout, stderr, time.monotonic() - started)


def _read(pid: int, exited: int, output: dict[int, bytearray], until: float, max_output: int) -> str | None:
    """Reads the pipes into `output` (up to one byte over `max_output`) until they and `exited` are done or the
    wall clock `until` is over: "timeout", "output" when it killed the group for those, else None."""
    reason = None
    with selectors.DefaultSelector() as selector:
        for fd in [*output, exited]:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            now = time.monotonic()
            if now >= until:
                if reason is not None or exited not in selector.get_map():
                    break  # killed or exited, and the grace for the pipes is over
                reason, until = "timeout", now + _GRACE_SECONDS
                _kill_group(pid)
            for key, _ in selector.select(until - now):
                chunk = b"" if key.fd == exited else os.read(key.fd, 1 << 16)
                if chunk:
                    output[key.fd] += chunk[: max_output + 1 - len(output[key.fd])]
                    if len(output[key.fd]) > max_output and reason is None:
                        reason, until = "output", time.monotonic() + _GRACE_SECONDS
                        _kill_group(pid)
                    continue
                selector.unregister(key.fd)
                if key.fd == exited:  # whatever it left behind goes too, so that the pipes reach EOF
                    _kill_group(pid)
                    until = min(until, time.monotonic() + _GRACE_SECONDS)
    return reason


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _remove(folder: str) -> None:
    """Deletes `folder` even where the program made files read-only or folders unreadable (a non-root harness
    needs their permissions back first); never follows the program's symlinks."""
    for parent, names, _ in os.walk(folder):
        for name in names:
            path = os.path.join(parent, name)
            with contextlib.suppress(OSError):
                if stat.S_ISDIR(os.lstat(path).st_mode):
                    os.chmod(path, 0o700)
    shutil.rmtree(folder, ignore_errors=True)
