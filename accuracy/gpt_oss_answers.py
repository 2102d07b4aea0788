"""gpt-oss-120b's answers: which data set a sample is from, the answer read out of the model's harmony-format
output, and how the per-data-set results make the final score.

Same behaviour as the MLCommons reference, `language/gpt-oss-120b/eval_accuracy.py` and
`eval_mlperf_accuracy.py` (mlcommons/inference b66003e10e2db4b8c36a448b0545ec90fcc6e9e9; the function each
one matches is named in its docstring), quirks included; tests/test_gpt_oss_graders.py holds it to the
transcription in `accuracy.reference_gpt_oss`.

Where the gpt-oss reference differs from deepseek-r1's (`accuracy.answers`):

* outputs are detokenized with `skip_special_tokens=False`, so the harmony markers (`<|channel|>`,
  `<|message|>`, `<|return|>`...) stay in the text, and multiple choice and code are read from the final
  channel's message first (`extract_final_section`);
* multiple choice tries, in order: a letter at the start of the final section, "Answer: X" in it, the
  deepseek-r1 "ANSWER: X" pattern over the whole text, and for MMLU-Pro the last letter standing alone in the
  final section; markdown bold (`**B**`) is taken off the final section first;
* code is the last ```` ```python ```` block of the final section, else its last plain ```` ``` ```` block
  (a leading python/py tag line dropped), else the same two over the whole text (deepseek-r1: the first
  ```` ```python ```` block, nothing else);
* a data set named with "mmlu" (after the other five keys) is graded as MMLU-Pro;
* the final score weighs each data set by how many times the accuracy set repeats it (`DATASET_REPEATS`).

What is the same, boxed math, AIME integers and every judge, is `accuracy.answers`' own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Final

from accuracy.answers import (
    GPQA_OPTIONS,
    MMLU_PRO_OPTIONS,
    STANDALONE_LETTER,
    Kind,
    answer_line,
    check_max_option,
    clean_artifacts,
    kind_in,
    last_match,
    parse_aime,
    parse_boxed,
    unescape,
)

__all__ = [
    "DATASET_KINDS",
    "DATASET_REPEATS",
    "DatasetScore",
    "WeightedScore",
    "extract_final_section",
    "kind_of",
    "parse_answer",
    "parse_code",
    "parse_multiple_choice",
    "strip_markdown_bold",
    "weighted_score",
]

DATASET_KINDS: Final = MappingProxyType[str, Kind](
    {
        # Looked for in this order, as parts of the lowercased name: the first found decides ("mmlu" last, so
        # that "mmlu_pro" names find their own key first; both grade alike).
        "gpqa": "gpqa",
        "mmlu_pro": "mmlu_pro",
        "math500": "math500",
        "aime": "aime",
        "livecodebench": "livecodebench",
        "mmlu": "mmlu_pro",
    }
)
"""What each sample's `dataset` column must contain (lowercased), and the kind of grading that gives it (the
reference's `DATASET_EVALUATORS` keys, in their order)."""

DATASET_REPEATS: Final = MappingProxyType[str, int]({"aime25": 8, "gpqa_diamond": 5, "livecodebench_v6": 3})
"""eval_mlperf_accuracy.py's `DATASET_REPEATS`: how many times the accuracy set holds each question of a data
set (by its lowercased name; any other data set: once)."""


def kind_of(dataset: str) -> Kind:
    """The kind of a gpt-oss-120b sample from `dataset` (the reference's `get_evaluator`): the first key of
    `DATASET_KINDS` that is part of its lowercased name."""
    return kind_in(dataset, DATASET_KINDS, "gpt-oss-120b")


# ---------------------------------------------------------------------------------------------------------------
# Harmony format
# ---------------------------------------------------------------------------------------------------------------

# `[^<]*` between "final" and the message marker: sampled outputs sometimes corrupt the header
# ("<|channel|>final 明<|message|>"); the message ends at <|return|> or at the end of the text.
_FINAL_SECTION = re.compile(r"<\|channel\|>final[^<]*<\|message\|>(.*?)(?:<\|return\|>|$)", re.DOTALL)
_BOLD = re.compile(r"\*\*([^*]+)\*\*")


def extract_final_section(text: str) -> str:
    """The stripped message of the first final channel (`<|channel|>final...<|message|>` up to `<|return|>` or
    the end), or, where there is none, the stripped text itself (the reference's `extract_final_section`)."""
    text = text.strip()
    if not text:
        return ""
    found = _FINAL_SECTION.search(text)
    return text if found is None else found[1].strip()


def strip_markdown_bold(text: str) -> str:
    """`**text**` as `text`, where the starred text holds no star (the reference's `strip_markdown_bold`)."""
    return _BOLD.sub(r"\1", text)


# ---------------------------------------------------------------------------------------------------------------
# Multiple choice (gpqa: A-D, mmlu_pro and mmlu: A-J)
# ---------------------------------------------------------------------------------------------------------------


@cache
def _leading_letter(max_option: str) -> re.Pattern[str]:
    # No letter before it and none right after: "B", "(b)", "**C**." (bold already off), but not "Because".
    return re.compile(rf"^[^a-zA-Z]*([A-{max_option}])(?:[^a-zA-Z]|$)", re.IGNORECASE)


@cache
def _answer_in_final(max_option: str) -> re.Pattern[str]:
    # The first "Answer: X" / "answer. x" / "ANSWER X" of the final section, the letter a whole word.
    return re.compile(rf"\b(?:Answer|ANSWER)\s*[:.]?\s*([A-{max_option}])\b", re.IGNORECASE)


