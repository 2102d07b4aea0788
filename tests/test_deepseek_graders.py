"""deepseek-r1's answer parsers and judges (accuracy/answers.py) and PRM800K's math grader (accuracy/math_grader.py),
held to the transcription of the MLCommons reference and of PRM800K (accuracy/reference_graders.py) on adversarial
model outputs; and, so that the two cannot agree on a wrong answer, a few cases with the answer written out."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from accuracy import answers, math_grader
from accuracy import reference_graders as ref
from mlperf_llm_sut.common.errors import HarnessError

# ---------------------------------------------------------------------------------------------------------------
# Multiple choice (gpqa, mmlu_pro)
# ---------------------------------------------------------------------------------------------------------------

MULTIPLE_CHOICE_OUTPUTS = [
    "",
    "   \n ",
    "Answer: B",
    "ANSWER: (B)",
    "Answer: ( C )",
    "Answer: (b)",
    "answer:b",
    "Answer:B.",
    "Answer: B)",
    "Answer:\n\n  D",
    "Final Answer: c",
    "FINAL ANSWER = D",
    "FinalAnswer:A",
    "answeR: d and more",
    "Answer: A\nFinal Answer: B",
    "Answer: B\nWait, no. Answer: C",
    "Answer: E",  # beyond D: nothing for gpqa
    "Answer: J",
    "Answer: K",  # beyond J
    "Answer: Because the rate doubles",  # the letter runs on into a word
    "To answer a question like this one needs care.",  # "answer a" is option A
    "The answer is B.",  # "is": no Answer pattern; mmlu_pro's fallback finds B
    "**Answer:** C",
    "ANSWERS: B",
    "Answer – B",
    "The final answer is $\\boxed{B}$",
    "I think it's A or B, I am not sure",  # mmlu_pro's fallback: the last "I"
    "Option B is wrong; the correct one is H.",
    "The correct choice is (F).",
    "No letters here 123",
    "['Answer: B']",
    '["Answer: C"]',
    "['The answer is clearly (D)']",
    "['A']",
    "['a']",
    "[']",
    "['Answer: B\\n']",
    "[Answer: A]",
    "Reasoning...\\nAnswer: D",  # a literal backslash-n, as a repr'd string has
    "Reasoning\\nAnswer:\\nB",
    "It\\'s Answer: A",
    "\\\\nAnswer: C",
    "Answer: İ",  # dotted capital I: matches [A-J] case-insensitively
    "Answer: \u212a",  # Kelvin sign: K case-insensitively
]


@pytest.mark.parametrize("max_option", ["D", "J"])
@pytest.mark.parametrize("text", MULTIPLE_CHOICE_OUTPUTS)
def test_multiple_choice_parsing_matches_the_reference(text: str, max_option: str) -> None:
    assert answers.parse_multiple_choice(text, max_option) == ref.parse_multiple_choice(text, max_option)


@pytest.mark.parametrize(
    ("parsed", "ground_truth", "options"),
    [
        ("B", "B", "ABCD"),
        ("b", "B", "ABCD"),
        ("B", "b", "ABCD"),
        ("C", "B", "ABCD"),
        ("E", "E", "ABCD"),
        ("E", "E", "ABCDEFGHIJ"),
        (None, "B", "ABCD"),
        ("", "B", "ABCD"),
        ("B", "", "ABCD"),
        ("B", " B", "ABCD"),
        ("AB", "AB", "ABCD"),  # a substring of the options counts
        ("ß", "SS", "ABCD"),
    ],
)
def test_multiple_choice_judging_matches_the_reference(parsed: str | None, ground_truth: str, options: str) -> None:
    ours = answers.judge_multiple_choice(parsed, ground_truth, options)
    assert ours == ref.evaluate_multiple_choice(parsed, ground_truth, options)


@pytest.mark.parametrize(
    ("text", "max_option", "expected"),
    [
        ("ANSWER: (B)", "D", "B"),
        ("Final Answer: c", "D", "C"),
        ("Answer: B\nWait, no. Answer: C", "D", "C"),
        ("Answer: E", "D", None),
        ("Answer: E", "J", "E"),
        ("I think it's A or B, I am not sure", "J", "I"),
        ("I think it's A or B, I am not sure", "D", None),
        ("['A']", "J", "A"),
        ("['A']", "D", None),
        ("Reasoning...\\nAnswer: D", "D", "D"),
        ("To answer a question like this one needs care.", "D", "A"),
        ("Answer: Because the rate doubles", "D", None),
    ],
)
def test_multiple_choice_expected(text: str, max_option: str, expected: str | None) -> None:
    assert answers.parse_multiple_choice(text, max_option) == expected
    assert ref.parse_multiple_choice(text, max_option) == expected


def test_multiple_choice_refuses_an_option_range_it_cannot_mean() -> None:
    with pytest.raises(ValueError, match="max_option"):
        answers.parse_multiple_choice("Answer: A", "]")


# ---------------------------------------------------------------------------------------------------------------
# math500: the boxed answer
# ---------------------------------------------------------------------------------------------------------------

BOXED_OUTPUTS = [
    "",
    "no box here, the answer is 5",
    "\\boxed{5}",
    "\\boxed{ 5 }",
    "first \\boxed{3} then \\boxed{4}",
    "\\boxed{\\frac{1}{2}}",
    "\\boxed{\\frac{\\sqrt{3}}{2}}",
    "\\boxed{{5}}",
    "\\boxed{5",
    "\\boxed{3} and finally \\boxed{4",  # the last box is never closed: None, not 3
    "\\boxed{5}}}",
    "\\boxed{a{b}c}d}",
    "\\boxed{\\{1,2\\}}",
    "\\boxed{\\{1,2}",
    "\\boxed{}",
    "\\boxed {5}",
    "\\fbox{5}",
    "$\\boxed{\\text{(B)}}$",
    "\\boxed{\\dfrac{3}{4}}",
    "\\boxed{90^\\circ}",
    "\\boxed{\\$1,000}",
    "\\boxed{x \\in [2, 5)}",
    "\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}",
    "\\boxed{\\boxed{7}}",
    "The answer is $\\boxed{42}$.\n",
    "\\boxed{1}\\boxed{2}\\boxed{",
    "\\boxed{\\n5\\n}",
    "\\boxed{\n  2x+1\n}",
]


@pytest.mark.parametrize("text", BOXED_OUTPUTS)
def test_boxed_parsing_matches_the_reference(text: str) -> None:
    assert answers.parse_boxed(text) == ref.parse_boxed_math(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("first \\boxed{3} then \\boxed{4}", "4"),
        ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}"),
        ("\\boxed{3} and finally \\boxed{4", None),
        ("\\boxed{a{b}c}d}", "a{b}c"),
        ("no box here, the answer is 5", None),
        ("\\boxed{}", ""),
    ],
)
def test_boxed_expected(text: str, expected: str | None) -> None:
    assert answers.parse_boxed(text) == expected
    assert ref.parse_boxed_math(text) == expected


# (given, ground truth): what a model boxes against what MATH-500 has.
MATH_PAIRS = [
    ("\\frac{1}{2}", "0.5"),
    ("0.5", "\\frac{1}{2}"),
    ("\\frac12", "\\frac{1}{2}"),
    ("\\dfrac{3}{4}", "\\tfrac34"),
    ("\\tfrac{3}{4}", "\\frac{3}{4}"),
    ("0.75", "\\frac34"),
    ("3/4", "\\frac{3}{4}"),
    ("1/2", "0.5"),
    ("2/4", "\\frac{1}{2}"),  # unreduced: wrong
    ("\\frac{2}{4}", "\\frac{1}{2}"),
    ("\\frac{4}{2}", "2"),
    ("1,000", "1000"),
    ("1000", "1,000"),
    ("1,000,000", "1000000"),
    ("1,00", "100"),
    ("10\\%", "10"),
    ("10%", "10\\%"),
    ("\\$5", "5"),
    ("\\$1,000.00", "1000"),
    ("90^\\circ", "90"),
    ("90^{\\circ}", "90"),
    ("90 degrees", "90"),
    ("90^ \\circ", "90"),
    ("10 \\text{ degrees}", "10"),
    ("5 \\text{ cm}", "5"),
    ("5cm", "5"),
    ("5 \\text{ cm}^2", "5"),
    ("\\text{(B)}", "(B)"),
    ("\\text{Monday}", "Monday"),
    ("monday", "\\text{Monday}"),
    ("\\text{a} and \\text{b}", "a,b"),
    ("2\\frac{1}{2}", "\\frac{5}{2}"),
    ("2 \\frac{1}{2}", "\\frac52"),
    ("7 3/4", "\\frac{31}{4}"),
    ("-3 1/2", "-\\frac{7}{2}"),
    ("(1,2)", "(1, 2)"),
    ("[1,2)", "(1,2)"),
    ("(1,2,3)", "(1,2)"),
    ("(-\\infty, 3]", "(-\\infty,3]"),
    ("(-\\infty,3)", "(-\\infty,3]"),
    ("[2,5)", "[2, 5)"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("(3,\\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("\\{1,2\\}", "\\{2,1\\}"),
    ("1, 2", "2, 1"),
    ("1 or 2", "1, 2"),
    ("\\sqrt{2}/2", "\\frac{\\sqrt2}{2}"),
    ("\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}"),
    ("\\sqrt 3", "\\sqrt{3}"),
    ("\\sqrt3", "\\sqrt{3}"),
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("2\\pi", "2\\pi"),
    ("\\pi", "3.14159"),
    ("\\frac{\\pi}{2}", "\\frac{1}{2}\\pi"),
    ("-3", "-3"),
    ("- 3", "-3"),
    ("-0", "0"),
    ("3", "-3"),
    ("5.", "5"),
    ("4.0", "4"),
    ("1e3", "1000"),
    ("2.99999999", "3"),
    ("x=5", "5"),
    ("y = 2x + 1", "2x+1"),
    ("x^2+1", "1+x^2"),
    ("12^{2}", "144"),
    ("2^10", "1024"),
    ("2^100", "2^{100}"),
    ("a+b+c", "c+b+a"),
    ("\\infty", "\\infty"),
    ("1/0", "\\frac{1}{0}"),
    ("", "5"),
    ("\\text{}", "5"),
    ("\\sqrt", "\\sqrt{2}"),
    ("\\frac", "\\frac{1}{2}"),
    ("\\frac1", "\\frac{1}{2}"),
    ("3\\frac12\\frac1", "3\\frac{1}{2}"),
    ("5 \\text{ cm} \\text{ m}", "5"),
    ("\\frac{1}{2}\\text{ cm}", "\\frac12"),
    ("\\dfrac{1}{2}", "\\frac{1}{2}"),
    ("10\\text{ million}", "10000000"),
    ("3 million", "3000000"),
    ("Monday", "\\text{Monday}"),
    ("B", "b"),
]


@pytest.mark.parametrize(("given", "ground_truth"), MATH_PAIRS)
def test_math_grading_matches_prm800k(given: str, ground_truth: str) -> None:
    assert math_grader.grade_answer(given, ground_truth) == ref.grade_answer(given, ground_truth)
    assert answers.judge_math(given, ground_truth) == ref.evaluate_math500(given, ground_truth)


@pytest.mark.parametrize(
    ("given", "ground_truth", "expected"),
    [
        ("\\frac{1}{2}", "0.5", True),
        ("0.5", "\\frac12", True),
        ("2/4", "\\frac{1}{2}", False),
        ("1,000", "1000", True),
        ("10\\%", "10", True),
        ("90^\\circ", "90", True),
        ("[1,2)", "(1,2)", False),
        ("\\pi", "3.14159", False),
        ("2\\frac{1}{2}", "\\frac{5}{2}", True),
        ("\\text{Monday}", "Monday", True),
        ("-3", "3", False),
        ("\\sqrt{2}/2", "\\frac{\\sqrt2}{2}", True),
        (None, "5", False),
    ],
)
def test_math_grading_expected(given: str | None, ground_truth: str, expected: bool) -> None:
    assert math_grader.grade_answer(given, ground_truth) is expected
    assert ref.grade_answer(given, ground_truth) is expected


def test_math_judge_needs_an_answer_and_a_truth() -> None:
    for parsed, truth in [(None, "5"), ("", "5"), ("  ", "5"), ("5", "")]:
        assert answers.judge_math(parsed, truth) is False
        assert ref.evaluate_math500(parsed, truth) is False


# ---------------------------------------------------------------------------------------------------------------
# aime
# ---------------------------------------------------------------------------------------------------------------

AIME_OUTPUTS = [
    "",
    "\\boxed{42}",
    "\\boxed{042}",
    "\\boxed{ 7 }",
    "\\boxed{1000}",
    "\\boxed{999}",
    "\\boxed{0}",
    "\\boxed{1000}\nAnswer: 42",  # the box wins, out of range: None
    "\\boxed{12} and Answer: 34",
    "\\boxed{3}\\boxed{4}",
    "\\boxed{\\text{12}}\nAnswer: 5",
    "\\boxed{12.5}",
    "\\boxed{-5}",
    "\\boxed{١٢}",  # Arabic-Indic digits
    "Answer: 042",
    "answer: 17",
    "ANSWER:\n  23",
    "Answer: 42.",
    "Answer: 4.2",
    "Answer: 42.5",
    "Answer: 42,",
    "Answer: 42abc",
    "Answer: 42_",
    "Answer: 42 is final",
    "Answer: 12\n...\nAnswer: 34",
    "Answer: 12\nAnswer: 34.",
    "Answer: -5",
    "Answer: 1000",
    "Final Answer: 77",
    "The answer is 77",
    "Answer: " + "9" * 5000,  # more digits than int() reads
    "\\boxed{" + "1" * 5000 + "}",
]


@pytest.mark.parametrize("text", AIME_OUTPUTS)
def test_aime_parsing_matches_the_reference(text: str) -> None:
    assert answers.parse_aime(text) == ref.parse_aime_answer(text)


@pytest.mark.parametrize(
    ("parsed", "ground_truth"),
    [(42, "42"), (42, "042"), (42, 42), (42, 42.9), (42, "42.0"), (42, " 42 "), (None, "42"), (0, "0"), (42, "abc")],
)
def test_aime_judging_matches_the_reference(parsed: int | None, ground_truth: str | int | float) -> None:
    assert answers.judge_aime(parsed, ground_truth) == ref.evaluate_aime(parsed, ground_truth)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answer: 042", 42),
        ("\\boxed{042}", 42),
        ("\\boxed{12} and Answer: 34", 12),
        ("\\boxed{1000}", None),
        ("\\boxed{1000}\nAnswer: 42", None),
        ("Answer: 42.", None),
        ("Answer: 12\nAnswer: 34.", 12),
        ("The answer is 77", None),
    ],
)
def test_aime_expected(text: str, expected: int | None) -> None:
    assert answers.parse_aime(text) == expected
    assert ref.parse_aime_answer(text) == expected


# ---------------------------------------------------------------------------------------------------------------
# livecodebench: the code block
# ---------------------------------------------------------------------------------------------------------------

CODE_OUTPUTS = [
    "",
    "no code",
    "```python\nprint(1)\n```",
    "```python\nx = 1\n```\nand\n```python\ny = 2\n```",
    "```python\nprint(1)\n",
    "```py\nprint(1)\n```",
    "```Python\nprint(1)\n```",
    "```\nprint(1)\n```",
    "```python3\nprint(1)\n```",
    "```python```",
    "text ```python  a = '```' ```",
    "```cpp\nint x;\n```\n```python\nprint(2)\n```",
    "  ```python\n\tdef f():\n\t\treturn 1\n```  ",
    "\\n```python\\nprint(1)\\n```",
]


@pytest.mark.parametrize("text", CODE_OUTPUTS)
def test_code_parsing_matches_the_reference(text: str) -> None:
    assert answers.parse_code(text) == ref.parse_code(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("```python\nx = 1\n```\nand\n```python\ny = 2\n```", "x = 1"),
        ("```python\nprint(1)\n", None),
        ("```python3\nprint(1)\n```", "3\nprint(1)"),
        ("```py\nprint(1)\n```", None),
    ],
)
def test_code_expected(text: str, expected: str | None) -> None:
    assert answers.parse_code(text) == expected
    assert ref.parse_code(text) == expected


# ---------------------------------------------------------------------------------------------------------------
# Data sets, and whole samples
# ---------------------------------------------------------------------------------------------------------------

KNOWN_NAMES = ["gpqa", "GPQA_diamond", "mmlu_pro", "MMLU_Pro_test", "math500", "MATH500", "aime1983", "AIME"]
KNOWN_NAMES += ["livecodebench", "LiveCodeBench_v5", "gpqa_aime", "aime_math500"]


@pytest.mark.parametrize("name", KNOWN_NAMES)
def test_kind_matches_the_reference(name: str) -> None:
    evaluator = ref.get_evaluator(name)
    assert evaluator is ref.DATASET_EVALUATORS[answers.kind_of(name)]


@pytest.mark.parametrize("name", ["mmlu-pro", "math-500", "mmlupro", "humaneval", ""])
def test_unknown_data_set(name: str) -> None:
    with pytest.raises(ValueError):
        ref.get_evaluator(name)
    with pytest.raises(HarnessError) as raised:
        answers.kind_of(name)
    assert repr(name) in str(raised.value)
    assert "gpqa, mmlu_pro, math500, aime, livecodebench" in str(raised.value)


SAMPLES = [
    ("gpqa", "Thinking...\nANSWER: (B)", "B"),
    ("gpqa", "Answer: E", "E"),
    ("mmlu_pro", "So it must be H.", "H"),
    ("mmlu_pro", "['Answer: c']", "C"),
    ("math500", "So $\\boxed{\\dfrac{1}{2}}$.", "\\frac{1}{2}"),
    ("math500", "So $\\boxed{2/4}$.", "\\frac{1}{2}"),
    ("math500", "no box", "5"),
    ("aime", "Answer: 042", "42"),
    ("aime", "\\boxed{1000}", "1000"),
    ("aime", "\\boxed{7}", "7.9"),
]


def _our_sample(dataset: str, output: str, ground_truth: str) -> tuple[object, float]:
    kind = answers.kind_of(dataset)
    parsed = answers.parse_answer(kind, output)
    if kind == "gpqa":
        right = answers.judge_multiple_choice(parsed, ground_truth, answers.GPQA_OPTIONS)  # type: ignore[arg-type]
    elif kind == "mmlu_pro":
        right = answers.judge_multiple_choice(parsed, ground_truth, answers.MMLU_PRO_OPTIONS)  # type: ignore[arg-type]
    elif kind == "math500":
        right = answers.judge_math(parsed, ground_truth)  # type: ignore[arg-type]
    else:
        right = answers.judge_aime(parsed, ground_truth)  # type: ignore[arg-type]
    return parsed, 100.0 if right else 0.0


@pytest.mark.parametrize(("dataset", "output", "ground_truth"), SAMPLES)
def test_samples_score_as_the_reference_scores_them(dataset: str, output: str, ground_truth: str) -> None:
    row = pd.Series({"dataset": dataset, "model_output": output, "ground_truth": ground_truth})
    expected = ref.process_row(row)
    assert _our_sample(dataset, output, ground_truth) == (expected["extracted_answer"], expected["prompt_accuracy"])


def test_code_samples_parse_as_the_reference_parses_them() -> None:
    for text in CODE_OUTPUTS:
        assert answers.parse_answer("livecodebench", text) == ref.DATASET_EVALUATORS["livecodebench"]["parse"](text)


# ---------------------------------------------------------------------------------------------------------------
# Random text made of the pieces the rules look for
# ---------------------------------------------------------------------------------------------------------------

PIECES = [
    *["\\frac", "\\dfrac", "\\tfrac", "\\sqrt", "{", "}", "1", "2", "3", "12", "0.5", ".5", "/", " ", "-", ",", "000"],
    *["\\text{", "\\text{ ", "cm", "degree", "s", "^", "\\circ", "^\\circ", "$", "\\$", "%", "\\%", "=", "x", "k"],
    *["\\pi", "pi", "(", ")", "[", "]", "\\left", "\\right", "\\!", "\\\\", "\n", " or ", " and ", "million", "e"],
    *["\\infty", "\\cup", "a", "B", "1,000", "2.0", "1e3", "\\boxed{", "Answer:", "answer", "(B)", "Final Answer"],
    *[":", "\\n", "['", "']", "```python", "```", "J", "I", "E", "042", "1000", ".", "\\'", "_", "٤"],
]


def _random_texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(0, 10))) for _ in range(count)]


def test_random_texts_normalize_and_parse_as_the_reference_does() -> None:
    for text in _random_texts(seed=20250101, count=1500):
        assert math_grader.normalize_mathd(text) == ref.normalize_answer(text), text
        assert math_grader.normalize_sympy(text) == ref._normalize(text), text
        assert math_grader.split_elements(text) == ref.split_tuple(text), text
        for max_option in "DJ":
            assert answers.parse_multiple_choice(text, max_option) == ref.parse_multiple_choice(text, max_option), text
        assert answers.parse_boxed(text) == ref.parse_boxed_math(text), text
        assert answers.parse_aime(text) == ref.parse_aime_answer(text), text
        assert answers.parse_code(text) == ref.parse_code(text), text


def test_random_answers_grade_as_prm800k_grades_them() -> None:
    texts = _random_texts(seed=7, count=300)
    for given, truth in zip(texts[::2], texts[1::2], strict=True):
        assert math_grader.grade_answer(given, truth) == ref.grade_answer(given, truth), (given, truth)
