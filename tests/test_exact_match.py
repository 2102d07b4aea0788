"""Exact-match scoring: every kind of sample judged as the reference judges it (deepseek-r1's, and gpt-oss-120b's
harmony outputs), math answers and programs judged in the sandbox, and metrics as the references print them
(gpt-oss-120b's weighted by the repeats of each data set)."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from accuracy import reference_gpt_oss, reference_graders
from accuracy.exact_match import MATH_BATCH, score_exact_match
from accuracy.livecodebench import Problem
from mlperf_llm_sut.common.errors import HarnessError

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


# ---------------------------------------------------------------------------------------------------------------
# gpt-oss-120b's rules: harmony outputs, its parsers, its repeats-weighted score
# ---------------------------------------------------------------------------------------------------------------


def harmony(final: str, analysis: str = "thinking") -> str:
    return (
        f"<|channel|>analysis<|message|>{analysis}<|end|><|start|>assistant<|channel|>final<|message|>{final}<|return|>"
    )


GPT_OSS_ROWS = [
    ("gpqa_diamond", "B", harmony("**B**")),
    ("gpqa_diamond", "C", harmony("D.", analysis="ANSWER: C")),  # the final section's leading letter wins
    ("gpqa_diamond", "A", harmony("Answer: A")),
    ("aime25", "42", harmony("\\boxed{42}")),
    ("aime25", "7", harmony("Answer: 8")),
    ("MMLU_stem", "H", harmony("The pick is H")),
    ("math500", "\\frac{1}{2}", harmony("so $\\boxed{0.5}$")),
    (
        "livecodebench_v6",
        "sum",
        harmony("```\nprint(sum(map(int, input().split())))\n```", analysis="```python\nx\n```"),
    ),
    ("livecodebench_v6", "sum", harmony("```python\nprint(0)\n```")),
]


def test_gpt_oss_samples_are_judged_as_its_reference_judges_them():
    result = _score(GPT_OSS_ROWS, grading="gpt-oss-120b")
    for sample, (source, truth, text) in zip(result.samples, GPT_OSS_ROWS, strict=True):
        if source.startswith("livecodebench"):
            continue
        correct, extracted, _ = reference_gpt_oss.evaluate_single_entry(text, truth, source.lower())
        assert (sample.correct, sample.extracted) == (correct, None if extracted is None else str(extracted)), text
    assert [s.correct for s in result.samples] == [True, False, True, True, False, True, True, True, False]
    per_dataset = result.metrics["per_dataset"]
    assert list(per_dataset) == ["aime25", "gpqa_diamond", "livecodebench_v6", "math500", "mmlu_stem"]
    assert [(p["correct"], p["total"], p["repeats"]) for p in per_dataset.values()] == [
        (1, 2, 8), (2, 3, 5), (1, 2, 3), (1, 1, 1), (1, 1, 1)
    ]  # fmt: skip
    weighted = (1 / 8 + 2 / 5 + 1 / 3 + 1 + 1) / (2 / 8 + 3 / 5 + 2 / 3 + 1 + 1) * 100
    assert result.metrics["exact_match"] == round(weighted, 3)
    assert result.metrics["num-samples"] == 9


def test_the_same_outputs_by_deepseek_r1s_rules_score_otherwise():
    """deepseek-r1's parsers read no final section and no plain code block: the grading chosen matters."""
    rows = [row for row in GPT_OSS_ROWS if not row[0].startswith("MMLU")]  # deepseek-r1's reference knows no mmlu
    deepseek = _score(rows, grading="deepseek-r1")
    gpt_oss = _score(rows, grading="gpt-oss-120b")
    assert [s.correct for s in deepseek.samples] != [s.correct for s in gpt_oss.samples]
    assert "per_dataset" not in deepseek.metrics


def test_gpt_oss_without_the_livecodebench_copy_weighs_the_rest():
    result = _score(GPT_OSS_ROWS, problems=None, grading="gpt-oss-120b")
    assert result.metrics["skipped"] == 2 and "livecodebench_v6" not in result.metrics["per_dataset"]
    weighted = (1 / 8 + 2 / 5 + 1 + 1) / (2 / 8 + 3 / 5 + 1 + 1) * 100
    assert result.metrics["exact_match"] == round(weighted, 3)


def test_an_unknown_grading_is_one_error_naming_the_known_ones():
    with pytest.raises(HarnessError, match=r"accuracy grading 'gpt-oss' is not known.*'deepseek-r1' or 'gpt-oss-120b'"):
        _score(ROWS, grading="gpt-oss")
