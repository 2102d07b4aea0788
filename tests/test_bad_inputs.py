"""Every command, a table of bad inputs: each is exit 2 and one `error:` line, before anything expensive starts;
a bug is exit 3 and one line naming the saved traceback."""

from __future__ import annotations

import io
import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from accuracy.cli import main as accuracy_main
from harness.cli import main as harness_main
from harness.dataset import main as dataset_main
from harness.research.multi import _outcome
from harness.research.sweep import load_plan, run_sweep
from harness.single.config import build_config
from harness.single.runner import run
from harness.submission import system_info
from harness.submission.rerun import rerun
from harness.submission.tree import main as submission_main
from mlperf_llm_sut.common import embedded
from mlperf_llm_sut.common.errors import HarnessError
from tests.scripted_replica import ScriptedReplica


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
    (["--stall-timeout", "0"], "--stall-timeout must be above 0"),
    (["--start-timeout", "-5"], "--start-timeout must be above 0"),
    (["--sut", "remote", "--endpoint", "http://127.0.0.1:9", "--start-timeout", "5"], "--start-timeout configure"),
    (
        ["--sut", "remote", "--endpoint", "http://127.0.0.1:9", "--client-processes", "2"],
        "--client-processes 2: give 0 (clients in the harness's own process) to 1 (one per endpoint)",
    ),
    (["--sut", "remote", "--endpoint", "http://127.0.0.1:9", "--client-processes", "-1"], "--client-processes -1"),
]


@pytest.mark.parametrize("argv, needle", HARNESS_CASES, ids=[" ".join(a) for a, _ in HARNESS_CASES])
def test_harness_bad_input_is_one_error_line(argv, needle, capfd, tmp_path):
    _assert_one_error(harness_main([*argv, "--output-dir", str(tmp_path)]), capfd, needle)
    assert not any(tmp_path.iterdir()), "nothing may be written for bad input"


NOT_TEXT = b"\xff\xfe\x00secret"
FILE_CASES = [
    (["sweep", "FILE"], "sweep plan FILE is not UTF-8 text"),
    (["multi", "FILE"], "multi plan FILE is not UTF-8 text"),
    (["--sut", "remote", "--endpoints-file", "FILE"], "--endpoints-file FILE is not UTF-8 text"),
    (["--sut", "remote", "--endpoint", "http://127.0.0.1:9", "--token-file", "FILE"], "--token-file FILE is not text"),
]


@pytest.mark.parametrize("argv, needle", FILE_CASES, ids=[a[-2] for a, _ in FILE_CASES])
def test_an_input_file_that_is_not_text_is_one_error_line(argv, needle, capfd, tmp_path):
    binary = tmp_path / "input.yaml"
    binary.write_bytes(NOT_TEXT)
    code = harness_main([*(str(binary) if arg == "FILE" else arg for arg in argv), "--output-dir", str(tmp_path)])
    errors, text = _errors(capfd)
    assert code == 2 and "Traceback" not in text and "secret" not in text, text
    assert len(errors) == 1 and needle.replace("FILE", str(binary)) in errors[0], text


PLAN_CASES = [
    ("sweep", "base:\n  replicas: [2]\n", "plan.yaml:2: replicas = [2]: give a whole number."),
    ("sweep", "axes:\n  engine.max_num_seqs: []\n", "plan.yaml:2: axis 'engine.max_num_seqs' needs a list of one or"),
    ("sweep", "base: [replicas]\n", "plan.yaml:1: base = ['replicas']: give a mapping of settings."),
    ("sweep", "- base\n", "plan.yaml is not a mapping of name, output_dir, scenarios, accuracy, base, axes."),
    ("multi", "runs:\n  a: {cpu_bind: '0'}\n  b: {}\n", "plan.yaml:2: run 'a': cpu_bind = '0': give a list with one"),
    ("multi", "runs: [a, b]\n", "plan.yaml:1: runs = ['a', 'b']: give a mapping of two or more named runs."),
    ("multi", "runs:\n  a: {}\n  b:\n    stall_timeout: soon\n", "plan.yaml:4: run 'b': stall_timeout = 'soon'"),
]


