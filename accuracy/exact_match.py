"""Exact-match accuracy, per sample, as the MLCommons references score it: deepseek-r1's
(`language/deepseek-r1/eval_accuracy.py`) and gpt-oss-120b's (`language/gpt-oss-120b/eval_mlperf_accuracy.py`
and `eval_accuracy.py`), each a `GradingRules` of `GRADINGS`, chosen by the targets' `grading`.

Each sample is judged by the kind of its source data set (the rules' `kind_of`): multiple choice (GPQA,
MMLU-Pro) and AIME integers here, math500 by PRM800K's grader, LiveCodeBench by running the program against the
problem's tests (`accuracy.livecodebench`), with the answer read out by the rules' parsers (`accuracy.answers`,
`accuracy.gpt_oss_answers`). A sample is right or wrong, wrong also when no answer could be read out of it.
deepseek-r1's `exact_match` is the percentage of samples right; gpt-oss-120b's weighs each data set by how often
the set repeats it (`accuracy.gpt_oss_answers.weighted_score`) and is rounded to the three decimals its reference
prints. `tokens_per_sample` is the mean output length in tokens. Those are the two figures the submission
checker reads.

Model output reaches an interpreter in two places, and neither runs in this process: LiveCodeBench programs,
and math answers, which PRM800K's grader hands to sympy's `parse_expr` (an `eval`, behind a guard of at most
two distinct letters that still lets `9**9**9**9` through). Math answers are therefore graded in the same
sandbox as programs (`accuracy.sandbox`), in batches, each answer under its own alarm; an answer that brings
its batch down (memory, CPU) is judged wrong with the reason, and the rest of the batch is graded again.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

import numpy as np

from accuracy import answers, gpt_oss_answers
from accuracy.answers import GPQA_OPTIONS, MMLU_PRO_OPTIONS, Kind, judge_aime, judge_multiple_choice
from accuracy.livecodebench import (
    RELEASE_FILES,
    Problem,
    check_problems_files,
    download_command,
    grade_many,
    load_problems,
)
from accuracy.sandbox import Limits, run_python
from mlperf_llm_sut.common.dataset import SOURCE_COLUMN, Dataset
from mlperf_llm_sut.common.errors import HarnessError, setting

DECODE_SLICE = 256
"""Outputs detokenized at a time."""
MATH_SECONDS = 10
"""How long PRM800K's grader may take over one answer (the reference sets no limit; sympy rarely needs one)."""
MATH_BATCH = 32
"""Answers graded by one sandboxed interpreter: sympy's import (about a second) is paid once per batch."""
MATH_STARTUP_SECONDS = 5
"""CPU time a sandboxed grader may spend importing sympy before its first answer."""

_IMPORT_PATHS = [str(Path(__file__).resolve().parents[1]), *(path for path in sys.path if path)]
"""Where the sandboxed grader finds this package and sympy: it runs without `site`, so neither an editable
install's import hook nor site-packages is there by itself."""
_MATH_IMPORTS = f"""
import sys
sys.path[:0] = {_IMPORT_PATHS!r}
import accuracy.answers
"""
"""Loaded before the sandbox's audit hook: sympy's imports load native code through ctypes, which the hook
refuses to model output."""
_MATH_DRIVER = """
import json, signal, sys
from accuracy.answers import judge_math


class Late(Exception):
    pass


def alarm(signum, frame):
    raise Late()


signal.signal(signal.SIGALRM, alarm)
for given, truth in json.loads(sys.stdin.read()):
    signal.alarm({seconds})  # where sympy's work is Python; big-integer arithmetic in C waits for the CPU limit
    try:
        verdict, detail = bool(judge_math(given, truth)), ""
    except Late:
        verdict, detail = False, "the grader took over {seconds} s"
    except Exception as exc:
        verdict, detail = False, "the grader failed: " + type(exc).__name__
    finally:
        signal.alarm(0)
    print({nonce!r} + json.dumps([verdict, detail]), flush=True)
"""


Grading = Literal["deepseek-r1", "gpt-oss-120b"]


