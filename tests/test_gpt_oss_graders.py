"""gpt-oss-120b's answer parsers and final score (accuracy/gpt_oss_answers.py) held to the transcription of the
MLCommons reference (accuracy/reference_gpt_oss.py) on adversarial and random harmony outputs, with a few cases
written out so that the two cannot agree on a wrong answer; and a whole accuracy log scored by `score_log` and
by `python -m accuracy` (LiveCodeBench's release_v6 in six files) to the reference's repeats-weighted score."""

from __future__ import annotations

import io
import json
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from accuracy import answers, gpt_oss_answers
from accuracy import reference_gpt_oss as ref
from accuracy.cli import main as accuracy_main
from accuracy.exact_match import GRADINGS, grading_rules
from accuracy.scored_log import score_log
from accuracy.targets import resolve_targets
from mlperf_llm_sut.benchmarks import get_benchmark
from mlperf_llm_sut.common.dataset import load_dataset, load_tokenizer
from mlperf_llm_sut.common.errors import HarnessError
from tests.test_livecodebench import row as lcb_row

BENCHMARK = get_benchmark("gpt-oss-120b")
# tools/submission/submission_checker/constants.py ACC_PATTERN: what the checker reads out of accuracy.txt.
CHECKER_PATTERNS = {
    "exact_match": r".*'exact_match':\s([\d.]+).*",
    "TOKENS_PER_SAMPLE": r".*'tokens_per_sample':\s([\d.]+).*",
}
HARMONY_MARKERS = ["<|start|>", "<|end|>", "<|channel|>", "<|message|>", "<|return|>", "<|endoftext|>"]


def harmony(final: str, analysis: str = "Let me think.") -> str:
    """An answer as gpt-oss writes it: the analysis channel, then the final one."""
    return (
        f"<|channel|>analysis<|message|>{analysis}<|end|><|start|>assistant<|channel|>final<|message|>{final}<|return|>"
    )


# ---------------------------------------------------------------------------------------------------------------
# The final section
# ---------------------------------------------------------------------------------------------------------------

SECTION_OUTPUTS = [
    "",
    "   ",
    "no markers at all",
    harmony("B"),
    harmony("  B  "),
    "<|channel|>final<|message|>C",  # no <|return|>: to the end
    "<|channel|>final<|message|>C\n",
    "<|channel|>final 明<|message|>D<|return|>",  # a corrupted header
    "<|channel|>final537<|message|>D<|return|>",
    "<|channel|>final<x><|message|>D<|return|>",  # a '<' in the header: no final section
    "<|channel|>final<|message|>A<|return|><|channel|>final<|message|>B<|return|>",  # the first one
    "<|channel|>analysis<|message|>x<|end|>",
    "<|channel|>final<|message|><|return|>",
    "<|channel|>final<|message|>line one\nline two<|return|> trailing",
    "<|channel|>FINAL<|message|>B<|return|>",  # the marker is case-sensitive
    "<|channel|>finale<|message|>B<|return|>",
]


@pytest.mark.parametrize("text", SECTION_OUTPUTS)
def test_final_section_matches_the_reference(text: str) -> None:
    assert gpt_oss_answers.extract_final_section(text) == ref.extract_final_section(text)


@pytest.mark.parametrize("text", ["**B**", "**a** and **b**", "***B***", "** **", "**B", "a**b**c", "****"])
def test_bold_stripping_matches_the_reference(text: str) -> None:
    assert gpt_oss_answers.strip_markdown_bold(text) == ref.strip_markdown_bold(text)


# ---------------------------------------------------------------------------------------------------------------
# Multiple choice (gpqa: A-D; mmlu_pro, mmlu: A-J)
# ---------------------------------------------------------------------------------------------------------------

