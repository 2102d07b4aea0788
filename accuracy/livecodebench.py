"""livecodebench samples (deepseek-r1's, gpt-oss-120b's) graded as LiveCodeBench grades them, with the model's
code in a sandbox.

The MLCommons references (`language/deepseek-r1/eval_accuracy.py` and `language/gpt-oss-120b/eval_accuracy.py`,
`evaluate_livecodebench`) grade a sample with LiveCodeBench's own runner, their submodule (gpt-oss-120b's is a
link to deepseek-r1's) pinned at b1e7cab44d610bbc2e10d36d270cd0c89c600492: the problem is the sample's
`ground_truth` (a `question_id`) in a release of livecodebench/code_generation_lite (deepseek-r1: release_v1,
gpt-oss-120b: release_v6; `RELEASE_FILES`), run with timeout=60, and the sample is right when every test,
public then private, passes. What this module reproduces from that commit:

* `load_problems`: `lcb_runner/benchmarks/code_generation.py` (`CodeGenerationProblem`): the private tests are
  JSON text, else base64(zlib(pickle(JSON text))); `get_evaluation_sample` puts the public tests before the
  private ones and takes `fn_name` from the metadata's `func_name`. A release's problems are those of all its
  files (`load_code_generation_dataset`'s `load_dataset(..., version_tag=release_version)`).
* `grade`: `lcb_runner/evaluation/testing_util.py` (`run_test`, `grade_stdio`, `grade_call_based`) under
  `compute_code_generation_metrics.py`'s `check_correctness`: the same preparation of the code (the import
  prelude; for standard-input problems `clean_if_name` and `make_function`'s `wrapped_function`), the same
  stdin stand-ins and their patching order, the same alarm per test, the same `reliability_guard` names set to
  None, `sys.set_int_max_str_digits(50000)`, the same comparisons, and a stop at the first failing test.
  The pass rule is `extract_instance_results`': every test's result is true.

What differs on purpose, and why:

* Isolation: LCB runs the code in a forked child of the grader, guarded only by replacing Python functions
  (its own docstring says it is not a sandbox). Here the code runs in `accuracy.sandbox` (its own interpreter,
  namespaces, Landlock, rlimits, an audit hook), limited like LCB's global timeout: (timeout + 1) * tests + 5
  seconds of wall clock and as many of CPU, 4 GiB of memory, one process. What the sandbox refuses (fork,
  exec, signals to others, sockets, ctypes, writes outside its folder) fails the sample, as the same calls
  fail under `reliability_guard`, which sets os.fork, os.kill, os.system, subprocess.Popen and the like to
  None.
* The comparison with the expected outputs is made here, in the grader, never in the sandbox: the driver
  program (`_DRIVER`, our code) is given the inputs but not the outputs, and reports per test what the code
  printed (standard input) or returned (functional, in a typed JSON that keeps what Python's `==` tells
  apart: tuples from lists, int keys from str keys, 1 from True...) on lines marked with a random nonce, so
  that the model's code can neither see what it is compared with nor be graded by its own prints. The cost:
  the driver cannot know a wrong answer, so it runs the tests after one too (the verdict still stops at it),
  and a returned value of a type that is not plain data (a class of the model's own with an `__eq__`) is
  never equal to an expected output, where LCB would ask its `__eq__`.
* `builtins.open` inside a test: LCB patches it with `unittest.mock.mock_open(read_data=input)`; the sandbox
  refuses `unittest.mock` (it imports subprocess), so the driver gives a fresh StringIO of the input per call
  whose writes are dropped. Programs reach it only through `builtins.open` itself: the prelude's
  `from builtins import *` binds the module's own `open` to the real one, as in LCB.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import pickle
import secrets
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from accuracy.sandbox import Limits, Outcome, run_python
from mlperf_llm_sut.common.errors import HarnessError, setting

__all__ = [
    "PRELUDE",
    "RELEASE_FILES",
    "FailureKind",
    "Problem",
    "Verdict",
    "check_problems_files",
    "download_command",
    "grade",
    "grade_many",
    "load_problems",
    "problems_files",
]

RELEASE_FILES: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {f"release_v{n}": ("test.jsonl", *(f"test{k}.jsonl" for k in range(2, n + 1))) for n in range(1, 7)}
)
"""The files of code_generation_lite that each release reads, in order: LCB passes its release_version to
`datasets.load_dataset("livecodebench/code_generation_lite", version_tag=...)` (lcb_runner/benchmarks/
code_generation.py), whose loading script, code_generation_lite.py, reads test.jsonl for release_v1 and adds one
file a release: release_v6 reads test.jsonl, test2.jsonl, ... test6.jsonl. deepseek-r1 is graded against
release_v1, gpt-oss-120b against release_v6 (their eval_accuracy.py's `release_version`)."""
MEMORY_BYTES = 4 << 30
PROCESSES = 8
"""RLIMIT_NPROC, which Linux counts in threads: room for a program's threads (LCB allows them, and solutions
start one with a large stack for deep recursion); fork and exec stay refused by the sandbox's other layers."""
INT_DIGITS = 50000
"""`sys.set_int_max_str_digits(50000)`, which LCB's compute_code_generation_metrics.py runs at import: its
grading processes inherit it, so a number of up to this many digits parses (and prints) there."""

_STAR_IMPORTS = (
    "string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math", "random", "statistics",
    "itertools", "functools", "operator", "io", "sys", "json", "builtins", "typing",
)  # fmt: skip
PRELUDE = (
    "".join(f"from {name} import *\n" for name in _STAR_IMPORTS)
    + "".join(f"import {name}\n" for name in _STAR_IMPORTS[:-2])
    + "sys.setrecursionlimit(50000)\n"
)
"""testing_util.py's `import_string`, which every program is run after: the same text (the order of the star
imports decides which `open`, `stdin`, `exit`... the program's names are)."""

FailureKind = Literal[
    "wrong answer",
    "time limit",
    "runtime error",
    "compile error",
    "no code",
    "refused",
    "cpu limit",
    "memory limit",
    "output limit",
]


@dataclass(frozen=True)
class Problem:
    """One LiveCodeBench problem as LCB grades it: its tests, public then private, as (input, output) text,
    and the method to call for a functional (LeetCode) problem; None for a standard-input one."""

    question_id: str
    tests: Sequence[tuple[str, str]]
    fn_name: str | None = None


@dataclass(frozen=True)
class Verdict:
    """`passed` is LCB's verdict; the rest is for people: the first failing test (an index into
    `Problem.tests`; None where the code failed before any test ran), why, and a short detail."""

    passed: bool
    failed_test: int | None = None
    kind: FailureKind | None = None
    detail: str = ""


# --- the data set ------------------------------------------------------------------------------------------


def load_problems(
    path: Path, *, only: Collection[str] | None = None, release: str = "release_v1"
) -> dict[str, Problem]:
    """The problems of a local copy of `release` of livecodebench/code_generation_lite, by question id: `path`
    is a folder holding the release's files (`RELEASE_FILES`: release_v1 is test.jsonl, release_v6 test.jsonl
    to test6.jsonl), read in that order as `datasets.load_dataset(..., version_tag=release)` reads them, or one
    file taken to hold the whole release. With `only`, just those ids (the others' private tests are then not
    decoded, which saves time and memory)."""
    problems: dict[str, Problem] = {}
    files = problems_files(path, release)
    for file in files:
        try:
            with file.open(encoding="utf-8") as lines:
                for number, line in enumerate(lines, 1):
                    if line.strip():
                        problem = _problem(line, only, f"{file} line {number}", release)
                        if problem is None:
                            continue
                        if problem.question_id in problems:
                            # The releases' files are disjoint: an id seen twice means files mixed up or copied twice.
                            raise _bad(
                                f"{file} line {number}", f"question {problem.question_id!r} appears twice", release
                            )
                        problems[problem.question_id] = problem
        except (OSError, UnicodeDecodeError) as error:
            raise _bad(str(file), f"it cannot be read as UTF-8 text ({error})", release) from error
    if not problems and only is None:
        raise _bad(", ".join(map(str, files)), "it holds no problems", release)
    return problems


def problems_files(path: Path, release: str = "release_v1") -> list[Path]:
    """The files of `release` that `path` names: the release's files in the folder `path`, or the file `path`
    itself; one clear error where any is missing."""
    files = _release_files(release)
    if not path.is_dir():
        if not path.is_file():
            raise _absent(path, release)
        return [path]
    missing = [name for name in files if not (path / name).is_file()]
    if missing:
        raise _absent(path / missing[0] if len(missing) == 1 else path, release, missing)
    return [path / name for name in files]


def check_problems_files(path: Path, release: str = "release_v1") -> list[Path]:
    """Before a run: `problems_files`, the first problem of each reading as code_generation_lite's (a wrong file
    is one clear error now, not after the run)."""
    files = problems_files(path, release)
    for file in files:
        try:
            with file.open(encoding="utf-8") as lines:
                first = next(((number, line) for number, line in enumerate(lines, 1) if line.strip()), None)
        except (OSError, UnicodeDecodeError) as error:
            raise _bad(str(file), f"it cannot be read as UTF-8 text ({error})", release) from error
        if first is None:
            raise _bad(str(file), "it holds no problems", release)
        _problem(first[1], (), f"{file} line {first[0]}", release)
    return files


def download_command(release: str) -> str:
    """The command that downloads `release`'s files of code_generation_lite into DIR."""
    return f"huggingface-cli download livecodebench/code_generation_lite {' '.join(_release_files(release))} " + (
        "--repo-type dataset --local-dir DIR"
    )


def _release_files(release: str) -> tuple[str, ...]:
    try:
        return RELEASE_FILES[release]
    except KeyError:
        raise HarnessError(
            f"LiveCodeBench release {release!r} is not one of code_generation_lite's "
            f"({', '.join(RELEASE_FILES)}); name one of those"
        ) from None


def _names(release: str) -> str:
    files = _release_files(release)
    return files[0] if len(files) == 1 else f"{', '.join(files[:-1])} and {files[-1]}"


def _absent(path: Path, release: str, missing: Sequence[str] = ()) -> HarnessError:
    what = f"lacks {', '.join(missing)}" if len(missing) > 1 else "does not exist"
    return HarnessError(
        f"LiveCodeBench problems: {path} {what}; the livecodebench samples are graded against {release} of the "
        f"Hugging Face data set livecodebench/code_generation_lite ({_names(release)}): download "
        f"{'it' if len(_release_files(release)) == 1 else 'them'} with `{download_command(release)}` and pass DIR "
        f"as {setting('livecodebench')}"
    )


def _bad(where: str, what: str, release: str) -> HarnessError:
    return HarnessError(
        f"LiveCodeBench problems: {where} is not from code_generation_lite's {_names(release)}: {what}; download "
        f"it again with `{download_command(release)}` and pass DIR as {setting('livecodebench')}"
    )


def _problem(line: str, only: Collection[str] | None, where: str, release: str) -> Problem | None:
    try:
        row = json.loads(line)
    except ValueError:
        raise _bad(where, "it is not a JSON object", release) from None
    fields = ("question_id", "public_test_cases", "private_test_cases", "metadata")
    if not isinstance(row, dict) or not all(isinstance(row.get(name), str) for name in fields):
        raise _bad(where, f"it lacks one of the text fields {', '.join(fields)}", release)
    question_id: str = row["question_id"]
    if only is not None and question_id not in only:
        return None
    where = f"{where} (question {question_id})"
    try:
        public = json.loads(row["public_test_cases"])
        metadata = json.loads(row["metadata"])
    except ValueError:
        raise _bad(where, "its public_test_cases or metadata is not JSON", release) from None
    tests = [
        *_tests(public, where, release),
        *_tests(_private_tests(row["private_test_cases"], where, release), where, release),
    ]
    fn_name = metadata.get("func_name") if isinstance(metadata, dict) else False
    if not tests or not (fn_name is None or isinstance(fn_name, str)):
        raise _bad(where, "it has no tests, or metadata that is not an object with a text func_name", release)
    return Problem(question_id, tests, fn_name)


def _private_tests(text: str, where: str, release: str) -> Any:
    """CodeGenerationProblem's reading: JSON text, else base64(zlib(pickle(JSON text)))."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        pickled = zlib.decompress(base64.b64decode(text.encode("utf-8")))
    except (binascii.Error, zlib.error, ValueError) as error:
        raise _bad(where, f"its private_test_cases is neither JSON nor base64 zlib data ({error})", release) from None
    try:
        loaded = _PlainData(io.BytesIO(pickled)).load()
    except _Global as refused:
        raise HarnessError(
            f"LiveCodeBench problems: {where}: its private tests are a pickle that needs the global {refused}, "
            f"which was not loaded: code_generation_lite's are a pickled string, so this file is not a genuine "
            f"copy; download it again with `{download_command(release)}` and pass DIR as {setting('livecodebench')}"
        ) from None
    except Exception as error:  # a damaged pickle fails in many ways (EOFError, KeyError, ValueError...)
        raise _bad(
            where, f"its private_test_cases is not a readable pickle ({type(error).__name__})", release
        ) from None
    if not isinstance(loaded, str | bytes):
        raise _bad(where, f"its private_test_cases is a pickled {type(loaded).__name__}, not text", release)
    try:
        return json.loads(loaded)
    except ValueError:
        raise _bad(where, "its private_test_cases is a pickled text that is not JSON", release) from None


class _Global(pickle.UnpicklingError):
    pass


class _PlainData(pickle.Unpickler):
    """An unpickler of plain data only. Every way a pickle reaches code (a global to call or build, an
    extension code) goes through `find_class`, which refuses them all: so a pickle can build strings, numbers
    and containers but never run anything, which `pickle.loads` would (LCB calls it on this field)."""

    def find_class(self, module: str, name: str) -> Any:
        raise _Global(f"{module}.{name}")


def _tests(cases: Any, where: str, release: str) -> list[tuple[str, str]]:
    """LCB's `Test(**case)`: exactly input, output and testtype, the two first as text."""
    if not isinstance(cases, list):
        raise _bad(where, "its test cases are not a list", release)
    tests = []
    for case in cases:
        if not (
            isinstance(case, dict)
            and case.keys() == {"input", "output", "testtype"}
            and isinstance(case["input"], str)
            and isinstance(case["output"], str)
            and case["testtype"] in ("stdin", "functional")
        ):
            raise _bad(where, "a test case is not {input, output, testtype} with text input and output", release)
        tests.append((case["input"], case["output"]))
    return tests


# --- grading -----------------------------------------------------------------------------------------------


def grade(code: str, problem: Problem, *, timeout: int = 60) -> Verdict:
    """Whether `code` passes every test of `problem` as LCB grades it with `timeout` seconds per test (the
    reference's 60); runs it once, in the sandbox (module docstring)."""
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        raise HarnessError(f"LiveCodeBench timeout is {timeout!r}: it must be a whole number of seconds, 1 or more")
    tests = list(problem.tests)
    if not tests:
        raise HarnessError(f"LiveCodeBench question {problem.question_id}: it has no tests, so nothing can grade it")
    if not code.strip():
        return Verdict(False, None, "no code", "the answer has no code to run")
    expected: list[Any] = []
    if problem.fn_name is not None:
        for index, (_, output) in enumerate(tests):
            try:
                expected.append(json.loads(output, parse_int=_json_int))
            except (ValueError, RecursionError):
                # LCB parses every expected output before it runs any test, and fails the answer on this.
                return Verdict(False, index, "runtime error", f"expected output of test {index} is not JSON")
    nonce = secrets.token_hex(16)
    payload = {
        "nonce": nonce,
        "code": code,
        "inputs": [given for given, _ in tests],
        "fn_name": problem.fn_name,
        "timeout": timeout,
        "prelude": PRELUDE,
    }
    bound = (timeout + 1) * len(tests) + 5  # check_correctness's join timeout
    limits = Limits(cpu_seconds=bound, wall_seconds=float(bound), memory_bytes=MEMORY_BYTES, processes=PROCESSES)
    # Room for every report of a right answer, escaped (\uXXXX: six characters for one), and for the program's
    # writes to the process's own stdout; an answer that overflows it fails as "output limit".
    max_output = (1 << 20) + 8 * sum(len(output) for _, output in tests) + 4096 * len(tests)
    outcome = run_python(_DRIVER, stdin=json.dumps(payload), limits=limits, max_output=max_output)
    return _judge(outcome, _reports(outcome.stdout, nonce), tests, expected, problem.fn_name, timeout, bound)


def grade_many(
    items: Sequence[tuple[str, Problem]], *, workers: int | None = None, timeout: int = 60, progress: bool = True
) -> list[Verdict]:
    """`grade` for each (code, problem), in parallel (the work is in sandbox processes, so threads suffice),
    with a progress bar on stderr; the verdicts in the order of `items`."""
    count = workers if workers is not None else os.cpu_count() or 1
    if count < 1:
        raise HarnessError(f"LiveCodeBench grading workers is {workers}: it must be 1 or more")
    verdicts: list[Verdict | None] = [None] * len(items)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with (
        Progress(*columns, console=Console(stderr=True), disable=not progress) as bar,
        ThreadPoolExecutor(max_workers=count, thread_name_prefix="livecodebench") as pool,
    ):
        task = bar.add_task("livecodebench", total=len(items))
        futures: dict[Future[Verdict], int] = {
            pool.submit(grade, code, problem, timeout=timeout): index for index, (code, problem) in enumerate(items)
        }
        try:
            for future in as_completed(futures):
                verdicts[futures[future]] = future.result()
                bar.advance(task)
        except BaseException:
            for future in futures:
                future.cancel()  # those not started: the running ones end within their sandbox's bound
            raise
    return [verdict for verdict in verdicts if verdict is not None]


# --- what the sandbox reports, judged here -----------------------------------------------------------------


def _reports(stdout: str, nonce: str) -> list[dict[str, Any]]:
    """The driver's reports: the lines that start with this run's nonce and hold a JSON object. Others (the
    program's own writes to the process's stdout, a report cut off by a kill) are not reports."""
    prefix = nonce + " "
    reports = []
    for line in stdout.split("\n"):
        if line.startswith(prefix):
            try:
                report = json.loads(line[len(prefix) :])
            except (ValueError, RecursionError):
                continue
            if isinstance(report, dict):
                reports.append(report)
    return reports


def _judge(
    outcome: Outcome,
    reports: list[dict[str, Any]],
    tests: list[tuple[str, str]],
    expected: list[Any],
    fn_name: str | None,
    timeout: int,
    bound: int,
) -> Verdict:
    by_test: dict[int, dict[str, Any]] = {}
    crash: dict[str, Any] | None = None
    for report in reports:
        if report.get("phase") == "driver":
            crash = report
        if report.get("phase") == "compile":
            kind: FailureKind = "time limit" if report.get("status") == "timeout" else "compile error"
            if _refused(report):
                kind = "refused"
            return Verdict(False, None, kind, _short(str(report.get("error", ""))))
        index = report.get("test")
        if isinstance(index, int) and not isinstance(index, bool):
            if index in by_test:
                # Only a program that found the nonce writes a second report; it must not choose which counts.
                return Verdict(False, index, "runtime error", f"test {index} was reported twice: the program forged")
            by_test[index] = report
    for index in range(len(tests)):
        result = by_test.get(index)
        if result is None:
            return _missing(outcome, index, bound, crash)
        status = result.get("status")
        if status == "timeout":
            return Verdict(False, index, "time limit", f"test {index} ran over the {timeout} s limit per test")
        if status != "ok":
            kind = "refused" if _refused(result) else "runtime error"
            return Verdict(False, index, kind, f"test {index}: {_short(str(result.get('error', '')))}")
        if fn_name is None:
            printed = result.get("stdout")
            if not isinstance(printed, str):
                return Verdict(False, index, "runtime error", f"test {index}: an unreadable result")
            wrong = _stdio_mismatch(printed, tests[index][1])
        else:
            try:
                wrong = _functional_mismatch(_decode(result.get("value")), expected[index])
            except (ValueError, TypeError, KeyError, ZeroDivisionError, OverflowError, RecursionError):
                return Verdict(False, index, "runtime error", f"test {index}: an unreadable result")
        if wrong is not None:
            return Verdict(False, index, "wrong answer", f"test {index}: {wrong}")
    return Verdict(True)


def _refused(report: dict[str, Any]) -> bool:
    return "sandbox refused" in str(report.get("error", ""))


def _missing(outcome: Outcome, index: int, bound: int, crash: dict[str, Any] | None) -> Verdict:
    """A test without a report: the run ended before it did (as in LCB, where a killed or dead grading
    process has no results at all), or the driver failed between tests (`crash`: an alarm that went off
    just after a test, an exception the program left to go off later)."""
    if crash is not None:
        error = str(crash.get("error", ""))
        kind: FailureKind = "time limit" if "timeoutexception" in error.lower() else "runtime error"
        return Verdict(False, index, kind, f"test {index} never finished: {_short(error)}")
    stderr = outcome.stderr.strip().splitlines()
    last = _short(stderr[-1]) if stderr else ""
    kinds: dict[str, tuple[FailureKind, str]] = {
        "timeout": ("time limit", f"the run went over its {bound} s bound (LCB's global timeout)"),
        "cpu": ("cpu limit", f"the run went over its {bound} s of CPU time"),
        "memory": ("memory limit", f"the run went over {MEMORY_BYTES >> 30} GiB of memory"),
        "refused": ("refused", last or "the sandbox refused what the program did"),
        "output": ("output limit", "the program wrote more than the grader reads"),
        "ok": ("runtime error", "the program ended the run itself"),
    }
    kind, why = kinds.get(outcome.status, ("runtime error", f"the run died (exit {outcome.returncode}) {last}"))
    return Verdict(False, index, kind, f"test {index} never finished: {why.strip()}")


def _stdio_mismatch(printed: str, output: str) -> str | None:
    """grade_stdio's comparison: line by line after stripping, a line equal as text or as a row of Decimals."""
    got, want = _stripped_lines(printed), _stripped_lines(output)
    if len(got) != len(want):
        return f"{len(got)} lines printed, {len(want)} expected"
    for number, (line, wanted) in enumerate(zip(got, want, strict=True)):
        if line == wanted:
            continue
        ours, theirs = _decimals(line), _decimals(wanted)
        try:
            if ours is not None and theirs is not None and ours == theirs:
                continue
        except ArithmeticError:  # a signalling NaN refuses comparison: LCB fails the answer on it
            pass
        return f"line {number}: {_short(line)!r}, expected {_short(wanted)!r}"
    return None


def _stripped_lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def _decimals(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(word) for word in line.split()]
    except Exception:  # convert_line_to_decimals' bare except: anything not a Decimal
        return None


def _functional_mismatch(prediction: Any, expected: Any) -> str | None:
    """grade_call_based's comparison, `prediction == expected`, on the value the driver reported."""
    if prediction == expected:
        return None
    return f"returned {_short(repr(prediction))}, expected {_short(repr(expected))}"


def _json_int(text: str) -> int:
    """An integer of an expected output, parsed as LCB's process does (up to 50000 digits) without changing
    this process's limit."""
    if len(text.lstrip("-")) > INT_DIGITS:
        raise ValueError(f"an integer of more than {INT_DIGITS} digits")
    return int(Decimal(text)) if len(text) > 4000 else int(text)


class _Opaque:
    """A returned value that is not plain data: equal to nothing but itself."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_TAGS: dict[str, Callable[[Any], Any]] = {
    "t": lambda items: tuple(_decode(item) for item in _list(items)),
    "d": lambda pairs: {_decode(key): _decode(value) for key, value in _list(pairs)},
    "i": lambda digits: int(_text(digits), 16),
    "q": lambda ratio: Fraction(int(_text(ratio[0]), 16), int(_text(ratio[1]), 16)),
    "c": lambda parts: complex(_number(parts[0]), _number(parts[1])),
    "o": lambda name: _Opaque(_text(name)),
}


def _decode(node: Any) -> Any:
    """The driver's typed JSON back to a value that `==` treats as it treated the returned one: null, bool,
    str, float, small int and list as themselves; {"t": tuple}, {"d": dict as pairs}, {"i": big int in hex},
    {"q": Fraction or finite Decimal}, {"c": complex}, {"o": not plain data}."""
    if node is None or isinstance(node, bool | int | float | str):
        return node
    if isinstance(node, list):
        return [_decode(item) for item in node]
    if isinstance(node, dict) and len(node) == 1:
        ((tag, body),) = node.items()
        if tag in _TAGS:
            return _TAGS[tag](body)
    raise ValueError("not a reported value")


def _list(node: Any) -> list[Any]:
    if not isinstance(node, list):
        raise ValueError("not a reported value")
    return node


def _text(node: Any) -> str:
    if not isinstance(node, str):
        raise ValueError("not a reported value")
    return node


def _number(node: Any) -> float:
    if isinstance(node, bool) or not isinstance(node, int | float):
        raise ValueError("not a reported value")
    return float(node)


def _short(text: str, length: int = 120) -> str:
    """testing_util's truncatefn, shorter: the two ends of a long text."""
    return text if len(text) <= length else f"{text[: length // 2]}...{text[-length // 2 :]}"


# --- the driver: what runs in the sandbox ------------------------------------------------------------------

_DRIVER = r'''
import ast, builtins, contextlib, faulthandler, io, json, os, signal, sys, types
from decimal import Decimal
from fractions import Fraction

# LCB's compute_code_generation_metrics.py sets this at import; its grading processes inherit it.
sys.set_int_max_str_digits(50000)
PAYLOAD = json.loads(sys.stdin.buffer.read())
NONCE, TIMEOUT, PRELUDE = PAYLOAD["nonce"], PAYLOAD["timeout"], PAYLOAD["prelude"]
# Reports go to a copy of stdout taken now, with functions bound now: the program may close fd 1 or rebind
# json.dumps, and only a missing report (a failure) can come of it.
REPORTS, WRITE, DUMPS = os.dup(1), os.write, json.dumps


def report(**record):
    # The leading newline ends whatever the program left unfinished on the process's stdout.
    data = memoryview(("\n" + NONCE + " " + DUMPS(record, ensure_ascii=True) + "\n").encode("ascii"))
    while data:
        data = data[WRITE(REPORTS, data):]


# LCB's grading process is a multiprocessing child: its stdin is /dev/null, as a text file.
null = os.open("/dev/null", os.O_RDONLY)
os.dup2(null, 0)
os.close(null)
sys.stdin = open(0, encoding="utf-8", closefd=False)


class Discard(io.RawIOBase):
    """Output the grader never reads (the program's writes outside a test, its stderr): dropped here, so that
    it can neither fill the sandbox's output limit nor mix with the reports. fileno() is the real one, which
    faulthandler.enable() needs."""

    def __init__(self, fd):
        super().__init__()
        self.fd = fd

    def writable(self):
        return True

    def write(self, data):
        return len(data)

    def fileno(self):
        return self.fd


sys.stdout = sys.__stdout__ = io.TextIOWrapper(io.BufferedWriter(Discard(1)), encoding="utf-8")
sys.stderr = sys.__stderr__ = io.TextIOWrapper(io.BufferedWriter(Discard(2)), encoding="utf-8", line_buffering=True)


def reliability_guard():
    # LCB's, which run_test calls before compiling: the same names become None, so that a program that uses
    # them fails here as there (the sandbox, not this, is what isolates it).
    faulthandler.disable()
    builtins.quit = None
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork",
                 "forkpty", "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod", "fchown",
                 "chmod", "chown", "chroot", "lchflags", "lchmod", "lchown", "getcwd", "chdir"):
        setattr(os, name, None)
    import shutil
    shutil.rmtree = shutil.move = shutil.chown = None
    try:
        import subprocess
    except Exception:  # the sandbox refuses subprocess at import: programs cannot have it either
        pass
    else:
        subprocess.Popen = None
    builtins.help = None
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None


class TimeoutException(Exception):
    # The name matters: LCB tells a time limit from a runtime error by "timeoutexception" in repr(error).
    pass


def on_alarm(signum, frame):
    # LCB's handler prints this, into the captured output when a test runs: a program that catches the
    # exception and goes on prints it as part of its answer.
    print("timeout occured: alarm went off")
    raise TimeoutException


def describe(error):
    try:
        text = repr(error)
    except BaseException:
        text = "<" + type(error).__name__ + ">"
    return text[:1000]


def failed(error, **where):
    status = "timeout" if "timeoutexception" in describe(error).lower() else "error"
    report(status=status, error=describe(error), **where)


def without_main_guard(code):
    # clean_if_name: a last `if __name__ == '__main__':` becomes its body (its else is dropped).
    try:
        tree = ast.parse(code)
        last = tree.body[-1]
        if isinstance(last, ast.If) and ast.unparse(last.test).strip() == "__name__ == '__main__'":
            code = ast.unparse(tree.body[:-1]) + "\n" + ast.unparse(last.body)
    except Exception:
        pass
    return code


def as_function(code):
    # make_function: the prelude, the top-level imports, and every other statement in wrapped_function().
    try:
        imports, rest = [], []
        for statement in ast.parse(code).body:
            (imports if isinstance(statement, (ast.Import, ast.ImportFrom)) else rest).append(statement)
        arguments = ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[])
        function = ast.FunctionDef(name="wrapped_function", args=arguments, body=rest, decorator_list=[], lineno=-1)
        return PRELUDE + "\n" + ast.unparse(imports) + "\n" + ast.unparse(function)
    except Exception:
        return code


def compile_program(code):
    # compile_code: a module named tmp_sol (so `__name__ == "__main__"` is false in it), and an instance of
    # Solution when the text says "class Solution".
    signal.alarm(TIMEOUT)
    try:
        module = types.ModuleType("tmp_sol", "")
        exec(code, module.__dict__)
        return module.Solution() if "class Solution" in code else module
    finally:
        signal.alarm(0)


def function_of(compiled, name):
    try:
        return getattr(compiled, name) if hasattr(compiled, name) else None
    except Exception:
        return None


class Stdin:
    """MockStdinWithBuffer: read() and readlines() give the whole input (readlines() split on newlines,
    without them), readline() goes line by line, buffer.read() gives bytes, buffer.readline() always the
    first line, and anything else is the StringIO's; not iterable, as its class has no __iter__."""

    def __init__(self, inputs):
        self.inputs = inputs
        self._stringio = io.StringIO(inputs)
        self.buffer = StdinBuffer(inputs)

    def read(self, *args):
        return self.inputs

    def readline(self, *args):
        return self._stringio.readline(*args)

    def readlines(self, *args):
        return self.inputs.split("\n")

    def __getattr__(self, name):
        return getattr(self._stringio, name)


class StdinBuffer:
    def __init__(self, inputs):
        self.inputs = inputs.encode("utf-8")

    def read(self, *args):
        return self.inputs

    def readline(self, *args):
        return self.inputs.split(b"\n")[0] + b"\n"


class InputFile(io.StringIO):
    # Stands for mock_open(read_data=input)'s file: the input from its start at each open(), writes dropped.
    def write(self, text):
        return len(text)


@contextlib.contextmanager
def swapped(owner, name, value):
    # unittest.mock.patch's way: the attribute must exist; one of the instance's own is put back, one of its
    # class is deleted again.
    original = getattr(owner, name)
    try:
        local = name in vars(owner)
    except TypeError:
        local = False
    setattr(owner, name, value)
    try:
        yield
    finally:
        if local:
            setattr(owner, name, original)
        else:
            delattr(owner, name)
            if not hasattr(owner, name):
                setattr(owner, name, original)


def call_with_input(method, inputs):
    # call_method: LCB's decorators are entered bottom-up, so read/readlines/readline are patched on the
    # process's own stdin (where `from sys import stdin` points) before sys.stdin becomes the stand-in.
    lines = iter(inputs.split("\n"))
    with contextlib.ExitStack() as patches:
        patches.enter_context(swapped(sys.stdin, "read", lambda *args: inputs))
        patches.enter_context(swapped(sys.stdin, "readlines", lambda *args: inputs.split("\n")))
        patches.enter_context(swapped(sys.stdin, "readline", lambda *args: next(lines)))
        patches.enter_context(swapped(sys, "stdin", Stdin(inputs)))
        patches.enter_context(swapped(builtins, "open", lambda *args, **kwargs: InputFile(inputs)))
        try:
            return method()
        except SystemExit:
            pass


class Capture:
    # Capturing: sys.stdout is a StringIO for the test; its close() takes one argument, so that a program's
    # sys.stdout.close() raises a TypeError there as here.
    def __enter__(self):
        self.saved = sys.stdout
        sys.stdout = self.sink = io.StringIO()
        self.sink.close = lambda unused: 1
        return self

    def __exit__(self, *exc):
        self.text = self.sink.getvalue()
        sys.stdout = self.saved


def enable_faulthandler(index):
    # LCB enables it before each test, outside the test's try: a program that broke sys.stderr fails there.
    try:
        faulthandler.enable()
        return True
    except BaseException as error:
        signal.alarm(0)
        failed(error, test=index)
        return False


def run_stdio(code, inputs):
    try:
        method = function_of(compile_program(as_function(without_main_guard(code))), "wrapped_function")
        if method is None:
            raise NameError("no wrapped_function")
    except BaseException as error:
        failed(error, phase="compile")
        return
    for index, given in enumerate(inputs):
        signal.alarm(TIMEOUT)
        if not enable_faulthandler(index):
            return
        error = None
        with Capture() as captured:
            try:
                call_with_input(method, given)
                signal.alarm(0)
            except BaseException as caught:
                signal.alarm(0)
                error = caught
            finally:
                signal.alarm(0)
                faulthandler.disable()
        if error is not None:
            failed(error, test=index)
            return
        report(test=index, status="ok", stdout=captured.text)


def encode(value, depth=0):
    # What `==` against a JSON value can tell apart, kept: see _decode in accuracy/livecodebench.py. The base
    # types' own methods read the values, so that no code of the program's classes runs here.
    kind = type(value)
    if depth > 400:
        return {"o": "a value nested too deep"}
    if value is None or kind is bool:
        return value
    if issubclass(kind, int) and kind is not bool:
        number = int.__int__(value)
        return number if -10**18 < number < 10**18 else {"i": hex(number)}
    if issubclass(kind, float):
        return float.__float__(value)
    if issubclass(kind, str):
        return str.__str__(value)
    if issubclass(kind, list):
        return [encode(item, depth + 1) for item in list.__iter__(value)]
    if issubclass(kind, tuple):
        return {"t": [encode(item, depth + 1) for item in tuple.__iter__(value)]}
    if issubclass(kind, dict):
        return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict.items(value)]}
    if kind is Fraction:
        return {"q": [hex(value.numerator), hex(value.denominator)]}
    if kind is Decimal and value.is_finite():
        numerator, denominator = value.as_integer_ratio()
        return {"q": [hex(numerator), hex(denominator)]}
    if kind is Decimal and value.is_infinite():
        return float(value)
    if kind is complex:
        return {"c": [value.real, value.imag]}
    return {"o": "a " + kind.__name__}


def run_functional(code, inputs, name):
    try:
        method = function_of(compile_program(PRELUDE + "\n\n" + code), name)
        if method is None:
            raise NameError("the program defines no " + name)
        arguments = [[json.loads(line) for line in given.split("\n")] for given in inputs]
    except BaseException as error:
        failed(error, phase="compile")
        return
    for index, args in enumerate(arguments):
        signal.alarm(TIMEOUT)
        if not enable_faulthandler(index):
            return
        try:
            prediction = method(*args)
            signal.alarm(0)
            if isinstance(prediction, tuple):  # LCB: "don't penalize model if it produces tuples"
                prediction = list(prediction)
            value = encode(prediction)
        except BaseException as error:
            signal.alarm(0)
            failed(error, test=index)
            return
        finally:
            signal.alarm(0)
            faulthandler.disable()
        report(test=index, status="ok", value=value)


def main():
    signal.signal(signal.SIGALRM, on_alarm)
    reliability_guard()
    code, inputs, name = PAYLOAD["code"], PAYLOAD["inputs"], PAYLOAD["fn_name"]
    if name is None:
        run_stdio(code, inputs)
    else:
        run_functional(code, inputs, name)


try:
    main()
except BaseException as error:
    report(phase="driver", error=describe(error))
'''
"""The program the sandbox runs: it reads {nonce, code, inputs, fn_name, timeout, prelude} from stdin,
grades nothing, and reports per test `{"test": i, "status": "ok", "stdout" | "value": ...}` or
`{"test": i, "status": "timeout" | "error", "error": repr}`, or `{"phase": "compile", ...}` when the code
failed before its first test, each on its own line after the nonce."""