@dataclass(frozen=True)
class GradingRules:
    """How one benchmark's reference grades its samples."""

    name: Grading
    kind_of: Callable[[str], Kind]
    """A sample's kind from its data set's name (the reference's `get_evaluator`)."""
    parse_answer: Callable[[Kind, str], str | int | None]
    """The answer read out of an output (the reference's `DATASET_EVALUATORS` parsers)."""
    skip_special_tokens: bool
    """How outputs are detokenized: deepseek-r1's reference drops special tokens; gpt-oss-120b's keeps its
    harmony markers, which its parsers look for."""
    livecodebench_release: str
    """The release of code_generation_lite whose problems grade the code answers (`RELEASE_FILES`)."""
    weighted: bool
    """Whether `exact_match` weighs the data sets by their repeats (gpt-oss-120b) or is every sample's mean."""


GRADINGS: Final[Mapping[str, GradingRules]] = MappingProxyType(
    {
        "deepseek-r1": GradingRules(
            "deepseek-r1", answers.kind_of, answers.parse_answer, True, "release_v1", weighted=False
        ),
        "gpt-oss-120b": GradingRules(
            "gpt-oss-120b", gpt_oss_answers.kind_of, gpt_oss_answers.parse_answer, False, "release_v6", weighted=True
        ),
    }
)
"""Every benchmark's grading rules, by the name `Targets.grading` gives."""


def grading_rules(grading: str) -> GradingRules:
    """The rules `grading` names; one clear error for a name that is not one of `GRADINGS`."""
    try:
        return GRADINGS[grading]
    except KeyError:
        raise HarnessError(
            f"accuracy grading {grading!r} is not known: exact-match scoring follows one reference's rules, "
            f"{' or '.join(map(repr, GRADINGS))}; give the accuracy targets one of those as their grading"
        ) from None


@dataclass
class ExactMatchSample:
    qsl_idx: int
    n_tokens: int
    source: str
    """The sample's source data set (the data set's `dataset` column: gpqa, math500, livecodebench, ...)."""
    extracted: str | None
    """The answer read out of the output, as the reference prints it (None: none found)."""
    correct: bool | None
    """None where it was not judged (a LiveCodeBench sample with code grading skipped)."""
    detail: str
    """Why a judged-wrong answer is wrong, where more can be said than that it differs."""
    prediction: str


@dataclass
class ExactMatchResult:
    metrics: dict[str, Any]
    samples: list[ExactMatchSample]


def score_exact_match(
    predictions: Sequence[tuple[int, str, int]],
    references: Sequence[str],
    sources: Sequence[str],
    *,
    problems: dict[str, Problem] | None,
    grading: str = "deepseek-r1",
    workers: int | None = None,
    code_timeout: int = 60,
    math_seconds: int = MATH_SECONDS,
    progress: bool = True,
) -> ExactMatchResult:
    """`predictions`: (qsl_idx, decoded output, output token count) in log order, judged by `grading`'s rules
    (`GRADINGS`). `problems`: the LiveCodeBench problems by question id; None skips code grading, and the
    metrics then cover the other samples only (with `skipped` saying how many were left out)."""
    rules = grading_rules(grading)
    samples = [
        _sample(rules, qsl_idx, text, n_tokens, references[qsl_idx], sources[qsl_idx])
        for qsl_idx, text, n_tokens in predictions
    ]
    pending: dict[Kind, list[ExactMatchSample]] = {"math500": [], "livecodebench": []}
    for sample in samples:
        kind = rules.kind_of(sample.source)
        if kind in pending and sample.correct is None and sample.extracted is not None:
            pending[kind].append(sample)
    _judge_math(pending["math500"], references, workers, math_seconds)
    if problems is not None:
        _judge_code(pending["livecodebench"], references, problems, workers, code_timeout, progress)
    judged = []
    for sample in samples:
        if problems is None and rules.kind_of(sample.source) == "livecodebench":
            sample.correct, sample.detail = None, "code grading skipped"
        else:
            judged.append(sample)
    metrics: dict[str, Any] = {
        "exact_match": 100.0 * sum(bool(s.correct) for s in judged) / len(judged) if judged else 0.0,
        "tokens_per_sample": sum(s.n_tokens for s in judged) / len(judged) if judged else 0.0,
        "num-samples": len(judged),
    }
    if rules.weighted:
        metrics.update(_weighted_metrics(judged))
    if len(judged) < len(samples):
        metrics["skipped"] = len(samples) - len(judged)
    return ExactMatchResult(metrics, samples)