MULTIPLE_CHOICE_OUTPUTS = [
    "",
    "B",
    "b",
    "(C)",
    "**D**",
    "**D**.",
    "Because of this, D",  # "Because": the leading letter runs on into a word
    "Answer: B",
    "The answer is B.",
    "the answer: c and more",
    "ANSWER. D",
    "Answer B because",
    "E",  # beyond D for gpqa
    "J",
    "K",
    "I think it is A, or maybe B",
    "['A']",
    "['**B**']",
    '["Final: C"]',
    "Reasoning\\nAnswer: D",
    "It\\'s B",
    "İ",  # dotted capital I: matches [A-J] case-insensitively
    "\u212a",  # Kelvin sign: K case-insensitively
    "42",
    "... 42 so C",
    harmony("B"),
    harmony("**C**"),
    harmony("The correct option is (D)."),
    harmony("The correct option is (d)."),
    harmony("Answer: A"),
    harmony("I choose: H", analysis="Answer: B"),  # the analysis's deepseek-style answer
    harmony("no letter 42", analysis="FINAL ANSWER: (C)"),
    harmony("no letter 42", analysis="answer: c and answer: d"),
    harmony("Option G is it", analysis="Answer: Because"),
    harmony("e.g. nothing"),
    harmony("['Answer: B\\n']"),
    "<|channel|>final 明<|message|>**B**<|return|>",
    "<|channel|>final<|message|>Answer: E<|return|>",
    "Thinking... ANSWER: (B)",
    "Thinking... Final Answer = c",
    "To answer a question like this one needs care.",
]


@pytest.mark.parametrize("max_option", ["D", "J"])
@pytest.mark.parametrize("text", MULTIPLE_CHOICE_OUTPUTS)
def test_multiple_choice_parsing_matches_the_reference(text: str, max_option: str) -> None:
    assert gpt_oss_answers.parse_multiple_choice(text, max_option) == ref.parse_multiple_choice(text, max_option)


@pytest.mark.parametrize(
    ("text", "max_option", "expected"),
    [
        (harmony("**C**"), "D", "C"),
        (harmony("The correct option is (D)."), "D", None),  # "The" starts with a letter: no rule applies
        (harmony("The correct option is (D)."), "J", "D"),  # MMLU-Pro's last letter standing alone
        (harmony("Answer: A"), "D", "A"),
        (harmony("I choose: H", analysis="Answer: B"), "D", "B"),
        (harmony("I choose: H", analysis="Answer: B"), "J", "I"),  # "I", a letter up to J, starts the section
        (harmony("no letter 42", analysis="answer: c and answer: d"), "D", "D"),
        ("Because of this, D", "D", None),
        ("E", "D", None),
        ("E", "J", "E"),
        ("(C)", "D", "C"),
    ],
)
def test_multiple_choice_expected(text: str, max_option: str, expected: str | None) -> None:
    assert gpt_oss_answers.parse_multiple_choice(text, max_option) == expected
    assert ref.parse_multiple_choice(text, max_option) == expected


def test_multiple_choice_refuses_an_option_range_it_cannot_mean() -> None:
    with pytest.raises(ValueError, match="max_option"):
        gpt_oss_answers.parse_multiple_choice("Answer: A", "]")


# ---------------------------------------------------------------------------------------------------------------
# livecodebench: the code block
# ---------------------------------------------------------------------------------------------------------------

CODE_OUTPUTS = [
    "",
    "no code",
    "```python\nprint(1)\n```",
    "```python\nx = 1\n```\nand\n```python\ny = 2\n```",  # the last block
    "```python\nprint(1)\n",
    "```py\nprint(1)\n```",
    "```Python\nprint(1)\n```",
    "```PY  \n\n\nprint(1)\n```",
    "```\nprint(1)\n```",
    "```python3\nprint(1)\n```",
    "```pythonic```",
    "```python```",
    "```cpp\nint x;\n```",
    harmony("```python\nprint(2)\n```", analysis="```python\nprint(1)\n```"),
    harmony("```\nprint(2)\n```", analysis="```python\nprint(1)\n```"),  # the final section's plain block wins
    harmony("```py\nprint(2)\n```"),
    harmony("no code here", analysis="```python\nprint(1)\n```"),  # back to the whole text
    harmony("no code here", analysis="```\nprint(1)\n```"),
    harmony("```python\nprint(1)"),
    "<|channel|>final<|message|>```python\nprint(3)\n```",
    "<|channel|>final<|message|>```python\nprint(3)",
    "text ```python  a = '```' ```",
]


