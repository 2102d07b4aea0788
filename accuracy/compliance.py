"""The official LLM audits, built in: each one's checks on a run's accuracy log, its verdict and the file
its run_verification.py writes (which the submission checker reads), byte for byte.

* TEST06, output consistency (compliance/TEST06/run_verification.py, with its exact loop bounds): where the
  scenario reports it on its own (not Offline), the reported first token equals the output's first token;
  an output ends with at most one EOS token; the reported token count equals the output's length.
* TEST07, accuracy inside a performance run (compliance/TEST07/run_verification.py): the run's accuracy log
  is scored by the benchmark's own scorer, and the score it prints (`'exact_match': <score>`, the official
  score pattern) must reach the audit.config's `test07_accuracy_threshold`.
* TEST09, output length inside a performance run (compliance/TEST09/run_verification.py): the mean output
  length over the log's entries lies within `test09_min_output_tokens` and `test09_max_output_tokens`.

Each verdict is an `AuditVerdict`: its test's name, pass or fail, the verify file's name and text, what
run.json records of it (`checks`), one line for people, and (beyond the official scripts) which sample or
figure broke a check, so a failure can be acted on.
"""

from __future__ import annotations

import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from accuracy.scored_log import ACCURACY_TXT, score_log
from mlperf_llm_sut.benchmarks import ComplianceTest, Targets
from mlperf_llm_sut.common.dataset import Dataset
from mlperf_llm_sut.common.errors import HarnessError

VERIFY_FILE = "verify_accuracy.txt"
"""TEST06's and TEST07's verify file (TEST09 writes `VERIFY_OUTPUT_LEN_FILE`)."""
VERIFY_OUTPUT_LEN_FILE = "verify_output_len.txt"
TEST07_THRESHOLD_KEY = "test07_accuracy_threshold"
TEST09_LOW_KEY = "test09_min_output_tokens"
TEST09_HIGH_KEY = "test09_max_output_tokens"
TEST07_SCORE_PATTERN = r"'exact_match':\s*([\d.]+)"
"""run_verification.py's default --score-pattern: what it reads the score from in the accuracy script's output."""
TEST07_METRIC = "exact_match"
"""The metric that pattern reads."""
RULE = "=" * 80
MAX_SHOWN = 3
"""Samples a failure names at most, beyond the reason itself."""


class AuditVerdict(ABC):
    """One audit's verdict on a run, whichever audit it is."""

    name: ClassVar[str]
    """The compliance test: TEST06, TEST07, TEST09."""
    verify_file: ClassVar[str]
    """The file its run_verification.py writes, under that name in the submission tree's <test>/ folder."""
    keeps_performance_logs: ClassVar[bool] = False
    """Whether its run_verification.py also copies the run's mlperf_log_{summary,detail}.txt into the tree
    (<test>/performance/run_1/): TEST07's and TEST09's do, TEST06's does not."""
    failures: list[str]
    """What broke a check, one line each, for people (empty when it passed)."""

    @property
    @abstractmethod
    def passed(self) -> bool: ...

    @abstractmethod
    def text(self) -> str:
        """The verify file, byte for byte as run_verification.py writes it."""

    @abstractmethod
    def checks(self) -> dict[str, Any]:
        """What run.json records of the verdict (beside its test, pass or fail, and failures)."""

    @classmethod
    @abstractmethod
    def describe(cls, checks: Mapping[str, Any]) -> str:
        """One line for people from `checks` as run.json has them (so a record read back says the same)."""

    def summary(self) -> str:
        return self.describe(self.checks())

    def write(self, out_dir: Path) -> Path:
        path = Path(out_dir) / self.verify_file
        path.write_text(self.text())
        return path


def _verdict(passed: bool | None) -> str:
    return "skipped" if passed is None else ("pass" if passed else "FAIL")


