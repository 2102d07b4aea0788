# mypy: ignore-errors
r"""The yardstick for gpt-oss-120b's answer grading: the reference's parsers, judges and final score, plainly.

A transcription of mlcommons/inference at b66003e10e2db4b8c36a448b0545ec90fcc6e9e9:
  - `language/gpt-oss-120b/eval_accuracy.py`: `validate_text_input`, `validate_dataset_name`,
    `extract_final_section`, `strip_markdown_bold`, `parse_multiple_choice`, `parse_boxed_math`,
    `parse_aime_answer`, `parse_code`, `evaluate_multiple_choice`, `evaluate_math500`, `evaluate_aime`,
    `DATASET_EVALUATORS`, `get_evaluator`;
  - `language/gpt-oss-120b/eval_mlperf_accuracy.py`: `DATASET_REPEATS`, `decode_hex_to_tokens`, `detokenize`,
    `evaluate_single_entry`, and of `main` the part from grouping the log's entries by data set to the line
    printed for the submission checker (`evaluate_mlperf_log` below).

Kept as they are, in their order, with only what makes them importable and ruff clean changed:
  - `validate_text_input`, `validate_dataset_name`, `parse_boxed_math`, `parse_aime_answer`,
    `evaluate_multiple_choice`, `evaluate_math500` and `evaluate_aime` are the same code in deepseek-r1's
    eval_accuracy.py: they are `accuracy.reference_graders`' transcription of it, imported, whose
    `evaluate_math500` calls its transcription of PRM800K's grader (gpt-oss-120b's submodules/prm800k is a link
    to deepseek-r1's) instead of importing `grading.grader` through `sys.path` and `os.chdir`.
  - livecodebench's `evaluate_livecodebench` (it runs LiveCodeBench's harness) is not transcribed: its
    `'evaluate'` entry in `DATASET_EVALUATORS` is left out, and `evaluate_mlperf_log` takes the verdict of a
    code answer from its caller (`evaluate_code(code, question_id)`), where `main` sends the code to a pool of
    `evaluate_livecodebench_worker`s (`process_livecodebench_batch`); what it does with the verdicts, counting
    each entry once, is the same.
  - `main`'s reading of its arguments and files, its logging, progress bars and `--save-outputs`/`--output-file`
    writing are left out; `evaluate_mlperf_log` takes the log's entries, the reference DataFrame and the
    tokenizer, and returns the figures `main` prints (and the line it prints for the checker).
  - `logger.warning` calls are dropped, an unused unpacked name has a leading underscore;
    `typing.Optional[X]`/`Dict`/`List`/`Tuple` are `X | None`/`dict`/`list`/`tuple`.
The module is outside mypy's check (the comment at its top): typing it would mean changing it.

Tests (tests/test_gpt_oss_graders.py, tests/test_exact_match.py) hold `accuracy.gpt_oss_answers` and
`accuracy.exact_match` to it.
"""

from __future__ import annotations

import re
import struct
from collections import defaultdict
from typing import Any

import pandas as pd

# The same code, word for word, in language/deepseek-r1/eval_accuracy.py and language/gpt-oss-120b/eval_accuracy.py
# at b66003e (their syntax trees compared equal): deepseek-r1's transcription serves for both.
from accuracy.reference_graders import (
    evaluate_aime,
    evaluate_math500,
    evaluate_multiple_choice,
    parse_aime_answer,
    parse_boxed_math,
    validate_dataset_name,
    validate_text_input,
)

# =============================================================================
# eval_accuracy.py: Input Validation
# =============================================================================

# validate_text_input, validate_dataset_name: deepseek-r1's (imported above).


# =============================================================================
# eval_accuracy.py: Harmony Format Extraction
# =============================================================================


def extract_final_section(text: str) -> str:
    """Extract content from the <|channel|>final<|message|>...<|return|> section.

    The model outputs have two sections:
    - <|channel|>analysis<|message|>... (reasoning, may have draft answers)
    - <|channel|>final<|message|>... (actual final answer)

    This function extracts only the final section to avoid extracting
    wrong answers from the analysis section.

    Uses a flexible regex to handle corrupted markers like:
    - <|channel|>final 明<|message|>
    - <|channel|>final537<|message|>

    Args:
        text: Full model output text

    Returns:
        Content of final section if found, otherwise returns original text
    """
    text = validate_text_input(text)
    if not text:
        return ""

    # Flexible pattern to handle corrupted markers (allows chars between final
    # and <|message|>)
    match = re.search(r"<\|channel\|>final[^<]*<\|message\|>(.*?)(?:<\|return\|>|$)", text, re.DOTALL)
    if match:
        return match.group(1).strip()

    # Fallback: return original text if no final section found
    return text