@pytest.mark.parametrize("text", CODE_OUTPUTS)
def test_code_parsing_matches_the_reference(text: str) -> None:
    assert gpt_oss_answers.parse_code(text) == ref.parse_code(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("```python\nx = 1\n```\nand\n```python\ny = 2\n```", "y = 2"),
        ("```py\nprint(1)\n```", "print(1)"),
        ("```PY  \n\n\nprint(1)\n```", "print(1)"),
        ("```python3\nprint(1)\n```", "3\nprint(1)"),
        (harmony("```\nprint(2)\n```", analysis="```python\nprint(1)\n```"), "print(2)"),
        (harmony("no code here", analysis="```python\nprint(1)\n```"), "print(1)"),
        ("```python\nprint(1)\n", None),
    ],
)
def test_code_expected(text: str, expected: str | None) -> None:
    assert gpt_oss_answers.parse_code(text) == expected
    assert ref.parse_code(text) == expected


# ---------------------------------------------------------------------------------------------------------------
# Boxed math and AIME: deepseek-r1's parsers, the same text in both references
# ---------------------------------------------------------------------------------------------------------------

NUMBER_OUTPUTS = [
    "",
    "\\boxed{42}",
    harmony("\\boxed{42}"),
    harmony("Answer: 17", analysis="\\boxed{3}"),
    "\\boxed{1000}\nAnswer: 42",
    "Answer: 42.",
    "\\boxed{\\frac{1}{2}}",
    "\\boxed{a{b}c}d}",
    "\\boxed{3} and finally \\boxed{4",
]


@pytest.mark.parametrize("text", NUMBER_OUTPUTS)
def test_boxed_and_aime_parsing_matches_the_reference(text: str) -> None:
    assert gpt_oss_answers.parse_answer("math500", text) == ref.parse_boxed_math(text)
    assert gpt_oss_answers.parse_answer("aime", text) == ref.parse_aime_answer(text)


# ---------------------------------------------------------------------------------------------------------------
# Data sets, and whole samples
# ---------------------------------------------------------------------------------------------------------------

KNOWN_NAMES = ["aime25", "AIME25", "gpqa_diamond", "GPQA", "livecodebench_v6", "LiveCodeBench", "math500"]
KNOWN_NAMES += ["mmlu_pro", "MMLU_Pro_test", "mmlu", "MMLU_stem", "mmlu_gpqa", "livecodebench_mmlu"]


@pytest.mark.parametrize("name", KNOWN_NAMES)
def test_kind_matches_the_reference(name: str) -> None:
    evaluator = ref.get_evaluator(name)
    key = next(key for key in ref.DATASET_EVALUATORS if key in name.lower())
    assert evaluator is ref.DATASET_EVALUATORS[key]
    assert gpt_oss_answers.DATASET_KINDS[key] == gpt_oss_answers.kind_of(name)
    assert list(gpt_oss_answers.DATASET_KINDS) == list(ref.DATASET_EVALUATORS)


@pytest.mark.parametrize("name", ["mmlu-pro", "math-500", "humaneval", "MMLU", ""])
def test_unknown_data_set(name: str) -> None:
    if name == "MMLU":  # the gpt-oss reference knows it, deepseek-r1's does not
        assert gpt_oss_answers.kind_of(name) == "mmlu_pro"
        with pytest.raises(HarnessError, match="deepseek-r1 sample"):
            answers.kind_of(name)
        return
    if name == "mmlu-pro":  # "mmlu" is part of it
        assert ref.get_evaluator(name) is ref.DATASET_EVALUATORS["mmlu"]
        return
    with pytest.raises(ValueError):
        ref.get_evaluator(name)
    with pytest.raises(HarnessError) as raised:
        gpt_oss_answers.kind_of(name)
    assert repr(name) in str(raised.value) and "gpt-oss-120b sample" in str(raised.value)
    assert "gpqa, mmlu_pro, math500, aime, livecodebench, mmlu" in str(raised.value)


