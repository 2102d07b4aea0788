"""`python -m harness sweep`: plans checked whole before the first run, runs resumable, failures recorded."""

from __future__ import annotations

import csv
import inspect
import io
import json
import shutil
import typing
from pathlib import Path
from types import NoneType

import pytest
from rich.console import Console

from harness.research.plans import MULTI_PLAN, RUN_SETTINGS, SET_FOR_EACH_RUN, SWEEP_PLAN
from harness.research.report import build_report
from harness.research.sweep import load_plan, run_sweep
from harness.single.config import build_config
from harness.single.runner import run
from harness.single.sampling import SERIES_FILE
from mlperf_llm_sut.common.errors import HarnessError
from mlperf_llm_sut.common.typed_json import to_json
from mlperf_llm_sut.telemetry import metrics
from mlperf_llm_sut.telemetry.loop import write_jsonl
from mlperf_llm_sut.telemetry.series import Reading
from mlperf_llm_sut.telemetry.summary import GpuTelemetry, ReplicaTelemetry, Telemetry
from tests.conftest import ROOT
from tests.scripted_replica import ScriptedReplica

EXAMPLE = ROOT / "examples" / "sweep-embedded.yaml"


def _plan(tmp_path: Path, text: str, suffix: str = ".yaml") -> Path:
    path = tmp_path / f"plan{suffix}"
    path.write_text(text)
    return path