def _read_entries(log_path: Path, test: str) -> list[Any]:
    try:
        entries = json.loads(Path(log_path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise HarnessError(f"{test}: cannot read the accuracy log {log_path}: {exc}") from None
    if not isinstance(entries, list):
        raise HarnessError(f"{test}: {log_path} is not a LoadGen accuracy log (a JSON list of entries).")
    return entries


def audit_value(test: ComplianceTest, key: str) -> float:
    """A threshold as run_verification.py reads it: `float()` of the value the audit.config gives `key`."""
    try:
        return float(test.audit_settings[key])
    except (KeyError, ValueError):
        raise HarnessError(
            f"{test.name}'s audit.config has no number for {key} (it has {dict(test.audit_settings)}): the "
            "benchmark's registry entry needs the official audit.config's line."
        ) from None


# -- TEST06 ---------------------------------------------------------------------------------------------
@dataclass
class Test06Result(AuditVerdict):
    name: ClassVar[str] = "TEST06"
    verify_file: ClassVar[str] = VERIFY_FILE

    first_token_pass: bool | None
    """None where the scenario does not report first tokens (Offline): the official "Skipped"."""
    eos_pass: bool
    length_pass: bool
    samples: int
    failures: list[str] = field(default_factory=list)
    """The first offending sample of each failed check, for people."""

    @property
    def passed(self) -> bool:
        return self.first_token_pass is not False and self.eos_pass and self.length_pass

    def text(self) -> str:
        first = "Skipped" if self.first_token_pass is None else str(self.first_token_pass)
        verdict = "TEST06 verification complete" if self.passed else "TEST06 verification failed"
        return (
            f"First token check pass: {first}\n"
            f"EOS check pass: {self.eos_pass}\n"
            f"Sample length check pass: {self.length_pass}\n"
            f"{verdict}\n"
        )

    def checks(self) -> dict[str, Any]:
        return {
            "first_token_pass": self.first_token_pass,
            "eos_pass": self.eos_pass,
            "length_pass": self.length_pass,
            "samples": self.samples,
        }

    @classmethod
    def describe(cls, checks: Mapping[str, Any]) -> str:
        first = checks.get("first_token_pass")
        said = [
            f"first token {'skipped (Offline)' if first is None else _verdict(first)}",
            f"EOS {_verdict(checks.get('eos_pass'))}",
            f"sample length {_verdict(checks.get('length_pass'))}",
        ]
        return f"{', '.join(said)} ({checks.get('samples')} samples logged)"


def _ids(hex_data: str, dtype: str) -> np.ndarray:
    return np.frombuffer(bytes.fromhex(hex_data), dtype=dtype)


def eos_failure(entries: Sequence[dict[str, Any]], dtype: str, eos_token_id: int) -> str | None:
    """run_verification.py's eos_check: walking back from the end (index 0 excluded, as there),
    a second EOS fails."""
    for entry in entries:
        data = _ids(entry["data"], dtype)
        i = data.shape[0] - 1
        n_eos = 0
        while i > 0:
            if data[i] == eos_token_id:
                n_eos += 1
            if n_eos >= 2:
                return f"sample {entry.get('qsl_idx')} ends with more than one EOS token ({eos_token_id})"
            if data[i] != eos_token_id:
                break
            i -= 1
    return None


def first_token_failure(entries: Sequence[dict[str, Any]], dtype: str) -> str | None:
    """run_verification.py's first_token_check: the reported first token(s) against the output's start."""
    for entry in entries:
        data = _ids(entry["data"], dtype)
        first = _ids(entry["token_data"], dtype)
        for position, (t1, t2) in enumerate(zip(data, first, strict=False)):
            if t1 != t2:
                return (
                    f"sample {entry.get('qsl_idx')}: reported first token {int(t2)} differs from output token "
                    f"{position} ({int(t1)})"
                )
    return None


def length_failure(entries: Sequence[dict[str, Any]], dtype: str) -> str | None:
    """run_verification.py's sample_len_check: token_count equals the output's length."""
    for entry in entries:
        data = _ids(entry["data"], dtype)
        if len(data) != int(entry["token_count"]):
            return f"sample {entry.get('qsl_idx')}: token_count {entry['token_count']} but {len(data)} output tokens"
    return None


def _guarded(check: Callable[..., str | None], *args: Any) -> str | None:
    """The official script counts an exception in a check (a missing field, bad hex) as a failure."""
    try:
        return check(*args)
    except (KeyError, ValueError, TypeError) as exc:
        return f"the accuracy log could not be checked ({type(exc).__name__}: {exc})"


def verify_test06(log_path: Path, *, first_token_reported: bool, eos_token_id: int, dtype: str) -> Test06Result:
    entries = _read_entries(log_path, "TEST06")
    failures: dict[str, str | None] = {
        "eos": _guarded(eos_failure, entries, dtype, eos_token_id),
        "first_token": _guarded(first_token_failure, entries, dtype) if first_token_reported else None,
        "length": _guarded(length_failure, entries, dtype),
    }
    return Test06Result(
        first_token_pass=(failures["first_token"] is None) if first_token_reported else None,
        eos_pass=failures["eos"] is None,
        length_pass=failures["length"] is None,
        samples=len(entries),
        failures=[f"{check}: {reason}" for check, reason in failures.items() if reason],
    )


# -- TEST07 ---------------------------------------------------------------------------------------------
@dataclass
class Test07Result(AuditVerdict):
    name: ClassVar[str] = "TEST07"
    verify_file: ClassVar[str] = VERIFY_FILE
    keeps_performance_logs: ClassVar[bool] = True

    output: str
    """What the accuracy script printed (here: the scorer's accuracy.txt), which the file starts with."""
    score: float | None
    """The score read from `output` with the official pattern; None where it could not be read."""
    threshold: float
    samples: int | None = None
    """How many samples the scorer graded, where it said."""
    skipped: int = 0
    """LiveCodeBench samples left out of the score (code grading skipped): the official score has none."""
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.score is not None and self.score >= self.threshold

    def text(self) -> str:
        summary = f"\n{RULE}\nTEST07 Verification Summary\n{RULE}\n"
        if self.score is None:
            return f"{self.output}{summary}Error: Could not parse accuracy score\nTEST FAIL\n"
        return (
            f"{self.output}{summary}"
            f"Accuracy score: {self.score}\n"
            f"Accuracy threshold: {self.threshold}\n"
            f"Accuracy check pass: {self.passed}\n"
            f"{'TEST PASS' if self.passed else 'TEST FAIL'}\n"
        )

    def checks(self) -> dict[str, Any]:
        return {"score": self.score, "threshold": self.threshold, "samples": self.samples, "skipped": self.skipped}

    @classmethod
    def describe(cls, checks: Mapping[str, Any]) -> str:
        score, threshold = checks.get("score"), checks.get("threshold")
        if score is None:
            return f"no accuracy score (threshold {threshold})"
        graded = f" over {checks['samples']} samples" if checks.get("samples") is not None else ""
        if checks.get("skipped"):
            graded += f" ({checks['skipped']} LiveCodeBench samples not graded)"
        below = threshold is not None and score < threshold
        return f"{TEST07_METRIC} {score} {'<' if below else '>='} threshold {threshold}{graded}"


def verify_test07(output: str, *, threshold: float, samples: int | None = None) -> Test07Result:
    """run_verification.py's verdict on the accuracy script's `output`: the first match of the official
    score pattern, as a float, against `threshold`; an output without one (or with one `float` refuses,
    such as `1.2.3`) fails."""
    match = re.search(TEST07_SCORE_PATTERN, output)
    score: float | None = None
    if match:
        try:
            score = float(match.group(1))
        except ValueError:
            score = None
    failures = []
    if score is None:
        failures.append(f"no score in the accuracy output (the pattern {TEST07_SCORE_PATTERN} found no number)")
    elif score < threshold:
        failures.append(f"{TEST07_METRIC} {score} is below the threshold {threshold}")
    return Test07Result(output=output, score=score, threshold=threshold, samples=samples, failures=failures)


def score_test07(
    log_path: Path,
    dataset: Dataset,
    tokenizer_dir: str | Path,
    targets: Targets,
    *,
    threshold: float,
    dtype: str = "int32",
    workers: int | None = None,
    livecodebench: Path | None = None,
    skip_code: bool = False,
    progress: bool = False,
) -> Test07Result:
    """TEST07 as run_verification.py runs it with the benchmark's accuracy script: the log scored by
    `accuracy.scored_log.score_log` (graded as `targets` grade, held to `threshold`), whose accuracy.txt beside
    the log is the script's output. A log the scorer refuses is that output's error, and fails as there."""
    out_dir = Path(log_path).parent
    try:
        report = score_log(
            Path(log_path),
            dataset,
            tokenizer_dir,
            audit_targets(targets, threshold),
            dtype=dtype,
            workers=workers,
            out_dir=out_dir,
            livecodebench=livecodebench,
            skip_code=skip_code,
            progress=progress,
        )
    except HarnessError as exc:
        result = verify_test07(f"Error: {exc}\n", threshold=threshold)
        result.failures = [f"the accuracy log could not be scored: {exc}"]
        return result
    samples = report.metrics.get("num-samples")
    result = verify_test07(
        (out_dir / ACCURACY_TXT).read_text(), threshold=threshold, samples=samples if isinstance(samples, int) else None
    )
    # The official score covers every sample; code grading skipped leaves some out (the run says so).
    result.skipped = int(report.metrics.get("skipped") or 0)
    return result


def audit_targets(targets: Targets, threshold: float, audit: str = "TEST07") -> Targets:
    """The benchmark's targets, graded as its accuracy runs are, but held to the audit's threshold alone: the
    scorer's own PASS/FAIL lines then say what the audit says (no output-length target, no factor)."""
    return replace(
        targets,
        name=f"{targets.name} {audit}",
        reference={TEST07_METRIC: threshold},
        factor=1.0,
        lengths={},
        samples=None,
    )


# -- TEST09 ---------------------------------------------------------------------------------------------
@dataclass
class Test09Result(AuditVerdict):
    name: ClassVar[str] = "TEST09"
    verify_file: ClassVar[str] = VERIFY_OUTPUT_LEN_FILE
    keeps_performance_logs: ClassVar[bool] = True

    lengths: list[int] = field(repr=False)
    """Each entry's output length, in log order (0 for an entry without data, as there)."""
    low: float
    high: float
    failures: list[str] = field(default_factory=list)

    @property
    def samples(self) -> int:
        return len(self.lengths)

    @property
    def mean(self) -> float:
        # As run_verification.py computes it, so that the file's rounding is its rounding.
        return sum(self.lengths) / len(self.lengths) if self.lengths else 0.0

    @property
    def std(self) -> float:
        mean = self.mean
        return (sum((x - mean) ** 2 for x in self.lengths) / len(self.lengths)) ** 0.5 if self.lengths else 0.0

    @property
    def min_pass(self) -> bool:
        return self.mean >= self.low

    @property
    def max_pass(self) -> bool:
        return self.mean <= self.high

    @property
    def passed(self) -> bool:
        return self.min_pass and self.max_pass and bool(self.lengths)

    def text(self) -> str:
        lengths, mean = self.lengths, self.mean
        shortest, longest = (min(lengths), max(lengths)) if lengths else (0, 0)
        std = f"Std deviation: {self.std:.2f}\n" if lengths else ""
        return (
            f"{RULE}\nTEST09: Verify Output Token Length in Performance Mode\n{RULE}\n\n"
            f"Output Token Length Statistics\n{'-' * 40}\n"
            f"Total samples: {len(lengths)}\n"
            f"Mean output tokens: {mean:.2f}\n"
            f"Min output tokens: {shortest}\n"
            f"Max output tokens: {longest}\n"
            f"{std}"
            f"\n{RULE}\nVerification Results\n{RULE}\n"
            f"Mean output tokens: {mean:.2f}\n"
            f"Min threshold: {self.low}\n"
            f"Max threshold: {self.high}\n"
            f"Min check pass: {self.min_pass}\n"
            f"Max check pass: {self.max_pass}\n"
            f"\n{'TEST PASS' if self.passed else 'TEST FAIL'}\n"
        )

    def checks(self) -> dict[str, Any]:
        lengths = self.lengths
        return {
            "samples": len(lengths),
            "mean_output_tokens": self.mean,
            "min_output_tokens": min(lengths) if lengths else 0,
            "max_output_tokens": max(lengths) if lengths else 0,
            "std_output_tokens": self.std,
            "min_threshold": self.low,
            "max_threshold": self.high,
            "min_check_pass": self.min_pass,
            "max_check_pass": self.max_pass,
        }

    @classmethod
    def describe(cls, checks: Mapping[str, Any]) -> str:
        mean, low, high = checks.get("mean_output_tokens"), checks.get("min_threshold"), checks.get("max_threshold")
        within = bool(checks.get("min_check_pass")) and bool(checks.get("max_check_pass"))
        shown = f"{mean:.2f}" if isinstance(mean, int | float) and math.isfinite(mean) else str(mean)
        return (
            f"mean output length {shown} tokens {'within' if within else 'OUTSIDE'} [{low}, {high}] "
            f"({checks.get('samples')} samples logged)"
        )


def output_length(entry: Mapping[str, Any]) -> tuple[int, str | None]:
    """run_verification.py's count of one entry's output tokens: its data's bytes in whole 4-byte tokens (the
    log's token ids are int32); no data, or data that is not hex, counts 0 (with why, for people)."""
    hex_data = entry.get("data", "")
    if not hex_data:
        return 0, None
    try:
        return len(bytes.fromhex(hex_data.strip())) // 4, None
    except (ValueError, TypeError, AttributeError) as exc:
        return 0, f"sample {entry.get('qsl_idx')}: its data could not be decoded ({exc}); counted as 0 tokens"


def verify_test09(log_path: Path, *, low: float, high: float) -> Test09Result:
    """The mean output length over the accuracy log's entries (each entry counts, as there), within
    [`low`, `high`]. An empty log fails (the official script stops without a verdict there)."""
    entries = _read_entries(log_path, "TEST09")
    lengths: list[int] = []
    undecoded: list[str] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise HarnessError(f"TEST09: {log_path} is not a LoadGen accuracy log (an entry is {entry!r}).")
        length, problem = output_length(entry)
        lengths.append(length)
        if problem is not None:
            undecoded.append(problem)
    result = Test09Result(lengths=lengths, low=low, high=high)
    if not lengths:
        result.failures.append(f"the accuracy log {log_path} has no entries: no sample was logged")
    elif not result.min_pass:
        result.failures.append(f"mean output length {result.mean:.2f} tokens is below the minimum {low}")
    elif not result.max_pass:
        result.failures.append(f"mean output length {result.mean:.2f} tokens is above the maximum {high}")
    if result.failures and undecoded:
        # Entries counted as 0 tokens may explain a mean below the minimum: the first few say which.
        more = f" (and {len(undecoded) - MAX_SHOWN} more)" if len(undecoded) > MAX_SHOWN else ""
        result.failures += undecoded[:MAX_SHOWN]
        result.failures[-1] += more
    return result


# -- any audit ------------------------------------------------------------------------------------------
AUDITS: dict[str, type[AuditVerdict]] = {cls.name: cls for cls in (Test06Result, Test07Result, Test09Result)}
"""Each audit built in, by name: what a record's verdict is read as."""


def verdict_class(test: str) -> type[AuditVerdict]:
    if test not in AUDITS:
        raise HarnessError(f"audit {test!r} is not built into this harness: it knows {', '.join(AUDITS)}.")
    return AUDITS[test]


def verify_file(test: str) -> str:
    """The verify file audit `test` writes (verify_accuracy.txt, or TEST09's verify_output_len.txt)."""
    return verdict_class(test).verify_file


def describe(test: str, checks: Mapping[str, Any]) -> str:
    """One line for people on a recorded verdict's checks (an audit this harness does not know: as they are)."""
    if test not in AUDITS:
        return ", ".join(f"{key} {value}" for key, value in checks.items())
    return AUDITS[test].describe(checks)


def write_verification(result: AuditVerdict, out_dir: Path) -> Path:
    return result.write(out_dir)
