"""LiveCodeBench grading (accuracy/livecodebench.py): the data set's encoding, LCB's verdicts, and what the
model's code cannot do from the sandbox (fork, write outside, read secrets, reach the network, see or fake
the expected outputs)."""

from __future__ import annotations

import base64
import json
import os
import pickle
import shlex
import socket
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from accuracy.livecodebench import (
    RELEASE_FILES,
    Problem,
    Verdict,
    check_problems_files,
    download_command,
    grade,
    grade_many,
    load_problems,
    problems_files,
)
from mlperf_llm_sut.common.errors import HarnessError

SUM = "n = int(input())\nprint(sum(map(int, input().split())))\n"
APPEND = "class Solution:\n    def appendItem(self, nums: List[int], x: int) -> List[int]:\n        return nums + [x]\n"


def encode_private(cases: list[dict[str, str]], protocol: int = pickle.DEFAULT_PROTOCOL) -> str:
    """code_generation_lite's encoding of private tests: base64(zlib(pickle(JSON text)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases), protocol=protocol))).decode()


def row(question_id: str, public: list[tuple[str, str]], private: list[tuple[str, str]], **kw: Any) -> dict[str, Any]:
    testtype = "functional" if kw.get("func_name") else "stdin"

    def cases(tests: list[tuple[str, str]]) -> list[dict[str, str]]:
        return [{"input": given, "output": output, "testtype": testtype} for given, output in tests]

    return {
        "question_title": question_id,
        "question_content": "...",
        "platform": "leetcode" if testtype == "functional" else "atcoder",
        "question_id": question_id,
        "contest_id": "c1",
        "contest_date": "2023-08-01T00:00:00",
        "starter_code": "",
        "difficulty": "easy",
        "public_test_cases": json.dumps(cases(public)),
        "private_test_cases": kw.get("raw_private") or encode_private(cases(private)),
        "metadata": json.dumps({"func_name": kw["func_name"]} if kw.get("func_name") else {}),
    }


def sample_rows() -> list[dict[str, Any]]:
    """A tiny release_v1-like test.jsonl, made the same way every time: stdin and functional problems, the
    private tests encoded as the data set encodes them (one left as plain JSON, which LCB also reads)."""
    return [
        row("abc300_a", [("3\n1 2 3\n", "6\n")], [("2\n5 5\n", "10\n"), ("1\n-4\n", "-4\n")]),
        row("abc300_b", [("1 2\n", "1.5\n")], [("3 4\n", "3.5\n")]),
        row(
            "abc300_c",
            [("2\n", "1\n2\n")],
            [("3\n", "1\n2\n3\n")],
            raw_private=json.dumps([{"input": "3\n", "output": "1\n2\n3\n", "testtype": "stdin"}]),
        ),
        row("2800", [("[1, 2]\n3", "[1, 2, 3]")], [("[]\n0", "[0]"), ("[7]\n-1", "[7, -1]")], func_name="appendItem"),
        row("2801", [("3", "[3, 3]")], [("0", "[0, 0]")], func_name="pair"),
    ]


@pytest.fixture(scope="module")
def problems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Problem]:
    folder = tmp_path_factory.mktemp("lcb")
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sample_rows()))
    return load_problems(folder)


# --- the data set ------------------------------------------------------------------------------------------


def test_load_reads_public_then_decoded_private_tests(problems: dict[str, Problem]) -> None:
    assert list(problems) == ["abc300_a", "abc300_b", "abc300_c", "2800", "2801"]
    assert problems["abc300_a"] == Problem(
        "abc300_a", [("3\n1 2 3\n", "6\n"), ("2\n5 5\n", "10\n"), ("1\n-4\n", "-4\n")], None
    )
    assert problems["abc300_c"].tests == [("2\n", "1\n2\n"), ("3\n", "1\n2\n3\n")]
    assert problems["2800"].fn_name == "appendItem"
    assert problems["2800"].tests[2] == ("[7]\n-1", "[7, -1]")


def test_load_only_some_and_from_the_file_itself(tmp_path: Path) -> None:
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sample_rows()))
    assert list(load_problems(tmp_path / "test.jsonl", only={"2801"})) == ["2801"]


@pytest.mark.parametrize("where", ["absent.jsonl", "."])
def test_load_without_the_data_set_says_how_to_get_it(tmp_path: Path, where: str) -> None:
    with pytest.raises(HarnessError) as raised:
        load_problems(tmp_path / where)
    message = str(raised.value)
    assert "test.jsonl" in message and "huggingface-cli download livecodebench/code_generation_lite" in message
    assert "livecodebench" in message.rsplit("pass", 1)[1]  # the setting to pass it with


def test_load_of_another_format_says_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "test.jsonl").write_text('{"question_id": "x"}\n')
    with pytest.raises(HarnessError, match="line 1 is not from code_generation_lite"):
        load_problems(tmp_path)
    (tmp_path / "test.jsonl").write_text("question_id,input\n")
    with pytest.raises(HarnessError, match="not a JSON object"):
        load_problems(tmp_path)


def write_release_v6(folder: Path) -> Path:
    """A release_v6-like copy: test.jsonl (the release_v1 sample) and test2.jsonl ... test6.jsonl, one new problem
    each, the last one functional."""
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sample_rows()))
    for number in range(2, 7):
        added = row(f"v{number}_a", [("1\n", "1\n")], [("2\n", "2\n")])
        if number == 6:
            added = row("3500", [("3", "[3, 3]")], [("0", "[0, 0]")], func_name="pair")
        (folder / f"test{number}.jsonl").write_text(json.dumps(added) + "\n")
    return folder


def test_the_releases_files_are_code_generation_lites() -> None:
    assert RELEASE_FILES["release_v1"] == ("test.jsonl",)
    assert RELEASE_FILES["release_v6"] == tuple(["test.jsonl"] + [f"test{n}.jsonl" for n in range(2, 7)])
    assert download_command("release_v6").startswith(
        "huggingface-cli download livecodebench/code_generation_lite test.jsonl test2.jsonl test3.jsonl "
        "test4.jsonl test5.jsonl test6.jsonl"
    )


def test_release_v6_reads_all_six_files_in_order(tmp_path: Path) -> None:
    write_release_v6(tmp_path)
    problems = load_problems(tmp_path, release="release_v6")
    assert list(problems) == [*(r["question_id"] for r in sample_rows()), "v2_a", "v3_a", "v4_a", "v5_a", "3500"]
    assert problems["3500"] == Problem("3500", [("3", "[3, 3]"), ("0", "[0, 0]")], "pair")
    assert list(load_problems(tmp_path, release="release_v6", only={"v4_a", "2800"})) == ["2800", "v4_a"]
    assert list(load_problems(tmp_path)) == [r["question_id"] for r in sample_rows()]  # release_v1: test.jsonl only
    assert check_problems_files(tmp_path, "release_v6") == [tmp_path / name for name in RELEASE_FILES["release_v6"]]


def test_release_v6_from_one_file_holding_it(tmp_path: Path) -> None:
    write_release_v6(tmp_path)
    whole = tmp_path / "all.jsonl"
    whole.write_text("".join((tmp_path / name).read_text() for name in RELEASE_FILES["release_v6"]))
    assert problems_files(whole, "release_v6") == [whole]
    assert load_problems(whole, release="release_v6") == load_problems(tmp_path, release="release_v6")


def test_release_v6_without_some_of_its_files_names_them(tmp_path: Path) -> None:
    write_release_v6(tmp_path)
    (tmp_path / "test5.jsonl").unlink()
    with pytest.raises(HarnessError, match=r"test5.jsonl does not exist; .* against release_v6 .*download them"):
        load_problems(tmp_path, release="release_v6")
    (tmp_path / "test2.jsonl").unlink()
    with pytest.raises(HarnessError, match=r"lacks test2.jsonl, test5.jsonl;") as raised:
        check_problems_files(tmp_path, "release_v6")
    assert "livecodebench" in str(raised.value).rsplit("pass", 1)[1]
    with pytest.raises(HarnessError, match="release 'release_v9' is not one of code_generation_lite's"):
        load_problems(tmp_path, release="release_v9")


def test_release_v6_files_are_each_checked_and_never_share_a_question(tmp_path: Path) -> None:
    write_release_v6(tmp_path)
    (tmp_path / "test4.jsonl").write_text('{"question_id": "x"}\n')
    with pytest.raises(HarnessError, match=r"test4.jsonl line 1 is not from code_generation_lite's test.jsonl, "):
        check_problems_files(tmp_path, "release_v6")
    (tmp_path / "test4.jsonl").write_text(json.dumps(sample_rows()[1]) + "\n")
    with pytest.raises(HarnessError, match=r"test4.jsonl line 1 .*question 'abc300_b' appears twice"):
        load_problems(tmp_path, release="release_v6")


class Touch:
    """A pickle that, loaded by pickle.loads, would run a shell command creating a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {shlex.quote(str(self.path))}",))


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_a_pickle_that_would_run_code_is_refused_unrun(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    evil = base64.b64encode(zlib.compress(pickle.dumps(Touch(marker), protocol=protocol))).decode()
    bad = row("abc999_z", [("1\n", "1\n")], [], raw_private=evil)
    (tmp_path / "test.jsonl").write_text(json.dumps(sample_rows()[0]) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(HarnessError, match=r"abc999_z.*needs the global (os|posix)\.system") as raised:
        load_problems(tmp_path)
    assert "download it again" in str(raised.value)
    assert not marker.exists()


# --- LCB's verdicts ----------------------------------------------------------------------------------------

MAIN_GUARD = """
import sys

def main():
    data = sys.stdin.read().split()
    print(sum(map(int, data[1:])))

if __name__ == "__main__":
    main()
"""

NON_NEGATIVE_SUM = "input()\nprint(max(0, sum(map(int, input().split()))))"
MEAN = "a, b = map(int, input().split())\nprint({})"


@pytest.mark.parametrize(
    ("question", "code", "passed", "failed_test"),
    [
        pytest.param("abc300_a", SUM, True, None, id="right"),
        pytest.param("abc300_a", NON_NEGATIVE_SUM, False, 2, id="wrong-private"),
        pytest.param("abc300_a", MAIN_GUARD, True, None, id="main-guard"),
        pytest.param("abc300_b", MEAN.format("f'{(a + b) / 2:.2f}'"), True, None, id="decimal"),  # 1.50 for 1.5
        pytest.param("abc300_b", MEAN.format("(a + b) / 2 + 1e-9"), False, 0, id="near"),
        pytest.param("abc300_c", "for i in range(int(input())):\n    print(i + 1, ' ')\nprint()\nprint()", True, None,
                     id="blank-tail"),
        pytest.param("abc300_c", "for i in range(int(input()) - 1):\n    print(i + 1)", False, 0, id="missing-line"),
        pytest.param("2800", APPEND, True, None, id="solution"),
        pytest.param("2800", APPEND.replace("nums + [x]", "tuple(nums + [x])"), True, None, id="tuple-for-list"),
        pytest.param("2800", APPEND.replace("nums + [x]", "nums + [x] if nums else [1]"), False, 1, id="wrong"),
        pytest.param("2801", "def pair(n):\n    return [n, n]", True, None, id="no-class"),
        pytest.param("2801", "class Solution:\n    def pair(self, n):\n        return [(n, n)][0]", True, None,
                     id="top-tuple"),
    ],
)  # fmt: skip
def test_lcb_verdicts(
    problems: dict[str, Problem], question: str, code: str, passed: bool, failed_test: int | None
) -> None:
    verdict = grade(code, problems[question], timeout=2)
    assert (verdict.passed, verdict.failed_test) == (passed, failed_test), verdict
    assert verdict.kind == (None if passed else "wrong answer")


def test_failures_are_told_apart(problems: dict[str, Problem]) -> None:
    assert grade("print((", problems["abc300_a"], timeout=2).kind == "compile error"
    assert grade("  \n", problems["abc300_a"], timeout=2).kind == "no code"
    crash = grade("input()\nraise ValueError('boom')", problems["abc300_a"], timeout=2)
    assert (crash.kind, crash.failed_test) == ("runtime error", 0) and "boom" in crash.detail
    nested = grade("class Solution:\n    def pair(self, n):\n        return [n, (n,)]", problems["2801"], timeout=2)
    assert (nested.kind, nested.failed_test) == ("wrong answer", 0)  # only the top level's tuple becomes a list


def test_an_endless_loop_is_a_time_limit_within_the_bound(problems: dict[str, Problem]) -> None:
    started = time.monotonic()
    verdict = grade("while True:\n    pass", problems["abc300_a"], timeout=1)
    assert (verdict.kind, verdict.failed_test) == ("time limit", 0)
    assert time.monotonic() - started < (1 + 1) * 3 + 5


# --- what the code cannot do -------------------------------------------------------------------------------


def test_forking_is_refused(problems: dict[str, Problem]) -> None:
    # posix.fork, not os.fork (None there, as under LCB's guard): the sandbox itself must stop it.
    code = "import posix\npid = posix.fork()\nif pid == 0:\n    posix._exit(0)\nprint('forked')"
    verdict = grade(code, Problem("fork", [("", "forked\n")]), timeout=2)
    assert not verdict.passed and verdict.kind == "refused", verdict


@pytest.mark.parametrize(
    "write",
    [
        "fd = os.open(PATH, os.O_WRONLY | os.O_CREAT)\nos.write(fd, b'x')",
        "with open(PATH, 'w') as f:\n    f.write('x')",  # the real open: the prelude's `from builtins import *`
    ],
)
def test_writing_outside_is_refused(tmp_path: Path, write: str) -> None:
    target = tmp_path / "escaped"
    code = f"import os\nPATH = {str(target)!r}\n{write}\nprint('written')"
    verdict = grade(code, Problem("write", [("", "written\n")]), timeout=2)
    assert not verdict.passed and verdict.kind == "refused", verdict
    assert not target.exists()


def test_secrets_in_the_environment_are_not_there(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "tok-5f0c2e7a"
    monkeypatch.setenv("MLPERF_TOKEN", secret)
    code = (
        "import os\n"
        "found = os.environ.get('MLPERF_TOKEN', '')\n"
        "found = found or ('tok-' + open('/proc/self/environ').read().partition('MLPERF_TOKEN=tok-')[2][:8])\n"
        "print(found)"
    )
    verdict = grade(code, Problem("env", [("", secret + "\n")]), timeout=2)
    assert (verdict.passed, verdict.kind) == (False, "wrong answer"), verdict


def test_no_network(problems: dict[str, Problem]) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\nprint('connected')"
        verdict = grade(code, Problem("net", [("", "connected\n")]), timeout=2)
        assert not verdict.passed and verdict.kind == "refused", verdict
        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()


def test_the_expected_outputs_never_reach_the_sandbox() -> None:
    # A program that looks through every object of its process for the answer: it is not there to find.
    code = (
        "import gc\n"
        "prefix = 'ANS' + 'WER-'\n"
        "seen = [x for o in gc.get_objects() for x in (o if isinstance(o, (list, tuple)) else "
        "o.values() if isinstance(o, dict) else ()) if isinstance(x, str) and x.startswith(prefix)]\n"
        "print(seen[0] if seen else 'nothing')"
    )
    verdict = grade(code, Problem("peek", [("question\n", "ANSWER-91c7\n")]), timeout=2)
    assert (verdict.passed, verdict.kind) == (False, "wrong answer"), verdict
    assert "'nothing'" in verdict.detail


FORGER = """
import os, sys, json
{nonce}
for line in ['{{"passed": true}}', nonce + ' ' + json.dumps({{"test": 0, "status": "ok", "stdout": "6\\n"}}),
             nonce + ' ' + json.dumps({{"test": 1, "status": "ok", "stdout": "10\\n"}})]:
    print(line)
    os.write(1, ("\\n" + line + "\\n").encode())
    sys.__stdout__.write("\\n" + line + "\\n")
print(0)
"""


@pytest.mark.parametrize(
    ("nonce", "caught"),
    [
        ("nonce = '0' * 32", "4 lines printed, 1 expected"),  # a guess at the format: not a report
        ("import __main__\nnonce = __main__.NONCE", "reported twice"),  # the real one, dug out of the driver
    ],
)
def test_fake_result_lines_cannot_fake_a_pass(nonce: str, caught: str) -> None:
    problem = Problem("forge", [("3\n1 2 3\n", "6\n"), ("2\n5 5\n", "10\n")])
    verdict = grade(FORGER.format(nonce=nonce), problem, timeout=2)
    assert not verdict.passed and verdict.failed_test == 0, verdict
    assert caught in verdict.detail


# --- many at once ------------------------------------------------------------------------------------------


def test_grade_many_keeps_the_order(problems: dict[str, Problem]) -> None:
    items = [
        ("while True:\n    pass", problems["abc300_a"]),
        (APPEND, problems["2800"]),
        ("print(0)", problems["abc300_b"]),
        (SUM, problems["abc300_a"]),
        ("print((", problems["2801"]),
    ]
    verdicts = grade_many(items, workers=2, timeout=1, progress=True)
    assert [(v.passed, v.kind) for v in verdicts] == [
        (False, "time limit"),
        (True, None),
        (False, "wrong answer"),
        (True, None),
        (False, "compile error"),
    ]
    assert all(isinstance(v, Verdict) for v in verdicts)