@pytest.mark.parametrize("command, text, needle", PLAN_CASES, ids=[f"{c} {t!r}" for c, t, _ in PLAN_CASES])
def test_a_plan_that_breaks_its_schema_is_one_error_line_with_its_line(command, text, needle, capfd, tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(text)
    _assert_one_error(harness_main([command, str(plan), "--output-dir", str(tmp_path / "out")]), capfd, needle)
    assert not (tmp_path / "out").exists(), "nothing may be written for a bad plan"


def test_a_model_folder_without_a_tokenizer_is_refused_before_the_engine(no_tokenizer, capfd, tmp_path):
    code = harness_main(["--model", str(no_tokenizer), "--output-dir", str(tmp_path)])
    _assert_one_error(code, capfd, "has no tokenizer")


def test_a_server_that_never_generates_ends_the_warm_up_at_the_stall_timeout_with_one_error_line(capfd, tmp_path):
    """Lists its model and answers /health, takes every request and answers none: before, the warm-up waited on
    its unstreamed requests for the hour of --request-timeout (tests/test_bounded_waits.py: every other phase)."""
    from transformers import AutoTokenizer

    from tests.fault_server import FaultServer

    with FaultServer(AutoTokenizer.from_pretrained(embedded.MODEL_DIR)) as server:
        server.first_token_delay(3600)
        remote = ["--sut", "remote", "--served-model-name", "tiny", "--endpoint", server.url]
        started = time.monotonic()
        code = harness_main(
            [
                *remote,
                "--first-token-timeout",
                "5",
                "--retries",
                "1",
                "--stall-timeout",
                "2",
                "--output-dir",
                str(tmp_path),
            ]
        )
        took = time.monotonic() - started
    _assert_one_error(code, capfd, f"warm-up: replica-0 ({server.url}): it took 8 requests, answered 0, and then")
    assert took < 2 + 10, f"the warm-up took {took:.0f} s"


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
    import harness.single.runner

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a planted bug")

    monkeypatch.setattr(harness.single.runner, "write_audit_config", broken)
    code = harness_main(["--output-dir", str(tmp_path)])
    errors, text = _errors(capfd)
    assert code == 3, text
    assert len(errors) == 1 and "internal error (ZeroDivisionError: a planted bug)" in errors[0]
    (run_dir,) = tmp_path.iterdir()
    saved = run_dir / "traceback.txt"
    assert str(saved) in errors[0].replace("\n", "")
    assert "ZeroDivisionError: a planted bug" in saved.read_text()


# -- Damaged files from earlier runs -------------------------------------------------------------------------
# What an earlier run wrote, read back by a later command: a damaged, truncated or foreign file is one error line
# that names it (exit 2); a command over many runs leaves the damaged one out with a warning and goes on.


@pytest.fixture(scope="module")
def earlier_runs(tmp_path_factory) -> dict[str, Path]:
    """A real Offline performance run and a real accuracy run (LoadGen, runner, scoring), by a scripted replica."""
    output_dir = tmp_path_factory.mktemp("earlier")
    runs = {}
    for mode in ("performance", "accuracy"):
        config = build_config(mode=mode, output_dir=output_dir, warmup_samples=0, scoring_workers=1)
        report = run(config, console=Console(file=io.StringIO()), replica_factory=ScriptedReplica.factory())
        runs[mode] = report.run_dir
    return runs


def _damaged_copy(run_dir: Path, tmp_path: Path, name: str, damage: Callable[[Path], None], file: str) -> Path:
    """A copy of `run_dir` named `name`, its `file` damaged; the damaged file's path."""
    copy = tmp_path / name
    shutil.copytree(run_dir, copy)
    damage(copy / file)
    return copy / file


def _truncated(path: Path) -> None:
    text = path.read_text()
    path.write_text(text[: len(text) // 2])


def _folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _not_utf8(path: Path) -> None:
    path.write_bytes(b"\xff" + path.read_bytes())


def _replaced(value: Any) -> Callable[[Path], None]:
    return lambda path: path.write_text(json.dumps(value))


def _edited(edit: Callable[[dict], Any]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        record = json.loads(path.read_text())
        edit(record)
        path.write_text(json.dumps(record))

    return damage


def _line(number: int, change: Callable[[str], str]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        lines = path.read_text().splitlines()
        lines[number - 1] = change(lines[number - 1])
        path.write_text("\n".join(lines) + "\n")

    return damage


FILE_DAMAGES = [
    ("a folder", _folder, "is a directory, not a file"),
    ("not UTF-8", _not_utf8, "is not UTF-8 text (byte 0xff at offset 0)"),
    ("truncated", _truncated, "is not valid JSON (line "),
    ("empty", lambda path: path.write_text(""), "is empty"),
    ("a list", _replaced([1, 2]), "holds a list, not an object"),
]
RUN_JSON_DAMAGES = [
    *FILE_DAMAGES,
    (
        "foreign",
        _replaced({"name": "x"}),
        "was not written by this harness, or by an older version of it (no 'benchmark')",
    ),
    ("result null", _edited(lambda r: r.update(result=None)), "is damaged: 'result' is null, not an object"),
    ("samples a string", _edited(lambda r: r.update(samples="x")), "is damaged: 'samples' is a string, not an object"),
    (
        "valid a string",
        _edited(lambda r: r["result"].update(valid="yes")),
        "is damaged: 'result.valid' is a string, not true or false.",
    ),
]
SINGLE_RUN_COMMANDS: dict[str, Callable[[dict[str, Path], Path, Path], int]] = {
    "rerun": lambda runs, damaged, tmp: harness_main(["rerun", str(damaged)]),
    "report": lambda runs, damaged, tmp: harness_main(["report", str(damaged), "--output", str(tmp / "report")]),
    "compare": lambda runs, damaged, tmp: harness_main(["compare", str(runs["performance"]), str(damaged)]),
    "submission": lambda runs, damaged, tmp: submission_main(
        [str(damaged), "--output", str(tmp / "tree"), "--submitter", "Acme"]
    ),
    "search-from": lambda runs, damaged, tmp: harness_main(
        ["--scenario", "Server", "--target-qps", "search", "--search-from", str(damaged), "--output-dir", str(tmp)]
    ),
}


@pytest.mark.parametrize("command", SINGLE_RUN_COMMANDS)
@pytest.mark.parametrize("damage, needle", [d[1:] for d in RUN_JSON_DAMAGES], ids=[d[0] for d in RUN_JSON_DAMAGES])
def test_a_damaged_run_json_is_one_error_line_naming_it(earlier_runs, tmp_path, capfd, command, damage, needle):
    record = _damaged_copy(earlier_runs["performance"], tmp_path, "damaged", damage, "run.json")
    code = SINGLE_RUN_COMMANDS[command](earlier_runs, record.parent, tmp_path)
    _assert_one_error(code, capfd, f"{record} {needle}")


def test_a_report_of_runs_leaves_the_damaged_one_out_with_a_warning(earlier_runs, tmp_path, capfd):
    record = _damaged_copy(earlier_runs["performance"], tmp_path, "damaged", _truncated, "run.json")
    good = earlier_runs["performance"]
    code = harness_main(["report", str(good), str(record.parent), "--output", str(tmp_path / "report")])
    out, err = capfd.readouterr()
    assert code == 0, out + err
    (warning,) = [line for line in err.splitlines() if "warning:" in line]
    assert f"{record} is not valid JSON (line " in warning and warning.endswith("Left out of the report.")
    rows = json.loads((tmp_path / "report" / "results.json").read_text())
    assert [row["run_dir"] for row in rows] == [str(good)]


def test_a_report_of_damaged_runs_only_is_one_error_after_a_warning_for_each(earlier_runs, tmp_path, capfd):
    damaged = [
        _damaged_copy(earlier_runs["performance"], tmp_path, name, damage, "run.json").parent
        for name, damage in (("cut", _truncated), ("list", _replaced([])))
    ]
    code = harness_main(["report", *map(str, damaged), "--output", str(tmp_path / "report")])
    errors, text = _errors(capfd)
    assert code == 2 and "Traceback" not in text
    assert errors == ["error: none of the 2 runs can be read (the warnings above say why)."], text
    warnings = [line for line in text.splitlines() if "warning:" in line]
    assert len(warnings) == 2 and all(f"{d / 'run.json'} " in w for w, d in zip(warnings, damaged, strict=True))


def _submission_options(tmp_path: Path) -> list[str]:
    description = system_info.describe_host(division="open", submitter="Acme", versions={"vllm": "0.0"})
    system_file = tmp_path / "system.json"
    system_file.write_text(
        json.dumps({key: value or "N/A" for key, value in description.items()} | {"status": "available"})
    )
    tree = ["--output", str(tmp_path / "tree"), "--submitter", "Acme", "--division", "open"]
    return [*tree, "--system", str(system_file), "--system-name", "cpu", "--allow-noncompliant"]


def test_a_submission_leaves_a_damaged_run_out_with_a_warning(earlier_runs, tmp_path, capfd):
    record = _damaged_copy(earlier_runs["accuracy"], tmp_path, "damaged", _folder, "run.json")
    runs = [earlier_runs["performance"], earlier_runs["accuracy"], record.parent]
    code = submission_main([*map(str, runs), *_submission_options(tmp_path)])
    out, err = capfd.readouterr()
    assert code == 1 and "DRY RUN" in out, out + err
    (warning,) = [line for line in err.splitlines() if "warning:" in line]
    assert f"{record} is a directory, not a file. Left out of the submission." in warning


def test_a_submission_of_an_accuracy_run_without_its_accuracy_txt_names_the_missing_file(earlier_runs, tmp_path, capfd):
    accuracy_txt = _damaged_copy(earlier_runs["accuracy"], tmp_path, "scored", Path.unlink, "accuracy.txt")
    runs = [earlier_runs["performance"], accuracy_txt.parent]
    code = submission_main([*map(str, runs), *_submission_options(tmp_path)])
    _assert_one_error(code, capfd, f"accuracy run: accuracy.txt is missing from {accuracy_txt.parent}")
    assert not (tmp_path / "tree").exists()


SAMPLES_DAMAGES = [
    ("line cut", _line(3, lambda line: line[: len(line) // 2]), "line 3 is not valid JSON (column "),
    ("line a list", _line(2, lambda line: "[1]"), "line 2 holds a list, not an object"),
    (
        "qsl_idx a string",
        _line(2, lambda line: '{"qsl_idx": "a", "n_tokens": 1}'),
        "line 2 is damaged: 'qsl_idx' is a string",
    ),
    ("missing", Path.unlink, "does not exist"),
]


@pytest.mark.parametrize("damage, needle", [d[1:] for d in SAMPLES_DAMAGES], ids=[d[0] for d in SAMPLES_DAMAGES])
def test_compare_of_accuracy_runs_with_damaged_samples_is_one_error_line(earlier_runs, tmp_path, capfd, damage, needle):
    samples = _damaged_copy(earlier_runs["accuracy"], tmp_path, "damaged", damage, "samples.jsonl")
    code = harness_main(["compare", str(earlier_runs["accuracy"]), str(samples.parent)])
    _assert_one_error(code, capfd, f"{samples} {needle}")


def test_a_rerun_refuses_damaged_samples_before_it_runs(earlier_runs, tmp_path):
    samples = _damaged_copy(earlier_runs["accuracy"], tmp_path, "damaged", SAMPLES_DAMAGES[0][1], "samples.jsonl")
    quiet = {"console": Console(file=io.StringIO()), "replica_factory": ScriptedReplica.factory()}
    with pytest.raises(HarnessError, match=re.escape(f"samples file {samples} line 3 is not valid JSON")):
        rerun(samples.parent, output_dir=tmp_path / "again", **quiet)
    assert not (tmp_path / "again").exists()


ACCURACY_DAMAGES = [
    *[("accuracy.json", *damage) for damage in FILE_DAMAGES],
    (
        "accuracy.json",
        "foreign",
        _replaced({"passed": True}),
        "was not written by this harness, or by an older version of it (no 'metrics')",
    ),
    (
        "accuracy.json",
        "metrics null",
        _edited(lambda r: r.update(metrics=None)),
        "is damaged: 'metrics' is null, not an object",
    ),
    (
        "accuracy.json",
        "rougeL a string",
        _edited(lambda r: r["metrics"].update(rougeL="high")),
        "is damaged: 'metrics.rougeL' is a string, not a number",
    ),
    ("accuracy_samples.jsonl", "line cut", SAMPLES_DAMAGES[0][1], SAMPLES_DAMAGES[0][2]),
    ("accuracy_samples.jsonl", "foreign line", _line(2, lambda line: '{"x": 1}'), "line 2 was not written by this"),
    ("accuracy_samples.jsonl", "not UTF-8", _not_utf8, "is not UTF-8 text"),
    ("accuracy_samples.jsonl", "missing", Path.unlink, "does not exist"),
]


@pytest.mark.parametrize(
    "file, damage, needle", [(d[0], *d[2:]) for d in ACCURACY_DAMAGES], ids=[f"{d[0]} {d[1]}" for d in ACCURACY_DAMAGES]
)
def test_accuracy_compare_of_a_damaged_accuracy_file_is_one_error_line(
    earlier_runs, tmp_path, capfd, file, damage, needle
):
    path = _damaged_copy(earlier_runs["accuracy"], tmp_path, "damaged", damage, file)
    code = accuracy_main(
        ["compare", str(earlier_runs["accuracy"]), str(path.parent), "--plot", str(tmp_path / "p.png")]
    )
    _assert_one_error(code, capfd, f"{path} {needle}")


def test_compare_of_accuracy_runs_with_a_damaged_accuracy_report_is_one_error_line(earlier_runs, tmp_path, capfd):
    path = _damaged_copy(earlier_runs["accuracy"], tmp_path, "damaged", _truncated, "accuracy.json")
    code = harness_main(["compare", str(earlier_runs["accuracy"]), str(path.parent)])
    _assert_one_error(code, capfd, f"{path} is not valid JSON (line ")


def _sweep_dir(tmp_path: Path, name: str, runs: dict[int, Path]) -> Path:
    """A sweep directory whose sweep.json lists `runs` as done, by their value of an axis `x`."""
    directory = tmp_path / name
    directory.mkdir(parents=True)
    entries = [
        {"point": f"p{x}", "values": {"x": x}, "scenario": "Offline", "mode": "performance", "key": f"k{x}"}
        | {"status": "done", "run_dir": str(run_dir)}
        for x, run_dir in runs.items()
    ]
    (directory / "sweep.json").write_text(json.dumps({"runs": entries}))
    return directory


def test_compare_of_sweeps_leaves_a_pair_with_a_damaged_run_out_with_a_warning(earlier_runs, tmp_path, capfd):
    good = earlier_runs["performance"]
    record = _damaged_copy(good, tmp_path, "damaged", _edited(lambda r: r.update(result=None)), "run.json")
    baseline = _sweep_dir(tmp_path, "baseline", {1: good, 2: good})
    candidate = _sweep_dir(tmp_path, "candidate", {1: good, 2: record.parent})
    code = harness_main(["compare", str(baseline), str(candidate)])
    out, err = capfd.readouterr()
    assert code == 0 and "no regression in 1 compared runs" in out, out + err
    (warning,) = [line for line in err.splitlines() if "warning:" in line]
    assert f"{record} is damaged: 'result' is null" in warning and warning.endswith("Left out of the comparison.")


SWEEP_JSON_DAMAGES = [
    *[(name, damage, f" {needle}") for name, damage, needle in FILE_DAMAGES],
    ("foreign", _replaced({"plan": "x"}), " was not written by this harness, or by an older version of it (no 'runs')"),
    ("a run a string", _replaced({"runs": ["x"]}), ", run 1 holds a string, not an object"),
    ("a run foreign", _replaced({"runs": [{"key": "k"}]}), ", run 1 was not written by this harness"),
    ("values a list", _edited(lambda m: m["runs"][0].update(values=[])), ", run 1 is damaged: 'values' is a list"),
]
"""Each damage, and what the error line says right after the file's path."""


@pytest.mark.parametrize("damage, needle", [d[1:] for d in SWEEP_JSON_DAMAGES], ids=[d[0] for d in SWEEP_JSON_DAMAGES])
def test_compare_of_a_sweep_with_a_damaged_sweep_json_is_one_error_line(earlier_runs, tmp_path, capfd, damage, needle):
    good = _sweep_dir(tmp_path, "good", {1: earlier_runs["performance"]})
    damaged = _sweep_dir(tmp_path, "damaged", {1: earlier_runs["performance"]})
    damage(damaged / "sweep.json")
    _assert_one_error(harness_main(["compare", str(good), str(damaged)]), capfd, f"{damaged / 'sweep.json'}{needle}")


SWEEP_PLAN = """
name: resumed
accuracy: false
base: {total_sample_count: 20, min_query_count: 20, min_duration_ms: 0, warmup_samples: 0}
"""


@pytest.fixture
def scripted_sweep(tmp_path, monkeypatch) -> Path:
    """A one-run sweep plan whose runs a scripted replica answers; its path."""
    monkeypatch.setattr(
        "harness.research.sweep.run",
        lambda config, console: run(config, console=console, replica_factory=ScriptedReplica.factory()),
    )
    plan = tmp_path / "plan.yaml"
    plan.write_text(SWEEP_PLAN)
    return plan


@pytest.mark.parametrize("damage, needle", [d[1:] for d in SWEEP_JSON_DAMAGES], ids=[d[0] for d in SWEEP_JSON_DAMAGES])
def test_a_sweep_resumed_from_a_damaged_sweep_json_is_one_error_line(scripted_sweep, tmp_path, capfd, damage, needle):
    manifest = _sweep_dir(tmp_path / "sweeps", "resumed", {1: tmp_path / "gone"}) / "sweep.json"
    damage(manifest)
    code = harness_main(["sweep", str(scripted_sweep), "--output-dir", str(tmp_path / "sweeps")])
    _assert_one_error(code, capfd, f"{manifest}{needle}")


def test_a_damaged_sweep_json_says_how_to_start_the_sweep_afresh(scripted_sweep, tmp_path, capfd):
    manifest = _sweep_dir(tmp_path / "sweeps", "resumed", {1: tmp_path / "gone"}) / "sweep.json"
    _truncated(manifest)
    code = harness_main(["sweep", str(scripted_sweep), "--output-dir", str(tmp_path / "sweeps")])
    _assert_one_error(code, capfd, "; move it away to start this sweep afresh.")


def test_a_sweep_runs_a_done_run_again_when_its_run_json_is_damaged(scripted_sweep, tmp_path):
    first = run_sweep(load_plan(scripted_sweep, output_dir=tmp_path), console=Console(file=io.StringIO()))
    (entry,) = first.entries
    assert entry["status"] == "done", entry
    record = Path(entry["run_dir"]) / "run.json"
    _truncated(record)
    said = io.StringIO()
    second = run_sweep(load_plan(scripted_sweep, output_dir=tmp_path), console=Console(file=said, width=80))
    (again,) = second.entries
    assert again["status"] == "done" and again["run_dir"] != entry["run_dir"]
    (warning,) = [line for line in said.getvalue().splitlines() if "warning:" in line]
    assert f"{record} is not valid JSON (line " in warning and warning.endswith("That run is run again.")
    assert record.read_text(), "the damaged run is left where it was"


@pytest.mark.parametrize(
    "file, damage, needle",
    [
        ("outcome.json", _truncated, "is not valid JSON (line "),
        ("outcome.json", _replaced({"run_dir": "x"}), "was not written by this harness, or by an older version of it"),
        ("run/run.json", _edited(lambda r: r.update(samples="x")), "is damaged: 'samples' is a string, not an object"),
    ],
)
def test_multi_counts_a_run_with_a_damaged_file_as_failed_with_a_warning(earlier_runs, tmp_path, file, damage, needle):
    shutil.copytree(earlier_runs["performance"], tmp_path / "run")
    (tmp_path / "outcome.json").write_text(json.dumps({"run_dir": str(tmp_path / "run"), "code": 0}) + "\n")
    damaged = tmp_path / file
    damage(damaged)
    said = io.StringIO()
    measured = _outcome("first", 0, tmp_path, Console(file=said, width=80))
    assert f"{damaged} {needle}" in (measured.error or "") and measured.code != 0 and not measured.record
    (warning,) = said.getvalue().splitlines()
    assert warning.startswith("warning: ") and f"{damaged} {needle}" in warning


def test_search_from_a_run_dir_with_a_damaged_run_json_names_the_option(earlier_runs, tmp_path, capfd):
    record = _damaged_copy(earlier_runs["performance"], tmp_path, "damaged", _truncated, "run.json")
    code = SINGLE_RUN_COMMANDS["search-from"](earlier_runs, record.parent, tmp_path)
    _assert_one_error(code, capfd, f"--search-from {record.parent}: run record {record} is not valid JSON")
