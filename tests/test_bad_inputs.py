"""Every command, a table of bad inputs: each is exit 2 and one `error:` line, before anything expensive starts;
a bug is exit 3 and one line naming the saved traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from accuracy.cli import main as accuracy_main
from common import embedded
from harness.cli import main as harness_main
from harness.dataset import main as dataset_main
from harness.submission import main as submission_main


def _errors(capfd) -> tuple[list[str], str]:
    out, err = capfd.readouterr()
    text = out + err
    return [line for line in text.splitlines() if "error:" in line], text


def _assert_one_error(code: int, capfd, needle: str) -> None:
    errors, text = _errors(capfd)
    assert code == 2, text
    assert "Traceback" not in text
    assert len(errors) == 1, text
    assert needle in errors[0], errors[0]


@pytest.fixture
def no_tokenizer(tmp_path) -> Path:
    model = tmp_path / "model-without-tokenizer"
    model.mkdir()
    shutil.copyfile(embedded.MODEL_DIR / "config.json", model / "config.json")
    return model


HARNESS_CASES = [
    (["--min-duration", "-1"], "--min-duration must be at least 0"),
    (["--min-query-count", "-3"], "--min-query-count must be at least 1"),
    (["--total-sample-count", "0"], "--total-sample-count must be at least 1"),
    (["--warmup-samples", "-1"], "--warmup-samples must be at least 0"),
    (["--replicas", "2", "--tensor-parallel-size", "0"], "--tensor-parallel-size must be at least 1"),
    (["--scenario", "Server", "--target-qps", "-5"], "--target-qps must be above 0"),
    (["--target-qps", "0"], "--target-qps must be above 0"),
    (["--temperature", "-1"], "--temperature must be 0 (greedy) or more"),
    (["--top-p", "0"], "--top-p must be above 0"),
    (["--top-k", "-2"], "--top-k must be 0 (off) or more"),
    (["--min-new-tokens", "5000"], "--min-new-tokens must be between 0 and --max-new-tokens"),
    (["--max-new-tokens", "0"], "--max-new-tokens must be at least 1"),
    (["--gpu-memory-utilization", "1.5"], "--gpu-memory-utilization is a share of memory"),
    (["--max-num-seqs", "0"], "--max-num-seqs must be at least 1"),
    (["--benchmark", "bogus"], "not an MLPerf benchmark"),
    (["--scenario", "Server", "--benchmark", "llama2-70b-interactive-99.9"], "not a scenario of"),
    (["--compliance", "TEST06", "--mode", "accuracy"], "sets its own mode"),
]


@pytest.mark.parametrize("argv, needle", HARNESS_CASES, ids=[" ".join(a) for a, _ in HARNESS_CASES])
def test_harness_bad_input_is_one_error_line(argv, needle, capfd, tmp_path):
    _assert_one_error(harness_main([*argv, "--output-dir", str(tmp_path)]), capfd, needle)
    assert not any(tmp_path.iterdir()), "nothing may be written for bad input"


def test_a_model_folder_without_a_tokenizer_is_refused_before_the_engine(no_tokenizer, capfd, tmp_path):
    code = harness_main(["--model", str(no_tokenizer), "--output-dir", str(tmp_path)])
    _assert_one_error(code, capfd, "has no tokenizer")


def _accuracy_log(tmp_path, content) -> Path:
    path = tmp_path / "mlperf_log_accuracy.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


ACCURACY_CASES = [
    ({"qsl_idx": 0, "data": "00"}, "holds a JSON dict, not LoadGen's list"),
    ([{"data": "01000000"}], "entry 0 is not a LoadGen entry"),
    ([{"qsl_idx": 0, "data": "zz"}], "entry 0 is not a LoadGen entry"),
    ("[{", "is not valid JSON"),
]


@pytest.mark.parametrize("content, needle", ACCURACY_CASES)
def test_a_malformed_accuracy_log_is_one_error_line(content, needle, capfd, tmp_path):
    log = _accuracy_log(tmp_path, content)
    argv = ["--accuracy-log", str(log), "--dataset", str(embedded.DATASET), "--model", str(embedded.MODEL_DIR)]
    _assert_one_error(accuracy_main(argv), capfd, needle)


def test_an_accuracy_log_that_is_a_folder_is_one_error_line(capfd, tmp_path):
    argv = ["--accuracy-log", str(tmp_path), "--dataset", str(embedded.DATASET), "--model", str(embedded.MODEL_DIR)]
    _assert_one_error(accuracy_main(argv), capfd, "is a directory")


def test_accuracy_refuses_a_float_dtype(capfd, tmp_path):
    log = _accuracy_log(tmp_path, [])
    with pytest.raises(SystemExit) as exit_:
        accuracy_main(["--accuracy-log", str(log), "--dataset", "x", "--model", "y", "--dtype", "float32"])
    errors, text = _errors(capfd)
    assert exit_.value.code == 2 and len(errors) == 1 and "invalid choice: 'float32'" in errors[0], text


def test_convert_to_a_path_under_a_file_is_one_error_line(capfd, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code = dataset_main(["convert", str(embedded.DATASET), str(blocker / "out.parquet")])
    _assert_one_error(code, capfd, "cannot write")


def test_submission_of_a_folder_that_is_no_run_is_one_error_line(capfd, tmp_path):
    code = submission_main([str(tmp_path), "--output", str(tmp_path / "tree"), "--submitter", "Acme"])
    _assert_one_error(code, capfd, "is not a run directory")


def test_submission_submitter_must_name_a_folder(capfd, tmp_path):
    code = submission_main([str(tmp_path), "--output", str(tmp_path / "tree"), "--submitter", "../Acme"])
    _assert_one_error(code, capfd, "--submitter '../Acme'")


def test_a_bug_is_exit_3_with_one_line_naming_the_saved_traceback(capfd, tmp_path, monkeypatch):
    import harness.runner

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a planted bug")

    monkeypatch.setattr(harness.runner, "write_audit_config", broken)
    code = harness_main(["--output-dir", str(tmp_path)])
    errors, text = _errors(capfd)
    assert code == 3, text
    assert len(errors) == 1 and "internal error (ZeroDivisionError: a planted bug)" in errors[0]
    (run_dir,) = tmp_path.iterdir()
    saved = run_dir / "traceback.txt"
    assert str(saved) in errors[0].replace("\n", "")
    assert "ZeroDivisionError: a planted bug" in saved.read_text()
