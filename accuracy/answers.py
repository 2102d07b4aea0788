"""deepseek-r1's answers: which of its five data sets a sample is from, the answer read out of the model's
output, and, for the data sets graded by rule, whether it is right.

Same behaviour as the MLCommons reference, `language/deepseek-r1/eval_accuracy.py` (its function each one
matches is named in its docstring), quirks included; tests/test_deepseek_graders.py holds it to the
transcription in `accuracy.reference_graders`. Every parser strips the text first, as the reference's
`validate_text_input` does. math500's answers are graded by `accuracy.math_grader` (`judge_math`), and
livecodebench's code by running it, which is not done here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from types import MappingProxyType
from typing import Final, Literal

from accuracy.math_grader import grade_answer
from mlperf_llm_sut.common.errors import HarnessError

__all__ = [
    "DATASET_KINDS",
    "GPQA_OPTIONS",
    "MMLU_PRO_OPTIONS",
    "STANDALONE_LETTER",
    "Kind",
    "answer_line",
    "check_max_option",
    "clean_artifacts",
    "judge_aime",
    "judge_math",
    "judge_multiple_choice",
    "kind_in",
    "kind_of",
    "last_match",
    "parse_aime",
    "parse_answer",
    "parse_boxed",
    "parse_code",
    "parse_multiple_choice",
    "unescape",
]

Kind = Literal["gpqa", "mmlu_pro", "math500", "aime", "livecodebench"]

DATASET_KINDS: Final = MappingProxyType[str, Kind](
    {
        # Looked for in this order, as parts of the lowercased name: the first found decides.
        "gpqa": "gpqa",
        "mmlu_pro": "mmlu_pro",
        "math500": "math500",
        "aime": "aime",
        "livecodebench": "livecodebench",
    }
)
"""What each sample's `dataset` column must contain (lowercased), and the kind of grading that gives it
(the reference's `DATASET_EVALUATORS` keys)."""

GPQA_OPTIONS: Final = "ABCD"
MMLU_PRO_OPTIONS: Final = "ABCDEFGHIJ"


def kind_of(dataset: str) -> Kind:
    """The kind of a deepseek-r1 sample from `dataset` (the reference's `get_evaluator`): the first key of
    `DATASET_KINDS` that is part of its lowercased name."""
    return kind_in(dataset, DATASET_KINDS, "deepseek-r1")


def kind_in(dataset: str, kinds: Mapping[str, Kind], grading: str) -> Kind:
    """The kind of `grading`'s sample from `dataset`: the first key of `kinds` that is part of its lowercased name
    (a reference's `get_evaluator` over its `DATASET_EVALUATORS`)."""
    lowered = dataset.lower()
    for part, kind in kinds.items():
        if part in lowered:
            return kind
    raise HarnessError(
        f"{grading} sample from data set {dataset!r}: the name contains none of the known data sets "
        f"({', '.join(kinds)}), so there is no way to grade it; check the `dataset` column of the data set"
    )


# ---------------------------------------------------------------------------------------------------------------
# Multiple choice (gpqa: A-D, mmlu_pro: A-J)
# ---------------------------------------------------------------------------------------------------------------

# A model's output sometimes arrives as the repr of a one-element list, escapes and all.
_LIST_REPR_OPENERS = ("['", '["')
_LIST_REPR_CLOSERS = ("']", '"]')


@cache
def answer_line(max_option: str) -> re.Pattern[str]:
    """The line of an answer up to `max_option`: "Answer: B", "FINAL ANSWER = (c)", "answer b.", where the letter
    does not run on into a word ("Answer: Because"); both references' `parse_multiple_choice` pattern."""
    return re.compile(
        rf"""
        \b (?: ANSWER | FINAL \s* ANSWER ) \b
        \s* [:=]? \s*
        (?: \(? \s* ([A-{max_option}]) \s* \)? )
        (?: \s*$ | [^A-Za-z] )
        """,
        re.IGNORECASE | re.VERBOSE,
    )


STANDALONE_LETTER: Final = re.compile(r"\b([A-J])\b", re.IGNORECASE)
"""MMLU-Pro's last resort: the last letter A-J standing alone, in either case ("a" and "I" as words count too)."""


def last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """The last of the matches scanned from the start (not the last match found scanning back from the end: they
    differ where matches could overlap)."""
    last = None
    for match in pattern.finditer(text):
        last = match
    return last


def parse_multiple_choice(text: str, max_option: str = "D") -> str | None:
    """The upper-case letter of the last "Answer: X" (A to `max_option`), or with `max_option` "J" (MMLU-Pro),
    else the last letter A-J standing alone; None if there is none (the reference's `parse_multiple_choice`).

    Before looking: an output that is a list's repr (`['...']`) is unwrapped, and the two-character sequences
    backslash-n and backslash-quote become a newline and a quote."""
    check_max_option(max_option)
    text = text.strip()
    if not text:
        return None
    text = clean_artifacts(text)
    found = last_match(answer_line(max_option), text)
    if found is None and max_option == "J":
        found = last_match(STANDALONE_LETTER, text)
    return None if found is None else found[1].upper()


def check_max_option(max_option: str) -> None:
    """A ValueError unless `max_option` is one letter A-Z: it goes into a character class `[A-max_option]`."""
    if len(max_option) != 1 or not "A" <= max_option <= "Z":
        raise ValueError(f"max_option must be one letter A-Z, not {max_option!r}")


def clean_artifacts(text: str) -> str:
    """The references' "Clean artifacts" of multiple-choice text: a list's repr (`['...']`) unwrapped, then the
    two-character sequences backslash-n and backslash-quote made a newline and a quote."""
    if text.startswith(_LIST_REPR_OPENERS) and text.endswith(_LIST_REPR_CLOSERS):
        text = text[2:-2].strip()
    return unescape(text)


def unescape(text: str) -> str:
    """Backslash-n and backslash-quote (two characters each, as a repr'd string has them) as a newline and a
    quote."""
    return text.replace("\\n", "\n").replace("\\'", "'")


def judge_multiple_choice(parsed: str | None, ground_truth: str, valid_options: str) -> bool:
    """Whether the parsed letter is the ground truth's, case aside, and one of `valid_options` (the reference's
    `evaluate_multiple_choice`; the ground truth is not stripped)."""
    if not parsed or not ground_truth:
        return False
    letter = parsed.upper()
    return letter in valid_options and letter == ground_truth.upper()


# ---------------------------------------------------------------------------------------------------------------
# math500
# ---------------------------------------------------------------------------------------------------------------

_BOXED = "\\boxed{"


def parse_boxed(text: str) -> str | None:
    """The stripped content of the last `\\boxed{...}`, braces inside it balanced (the reference's
    `parse_boxed_math`).

    Only the last `\\boxed{` counts: if its brace is never closed the answer is None, even with complete boxes
    before it. Every `{` and `}` counts, escaped (`\\{`) or not. `\\boxed {` and `\\fbox{` are not boxes."""
    text = text.strip()
    start = text.rfind(_BOXED)
    if start == -1:
        return None
    start += len(_BOXED)
    depth = 0
    for end in range(start, len(text)):
        char = text[end]
        if char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return text[start:end].strip()
            depth -= 1
    return None


def judge_math(parsed: str | None, ground_truth: str) -> bool:
    """Whether a parsed math500 answer is right, by PRM800K's grader (the reference's `evaluate_math500`).

    Runs sympy: may take unbounded time on adversarial answers (see `accuracy.math_grader`)."""
    if not parsed or not ground_truth:
        return False
    parsed = parsed.strip()
    if not parsed:
        return False
    return grade_answer(parsed, ground_truth)


# ---------------------------------------------------------------------------------------------------------------
# aime
# ---------------------------------------------------------------------------------------------------------------

_BOXED_INTEGER = re.compile(r"\\boxed{\s*(\d+)\s*}")
# `(?!\.)`: "Answer: 42." and "Answer: 4.2" give nothing (backing off to "4" fails at the word boundary).
_ANSWER_INTEGER = re.compile(r"Answer:\s*(\d+)(?!\.)\b", re.IGNORECASE | re.MULTILINE)


def parse_aime(text: str) -> int | None:
    """The AIME answer, 0 to 999: the last `\\boxed{digits}`, or where there is none, the last "Answer: digits"
    (the reference's `parse_aime_answer`).

    A box wins even when its number is out of range (then the answer is None, whatever "Answer:" says). Leading
    zeros are fine ("042" is 42); digits are Unicode digits, as Python's `\\d` and `int` read them."""
    text = text.strip()
    if not text:
        return None
    found = last_match(_BOXED_INTEGER, text) or last_match(_ANSWER_INTEGER, text)
    if found is None:
        return None
    try:
        value = int(found[1])
    except ValueError:
        return None  # more digits than `int` reads (sys.get_int_max_str_digits): out of range anyway
    return value if 0 <= value <= 999 else None


def judge_aime(parsed: int | None, ground_truth: str | int | float) -> bool:
    """Whether the parsed answer equals `int(ground_truth)` (the reference's `evaluate_aime`: a ground truth
    `int` cannot read is wrong for every answer; a float one is truncated)."""
    if parsed is None:
        return False
    try:
        return int(ground_truth) == parsed
    except (ValueError, TypeError):
        return False


# ---------------------------------------------------------------------------------------------------------------
# livecodebench
# ---------------------------------------------------------------------------------------------------------------

_PYTHON_BLOCK = re.compile(r"```python(.*?)```", re.DOTALL)


def parse_code(text: str) -> str | None:
    """The stripped content of the first ```` ```python ```` block, closed (the reference's `parse_code`).

    Only that exact, lower-case fence opens a block (```` ```py ```` does not), and what follows it on its line
    is part of the code (```` ```python3 ```` gives code starting "3")."""
    found = _PYTHON_BLOCK.search(text.strip())
    return None if found is None else found[1].strip()


# ---------------------------------------------------------------------------------------------------------------


def parse_answer(kind: Kind, text: str) -> str | int | None:
    """The answer read out of a model's output for a sample of `kind` (the reference's `DATASET_EVALUATORS`
    parsers), None where there is none."""
    if kind == "gpqa":
        return parse_multiple_choice(text, GPQA_OPTIONS[-1])
    if kind == "mmlu_pro":
        return parse_multiple_choice(text, MMLU_PRO_OPTIONS[-1])
    if kind == "math500":
        return parse_boxed(text)
    if kind == "aime":
        return parse_aime(text)
    return parse_code(text)
