"""The audits built in (TEST06, TEST07, TEST09): the official audit settings, the official checks and verify
files byte for byte, outputs built to pass and to fail each one, and where the submission tree puts them."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from rich.console import Console

from accuracy.compliance import (
    VERIFY_FILE,
    VERIFY_OUTPUT_LEN_FILE,
    AuditVerdict,
    score_test07,
    verify_file,
    verify_test06,
    verify_test07,
    verify_test09,
)
from harness.single.config import build_config
from harness.single.record import read_run_record
from harness.single.runner import exit_code, run
from harness.single.settings import build_settings
from harness.single.summary import print_summary
from harness.submission.tree import build_submission
from mlperf_llm_sut.benchmarks import get_benchmark
from mlperf_llm_sut.common.dataset import load_dataset, load_tokenizer
from mlperf_llm_sut.common.embedded import MODEL_DIR
from mlperf_llm_sut.common.errors import HarnessError
from tests.conftest import run_cli
from tests.scripted_replica import ScriptedReplica

EOS = 2


def _entry(index: int, tokens: list[int], *, first: int | None = None, count: int | None = None) -> dict:
    data = np.asarray(tokens, dtype=np.int32)
    entry = {"seq_id": index, "qsl_idx": index, "data": data.tobytes().hex().upper()}
    if first is not None:
        entry["token_data"] = np.asarray([first], dtype=np.int32).tobytes().hex().upper()
    entry["token_count"] = len(tokens) if count is None else count
    return entry


def _verify(tmp_path, entries, *, streams=True):
    path = tmp_path / "mlperf_log_accuracy.json"
    path.write_text(json.dumps(entries))
    return verify_test06(path, first_token_reported=streams, eos_token_id=EOS, dtype="int32")


def test_good_outputs_pass_with_the_official_text(tmp_path):
    result = _verify(tmp_path, [_entry(0, [5, 6, EOS], first=5), _entry(1, [7], first=7)])
    assert result.passed
    assert result.text() == (
        "First token check pass: True\nEOS check pass: True\nSample length check pass: True\n"
        "TEST06 verification complete\n"
    )


def test_offline_skips_the_first_token_check(tmp_path):
    result = _verify(tmp_path, [_entry(0, [5, 6])], streams=False)
    assert result.passed and result.text().startswith("First token check pass: Skipped\n")


def test_a_wrong_first_token_fails_and_names_the_sample(tmp_path):
    result = _verify(tmp_path, [_entry(0, [5, 6], first=5), _entry(3, [8, 9], first=4)])
    assert not result.passed and result.first_token_pass is False
    assert "First token check pass: False" in result.text() and result.text().endswith("verification failed\n")
    assert any("sample 3" in failure for failure in result.failures)


def test_two_trailing_eos_tokens_fail_one_passes(tmp_path):
    assert _verify(tmp_path, [_entry(0, [5, EOS], first=5)]).eos_pass
    result = _verify(tmp_path, [_entry(0, [5, EOS], first=5), _entry(1, [5, EOS, EOS], first=5)])
    assert result.eos_pass is False and "EOS check pass: False" in result.text()
    # The official loop never looks at index 0, so [EOS, EOS] has only one EOS counted: it passes there too.
    assert _verify(tmp_path, [_entry(0, [EOS, EOS], first=EOS)]).eos_pass


def test_a_token_count_unlike_the_output_length_fails(tmp_path):
    result = _verify(tmp_path, [_entry(0, [5, 6, 7], first=5, count=2)])
    assert result.length_pass is False and "Sample length check pass: False" in result.text()


def test_a_missing_first_token_field_fails_as_the_official_script_does(tmp_path):
    result = _verify(tmp_path, [_entry(0, [5, 6])])
    assert result.first_token_pass is False and not result.passed


@pytest.mark.parametrize("scenario", ["Offline", "Server", "Interactive"])
def test_a_test06_run_applies_the_official_audit_and_verifies_its_outputs(tmp_path, scenario):
    config = build_config(
        scenario=scenario,
        compliance="TEST06",
        warmup_samples=0,
        output_dir=tmp_path,
        target_qps=300.0 if scenario != "Offline" else None,
    )
    report = run(config, console=Console(file=io.StringIO()), replica_factory=ScriptedReplica.factory())
    run_dir = report.run_dir
    assert run_dir.name.startswith(f"llama2-70b-99.9-{scenario}-TEST06-")
    assert (run_dir / "audit.config").read_text() == (
        "*.*.mode = 2\n*.*.accuracy_log_rng_seed = 720381539243781796\n*.*.accuracy_log_sampling_target = 100\n"
        "*.*.min_query_count = 100\n*.*.min_duration = 0\n*.*.sample_concatenate_permutation = 0\n"
    )
    effective = report.record.loadgen.effective
    assert effective["accuracy_log_sampling_target"] == 100 and effective["sample_concatenate_permutation"] is False
    assert any("Found Audit Config file" in w for w in report.record.loadgen.warnings)
    compliance = report.record.compliance
    assert compliance is not None
    assert compliance.passed and compliance.checks["samples"] >= 100
    assert compliance.checks["first_token_pass"] is (None if scenario == "Offline" else True)
    assert (run_dir / "verify_accuracy.txt").read_text().endswith("TEST06 verification complete\n")
    samples = report.record.samples
    assert samples.issued == samples.completed and samples.unanswered == 0
    assert report.result.passed


def test_a_test06_run_whose_outputs_break_a_check_exits_1(tmp_path):
    class TwoEos(ScriptedReplica):
        def _serve(self) -> None:
            while (request := self._inbox.get()) is not None:
                self._sink.completed([(request, [11, 12, EOS, EOS])])

    config = build_config(compliance="TEST06", warmup_samples=0, output_dir=tmp_path)
    report = run(config, console=Console(file=io.StringIO()), replica_factory=TwoEos.factory())
    assert report.record.compliance.checks["eos_pass"] is False and not report.result.passed
    assert "EOS check pass: False" in (report.run_dir / "verify_accuracy.txt").read_text()


def test_compliance_with_accuracy_mode_is_one_error():
    code, _, err = run_cli("--compliance", "TEST06", "--mode", "accuracy", timeout=120)
    assert code == 2 and "sets its own mode" in err and "Traceback" not in err


# -- TEST09 -------------------------------------------------------------------------------------------------
# compliance/TEST09/gpt-oss-120b/audit.config's thresholds, and that file's settings line for line (comments left
# out): what a TEST09 run applies.
LOW, HIGH = 1150.38, 1406.02
OFFICIAL_TEST09 = (
    "*.*.mode = 2\n*.*.accuracy_log_rng_seed = 720381539243781796\n*.*.accuracy_log_sampling_target = 10000\n"
    "*.*.min_query_count = 6396\n*.*.min_duration = 0\n*.*.performance_issue_unique = 1\n"
    "*.*.sample_concatenate_permutation = 0\n*.*.test09_min_output_tokens = 1150.38\n"
    "*.*.test09_max_output_tokens = 1406.02\n"
)
# compliance/TEST07/gpt-oss-120b/audit.config, likewise.
OFFICIAL_TEST07 = (
    "*.*.mode = 2\n*.*.accuracy_log_rng_seed = 720381539243781796\n*.*.accuracy_log_sampling_target = 990\n"
    "*.*.min_query_count = 990\n*.*.min_duration = 0\n*.*.performance_issue_unique = 1\n"
    "*.*.sample_concatenate_permutation = 0\n*.*.test07_accuracy_threshold = 60.698\n"
)
GPT_OSS = get_benchmark("gpt-oss-120b")


def official_test09_text(lengths: list[int], min_output_tokens: float, max_output_tokens: float) -> str:
    """verify_output_len.txt as compliance/TEST09/run_verification.py writes it: its statements, transcribed."""
    if lengths:
        mean_length = sum(lengths) / len(lengths)
        min_length, max_length = min(lengths), max(lengths)
        std_dev = (sum((x - mean_length) ** 2 for x in lengths) / len(lengths)) ** 0.5
    else:
        mean_length, min_length, max_length = 0.0, 0, 0
    min_check_pass = mean_length >= min_output_tokens
    max_check_pass = mean_length <= max_output_tokens
    overall_pass = min_check_pass and max_check_pass
    f = io.StringIO()
    f.write("=" * 80 + "\n")
    f.write("TEST09: Verify Output Token Length in Performance Mode\n")
    f.write("=" * 80 + "\n\n")
    f.write("Output Token Length Statistics\n")
    f.write("-" * 40 + "\n")
    f.write(f"Total samples: {len(lengths)}\n")
    f.write(f"Mean output tokens: {mean_length:.2f}\n")
    f.write(f"Min output tokens: {min_length}\n")
    f.write(f"Max output tokens: {max_length}\n")
    if lengths:
        f.write(f"Std deviation: {std_dev:.2f}\n")
    f.write("\n" + "=" * 80 + "\n")
    f.write("Verification Results\n")
    f.write("=" * 80 + "\n")
    f.write(f"Mean output tokens: {mean_length:.2f}\n")
    f.write(f"Min threshold: {min_output_tokens}\n")
    f.write(f"Max threshold: {max_output_tokens}\n")
    f.write(f"Min check pass: {min_check_pass}\n")
    f.write(f"Max check pass: {max_check_pass}\n")
    f.write(f"\n{'TEST PASS' if overall_pass else 'TEST FAIL'}\n")
    return f.getvalue()


def _log(tmp_path: Path, entries: list[dict]) -> Path:
    path = tmp_path / "mlperf_log_accuracy.json"
    path.write_text(json.dumps(entries))
    return path


def _of_lengths(lengths: list[int]) -> list[dict]:
    return [_entry(i, [7] * n) for i, n in enumerate(lengths)]


@pytest.mark.parametrize(
    ("lengths", "passed", "failure"),
    [
        ([1150, 1151, 1200], True, None),
        ([1150, 1150, 1151], False, "below the minimum 1150.38"),  # mean 1150.33
        ([1406, 1406, 1407], False, "above the maximum 1406.02"),  # mean 1406.33
    ],
)
def test_test09_passes_within_its_bounds_and_fails_outside_each_with_the_official_text(
    tmp_path, lengths, passed, failure
):
    result = verify_test09(_log(tmp_path, _of_lengths(lengths)), low=LOW, high=HIGH)
    assert result.passed is passed and result.lengths == lengths
    assert result.text() == official_test09_text(lengths, LOW, HIGH)
    assert ("TEST PASS" if passed else "TEST FAIL") in result.text()
    assert "Min threshold: 1150.38\nMax threshold: 1406.02\n" in result.text()
    assert (failure is None and not result.failures) or failure in result.failures[0]
    result.write(tmp_path)
    assert (tmp_path / VERIFY_OUTPUT_LEN_FILE).read_text() == result.text()


def test_test09_bounds_are_inclusive_and_printed_as_python_prints_the_float(tmp_path):
    for lengths in ([2, 2], [4, 4], [2, 6]):
        result = verify_test09(_log(tmp_path, _of_lengths(lengths)), low=2.0, high=4.0)
        assert result.passed and result.text() == official_test09_text(lengths, 2.0, 4.0)
        assert "Min threshold: 2.0\nMax threshold: 4.0\n" in result.text()


def test_test09_counts_entries_without_data_or_with_undecodable_data_as_empty(tmp_path):
    """As the official script: no data is 0 tokens, data that is not hex is 0 tokens, and bytes past the last
    whole 4-byte token are not one."""
    entries = [
        *_of_lengths([10, 20]),
        {"qsl_idx": 2, "data": ""},
        {"qsl_idx": 3},
        {"qsl_idx": 4, "data": "ZZ"},
        {"qsl_idx": 5, "data": "0A000000FF"},
    ]
    result = verify_test09(_log(tmp_path, entries), low=5.0, high=6.0)
    assert result.lengths == [10, 20, 0, 0, 0, 1]
    assert result.passed and result.text() == official_test09_text(result.lengths, 5.0, 6.0)
    failing = verify_test09(_log(tmp_path, entries), low=100.0, high=200.0)
    assert not failing.passed and any("sample 4" in line and "0 tokens" in line for line in failing.failures)


def test_an_empty_test09_log_fails_without_a_std_line(tmp_path):
    result = verify_test09(_log(tmp_path, []), low=LOW, high=HIGH)
    assert not result.passed and "no entries" in result.failures[0]
    assert result.text() == official_test09_text([], LOW, HIGH) and "Std deviation" not in result.text()


def test_a_log_that_is_not_a_loadgen_log_is_one_error(tmp_path):
    path = tmp_path / "mlperf_log_accuracy.json"
    path.write_text("{")
    with pytest.raises(HarnessError, match="TEST09: cannot read the accuracy log"):
        verify_test09(path, low=LOW, high=HIGH)


# -- TEST07 -------------------------------------------------------------------------------------------------
def official_test07_summary(score: float | None, threshold: float) -> str:
    """What compliance/TEST07/run_verification.py appends to the accuracy script's output: its statements."""
    f = io.StringIO()
    f.write("\n" + "=" * 80 + "\n")
    f.write("TEST07 Verification Summary\n")
    f.write("=" * 80 + "\n")
    if score is not None:
        accuracy_pass = score >= threshold
        f.write(f"Accuracy score: {score}\n")
        f.write(f"Accuracy threshold: {threshold}\n")
        f.write(f"Accuracy check pass: {accuracy_pass}\n")
        f.write("TEST PASS\n" if accuracy_pass else "TEST FAIL\n")
    else:
        f.write("Error: Could not parse accuracy score\n")
        f.write("TEST FAIL\n")
    return f.getvalue()