def strip_markdown_bold(text: str) -> str:
    """Remove markdown bold formatting (**text**) from text.

    Args:
        text: Text that may contain **bold** formatting

    Returns:
        Text with bold markers removed
    """
    return re.sub(r"\*\*([^*]+)\*\*", r"\1", text)


# =============================================================================
# eval_accuracy.py: Answer Parsing Functions
# =============================================================================


def parse_multiple_choice(text: str, max_option: str = "D") -> str | None:
    """Parse multiple choice answer (A-D or A-J).

    First extracts the final section from harmony-formatted outputs,
    then parses the answer from that section only.
    """
    text = validate_text_input(text)
    if not text:
        return None

    # Extract final section first (for harmony format)
    final_section = extract_final_section(text)

    # Strip markdown bold formatting (**A** -> A)
    final_section = strip_markdown_bold(final_section)

    # Clean artifacts
    if final_section.startswith(("['", '["')) and final_section.endswith(("']", '"]')):
        final_section = final_section[2:-2].strip()

    final_section = final_section.replace(r"\n", "\n").replace(r"\'", "'")

    # Try to extract from final section first
    # Priority 1: Single letter answer at start of final section (common in
    # harmony format)
    single_letter_match = re.match(
        rf"^[^a-zA-Z]*([A-{max_option}])(?:[^a-zA-Z]|$)", final_section.strip(), re.IGNORECASE
    )
    if single_letter_match:
        return single_letter_match.group(1).upper()

    # Priority 2: "Answer: X" pattern in final section
    answer_pattern = rf"\b(?:Answer|ANSWER)\s*[:.]?\s*([A-{max_option}])\b"
    answer_match = re.search(answer_pattern, final_section, re.IGNORECASE)
    if answer_match:
        return answer_match.group(1).upper()

    # Priority 3: Fall back to ANSWER/FINAL ANSWER pattern in full text
    # (for backwards compatibility with non-harmony outputs)
    full_text = text.replace(r"\n", "\n").replace(r"\'", "'")
    pattern = rf"\b(?:ANSWER|FINAL\s*ANSWER)\b\s*[:=]?\s*(?:\(?\s*([A-{max_option}])\s*\)?)(?:\s*$|[^A-Za-z])"
    matches = list(re.finditer(pattern, full_text, re.IGNORECASE))

    if matches:
        return matches[-1].group(1).upper()

    # MMLU-Pro fallback: standalone letter in final section
    if max_option == "J":
        fallback_matches = list(re.finditer(rf"\b([A-{max_option}])\b", final_section, re.IGNORECASE))
        if fallback_matches:
            return fallback_matches[-1].group(1).upper()

    return None


# parse_boxed_math, parse_aime_answer: deepseek-r1's (imported above).


def parse_code(text: str) -> str | None:
    """Parse code from ```python or plain ``` code block.

    First extracts the final section from harmony-formatted outputs,
    then parses code from that section only. This avoids extracting
    malformed code blocks from the analysis section.

    Priority:
    1. Code from final section (if harmony format detected)
    2. Last ```python block from full text (fallback)
    3. Last plain ``` block from full text (fallback)
    """
    text = validate_text_input(text)
    if not text:
        return None

    # First try to extract from final section (for harmony format)
    final_section = extract_final_section(text)

    # Check if we got a different final section (harmony format detected)
    if final_section != text:
        # Parse code from final section only
        python_matches = list(re.finditer(r"```python(.*?)```", final_section, re.DOTALL))
        if python_matches:
            return python_matches[-1].group(1).strip()

        plain_matches = list(re.finditer(r"```(.*?)```", final_section, re.DOTALL))
        if plain_matches:
            code = plain_matches[-1].group(1).strip()
            code = re.sub(r"^(?:python|py)\s*\n", "", code, flags=re.IGNORECASE)
            return code

    # Fallback: search full text (for non-harmony outputs or if final section has no code)
    # Try ```python blocks first (most specific)
    python_matches = list(re.finditer(r"```python(.*?)```", text, re.DOTALL))
    if python_matches:
        return python_matches[-1].group(1).strip()

    # Fall back to plain ``` blocks
    plain_matches = list(re.finditer(r"```(.*?)```", text, re.DOTALL))
    if plain_matches:
        # Get the last match
        code = plain_matches[-1].group(1).strip()
        # Remove language tag if present (e.g., ```python\n or ```py\n)
        code = re.sub(r"^(?:python|py)\s*\n", "", code, flags=re.IGNORECASE)
        return code

    return None


