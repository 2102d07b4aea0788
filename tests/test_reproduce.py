"""Reproducible runs: the model fingerprint in run.json and `python -m harness rerun`."""

from __future__ import annotations

import io
import json
import shutil

import pytest
from rich.console import Console

from harness.single.config import build_config
from harness.single.fingerprint import model_fingerprint
from harness.single.runner import run
from harness.submission.rerun import rerun
from mlperf_llm_sut.common import embedded
from mlperf_llm_sut.common.errors import HarnessError
from tests.scripted_replica import ScriptedReplica

QUIET = {"console": Console(file=io.StringIO()), "replica_factory": ScriptedReplica.factory()}


def _run(tmp_path, **options):
    config = build_config(output_dir=tmp_path / "runs", warmup_samples=0, scoring_workers=1, **options)
    return run(config, **QUIET)


def test_run_json_fingerprints_the_model_files(tmp_path):
    report = _run(tmp_path, total_sample_count=50)
    model = report.record.model
    assert set(model["files_sha256"]) >= {"config.json", "tokenizer.json"}
    assert model["weight_bytes"] == {"model.safetensors": (embedded.MODEL_DIR / "model.safetensors").stat().st_size}
    assert model == model_fingerprint(embedded.MODEL_DIR)


def test_a_rerun_of_an_accuracy_run_reports_identical_outputs_and_the_figures(tmp_path):
    original = _run(tmp_path, mode="accuracy", total_sample_count=80)
    report, comparison = rerun(original.run_dir, **QUIET)
    assert report.run_dir != original.run_dir and report.run_dir.parent == original.run_dir.parent
    assert report.record.config.loadgen == original.record.config.loadgen
    assert comparison.identical_outputs == 1.0 and comparison.compared_samples == 80
    assert comparison.figures["valid"] == (True, True)
    saved = json.loads((report.run_dir / "rerun.json").read_text())
    assert saved["original"] == str(original.run_dir) and saved["identical_outputs"] == 1.0


def test_a_rerun_keeps_the_runs_own_user_conf(tmp_path):
    conf = tmp_path / "user.conf"
    conf.write_text("llama2-70b.Server.target_qps = 300\n")
    # Not the demo, whose own target QPS would override the user.conf.
    original = _run(
        tmp_path,
        model=embedded.MODEL_DIR,
        scenario="Server",
        total_sample_count=50,
        user_conf=conf,
        min_query_count=100,
        min_duration_ms=0,
    )
    conf.unlink()
    report, comparison = rerun(original.run_dir, output_dir=tmp_path / "again", **QUIET)
    assert report.record.loadgen.effective["target_qps"] == 300
    assert "ttft_ms p99" in comparison.figures


def test_a_rerun_refuses_changed_data(tmp_path):
    dataset = tmp_path / "data.jsonl"
    shutil.copyfile(embedded.DATASET, dataset)
    original = _run(tmp_path, dataset=dataset, total_sample_count=20)
    dataset.write_text("\n".join(dataset.read_text().splitlines()[:100]) + "\n")
    with pytest.raises(HarnessError, match=r"cannot rerun: the data set .* changed"):
        rerun(original.run_dir, **QUIET)


def test_a_rerun_refuses_a_changed_model_and_says_which_file(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(embedded.MODEL_DIR, model)
    original = _run(tmp_path, model=model, total_sample_count=20, engine={"max_model_len": 2048})
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps(config | {"rope_theta": 1.0}))
    (model / "model.safetensors").write_bytes(b"x")
    with pytest.raises(HarnessError) as err:
        rerun(original.run_dir, **QUIET)
    lines = str(err.value).splitlines()
    assert "cannot rerun: model" in lines[0] and "config.json changed" in lines[0]
    assert any("weight files differ" in line for line in lines)


def test_rerun_of_a_folder_without_run_json_is_one_error(tmp_path):
    from tests.conftest import run_cli

    code, _, err = run_cli("rerun", str(tmp_path), timeout=120)
    assert code == 2 and "not a run directory" in err and "Traceback" not in err