SAMPLES = [
    ("gpqa_diamond", harmony("**B**"), "B"),
    ("gpqa_diamond", harmony("E"), "E"),
    ("mmlu_stem", harmony("So it must be H."), "H"),
    ("mmlu_pro", "['Answer: c']", "C"),
    ("math500", harmony("So $\\boxed{\\dfrac{1}{2}}$."), "\\frac{1}{2}"),
    ("math500", harmony("So $\\boxed{2/4}$."), "\\frac{1}{2}"),
    ("math500", "no box", "5"),
    ("aime25", harmony("Answer: 042"), "42"),
    ("aime25", "\\boxed{1000}", "1000"),
    ("aime25", harmony("\\boxed{7}"), "7.9"),
]


@pytest.mark.parametrize(("dataset", "output", "ground_truth"), SAMPLES)
def test_samples_score_as_the_reference_scores_them(dataset: str, output: str, ground_truth: str) -> None:
    expected, extracted, _ = ref.evaluate_single_entry(output, ground_truth, ref.validate_dataset_name(dataset))
    kind = gpt_oss_answers.kind_of(dataset)
    parsed = gpt_oss_answers.parse_answer(kind, output)
    if parsed is None:
        right = False
    elif kind in ("gpqa", "mmlu_pro"):
        right = answers.judge_multiple_choice(str(parsed), ground_truth, "ABCD" if kind == "gpqa" else "ABCDEFGHIJ")
    elif kind == "math500":
        right = answers.judge_math(str(parsed), ground_truth)
    else:
        right = answers.judge_aime(int(parsed), ground_truth)
    assert (parsed, right) == (extracted, expected)


# ---------------------------------------------------------------------------------------------------------------
# Random text made of the pieces the rules look for
# ---------------------------------------------------------------------------------------------------------------

PIECES = [
    *HARMONY_MARKERS,
    *["<|channel|>final<|message|>", "<|channel|>analysis<|message|>", "final", " 明", "<", "assistant"],
    *["**", "*", "A", "b", "C", "d", "E", "h", "J", "K", "I", "a", "Answer", "ANSWER", "answer", "FINAL ANSWER"],
    *[":", ".", "=", "(", ")", " ", "\n", "\\n", "\\'", "['", "']", '["', '"]', "42", "1000", "7", "Because"],
    *["```", "```python", "```py", "```python\n", "py\n", "print(1)", "\\boxed{", "{", "}", "Answer:", "İ"],
]


def _random_texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(0, 12))) for _ in range(count)]


def test_random_texts_parse_as_the_reference_parses_them() -> None:
    for text in _random_texts(seed=20251101, count=3000):
        assert gpt_oss_answers.extract_final_section(text) == ref.extract_final_section(text), text
        assert gpt_oss_answers.strip_markdown_bold(text) == ref.strip_markdown_bold(text), text
        for max_option in "DJ":
            ours = gpt_oss_answers.parse_multiple_choice(text, max_option)
            assert ours == ref.parse_multiple_choice(text, max_option), (text, max_option)
        assert gpt_oss_answers.parse_code(text) == ref.parse_code(text), text
        assert gpt_oss_answers.parse_answer("math500", text) == ref.parse_boxed_math(text), text
        assert gpt_oss_answers.parse_answer("aime", text) == ref.parse_aime_answer(text), text


# ---------------------------------------------------------------------------------------------------------------
# The final score
# ---------------------------------------------------------------------------------------------------------------


def _reference_final_score(results: dict[str, tuple[int, int]]) -> float:
    """eval_mlperf_accuracy.py's final score of these results, through the transcription (an output of the
    right answer per right sample, a wrong one per wrong sample)."""
    frame_rows, log = [], []
    for name, (correct, total) in results.items():
        for number in range(total):
            log.append({"qsl_idx": len(frame_rows), "data": np.asarray([int(number < correct)], "<i4").tobytes().hex()})
            frame_rows.append({"dataset": name, "ground_truth": "B" if "gpqa" in name else "1"})

    class Verdicts:
        """Token 1 decodes to a right answer for every kind of data set here, 0 to a wrong one."""

        def decode(self, ids: list[int], skip_special_tokens: bool) -> str:
            return f"```{ids[0]}``` \\boxed{{{ids[0]}}} Answer: {'B' if ids[0] else 'C'}"

    scored = ref.evaluate_mlperf_log(log, pd.DataFrame(frame_rows), Verdicts(), lambda code, _: code == "1")
    return scored["final_score_percentage"]