def test_the_example_plan_has_a_performance_run_per_scenario_and_one_accuracy_run_per_point(tmp_path):
    plan = load_plan(EXAMPLE, output_dir=tmp_path)
    assert plan.directory == tmp_path / "embedded"
    assert [(run.name, run.scenario, run.mode) for run in plan.runs] == [
        ("p01-max_num_seqs=16", "Offline", "performance"),
        ("p01-max_num_seqs=16", "Server", "performance"),
        ("p01-max_num_seqs=16", "Offline", "accuracy"),
        ("p02-max_num_seqs=256", "Offline", "performance"),
        ("p02-max_num_seqs=256", "Server", "performance"),
        ("p02-max_num_seqs=256", "Offline", "accuracy"),
    ]
    assert [run.config.engine.max_num_seqs for run in plan.runs] == [16, 16, 16, 256, 256, 256]
    assert len({run.key for run in plan.runs}) == 6
    assert all(run.config.output_dir == tmp_path / "embedded" / run.name for run in plan.runs)


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
    assert [run.name for run in performance] == [
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
        ("base:\n  replica: 2\n", 2, "unknown setting 'replica' (did you mean 'replicas'?); a sweep plan's"),
        ("base:\n  scenario: Server\n", 2, "list scenarios under `scenarios`"),
        ("base:\n  mode: accuracy\n", 2, "'mode' is set by the sweep for each run: each point has"),
        ("base:\n  output_dir: x\n", 2, "'output_dir' is set by the sweep for each run: the plan's own"),
        ("base:\n  replicas: '2'\n", 2, "replicas = '2': give a whole number."),
        ("base: {cpu_bind: [0]}\n", 1, "cpu_bind = [0]: give a list with one entry per replica, its cores as text"),
        ("accuracy: 'no'\n", 1, "accuracy = 'no': give true or false."),
        ("name: ..\n", 1, "the name '..' is a directory name"),
        ("axes:\n  replicas: 2\n", 2, "needs a list"),
        ("axes:\n  work_stealing: [true, maybe]\n", 2, "work_stealing = 'maybe': give true or false."),
        ("axes:\n  replicas.count: [1]\n", 2, "axis 'replicas.count': replicas is a whole number, with nothing"),
        ("axes:\n  scenario: [Offline, Server]\n", 2, "list scenarios under `scenarios`"),
        ("base:\n  warmup_samples: 4\naxes:\n  dispatch: [round-robin, fastest]\n", 4, "'fastest'"),
        ("axes:\n  replicas: [1, 2]\n  engine.tensor_parallel_size: [1, 0]\n", 3, "tensor_parallel_size"),
        ("base:\n  min_duration_ms: -5\n", 2, "min_duration_ms must be at least 0"),
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
    # The engine runs sampled telemetry: a plot of each run's series beside the sweep's own plots.
    named = {plot.name for plot in report.plots if not plot.name.startswith("telemetry-")}
    assert named - {"energy_per_token.png"} == {"tokens_vs_accuracy.png", "latency_vs_qps.png"}
    page = (tmp_path / "report" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(report.plots) and "http" not in page
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


def test_a_null_mapping_in_the_base_is_one_left_out_under_a_dotted_axis(tmp_path):
    path = _plan(tmp_path, "base:\n  engine: null\naxes:\n  engine.max_num_seqs: [8]\n")
    assert [run.config.engine.max_num_seqs for run in load_plan(path, output_dir=tmp_path).runs] == [8, 8]


# -- the plan schema (harness.research.plans, which multi's plans share) ------------------------------------------
def test_the_plan_schema_has_each_of_build_configs_keyword_arguments_with_its_type():
    """Plans are checked against the schema in harness.research.plans, not against build_config's signature: an
    argument added to build_config fails here until the schema says how a plan gives it, or that the commands
    set it for each run, and a type changed on one side fails until the other agrees."""
    parameters = inspect.signature(build_config).parameters
    assert {p.kind for p in parameters.values()} == {inspect.Parameter.KEYWORD_ONLY}
    in_schema = set(RUN_SETTINGS) | set(SET_FOR_EACH_RUN)
    assert not set(parameters) - in_schema, f"build_config arguments RUN_SETTINGS lacks: {set(parameters) - in_schema}"
    assert not in_schema - set(parameters), f"RUN_SETTINGS build_config does not take: {in_schema - set(parameters)}"
    assert not set(RUN_SETTINGS) & set(SET_FOR_EACH_RUN)
    hints = typing.get_type_hints(build_config)
    for name, setting in RUN_SETTINGS.items():
        taken = _types(hints[name])
        kind = setting.kind
        assert kind.nullable == (NoneType in taken), f"{name}: null in the schema and None in build_config"
        for given in kind.types:
            assert given in taken or (given is int and float in taken), f"{name}: build_config takes no {given}"
        # Path is what build_config makes of a plan's text; every other type it takes, a plan may give.
        assert taken - {NoneType, Path} <= set(kind.types), f"{name}: the schema refuses some of {taken}"
        if kind.items is not None:
            (item,) = typing.get_args(next(h for h in typing.get_args(hints[name]) if typing.get_origin(h) is list))
            assert set(kind.items.types) == {item}, name


def _types(hint: typing.Any) -> set[type]:
    """The types a parameter's annotation takes, generics by their origin (`dict[str, Any]` is dict)."""
    return {typing.get_origin(part) or part for part in (typing.get_args(hint) or (hint,))}


def test_a_sweep_sets_scenario_mode_and_compliance_and_multi_places_cores_and_gpus():
    assert set(MULTI_PLAN.settings()) - set(SWEEP_PLAN.settings()) == {"scenario", "mode", "compliance"}
    assert {name for name, setting in RUN_SETTINGS.items() if setting.placement} == {"cpu_bind", "devices"}


def test_target_qps_search_in_a_plan_searches_the_server_runs_only(tmp_path):
    path = _plan(tmp_path, "scenarios: [Offline, Server]\nbase:\n  target_qps: search\n")
    runs = load_plan(path, output_dir=tmp_path).runs
    assert [(run.scenario, run.mode, run.search) for run in runs] == [
        ("Offline", "performance", False),
        ("Server", "performance", True),
        ("Offline", "accuracy", False),
    ]


@pytest.fixture(scope="module")
def scripted_run(tmp_path_factory):
    """A real Offline run (LoadGen, runner, responder) with a scripted replica: no engine."""
    config = build_config(
        scenario="Offline",
        output_dir=tmp_path_factory.mktemp("runs"),
        warmup_samples=0,
        min_duration_ms=0,
        min_query_count=50,
        total_sample_count=50,
    )
    return run(config, console=Console(file=io.StringIO()), replica_factory=ScriptedReplica.factory()).run_dir


def _with_telemetry(run_dir: Path, path: Path) -> Path:
    """A copy of `run_dir` that sampled two replicas and a GPU: run.json's `telemetry` and a telemetry.jsonl."""
    shutil.copytree(run_dir, path)
    record = json.loads((path / "run.json").read_text())
    record["telemetry"] = to_json(
        Telemetry(
            interval=1.0,
            window_seconds=20.0,
            replicas={
                "replica-0": ReplicaTelemetry(kv_cache_usage_mean=0.5, preemptions=3, prefix_cache_hit_rate=0.25),
                "replica-1": ReplicaTelemetry(kv_cache_usage_mean=0.7, preemptions=4, prefix_cache_hit_rate=0.75),
            },
            gpus={"gpu:0": GpuTelemetry(energy_joules=600.0)},
            energy_joules=600.0,
            joules_per_output_token=0.6,
            tokens_per_second_per_watt=1 / 0.6,
            window_start=105.0,
            window_end=125.0,
        )
    )
    (path / "run.json").write_text(json.dumps(record))
    readings = [
        Reading(100.0 + t, replica, metric, value)
        for t in range(30)
        for k, replica in enumerate(("replica-0", "replica-1"))
        for metric, value in (
            (metrics.KV_CACHE_USAGE, min(t / 30 + k * 0.1, 1.0)),
            (metrics.RUNNING, float(t % 8 + k)),
            (metrics.WAITING, float(t % 3)),
            (metrics.PREEMPTIONS, float(t // 5)),
        )
    ] + [Reading(100.0 + t, "gpu:0", metrics.GPU_POWER, 300.0) for t in range(30)]
    write_jsonl(readings, path / SERIES_FILE)
    return path


def test_a_report_shows_the_telemetry_of_runs_that_sampled_it_and_blanks_for_those_that_did_not(scripted_run, tmp_path):
    _with_telemetry(scripted_run, tmp_path / "runs" / "sampled")
    old = tmp_path / "runs" / "old"  # as a run recorded before telemetry
    shutil.copytree(scripted_run, old)
    record = json.loads((old / "run.json").read_text())
    record.pop("telemetry", None)
    (old / "run.json").write_text(json.dumps(record))
    (old / SERIES_FILE).unlink(missing_ok=True)

    report = build_report([tmp_path / "runs"], tmp_path / "report")
    rows = {Path(row.run_dir).name: row for row in report.rows}
    assert rows["sampled"].joules_per_output_token == 0.6
    assert rows["sampled"].tokens_per_second_per_watt == pytest.approx(1 / 0.6)
    assert rows["sampled"].preemptions == 7  # summed over the replicas
    assert rows["sampled"].kv_cache_usage_mean == pytest.approx(0.6)
    assert rows["sampled"].prefix_cache_hit_rate == pytest.approx(0.5)
    assert rows["old"].tokens_per_second == rows["sampled"].tokens_per_second
    assert (rows["old"].joules_per_output_token, rows["old"].preemptions, rows["old"].kv_cache_usage_mean) == (
        None,
        None,
        None,
    )

    names = {plot.name for plot in report.plots}
    assert {"energy_per_token.png", "telemetry-002.png"} <= names  # rows in order: old, sampled
    assert not any(name.startswith("telemetry-001") for name in names)
    for plot in report.plots:
        assert plot.is_file() and plot.stat().st_size > 1000
    with (tmp_path / "report" / "results.csv").open() as f:
        csv_rows = {Path(row["run_dir"]).name: row for row in csv.DictReader(f)}
    assert csv_rows["sampled"]["joules_per_output_token"] == "0.6"
    assert csv_rows["sampled"]["preemptions"] == "7"
    assert csv_rows["old"]["joules_per_output_token"] == csv_rows["old"]["preemptions"] == ""
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| J/token | tokens/s/W | preemptions | KV cache mean | prefix hit rate |" in markdown
    assert "| 0.6 | 1.667 | 7 | 60% | 50% |" in markdown
    assert "![telemetry-002](telemetry-002.png)" in markdown and "![energy_per_token](energy_per_token.png)" in markdown
    page = (tmp_path / "report" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(report.plots)


def test_a_report_of_runs_without_telemetry_has_no_telemetry_plot(scripted_run, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(scripted_run, old)
    record = json.loads((old / "run.json").read_text())
    record.pop("telemetry", None)
    (old / "run.json").write_text(json.dumps(record))
    (old / SERIES_FILE).unlink(missing_ok=True)
    report = build_report([old], tmp_path / "report")
    assert [row.joules_per_output_token for row in report.rows] == [None]
    assert not [plot for plot in report.plots if plot.name.startswith("telemetry-") or "energy" in plot.name]
    assert (tmp_path / "report" / "report.html").is_file()