def _weighted_metrics(judged: Sequence[ExactMatchSample]) -> dict[str, Any]:
    """gpt-oss-120b's `exact_match` (eval_mlperf_accuracy.py's final score, as it prints it for the checker),
    and its parts: the data sets by lowercased name (`validate_dataset_name`), each counted sample by sample."""
    results: dict[str, tuple[int, int]] = {}
    for sample in judged:
        correct, total = results.get(sample.source.lower(), (0, 0))
        results[sample.source.lower()] = (correct + bool(sample.correct), total + 1)
    score = gpt_oss_answers.weighted_score(results)
    return {
        "exact_match": score.exact_match,
        "final_score": score.final_score,
        "max_score": score.max_score,
        "per_dataset": {
            name: {
                "correct": part.correct,
                "total": part.total,
                "repeats": part.repeats,
                "component_score": part.component_score,
                "max_component_score": part.max_component_score,
                "accuracy": part.accuracy,
            }
            for name, part in score.datasets.items()
        },
    }


def score_outputs(
    outputs: Mapping[int, np.ndarray],
    dataset: Dataset,
    tokenizer: Any,
    *,
    livecodebench: Path | None,
    grading: str,
    skip_code: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> ExactMatchResult:
    """An accuracy log's outputs (qsl_idx -> token ids, `accuracy.log.read_accuracy_log`) scored against
    `dataset` as `grading`'s reference scores its log (deepseek-r1's `process_mlperf_log_accuracy`, gpt-oss-120b's
    `eval_mlperf_accuracy.py`): decoded with or without special tokens as it does, each judged by its row's
    source. LiveCodeBench problems come from `livecodebench` (a local copy of the rules' release of
    code_generation_lite: its folder, or one file holding it); `skip_code` leaves those samples out instead."""
    rules = grading_rules(grading)
    if dataset.references is None or dataset.sources is None:
        raise HarnessError(
            f"dataset {dataset.path} lacks the ground_truth or the {SOURCE_COLUMN!r} column: exact-match scoring "
            f"needs each sample's answer and the data set it is from, as {grading}'s data set has them."
        )
    indices = list(outputs)
    # batch_decode decodes each sequence alone, so slices give the reference's one call's texts; as Python ints, a
    # whole log of 20,000-token answers would take gigabytes at once.
    texts: list[str] = []
    for start in range(0, len(indices), DECODE_SLICE):
        ids = [outputs[i].tolist() for i in indices[start : start + DECODE_SLICE]]
        texts += tokenizer.batch_decode(ids, skip_special_tokens=rules.skip_special_tokens)
    predictions = [(i, text, len(outputs[i])) for i, text in zip(indices, texts, strict=True)]
    questions = code_questions(dataset, indices, grading=grading)
    problems: dict[str, Problem] | None = None
    if not skip_code and questions:
        path = _problems_path(livecodebench, questions, rules)
        problems = load_problems(path, only=questions, release=rules.livecodebench_release)
    elif not skip_code:
        problems = {}
    return score_exact_match(
        predictions,
        dataset.references,
        dataset.sources,
        problems=problems,
        grading=grading,
        workers=workers,
        progress=progress,
    )


def code_questions(dataset: Dataset, indices: Iterable[int] | None = None, *, grading: str) -> set[str]:
    """The LiveCodeBench question ids that `dataset`'s rows (those of `indices`) ask, their kinds by `grading`'s
    rules."""
    if dataset.references is None or dataset.sources is None:
        return set()
    kind_of = grading_rules(grading).kind_of
    rows = range(len(dataset)) if indices is None else indices
    return {dataset.references[i] for i in rows if kind_of(dataset.sources[i]) == "livecodebench"}


def check_code_grading(
    dataset: Dataset, livecodebench: Path | None, skip_code: bool, *, grading: str = "deepseek-r1"
) -> None:
    """Before a run: where `dataset` asks LiveCodeBench questions, the problems of `grading`'s release are at
    hand, or `skip_code` says to leave them out; one clear error otherwise."""
    rules = grading_rules(grading)
    questions = code_questions(dataset, grading=grading)
    if questions and not skip_code:
        check_problems_files(_problems_path(livecodebench, questions, rules), rules.livecodebench_release)


def _problems_path(livecodebench: Path | None, questions: set[str], rules: GradingRules) -> Path:
    if livecodebench is None:
        release = rules.livecodebench_release
        files = " ".join(RELEASE_FILES[release])
        raise HarnessError(
            f"{len(questions)} LiveCodeBench problems are asked, and their answers are graded by running them "
            f"against the problems' tests: pass {setting('livecodebench')} with a local copy of "
            f"code_generation_lite's {files} ({release}: `{download_command(release)}`), or "
            f"{setting('skip_code')} to score the other samples (the result then does not cover the whole set)."
        )
    return livecodebench


def _sample(
    rules: GradingRules, qsl_idx: int, text: str, n_tokens: int, reference: str, source: str
) -> ExactMatchSample:
    """A sample with its answer read out by `rules` and, where that needs no interpreter, judged."""
    kind = rules.kind_of(source)
    extracted = rules.parse_answer(kind, text.strip())
    correct: bool | None = None
    if extracted is None:
        correct = False
    elif kind == "gpqa":
        correct = judge_multiple_choice(str(extracted), reference, GPQA_OPTIONS)
    elif kind == "mmlu_pro":
        correct = judge_multiple_choice(str(extracted), reference, MMLU_PRO_OPTIONS)
    elif kind == "aime":
        correct = judge_aime(int(extracted), reference)
    shown = None if extracted is None else str(extracted)
    return ExactMatchSample(qsl_idx, n_tokens, source, shown, correct, "", text)


def _judge_math(samples: list[ExactMatchSample], references: Sequence[str], workers: int | None, seconds: int) -> None:
    batches = [samples[start : start + MATH_BATCH] for start in range(0, len(samples), MATH_BATCH)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda batch: _grade_math_batch(batch, references, seconds), batches))