# =============================================================================
# eval_accuracy.py: Answer Evaluation Functions
# =============================================================================

# evaluate_multiple_choice, evaluate_math500, evaluate_aime: deepseek-r1's (imported above).


# =============================================================================
# eval_accuracy.py: Dataset Configuration
# =============================================================================

DATASET_EVALUATORS = {
    "gpqa": {
        "parse": lambda text: parse_multiple_choice(text, "D"),
        "evaluate": lambda parsed, gt: evaluate_multiple_choice(parsed, gt, "ABCD"),
    },
    "mmlu_pro": {
        "parse": lambda text: parse_multiple_choice(text, "J"),
        "evaluate": lambda parsed, gt: evaluate_multiple_choice(parsed, gt, "ABCDEFGHIJ"),
    },
    "math500": {"parse": parse_boxed_math, "evaluate": evaluate_math500},
    "aime": {"parse": parse_aime_answer, "evaluate": evaluate_aime},
    # The reference's 'evaluate' here is evaluate_livecodebench (LiveCodeBench's harness): not transcribed.
    "livecodebench": {"parse": parse_code},
    "mmlu": {
        "parse": lambda text: parse_multiple_choice(text, "J"),
        "evaluate": lambda parsed, gt: evaluate_multiple_choice(parsed, gt, "ABCDEFGHIJ"),
    },
}


def get_evaluator(dataset_name: str) -> dict[str, Any]:
    """Get evaluator functions for dataset."""
    dataset_lower = validate_dataset_name(dataset_name)

    for key, evaluator in DATASET_EVALUATORS.items():
        if key in dataset_lower:
            return evaluator

    raise ValueError(f"No evaluator found for dataset: {dataset_name}")


# =============================================================================
# eval_mlperf_accuracy.py
# =============================================================================

# Hardcoded repeats per dataset for final score calculation
# Final score = sum(dataset_correct / dataset_repeats)
DATASET_REPEATS = {
    "aime25": 8,
    "gpqa_diamond": 5,
    "livecodebench_v6": 3,
}


def decode_hex_to_tokens(hex_data: str) -> list[int]:
    """Decode hex string to list of token IDs (int32).

    MLPerf stores token IDs as hex-encoded int32 array.

    Args:
        hex_data: Hex string like "450D0300..."

    Returns:
        List of token IDs
    """
    # Convert hex string to bytes
    data_bytes = bytes.fromhex(hex_data)

    # Unpack as int32 array (little-endian)
    num_tokens = len(data_bytes) // 4
    token_ids = struct.unpack(f"<{num_tokens}i", data_bytes)

    return list(token_ids)


def detokenize(token_ids: list[int], tokenizer) -> str:
    """Convert token IDs to text.

    Args:
        token_ids: List of integer token IDs
        tokenizer: HuggingFace tokenizer

    Returns:
        Decoded text string
    """
    return tokenizer.decode(token_ids, skip_special_tokens=False)


def evaluate_single_entry(model_output: str, ground_truth: str, dataset_name: str) -> tuple[bool, Any, str]:
    """Evaluate a single model output.

    Args:
        model_output: Generated text from model
        ground_truth: Expected answer
        dataset_name: Dataset name (e.g., 'gpqa', 'math500')

    Returns:
        Tuple of (is_correct, extracted_answer, evaluation_details)
    """
    evaluator = get_evaluator(dataset_name)

    # Parse answer from model output
    extracted = evaluator["parse"](model_output)

    # Evaluate correctness
    is_correct = False
    evaluation_details = ""

    if extracted is None or pd.isna(extracted):
        evaluation_details = "No answer extracted from model output"
    else:
        if not pd.isna(ground_truth):
            try:
                is_correct = evaluator["evaluate"](extracted, ground_truth)
                if is_correct:
                    evaluation_details = "Correct"
                else:
                    evaluation_details = f"Incorrect (extracted: {extracted}, ground_truth: {ground_truth})"
            except Exception as e:
                evaluation_details = f"Evaluation error: {e}"
        else:
            evaluation_details = "No ground truth available"

    return is_correct, extracted, evaluation_details


