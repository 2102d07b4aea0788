"""`python -m harness sweep`: plans checked whole before the first run, runs resumable, failures recorded."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from common.errors import HarnessError
from harness.reportgen import build_report
from harness.sweep import load_plan, run_sweep
from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "sweep-embedded.yaml"


def _plan(tmp_path: Path, text: str, suffix: str = ".yaml") -> Path:
    path = tmp_path / f"plan{suffix}"
    path.write_text(text)
    return path


def test_the_example_plan_has_a_performance_run_per_scenario_and_one_accuracy_run_per_point(tmp_path):
    plan = load_plan(EXAMPLE, output_dir=tmp_path)
    assert plan.directory == tmp_path / "embedded"
    assert [(run.point, run.scenario, run.mode) for run in plan.runs] == [
        ("p01-max_num_seqs=16", "Offline", "performance"),
        ("p01-max_num_seqs=16", "Server", "performance"),
        ("p01-max_num_seqs=16", "Offline", "accuracy"),
        ("p02-max_num_seqs=256", "Offline", "performance"),
        ("p02-max_num_seqs=256", "Server", "performance"),
        ("p02-max_num_seqs=256", "Offline", "accuracy"),
    ]
    assert [run.config.engine.max_num_seqs for run in plan.runs] == [16, 16, 16, 256, 256, 256]
    assert len({run.key for run in plan.runs}) == 6
    assert all(run.config.output_dir == tmp_path / "embedded" / run.point for run in plan.runs)


def test_the_backends_plan_merges_each_remote_value_into_the_base(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPERF_TOKEN", "secret")
    plan = load_plan(ROOT / "examples" / "sweep-backends.yaml", output_dir=tmp_path)

    performance = [run for run in plan.runs if (run.scenario, run.mode) == ("Server", "performance")]
    remotes = [run.config.remote for run in performance]
    assert [(r.protocol, r.token_env, r.max_in_flight) for r in remotes if r] == [
        ("openai", "MLPERF_TOKEN", 128),
        ("kserve-v2", "MLPERF_TOKEN", 128),
        ("tgi", "MLPERF_TOKEN", 128),
    ]
    assert [run.point for run in performance] == [
        "p01-protocol=openai",
        "p02-protocol=kserve-v2,served_model_name=llama",
        "p03-protocol=tgi",
    ]


def test_a_toml_plan_reads_as_the_yaml_one(tmp_path):
    toml = _plan(
        tmp_path,
        'name = "embedded"\nscenarios = ["Offline", "Server"]\n[base]\nwarmup_samples = 8\n'
        '[axes]\n"engine.max_num_seqs" = [16, 256]\n',
        ".toml",
    )
    assert [run.key for run in load_plan(toml, output_dir=tmp_path).runs] == [
        run.key for run in load_plan(EXAMPLE, output_dir=tmp_path).runs
    ]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("name: x\nbase: {}\nscenaros: [Server]\n", 3, "unknown plan key 'scenaros'"),
        ("base:\n  replica: 2\n", 2, "unknown setting 'replica'"),
        ("base:\n  scenario: Server\n", 2, "list scenarios under `scenarios`"),
        ("axes:\n  replicas: 2\n", 2, "needs a list"),
        ("base:\n  warmup_samples: 4\naxes:\n  dispatch: [round-robin, fastest]\n", 4, "'fastest'"),
        ("axes:\n  replicas: [1, 2]\n  engine.tensor_parallel_size: [1, 0]\n", 3, "tensor_parallel_size"),
        ("base:\n  min_duration_ms: -5\n", 2, "--min-duration must be at least 0"),
        ("scenarios: [Offline, Serve]\n", 1, "Serve"),
    ],
)
def test_a_bad_plan_is_one_error_naming_its_line_before_any_run(tmp_path, text, line, message):
    path = _plan(tmp_path, text)
    with pytest.raises(HarnessError) as caught:
        load_plan(path, output_dir=tmp_path)
    assert str(caught.value).startswith(f"{path}:{line}: "), caught.value
    assert message in str(caught.value)
    assert not (tmp_path / "plan").exists()


# -- real runs ---------------------------------------------------------------------------------------------
SMALL = """
name: small
scenarios: [Offline, Server]
base:
  total_sample_count: 60
  min_query_count: 60
  min_duration_ms: 0
  target_qps: 30
  warmup_samples: 2
  generation: {max_new_tokens: 16}