def _grade_math_batch(batch: list[ExactMatchSample], references: Sequence[str], seconds: int) -> None:
    """Each answer of `batch` judged in the sandbox; one that takes its interpreter down is judged wrong."""
    pending = list(batch)
    while pending:
        nonce = secrets.token_hex(8)
        driver = _MATH_DRIVER.format(seconds=seconds, nonce=nonce)
        pairs = [[sample.extracted, str(references[sample.qsl_idx])] for sample in pending]
        cpu = MATH_STARTUP_SECONDS + seconds * len(pending)
        limits = Limits(cpu_seconds=cpu, wall_seconds=2.0 * cpu + 10)
        outcome = run_python(driver, stdin=json.dumps(pairs), limits=limits, trusted=_MATH_IMPORTS)
        verdicts = [json.loads(line[len(nonce) :]) for line in outcome.stdout.splitlines() if line.startswith(nonce)]
        for sample, (correct, detail) in zip(pending, verdicts, strict=False):
            sample.correct, sample.detail = bool(correct), str(detail)
        pending = pending[len(verdicts) :]
        if pending:
            culprit = pending.pop(0)
            culprit.correct = False
            culprit.detail = f"the grader's sandbox ended it ({outcome.status}): {_last_line(outcome.stderr)}"


def _judge_code(
    samples: list[ExactMatchSample],
    references: Sequence[str],
    problems: dict[str, Problem],
    workers: int | None,
    timeout: int,
    progress: bool,
) -> None:
    known = [s for s in samples if str(references[s.qsl_idx]) in problems]
    for sample in samples:
        if str(references[sample.qsl_idx]) not in problems:
            sample.correct = False
            sample.detail = f"LiveCodeBench has no problem {references[sample.qsl_idx]!r} in the given copy"
    items = [(str(s.extracted), problems[str(references[s.qsl_idx])]) for s in known]
    if not items:
        return
    verdicts = grade_many(items, workers=workers, timeout=timeout, progress=progress)
    for sample, verdict in zip(known, verdicts, strict=True):
        sample.correct = verdict.passed
        sample.detail = "" if verdict.passed else f"{verdict.kind}: {verdict.detail}"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no message"