@pytest.mark.parametrize("seed", range(40))
def test_the_weighted_score_is_the_references(seed: int) -> None:
    rng = random.Random(seed)
    names = ["aime25", "gpqa_diamond", "livecodebench_v6", "aime_2024", "gpqa_main", "math500_aime"]
    names = rng.sample(names, rng.randint(1, len(names)))
    results = {}
    for name in names:
        total = rng.randint(1, 30)
        results[name] = (rng.randint(0, total), total)
    score = gpt_oss_answers.weighted_score(results)
    assert score.percentage == _reference_final_score(results)  # the same sums, in the same order: equal
    assert score.exact_match == float(f"{score.percentage:.3f}")


def test_the_weighted_score_written_out() -> None:
    score = gpt_oss_answers.weighted_score({"livecodebench_v6": (2, 3), "aime25": (5, 8), "gpqa_diamond": (3, 5)})
    assert list(score.datasets) == ["aime25", "gpqa_diamond", "livecodebench_v6"]
    assert [part.repeats for part in score.datasets.values()] == [8, 5, 3]
    assert score.final_score == pytest.approx(5 / 8 + 3 / 5 + 2 / 3) and score.max_score == pytest.approx(3.0)
    assert score.exact_match == 63.056  # (0.625 + 0.6 + 0.6667) / 3, to three decimals
    assert gpt_oss_answers.weighted_score({}).exact_match == 0.0


def test_an_unknown_grading_is_one_clear_error() -> None:
    assert set(GRADINGS) == {"deepseek-r1", "gpt-oss-120b"}
    with pytest.raises(HarnessError, match=r"accuracy grading 'llama' is not known.*'deepseek-r1' or 'gpt-oss-120b'"):
        grading_rules("llama")


def test_targets_files_carry_their_grading(tmp_path: Path) -> None:
    path = tmp_path / "targets.json"
    path.write_text(json.dumps({"name": "t", "exact_match": 50.0}))
    assert resolve_targets(path).grading == "deepseek-r1"  # files from before gpt-oss-120b's rules
    assert resolve_targets(path, grading="gpt-oss-120b").grading == "gpt-oss-120b"
    path.write_text(json.dumps({"name": "t", "exact_match": 50.0, "grading": "gpt-oss-120b", "lengths_floor": False}))
    targets = resolve_targets(path, grading="deepseek-r1")
    assert targets.grading == "gpt-oss-120b" and not targets.lengths_floor
    path.write_text(json.dumps({"name": "t", "exact_match": 50.0, "grading": "llama"}))
    with pytest.raises(HarnessError, match=r"grading 'llama' is not known"):
        resolve_targets(path)
    path.write_text(json.dumps({"name": "t", "rouge1": 50.0}))
    assert resolve_targets(path, grading="gpt-oss-120b").grading == ""


# ---------------------------------------------------------------------------------------------------------------
# A whole log: score_log and python -m accuracy against the reference's eval_mlperf_accuracy.py
# ---------------------------------------------------------------------------------------------------------------

