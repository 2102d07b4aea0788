"""`python -m harness multi PLAN`: several runs at once (each with its own LoadGen), then each alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from harness.research.multi import _overlap, load_multi_plan, run_multi
from mlperf_llm_sut.common import embedded
from mlperf_llm_sut.common.errors import HarnessError
from tests.conftest import ROOT, run_cli
from tests.fault_server import FaultServer

EXAMPLE = ROOT / "examples" / "multi-embedded.yaml"


def _plan(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return path


def test_runs_that_name_no_cores_share_the_hosts_cores_one_core_each(tmp_path):
    plan = load_multi_plan(EXAMPLE, output_dir=tmp_path)

    assert [run.name for run in plan.runs] == ["offline", "server"]
    assert [run.config.layout.cpu_bind for run in plan.runs] == [["0"], ["1"]]
    assert [run.placed for run in plan.runs] == ["cores 0", "cores 1"]
    assert plan.directory == tmp_path / "embedded"


@pytest.mark.parametrize(
    ("runs", "line", "message"),
    [
        (
            "  a: {cpu_bind: ['0-1']}\n  b: {cpu_bind: ['1']}\n",
            5,
            "runs 'a' and 'b' both use cores 1: runs on one host need disjoint cores (cpu_bind)",
        ),
        ("  a: {cpu_bind: ['0-1']}\n  b: {}\n", 5, "run 'b' needs 1 cores of its own, and after the other runs"),
        ("  a: {replicas: 2}\n  b: {}\n", 4, "run 'a' needs 2 cores of its own"),
        ("  a: {scenario: Sever}\n  b: {}\n", 4, "run 'a': "),
        ("  a: {wings: 2}\n  b: {}\n", 4, "run 'a': unknown setting 'wings'; a multi plan's settings: "),
        ("  a: {output_dir: x}\n  b: {}\n", 4, "'output_dir' is set by `multi` for each run"),
        ("  a: {replicas: '2'}\n  b: {}\n", 4, "run 'a': replicas = '2': give a whole number."),
        ("  a:\n    replicas: 1\n  b:\n    replicas: true\n", 7, "run 'b': replicas = True: give a whole number."),
        ("  a: {}\n  ..: {}\n", 5, "the run name '..' is a directory name"),
        ("  a: {}\n  b: 2\n", 5, "run 'b' needs a mapping of settings"),
        ("  a: {sut: ray}\n  b: {}\n", 4, "give its ray_address"),
        ("  a: {}\n", 3, "`runs` needs a mapping of two or more named runs"),
    ],
)
def test_a_plan_that_cannot_run_is_one_error_naming_its_line(tmp_path, runs, line, message):
    path = _plan(tmp_path, f"name: bad\n\nruns:\n{runs}")
    with pytest.raises(HarnessError) as error:
        load_multi_plan(path, output_dir=tmp_path)
    assert str(error.value).startswith(f"{path}:{line}: "), error.value
    assert message in str(error.value)


def test_a_plan_name_is_a_directory_name_as_a_sweeps_is(tmp_path):
    path = _plan(tmp_path, "name: two models\nruns:\n  a: {}\n  b: {}\n")
    with pytest.raises(HarnessError, match=r"plan\.yaml:1: the name 'two models' is a directory name"):
        load_multi_plan(path, output_dir=tmp_path)


def test_a_mistake_in_a_toml_plan_names_the_line_in_its_runs_table(tmp_path):
    path = tmp_path / "plan.toml"
    path.write_text('[runs.a]\nreplicas = 1\n[runs.b]\nreplicas = "2"\n')
    with pytest.raises(HarnessError, match=r"plan\.toml:4: run 'b': replicas = '2': give a whole number\."):
        load_multi_plan(path, output_dir=tmp_path)


def test_on_gpus_each_run_gets_the_gpus_its_layout_needs_and_named_ones_are_kept(tmp_path, monkeypatch):
    """The GPU path, by its mapping: 4 visible GPUs, one run naming GPUs 2 and 3, one placed on the rest."""
    monkeypatch.setattr("harness.research.multi.running_on_cpu", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    path = _plan(
        tmp_path,
        "runs:\n  named: {devices: ['2,3'], engine: {tensor_parallel_size: 2}}\n"
        "  placed: {engine: {tensor_parallel_size: 2}}\n",
    )
    plan = load_multi_plan(path, output_dir=tmp_path)
    assert [run.config.layout.devices for run in plan.runs] == [["2,3"], ["0,1"]]
    assert [run.placed for run in plan.runs] == [None, "GPUs 0,1"]

    path.write_text("runs:\n  a: {replicas: 2}\n  b: {replicas: 3}\n")
    with pytest.raises(HarnessError, match=r"plan.yaml:3: run 'b' needs 3 GPUs of its own, and .* has 2 free"):
        load_multi_plan(path, output_dir=tmp_path)


def test_the_overlap_is_the_share_of_a_test_that_others_ran_during():
    windows = {"a": [0.0, 10.0], "b": [5.0, 20.0], "c": [8.0, 9.0], "d": None}
    assert _overlap("a", windows) == 0.5
    assert _overlap("b", windows) == round(5 / 15, 4)
    assert _overlap("c", windows) == 1.0
    assert _overlap("d", windows) is None


def test_two_runs_against_their_own_servers_are_measured_together_and_alone(tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(embedded.MODEL_DIR)
    with FaultServer(tokenizer, token_delay=0.002) as first, FaultServer(tokenizer, token_delay=0.002) as second:
        short = "total_sample_count: 100, min_query_count: 100, min_duration_ms: 0, warmup_samples: 0"
        remote = "served_model_name: tiny, probe_interval: 0.2"
        path = _plan(
            tmp_path,
            f"""