OUTPUT = "\nResults\n\n{'exact_match': %s, 'tokens_per_sample': 1278.2, 'num-samples': 990}\n\nhash=ab12\n"


@pytest.mark.parametrize(("score", "passed"), [("62.15", True), ("60.698", True), ("60.697", False), ("12", False)])
def test_test07_reads_the_score_with_the_official_pattern_and_holds_it_to_the_threshold(score, passed):
    output = OUTPUT % score
    result = verify_test07(output, threshold=60.698)
    assert result.score == float(score) and result.passed is passed
    assert result.text() == output + official_test07_summary(float(score), 60.698)
    assert result.text().endswith("TEST PASS\n" if passed else "TEST FAIL\n")
    assert bool(result.failures) is not passed
    assert result.verify_file == VERIFY_FILE == verify_file("TEST07")


@pytest.mark.parametrize("output", ["no score here\n", "{'rouge1': 44.1}\n", "{'exact_match': 1.2.3}\n", ""])
def test_test07_without_a_score_it_can_read_fails_as_the_official_script_does(output):
    result = verify_test07(output, threshold=60.698)
    assert result.score is None and not result.passed
    assert result.text() == output + official_test07_summary(None, 60.698)
    assert "no score" in result.failures[0]


def _gpqa(tmp_path: Path, count: int, *, answers: bool = True) -> Path:
    """A processed GPQA file as MLCommons ships TEST07's (`input_tokens`, `ground_truth`, `dataset`)."""
    path = tmp_path / "gpqa.jsonl"
    rows = [
        {"input_tokens": [1, 200 + i, 300 + i], "dataset": "gpqa_diamond"} | ({"ground_truth": "A"} if answers else {})
        for i in range(count)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _answer_ids(text: str) -> list[int]:
    return list(load_tokenizer(MODEL_DIR, use_fast=False).encode(text, add_special_tokens=False))


def test_test07_scores_the_log_with_the_benchmarks_own_grading(tmp_path):
    """Three of four GPQA answers right: 75.0, above 60.698, and the verify file is the scorer's report (its
    `'exact_match': 75.0` line) followed by the official summary."""
    dataset = load_dataset(_gpqa(tmp_path, 4), prompt_format=GPT_OSS.prompt_format)
    right, wrong = _answer_ids("Answer: A"), _answer_ids("Answer: B")
    log = _log(tmp_path, [_entry(0, right), _entry(1, wrong), _entry(2, right), _entry(3, right)])
    result = score_test07(log, dataset, MODEL_DIR, GPT_OSS.accuracy, threshold=60.698)
    assert result.passed and result.score == 75.0 and result.samples == 4
    report = (tmp_path / "accuracy.txt").read_text()
    assert "'exact_match': 75.0" in report and "targets: gpt-oss-120b TEST07" in report
    assert result.text() == report + official_test07_summary(75.0, 60.698)
    strict = score_test07(log, dataset, MODEL_DIR, GPT_OSS.accuracy, threshold=80.0)
    assert not strict.passed and strict.text().endswith("Accuracy check pass: False\nTEST FAIL\n")


def test_a_log_the_scorer_refuses_fails_test07_and_says_why(tmp_path):
    dataset = load_dataset(_gpqa(tmp_path, 2), prompt_format=GPT_OSS.prompt_format)
    log = _log(tmp_path, [_entry(7, _answer_ids("Answer: A"))])  # a sample the data set does not have
    result = score_test07(log, dataset, MODEL_DIR, GPT_OSS.accuracy, threshold=60.698)
    assert not result.passed and result.score is None
    assert result.text().startswith("Error: ") and result.text().endswith("Could not parse accuracy score\nTEST FAIL\n")
    assert "could not be scored" in result.failures[0]


# -- the audits in runs -------------------------------------------------------------------------------------
def test_the_audit_config_a_run_applies_is_the_official_files_settings(tmp_path):
    for name, official, size in (("TEST07", OFFICIAL_TEST07, 990), ("TEST09", OFFICIAL_TEST09, 6396)):
        config = build_config(benchmark="gpt-oss-120b", compliance=name, dataset=_gpqa(tmp_path, 3))
        built, _ = build_settings(config.loadgen, size)
        assert built.audit_config() == official
        # run_verification.py reads the thresholds back from those lines: the registry's numbers are theirs.
        test = GPT_OSS.compliance_test(name)
        read = [float(value) for key, value in re.findall(r"\*\.\*\.(test0\d_\w+) = (.+)", official)]
        assert read == ([test.accuracy_threshold] if name == "TEST07" else list(test.output_tokens))


class Answers(ScriptedReplica):
    """Answers every sample with the same tokens (`ids`)."""

    ids: ClassVar[tuple[int, ...]] = ()

    def _serve(self) -> None:
        while (request := self._inbox.get()) is not None:
            if request.stream:
                self._sink.first_token(request, self.ids[0])
            self._sink.completed([(request, list(self.ids))])


def _audit_run(tmp_path: Path, name: str, ids: list[int], *, scenario: str = "Offline", dataset: Path | None = None):
    answers = type("Fixed", (Answers,), {"ids": tuple(ids)})
    config = build_config(
        benchmark="gpt-oss-120b",
        scenario=scenario,
        compliance=name,
        dataset=dataset or _gpqa(tmp_path, 12),
        output_dir=tmp_path / "runs",
        warmup_samples=0,
        target_qps=200.0 if scenario != "Offline" else None,
    )
    return run(config, console=Console(file=io.StringIO()), replica_factory=answers.factory())


@pytest.mark.parametrize(
    ("scenario", "length", "passed"), [("Offline", 1278, True), ("Offline", 40, False), ("Server", 1500, False)]
)
def test_a_test09_run_applies_the_official_audit_and_is_judged_by_its_mean_output_length(
    tmp_path, scenario, length, passed
):
    report = _audit_run(tmp_path, "TEST09", [5] * length, scenario=scenario)
    run_dir = report.run_dir
    assert run_dir.name.startswith(f"gpt-oss-120b-{scenario}-TEST09-")
    assert (run_dir / "audit.config").read_text() == OFFICIAL_TEST09
    assert report.record.loadgen.effective["accuracy_log_sampling_target"] == 10000
    # gpt-oss-120b completes a streamed answer with the tokens after its first: those are what the log holds.
    logged = length - 1 if scenario == "Server" else length
    compliance = report.record.compliance
    assert compliance is not None and compliance.test == "TEST09" and compliance.passed is passed
    assert compliance.checks["samples"] == 12 and compliance.checks["mean_output_tokens"] == logged
    verify = (run_dir / VERIFY_OUTPUT_LEN_FILE).read_text()
    assert verify == official_test09_text([logged] * 12, LOW, HIGH)
    assert exit_code(report) == (0 if passed else 1) and report.result.passed is passed
    assert report.record.verdict == f"TEST09 {'PASS' if passed else 'FAIL'}"
    assert read_run_record(run_dir).compliance == compliance
    console = Console(file=io.StringIO(), width=200)
    print_summary(report, console)
    shown = console.file.getvalue()
    assert f"mean output length {logged:.2f} tokens {'within' if passed else 'OUTSIDE'} [1150.38, 1406.02]" in shown


@pytest.mark.parametrize(("answer", "passed"), [("Answer: A", True), ("Answer: C", False)])
def test_a_test07_run_scores_its_outputs_against_the_data_set_and_exits_by_the_verdict(tmp_path, answer, passed):
    report = _audit_run(tmp_path, "TEST07", _answer_ids(answer))
    run_dir = report.run_dir
    assert (run_dir / "audit.config").read_text() == OFFICIAL_TEST07
    compliance = report.record.compliance
    assert compliance is not None and compliance.test == "TEST07" and compliance.passed is passed
    assert compliance.checks == {"score": 100.0 if passed else 0.0, "threshold": 60.698, "samples": 12, "skipped": 0}
    verify = (run_dir / VERIFY_FILE).read_text()
    assert verify.startswith((run_dir / "accuracy.txt").read_text())
    assert verify.endswith(official_test07_summary(100.0 if passed else 0.0, 60.698))
    assert exit_code(report) == (0 if passed else 1)
    assert report.record.accuracy is None  # the audit's verdict, not an accuracy run's
    assert read_run_record(run_dir).compliance == compliance


def test_a_test07_run_on_a_data_set_without_answers_is_one_error_before_it_starts(tmp_path):
    with pytest.raises(HarnessError, match="TEST07 scores the run's outputs against the data set's answers"):
        _audit_run(tmp_path, "TEST07", [5], dataset=_gpqa(tmp_path, 3, answers=False))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_test07_run_asking_code_questions_needs_their_problems_before_it_starts(tmp_path):
    """As an accuracy run of the mix: LiveCodeBench answers are graded by running them, against problems that
    must be at hand (--livecodebench) unless --skip-code leaves them out."""
    path = _gpqa(tmp_path, 3)
    path.write_text(
        path.read_text()
        + json.dumps({"input_tokens": [1, 2, 3], "dataset": "livecodebench", "ground_truth": "abc123"})
        + "\n"
    )
    with pytest.raises(HarnessError, match="LiveCodeBench problems are asked"):
        _audit_run(tmp_path, "TEST07", [5], dataset=path)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_each_verdict_is_an_audit_verdict_with_its_own_verify_file(tmp_path):
    log = _log(tmp_path, _of_lengths([3]))
    verdicts: list[AuditVerdict] = [
        verify_test06(log, first_token_reported=False, eos_token_id=EOS, dtype="int32"),
        verify_test07(OUTPUT % "70", threshold=60.698),
        verify_test09(log, low=1.0, high=5.0),
    ]
    assert [(v.name, v.verify_file, v.passed) for v in verdicts] == [
        ("TEST06", VERIFY_FILE, True),
        ("TEST07", VERIFY_FILE, True),
        ("TEST09", VERIFY_OUTPUT_LEN_FILE, True),
    ]
    for verdict in verdicts:
        assert verdict.write(tmp_path).read_text() == verdict.text()
        assert verdict.summary() and isinstance(verdict.checks(), dict)


def test_the_submission_tree_puts_test07_and_test09_where_the_checker_looks(tmp_path):
    """results/<system>/<benchmark>/<scenario>/TEST07/verify_accuracy.txt and TEST09/verify_output_len.txt
    (constants.py TEST07_ACC_PATH, TEST09_ACC_PATH), with the accuracy log and the performance logs as their
    run_verification.py copies them."""
    right = _answer_ids("Answer: A")
    runs = [
        _audit_run(tmp_path, "TEST07", right).run_dir,
        _audit_run(tmp_path, "TEST09", [5] * 1278).run_dir,
    ]
    for mode in ("performance", "accuracy"):
        config = build_config(
            benchmark="gpt-oss-120b",
            mode=mode,
            dataset=_gpqa(tmp_path, 12),
            output_dir=tmp_path / "runs",
            warmup_samples=0,
            accuracy_targets="gpt-oss-120b",
        )
        answers = type("Fixed", (Answers,), {"ids": tuple(right)})
        runs.append(run(config, console=Console(file=io.StringIO()), replica_factory=answers.factory()).run_dir)
    submission = build_submission(
        runs, tmp_path / "tree", submitter="Acme", system_name="sys", allow_noncompliant=True, warn=lambda line: None
    )
    (out,) = submission.result_dirs
    for test, verify in (("TEST07", VERIFY_FILE), ("TEST09", VERIFY_OUTPUT_LEN_FILE)):
        assert "TEST PASS" in (out / test / verify).read_text()
        assert (out / test / "accuracy" / "mlperf_log_accuracy.json").is_file()
        for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt"):
            assert (out / test / "performance" / "run_1" / name).is_file()
    assert not any("TEST07" in problem or "TEST09" in problem for problem in submission.problems)


def test_a_benchmark_without_the_audit_is_one_error_naming_its_own():
    code, _, err = run_cli("--compliance", "TEST07", timeout=120)
    assert code == 2 and "llama2-70b-99.9 has no such audit (its audits: TEST06)" in err and "Traceback" not in err
    code, _, err = run_cli("--benchmark", "gpt-oss-120b", "--compliance", "TEST06", timeout=120)
    assert code == 2 and "gpt-oss-120b has no such audit (its audits: TEST07, TEST09)" in err
    # What no benchmark has is not a choice at all.
    code, _, err = run_cli("--benchmark", "gpt-oss-120b", "--compliance", "TEST05", timeout=120)
    assert code == 2 and "invalid choice: 'TEST05'" in err and "'TEST06', 'TEST07', 'TEST09'" in err