SUM = "```python\nprint(sum(map(int, input().split())))\n```"
DOUBLE = "```python\nclass Solution:\n    def double(self, x: int) -> int:\n        return 2 * x\n```"
# (data set, ground truth, output); per data set: right, right, ..., then wrong.
ROWS = [
    *[("aime25", "42", harmony(f"Answer: {42 if i < 5 else 41}")) for i in range(8)],
    *[("gpqa_diamond", "B", harmony("**B**" if i < 3 else "C")) for i in range(5)],
    ("livecodebench_v6", "lcb_sum", harmony(SUM)),
    ("livecodebench_v6", "2999", harmony("Here:\n" + DOUBLE, analysis="```python\nprint(0)\n```")),
    ("livecodebench_v6", "lcb_sum", harmony("```python\nprint(0)\n```")),
    ("math500", "\\frac{1}{2}", harmony("$\\boxed{0.5}$")),
    ("math500", "3", harmony("$\\boxed{4}$")),
    ("MMLU_stem", "H", harmony("H")),
    ("MMLU_stem", "H", harmony("Answer: A")),
]
EXPECTED = (5 / 8 + 3 / 5 + 2 / 3 + 1 + 1) / (8 / 8 + 5 / 5 + 3 / 3 + 2 + 2) * 100
CORRECT_CODE = {"lcb_sum": "print(sum(map(int, input().split())))", "2999": DOUBLE[10:-4]}


def release_v6(folder: Path, *, leave_out: str = "") -> Path:
    """A release_v6-like copy of code_generation_lite: six files, each with a problem of its own; the two the
    rows ask are in test3.jsonl and test6.jsonl."""
    folder.mkdir(exist_ok=True)
    asked = {
        "test3.jsonl": lcb_row("lcb_sum", [("1 2\n", "3\n")], [("40 2\n", "42\n")]),
        "test6.jsonl": lcb_row("2999", [("3", "6")], [("0", "0"), ("-4", "-8")], func_name="double"),
    }
    for number, name in enumerate(("test.jsonl", *(f"test{k}.jsonl" for k in range(2, 7))), 1):
        if name == leave_out:
            continue
        rows = [lcb_row(f"filler_{number}", [("1\n", "1\n")], [("2\n", "2\n")])] + (
            [asked[name]] if name in asked else []
        )
        (folder / name).write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


@pytest.fixture(scope="module")
def harmony_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level BPE tokenizer trained here (any text round-trips), whose harmony markers are special tokens
    as gpt-oss's are: decoding without skip_special_tokens keeps them, as the reference's detokenize does."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    trained = ByteLevelBPETokenizer()
    texts = [output for _, _, output in ROWS] * 3
    trained.train_from_iterator(texts, vocab_size=400, special_tokens=HARMONY_MARKERS, show_progress=False)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=trained, eos_token="<|return|>", additional_special_tokens=HARMONY_MARKERS
    )
    folder = tmp_path_factory.mktemp("harmony-tokenizer")
    tokenizer.save_pretrained(folder)
    return folder


def _log_and_dataset(folder: Path, tokenizer_dir: Path) -> tuple[Path, Path]:
    """LoadGen's accuracy log of ROWS' outputs (int32 token ids in hex), and the processed data set they answer
    (MLCommons' columns: input_tokens, ground_truth, dataset)."""
    tokenizer = load_tokenizer(tokenizer_dir)
    entries = []
    for index, (_, _, output) in enumerate(ROWS):
        ids = tokenizer.encode(output, add_special_tokens=False)
        entries.append({"seq_id": index, "qsl_idx": index, "data": np.asarray(ids, "<i4").tobytes().hex()})
    log = folder / "mlperf_log_accuracy.json"
    log.write_text(json.dumps(entries))
    dataset = folder / "gpt-oss.jsonl"
    dataset.write_text(
        "".join(
            json.dumps({"input_tokens": [1, 2, 3], "ground_truth": truth, "dataset": name}) + "\n"
            for name, truth, _ in ROWS
        )
    )
    return log, dataset


def _reference(log: Path, dataset: Path, tokenizer_dir: Path) -> dict[str, Any]:
    from transformers import AutoTokenizer

    def evaluate_code(code: str, question_id: str) -> bool:  # the LCB verdicts, known here
        return bool(code) and code.strip() == CORRECT_CODE[question_id].strip()

    frame = pd.read_json(dataset, lines=True, dtype=False)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    return ref.evaluate_mlperf_log(json.loads(log.read_text()), frame, tokenizer, evaluate_code)


