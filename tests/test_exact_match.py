"""deepseek-r1's exact-match scoring: every kind of sample judged as the reference judges it, math answers and
programs judged in the sandbox, and metrics as eval_accuracy.py prints them."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from accuracy import reference_graders
from accuracy.exact_match import MATH_BATCH, score_exact_match
from accuracy.livecodebench import Problem

ROWS = [
    # (source, ground truth, model output)
    ("gpqa", "B", "Thinking... so the ANSWER: (B)"),
    ("gpqa", "C", "ANSWER: E"),
    ("mmlu_pro", "I", "I think it is"),
    ("mmlu_pro", "A", "no letter here 42"),
    ("math500", "\\frac{1}{2}", "so \\boxed{0.5}"),
    ("math500", "3", "\\boxed{\\frac{6}{2}}"),
    ("math500", "\\left( 3, \\frac{\\pi}{2} \\right)", "The point is \\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}."),
    ("math500", "10", "no box at all"),
    ("aime", "42", "Answer: 42"),
    ("aime", "7", "\\boxed{1000}"),
    ("livecodebench", "sum", "```python\nprint(sum(map(int, input().split())))\n```"),
    ("livecodebench", "sum", "```python\nprint(0)\n```"),
    ("livecodebench", "sum", "I cannot write code"),
]
PROBLEMS = {"sum": Problem("sum", [("1 2\n", "3\n"), ("40 2\n", "42\n")])}


def _score(rows, problems=PROBLEMS, **options):
    predictions = [(index, text, 10 + index) for index, (_, _, text) in enumerate(rows)]
    references = [truth for _, truth, _ in rows]
    sources = [source for source, _, _ in rows]
    return score_exact_match(predictions, references, sources, problems=problems, progress=False, **options)


def test_every_kind_of_sample_is_judged_as_the_reference_judges_it():
    result = _score(ROWS)
    assert [sample.correct for sample in result.samples] == [
        True, False, True, False, True, False, True, False, True, False, True, False, False
    ]  # fmt: skip
    for sample, (source, truth, text) in zip(result.samples, ROWS, strict=True):
        if source == "livecodebench":
            continue
        expected = reference_graders.process_row(
            pd.Series({"dataset": source, "model_output": text, "ground_truth": truth})
        )
        assert sample.correct == (expected["prompt_accuracy"] == 100.0), (source, text)
        assert sample.extracted == (None if expected["extracted_answer"] is None else str(expected["extracted_answer"]))
    assert result.metrics == {
        "exact_match": pytest.approx(100.0 * 6 / 13),
        "tokens_per_sample": pytest.approx(sum(10 + index for index in range(13)) / 13),
        "num-samples": 13,
    }


def test_a_wrong_program_says_which_test_it_failed():
    result = _score(ROWS)
    assert result.samples[11].detail.startswith("wrong answer")
    assert result.samples[12].detail == ""  # no code block: nothing to run


def test_math_answers_that_would_hang_sympy_are_judged_wrong_and_the_others_still_judged():
    # PRM800K's guard lets these through to sympy's eval: 9^(9^7) takes seconds of CPU, 9^(9^8) a minute and
    # more memory than the sandbox allows.
    slow = ("math500", "\\sqrt{2}", "\\boxed{9**9**7}")
    huge = ("math500", "\\sqrt{2}", "\\boxed{9**9**8}")
    rows = [("math500", "2", "\\boxed{2}"), slow, huge, ("math500", "3", "\\boxed{3}"), ("math500", "3", "\\boxed{4}")]
    began = time.monotonic()
    result = _score(rows, math_seconds=1)
    assert time.monotonic() - began < 30
    assert [s.correct for s in result.samples] == [True, False, False, True, False]
    assert len(rows) < MATH_BATCH  # one sandboxed interpreter: the bombs must not take the others down


def test_without_the_livecodebench_copy_code_samples_are_left_out_and_counted():
    result = _score(ROWS, problems=None)
    assert result.metrics["num-samples"] == 10 and result.metrics["skipped"] == 3
    assert result.metrics["exact_match"] == pytest.approx(100.0 * 5 / 10)
    assert [s.correct for s in result.samples[-3:]] == [None, None, None]


def test_a_question_missing_from_the_livecodebench_copy_is_judged_wrong_with_the_reason():
    result = _score([("livecodebench", "gone", "```python\nprint(1)\n```")])
    assert result.samples[0].correct is False and "no problem 'gone'" in result.samples[0].detail