axes:
  engine.max_num_seqs: [8, 64]
"""


@pytest.mark.engine
def test_a_sweep_runs_every_point_and_a_second_sweep_runs_only_what_did_not_finish(tmp_path):
    plan = load_plan(_plan(tmp_path, SMALL), output_dir=tmp_path)
    first = run_sweep(plan)
    assert [entry["status"] for entry in first.entries] == ["done"] * 6
    manifest = json.loads((tmp_path / "small" / "sweep.json").read_text())
    assert [entry["key"] for entry in manifest["runs"]] == [run.key for run in plan.runs]
    for entry, planned in zip(manifest["runs"], plan.runs, strict=True):
        record = json.loads((Path(entry["run_dir"]) / "run.json").read_text())
        assert record["config"]["engine"]["max_num_seqs"] == planned.config.engine.max_num_seqs
        assert (record["scenario"], record["mode"]) == (planned.scenario, planned.mode)
        assert record["samples"]["failed"] == 0
    accuracy = [entry for entry in manifest["runs"] if entry["mode"] == "accuracy"]
    assert all(entry["accuracy"].startswith("rouge1") for entry in accuracy)

    # One report of the whole sweep: each row says what differs, and the plots are in the one HTML file.
    report = build_report([tmp_path / "small"], tmp_path / "report")
    assert sorted({row.configuration for row in report.rows}) == ["engine.max_num_seqs=64", "engine.max_num_seqs=8"]
    assert {plot.name for plot in report.plots} == {"tokens_vs_accuracy.png", "latency_vs_qps.png"}
    page = (tmp_path / "report" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "http" not in page
    with (tmp_path / "report" / "results.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 6

    # As if the sweep had been stopped before its last run: that run, and only it, runs again.
    manifest["runs"][-1]["status"] = "interrupted"
    (tmp_path / "small" / "sweep.json").write_text(json.dumps(manifest))
    second = run_sweep(load_plan(_plan(tmp_path, SMALL), output_dir=tmp_path))
    assert [entry["status"] for entry in second.entries] == ["skipped"] * 5 + ["done"]
    assert second.entries[0]["run_dir"] == first.entries[0]["run_dir"]
    assert second.entries[-1]["run_dir"] != first.entries[-1]["run_dir"]


@pytest.mark.engine
def test_a_run_that_fails_is_recorded_with_its_reason_and_the_sweep_goes_on(tmp_path):
    text = """
name: failing
accuracy: false
base: {total_sample_count: 30, min_query_count: 30, min_duration_ms: 0, target_qps: 30, warmup_samples: 2}
axes:
  engine_extra.kv_cache_memory_bytes: [4096, 268435456]
"""
    outcome = run_sweep(load_plan(_plan(tmp_path, text), output_dir=tmp_path))
    failed, done = outcome.entries
    assert failed["status"] == "failed" and "failed to start" in failed["reason"]
    assert done["status"] == "done" and done["verdict"] in ("VALID", "INVALID")


def test_target_qps_search_in_a_plan_searches_the_server_runs_only(tmp_path):
    path = _plan(tmp_path, "scenarios: [Offline, Server]\nbase:\n  target_qps: search\n")
    runs = load_plan(path, output_dir=tmp_path).runs
    assert [(run.scenario, run.mode, run.search) for run in runs] == [
        ("Offline", "performance", False),
        ("Server", "performance", True),
        ("Offline", "accuracy", False),
    ]