name: servers
runs:
  first: {{sut: remote, remote: {{endpoints: ["{first.url}"], {remote}}}, {short}}}
  second:
    {{sut: remote, scenario: Server, target_qps: 20, remote: {{endpoints: ["{second.url}"], {remote}}}, {short}}}
""",
        )
        plan = load_multi_plan(path, output_dir=tmp_path)
        assert [run.placed for run in plan.runs] == [None, None]  # remote runs take no core of this host
        outcome = run_multi(plan)

    assert outcome.exit_code == 0, outcome.failed
    saved = json.loads((tmp_path / "servers" / "multi.json").read_text())
    assert saved == outcome.report
    for row in saved["runs"]:
        for setting in ("together", "alone"):
            figures = row[setting]
            record = json.loads((Path(figures["run_dir"]) / "run.json").read_text())
            assert Path(figures["run_dir"]).parent == tmp_path / "servers" / setting / row["name"]
            assert figures["tokens_per_second"] == record["result"]["tokens_per_second"]
            assert figures["valid"] == record["result"]["valid"]
            assert record["samples"]["completed"] == record["samples"]["issued"] > 0
        assert row["ratio"]["tokens_per_second"] == pytest.approx(
            row["together"]["tokens_per_second"] / row["alone"]["tokens_per_second"], abs=1e-4
        )
    server_row = saved["runs"][1]
    assert server_row["together"]["ttft"] is not None and server_row["overlap"] > 0
    assert (tmp_path / "servers" / "multi.png").stat().st_size > 10_000


@pytest.mark.engine
def test_two_engines_run_together_each_on_its_own_core(tmp_path):
    """The example's two runs, the Server one shortened; together only (measuring alone is the same code,
    which the servers test above runs)."""
    path = _plan(
        tmp_path,
        "name: engines\nruns:\n  offline: {scenario: Offline}\n"
        "  server: {scenario: Server, target_qps: 40, min_duration_ms: 5000, min_query_count: 500}\n",
    )
    code, out, err = run_cli("multi", str(path), "--output-dir", str(tmp_path), "--skip-alone", timeout=900)

    assert code == 0, err
    report = json.loads((tmp_path / "engines" / "multi.json").read_text())
    assert [row["placed"] for row in report["runs"]] == ["cores 0", "cores 1"]
    for row in report["runs"]:
        assert "alone" not in row
        record = json.loads((Path(row["together"]["run_dir"]) / "run.json").read_text())
        assert record["result"]["valid"], record["result"]["invalid_reasons"]
        assert row["together"]["tokens_per_second"] == record["result"]["tokens_per_second"]
        assert [replica["cpus"] for replica in record["replicas"]] == [row["placed"].removeprefix("cores ")]
    assert all(row["overlap"] > 0 for row in report["runs"])
    assert "alone / together" in out and "multi.json" in out


def test_a_missing_plan_is_one_error_line_and_exit_2(tmp_path):
    code, _, err = run_cli("multi", str(tmp_path / "nope.yaml"))
    assert code == 2 and "Traceback" not in err
    assert [line for line in err.splitlines() if "error:" in line] == [
        f"error: multi plan {tmp_path / 'nope.yaml'} does not exist; give a .yaml or .toml plan."
    ]