def parse_multiple_choice(text: str, max_option: str = "D") -> str | None:
    """The upper-case letter (A to `max_option`) a harmony output answers, None if there is none (the gpt-oss
    reference's `parse_multiple_choice`). Looked for in order:

    1. a letter that starts the final section (after anything but letters, and not followed by a letter);
    2. the first "Answer: X" in the final section;
    3. the last deepseek-r1 "ANSWER: X" / "FINAL ANSWER: X" anywhere in the text;
    4. with `max_option` "J" (MMLU-Pro), the last letter A-J standing alone in the final section.

    The final section has markdown bold taken off, a list's repr (`['...']`) unwrapped and backslash-n and
    backslash-quote made a newline and a quote; the whole text only the latter."""
    check_max_option(max_option)
    text = text.strip()
    if not text:
        return None
    final = clean_artifacts(strip_markdown_bold(extract_final_section(text)))
    found = _leading_letter(max_option).match(final.strip()) or _answer_in_final(max_option).search(final)
    if found is None:
        found = last_match(answer_line(max_option), unescape(text))
    if found is None and max_option == "J":
        found = last_match(STANDALONE_LETTER, final)
    return None if found is None else found[1].upper()


# ---------------------------------------------------------------------------------------------------------------
# livecodebench
# ---------------------------------------------------------------------------------------------------------------

_PYTHON_BLOCK = re.compile(r"```python(.*?)```", re.DOTALL)
_PLAIN_BLOCK = re.compile(r"```(.*?)```", re.DOTALL)
# Only at the very start; `\s*\n` may take several lines' breaks with it ("py\n\n\nx" is "x").
_LANGUAGE_TAG = re.compile(r"^(?:python|py)\s*\n", re.IGNORECASE)


def _last_block(text: str) -> str | None:
    python = last_match(_PYTHON_BLOCK, text)
    if python is not None:
        return python[1].strip()
    plain = last_match(_PLAIN_BLOCK, text)
    return None if plain is None else _LANGUAGE_TAG.sub("", plain[1].strip())


def parse_code(text: str) -> str | None:
    """The code a harmony output answers, None if there is none (the gpt-oss reference's `parse_code`): the
    stripped content of the last ```` ```python ```` block of the final section, else of its last ```` ``` ````
    block with a first line "python" or "py" (any case) dropped; where the text has no final section, or it has
    no block, the same over the whole text.

    Only the lower-case ```` ```python ```` fence is a python block; what follows it on its line is part of the
    code (```` ```python3 ```` gives code starting "3"). Blocks do not nest: a fence inside code closes it."""
    text = text.strip()
    if not text:
        return None
    final = extract_final_section(text)
    if final != text:
        code = _last_block(final)
        if code is not None:
            return code
    return _last_block(text)


# ---------------------------------------------------------------------------------------------------------------


def parse_answer(kind: Kind, text: str) -> str | int | None:
    """The answer read out of a model's output for a sample of `kind` (the gpt-oss reference's
    `DATASET_EVALUATORS` parsers), None where there is none."""
    if kind == "gpqa":
        return parse_multiple_choice(text, GPQA_OPTIONS[-1])
    if kind == "mmlu_pro":
        return parse_multiple_choice(text, MMLU_PRO_OPTIONS[-1])
    if kind == "math500":
        return parse_boxed(text)
    if kind == "aime":
        return parse_aime(text)
    return parse_code(text)


# ---------------------------------------------------------------------------------------------------------------
# The final score
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetScore:
    """One data set's part of the final score (eval_mlperf_accuracy.py's `final_score_components`)."""

    correct: int
    total: int
    repeats: int

    @property
    def component_score(self) -> float:
        return self.correct / self.repeats

    @property
    def max_component_score(self) -> float:
        return self.total / self.repeats

    @property
    def accuracy(self) -> float:
        """Percent of this data set's samples right."""
        return self.correct / self.total * 100 if self.total > 0 else 0.0


@dataclass(frozen=True)
class WeightedScore:
    datasets: Mapping[str, DatasetScore]
    """By lowercased data set name, sorted."""
    final_score: float
    max_score: float
    percentage: float
    """final_score / max_score * 100, unrounded (0 where nothing was scored)."""

    @property
    def exact_match(self) -> float:
        """The figure the submission checker reads: the percentage as the reference prints it,
        `'exact_match': {final_score_percentage:.3f}`."""
        return float(f"{self.percentage:.3f}")


def weighted_score(results: Mapping[str, tuple[int, int]]) -> WeightedScore:
    """The final score of (correct, total) per data set, names lowercased as `validate_dataset_name` gives them
    (eval_mlperf_accuracy.py's `main`): sum(correct / repeats) / sum(total / repeats) * 100, a data set's repeats
    being `DATASET_REPEATS`' or 1, summed in the order of the names, as the reference's loop over them is."""
    datasets = {
        name: DatasetScore(correct, total, DATASET_REPEATS.get(name, 1))
        for name, (correct, total) in sorted(results.items())
    }
    final_score = 0.0
    max_score = 0.0
    for score in datasets.values():
        final_score += score.component_score
        max_score += score.max_component_score
    percentage = final_score / max_score * 100 if max_score > 0 else 0.0
    return WeightedScore(datasets, final_score, max_score, percentage)