def test_score_log_gives_the_references_repeats_weighted_score(harmony_tokenizer: Path, tmp_path: Path) -> None:
    log, dataset_path = _log_and_dataset(tmp_path, harmony_tokenizer)
    expected = _reference(log, dataset_path, harmony_tokenizer)
    assert expected["final_score_percentage"] == pytest.approx(EXPECTED)
    dataset = load_dataset(dataset_path, prompt_format=BENCHMARK.prompt_format, tokenizer_dir=harmony_tokenizer)
    report = score_log(
        log, dataset, harmony_tokenizer, BENCHMARK.accuracy, livecodebench=release_v6(tmp_path / "lcb"), progress=False
    )
    metrics = report.metrics
    assert metrics["exact_match"] == float(f"{expected['final_score_percentage']:.3f}")
    assert (metrics["final_score"], metrics["max_score"]) == (expected["final_score"], expected["max_score"])
    for name, part in expected["final_score_components"].items():
        assert {key: metrics["per_dataset"][name][key] for key in part} == part
    samples = [json.loads(line) for line in (tmp_path / "accuracy_samples.jsonl").read_text().splitlines()]
    verdicts = sorted(expected["results"], key=lambda result: result["qsl_idx"])
    assert [sample["correct"] for sample in samples] == [result["is_correct"] for result in verdicts]
    assert "<|channel|>final<|message|>" in samples[0]["prediction"]  # special tokens kept, as the reference keeps them
    tokens = [len(bytes.fromhex(entry["data"])) // 4 for entry in json.loads(log.read_text())]
    assert metrics["tokens_per_sample"] == pytest.approx(sum(tokens) / len(tokens))
    text = (tmp_path / "accuracy.txt").read_text()
    read = {key: float(re.findall(pattern, text, re.MULTILINE)[0]) for key, pattern in CHECKER_PATTERNS.items()}
    assert read["exact_match"] == metrics["exact_match"] == pytest.approx(EXPECTED, abs=5e-4)
    assert read["TOKENS_PER_SAMPLE"] == pytest.approx(metrics["tokens_per_sample"])
    assert "per_dataset" not in text.splitlines()[3] and "hash=" in text
    written = json.loads((tmp_path / "accuracy.json").read_text())["metrics"]
    assert written["per_dataset"]["aime25"] == {
        "correct": 5, "total": 8, "repeats": 8, "component_score": 0.625, "max_component_score": 1.0, "accuracy": 62.5
    }  # fmt: skip
    assert not report.passed  # 55.6 is short of 99% of 83.13


def _cli(*arguments: str) -> tuple[int, str]:
    shown = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            "accuracy.cli.Console",
            lambda stderr=False: Console(stderr=True, width=200) if stderr else Console(file=shown, width=200),
        )
        code = accuracy_main(["--benchmark", "gpt-oss-120b", *arguments])
    return code, shown.getvalue()


def test_python_m_accuracy_scores_gpt_oss_with_release_v6_in_six_files(
    harmony_tokenizer: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, dataset = _log_and_dataset(tmp_path, harmony_tokenizer)
    targets = tmp_path / "targets.json"  # no grading of its own: graded as --benchmark's
    targets.write_text(json.dumps({"name": "synthetic", "exact_match": 50.0}))
    common = ["--accuracy-log", str(log), "--dataset", str(dataset), "--tokenizer", str(harmony_tokenizer)]
    code, shown = _cli(*common, "--livecodebench", str(release_v6(tmp_path / "lcb")), "--targets", str(targets))
    report = json.loads((tmp_path / "accuracy.json").read_text())
    assert code == 0, capsys.readouterr().err
    assert report["metrics"]["exact_match"] == pytest.approx(EXPECTED, abs=5e-4)
    assert report["targets"]["grading"] == "gpt-oss-120b"
    assert "livecodebench_v6" in shown and "repeats" in shown and "final score" in shown

    code, _ = _cli(*common, "--livecodebench", str(release_v6(tmp_path / "partial", leave_out="test4.jsonl")))
    error = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "test4.jsonl does not exist" in error and "release_v6" in error
    assert "test.jsonl test2.jsonl test3.jsonl test4.jsonl test5.jsonl test6.jsonl" in error

    code, _ = _cli(*common)
    error = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "2 LiveCodeBench problems are asked" in error and "test6.jsonl (release_v6" in error