def evaluate_mlperf_log(mlperf_log, reference_df, tokenizer, evaluate_code) -> dict[str, Any]:
    """`main` from grouping the entries by data set to the line printed for the submission checker; a
    livecodebench entry's code is judged by `evaluate_code(code, question_id)` (the module docstring)."""
    # Group MLPerf log entries by dataset
    dataset_entries = defaultdict(list)

    for entry in mlperf_log:
        qsl_idx = entry["qsl_idx"]

        if qsl_idx >= len(reference_df):
            continue

        ref_row = reference_df.iloc[qsl_idx]
        dataset_name = validate_dataset_name(ref_row["dataset"])
        dataset_entries[dataset_name].append(entry)

    results = []
    # Track stats per dataset (simple correct/total)
    dataset_stats = defaultdict(lambda: {"correct": 0, "total": 0})

    for dataset_name in sorted(dataset_entries.keys()):
        entries = dataset_entries[dataset_name]

        evaluator = get_evaluator(dataset_name)
        is_livecodebench = "livecodebench" in dataset_name.lower()

        for entry in entries:
            qsl_idx = entry["qsl_idx"]
            hex_data = entry["data"]

            ref_row = reference_df.iloc[qsl_idx]
            ground_truth = ref_row.get("ground_truth", None)

            # Decode tokens to text
            token_ids = decode_hex_to_tokens(hex_data)
            model_output = detokenize(token_ids, tokenizer)

            if is_livecodebench:
                # process_livecodebench_batch: parse, then the worker's verdict where code was extracted
                extracted = evaluator["parse"](model_output)
                if extracted is None or pd.isna(ground_truth):
                    is_correct = False
                else:
                    is_correct = evaluate_code(extracted, ground_truth)
            else:
                # Evaluate
                try:
                    is_correct, extracted, _eval_details = evaluate_single_entry(
                        model_output, ground_truth, dataset_name
                    )
                except Exception:
                    is_correct = False
                    extracted = None

            results.append(
                {
                    "qsl_idx": qsl_idx,
                    "dataset": dataset_name,
                    "is_correct": is_correct,
                    "extracted_answer": str(extracted) if extracted is not None else None,
                    "token_count": len(token_ids),
                }
            )

            # Update stats
            dataset_stats[dataset_name]["total"] += 1
            if is_correct:
                dataset_stats[dataset_name]["correct"] += 1

    # Calculate per-dataset scores and final score
    # Final score = sum(dataset_correct / dataset_repeats)
    total_correct = sum(stats["correct"] for stats in dataset_stats.values())
    total_samples = sum(stats["total"] for stats in dataset_stats.values())
    overall_accuracy = (total_correct / total_samples * 100) if total_samples > 0 else 0.0

    # Calculate weighted final score
    final_score = 0.0
    max_score = 0.0
    final_score_components = {}
    for dataset_name, stats in dataset_stats.items():
        repeats = DATASET_REPEATS.get(dataset_name, 1)
        component_score = stats["correct"] / repeats
        max_component_score = stats["total"] / repeats
        final_score += component_score
        max_score += max_component_score
        final_score_components[dataset_name] = {
            "correct": stats["correct"],
            "total": stats["total"],
            "repeats": repeats,
            "component_score": component_score,
            "max_component_score": max_component_score,
        }

    final_score_percentage = (final_score / max_score * 100) if max_score > 0 else 0.0

    return {
        "results": results,
        "overall_accuracy": overall_accuracy,
        "final_score": final_score,
        "max_score": max_score,
        "final_score_components": final_score_components,
        "final_score_percentage": final_score_percentage,
        # print("\n'exact_match': {final_score_percentage:.3f}")
        "checker_line": f"'exact_match': {final_score_percentage:.3f}",
    }
