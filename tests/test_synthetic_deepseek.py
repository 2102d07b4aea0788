"""The synthetic deepseek-r1 sample (scripts/synthetic_deepseek.py) is deterministic, in the data set's schema,
and gradable by the project's own graders: its right answers score 100 and its wrong ones 0, code and math
judged in the sandbox as a real accuracy run judges them."""

from __future__ import annotations

import base64
import json
import pickle
import re
import sys
import zlib
from collections import Counter
from pathlib import Path

import pytest

from accuracy.answers import DATASET_KINDS, kind_of, parse_answer
from accuracy.exact_match import score_exact_match
from accuracy.livecodebench import load_problems

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import synthetic_deepseek

ROWS = 40
"""Eight of each source: every livecodebench problem once, several forms of each math answer."""


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return list(synthetic_deepseek.rows(ROWS, seed=0))


@pytest.fixture(scope="module")
def test_jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("livecodebench") / "test.jsonl"
    synthetic_deepseek.write_problems(path, seed=0)
    return path


def test_the_same_seed_gives_the_same_rows_and_problems_and_another_seed_other_rows(tmp_path):
    assert list(synthetic_deepseek.rows(25, seed=3)) == list(synthetic_deepseek.rows(25, seed=3))
    assert list(synthetic_deepseek.rows(25, seed=3)) != list(synthetic_deepseek.rows(25, seed=4))
    first, again, other = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    synthetic_deepseek.write_problems(first, seed=5)
    synthetic_deepseek.write_problems(again, seed=5)
    synthetic_deepseek.write_problems(other, seed=6)
    assert first.read_bytes() == again.read_bytes() != other.read_bytes()
    lines = first.read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(b"\r" not in line for line in lines)
    for line in lines[:-1]:
        assert list(json.loads(line)) == sorted(json.loads(line))


def test_rows_have_the_schema_short_prompts_and_every_kind_in_twenty(rows):
    for row in rows:
        assert set(row) == {"id", "text_input", "ground_truth", "dataset", "question"}
        assert row["id"].startswith("synthetic.") and all(isinstance(value, str) and value for value in row.values())
        assert len(row["text_input"]) <= 400, row["text_input"]
        assert row["question"] in row["text_input"]
    assert len({row["id"] for row in rows}) == len(rows)
    assert {kind_of(row["dataset"]) for row in rows[:20]} == set(DATASET_KINDS.values())
    assert all(row["id"].startswith("mine.") for row in synthetic_deepseek.rows(5, seed=0, prefix="mine"))
    # The names the real data uses: "aime" with a year, the others as they are.
    for row in rows:
        assert re.fullmatch(r"math500|aime(19[89]\d|20[0-2]\d)|gpqa|mmlu_pro|livecodebench", row["dataset"]), row


def test_prompts_ask_for_what_the_graders_parse(rows):
    for row in rows:
        kind, prompt = kind_of(row["dataset"]), row["text_input"]
        if kind in ("math500", "aime"):
            assert prompt.endswith("put your final answer within \\boxed{}.")
        elif kind in ("gpqa", "mmlu_pro"):
            letters = "ABCD" if kind == "gpqa" else "ABCDEFGHIJ"
            assert prompt.endswith(f"'Answer: $LETTER', where LETTER is one of {letters}.")
            assert row["ground_truth"] in letters and f"\n{letters[-1]}) " in prompt
        else:
            assert "```python\n" in prompt


def test_math_ground_truths_come_in_several_latex_forms(rows):
    truths = [row["ground_truth"] for row in synthetic_deepseek.rows(200, seed=0) if row["dataset"] == "math500"]
    assert any(truth.startswith("\\frac{") for truth in truths)
    assert any("\\sqrt{" in truth for truth in truths)
    assert any(truth.lstrip("-").isdigit() for truth in truths)
    assert all(0 <= int(row["ground_truth"]) <= 999 for row in rows if kind_of(row["dataset"]) == "aime")


def test_the_problems_load_with_their_pickled_private_tests_and_the_rows_name_them(rows, test_jsonl):
    written = synthetic_deepseek.problems(seed=0)
    loaded = load_problems(test_jsonl)
    assert sorted(loaded) == sorted(problem["question_id"] for problem in written)
    pickled = 0
    for problem in written:
        public = json.loads(problem["public_test_cases"])
        try:
            private = json.loads(problem["private_test_cases"])
        except ValueError:  # code_generation_lite's form: base64(zlib(pickle(JSON text)))
            pickled += 1
            private = json.loads(pickle.loads(zlib.decompress(base64.b64decode(problem["private_test_cases"]))))
        tests = [(case["input"], case["output"]) for case in public + private]
        assert list(loaded[problem["question_id"]].tests) == tests and 2 <= len(tests) <= 4
        assert loaded[problem["question_id"]].fn_name == json.loads(problem["metadata"]).get("func_name")
    assert 0 < pickled < len(written)
    functional = sum(problem.fn_name is not None for problem in loaded.values())
    assert 0 < functional < len(loaded)
    code_rows = [row for row in rows if row["dataset"] == "livecodebench"]
    assert {row["ground_truth"] for row in code_rows} == set(loaded)  # 40 rows: each problem once
    other_seed = [row for row in synthetic_deepseek.rows(50, seed=9) if row["dataset"] == "livecodebench"]
    assert {row["ground_truth"] for row in other_seed} <= set(loaded)  # the ids do not depend on the seed


def test_every_answer_written_is_one_the_parsers_read(rows):
    for row in rows:
        kind = kind_of(row["dataset"])
        assert parse_answer(kind, synthetic_deepseek.correct_output(row)) is not None, row
        assert parse_answer(kind, synthetic_deepseek.wrong_output(row)) is not None, row


def _score(rows, outputs, problems):
    predictions = [(index, text, 100 + index) for index, text in enumerate(outputs)]
    return score_exact_match(
        predictions,
        [row["ground_truth"] for row in rows],
        [row["dataset"] for row in rows],
        problems=problems,
        workers=2,
        progress=False,
    )


def test_right_answers_score_100_and_wrong_ones_0_by_the_real_graders(rows, test_jsonl):
    problems = load_problems(test_jsonl)
    by_id = {problem["question_id"]: problem for problem in synthetic_deepseek.problems(seed=0)}
    right = _score(rows, [synthetic_deepseek.correct_output(row, by_id) for row in rows], problems)
    assert [(s.source, s.detail) for s in right.samples if not s.correct] == []
    assert right.metrics["exact_match"] == 100.0 and right.metrics["num-samples"] == ROWS
    wrong = _score(rows, [synthetic_deepseek.wrong_output(row, problems) for row in rows], problems)
    assert [(s.source, s.extracted) for s in wrong.samples if s.correct] == []
    assert wrong.metrics["exact_match"] == 0.0
    assert Counter(kind_of(s.source) for s in wrong.samples) == Counter({kind: ROWS // 5 for kind in DATASET_KINDS})
    # The math answers were written in more than one form each grader had to find equal.
    forms = {s.extracted for s in right.samples if s.source == "math500"}
    assert any(form.startswith(("\\dfrac", "x = ")) or "/" in form for form in forms), forms


def test_a_problem_missing_from_the_given_copy_is_an_error(rows):
    code_row = next(row for row in rows if row["dataset"] == "livecodebench")
    with pytest.raises(KeyError, match=code_row["ground_truth"]):
        synthetic_deepseek.correct_output(code_row, {})
