"""run.json as one typed, versioned record: written from a `RunRecord`, read back into the same one, and a
record of the first layout (no version, the replica layout flat in `config`) read as the current one."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from harness.single.config import build_config
from harness.single.record import RECORD_VERSION, RUN_JSON, read_run_record
from harness.single.runner import RunReport, run
from harness.submission.rerun import rerun
from mlperf_llm_sut.common.errors import HarnessError
from mlperf_llm_sut.common.stopping import Interruption
from mlperf_llm_sut.common.typed_json import FLATTEN, from_json, to_json
from sut.build import ReplicaLayout
from tests.scripted_replica import ScriptedReplica

QUIET = {"console": Console(file=io.StringIO()), "replica_factory": ScriptedReplica.factory()}


@pytest.fixture(scope="module")
def two_replica_run(tmp_path_factory: pytest.TempPathFactory) -> RunReport:
    config = build_config(
        output_dir=tmp_path_factory.mktemp("runs"),
        warmup_samples=0,
        total_sample_count=40,
        replicas=2,
        dispatch="least-requests",
        step_delays={1: 0.0},
        stall_timeout=42.0,
    )
    return run(config, **QUIET)


def test_run_json_reads_back_into_the_record_the_run_returned(two_replica_run):
    read = read_run_record(two_replica_run.run_dir)
    assert read == two_replica_run.record
    assert read.record_version == RECORD_VERSION
    assert read.config.layout == ReplicaLayout(
        replicas=2, dispatch="least-requests", stall_timeout=42.0, step_delays={1: 0.0}
    )
    assert read.samples.issued == sum(row.samples for row in read.replicas) > 0
    assert read.result.valid is two_replica_run.result.valid


def test_a_record_of_the_first_layout_is_read_as_the_current_one(two_replica_run, tmp_path):
    raw = json.loads((two_replica_run.run_dir / RUN_JSON).read_text())
    del raw["record_version"]
    layout = raw["config"].pop("layout")
    renamed = {"stall_timeout": "engine_stall_timeout", "start_timeout": "engine_start_timeout"}
    raw["config"] |= {renamed.get(key, key): value for key, value in layout.items()}
    for row in raw["replicas"]:  # version 1 wrote no latencies in Offline rows
        del row["ttft_ms"], row["tpot_ms"]
    (tmp_path / RUN_JSON).write_text(json.dumps(raw))
    assert read_run_record(tmp_path) == two_replica_run.record


def test_a_rerun_of_a_first_layout_record_runs_its_replica_layout_again(two_replica_run, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    raw = json.loads((two_replica_run.run_dir / RUN_JSON).read_text())
    raw.pop("record_version")
    raw["config"] |= {"replicas": 2, "dispatch": "least-requests", "engine_stall_timeout": 42.0}
    del raw["config"]["layout"]
    (old / RUN_JSON).write_text(json.dumps(raw))
    report, _ = rerun(old, output_dir=tmp_path / "again", **QUIET)
    assert report.record.config.layout == ReplicaLayout(replicas=2, dispatch="least-requests", stall_timeout=42.0)


def test_a_record_from_a_newer_harness_is_one_error_that_says_so(two_replica_run, tmp_path):
    raw = json.loads((two_replica_run.run_dir / RUN_JSON).read_text())
    (tmp_path / RUN_JSON).write_text(json.dumps(raw | {"record_version": RECORD_VERSION + 1}))
    with pytest.raises(HarnessError, match=f"has record version {RECORD_VERSION + 1}, and this harness reads up to"):
        read_run_record(tmp_path)


@pytest.mark.parametrize(
    "damage, said",
    [
        (lambda r: r["config"]["layout"].update(replicas="two"), "'config.layout.replicas' is a string, not a number"),
        (lambda r: r["replicas"][0].update(samples=None), "'replicas[0].samples' is null, not a number"),
        (lambda r: r["config"]["layout"].update(step_delays={"x": 1}), "'config.layout.step_delays.x' is not a number"),
        (lambda r: r["config"]["engine"].pop("model"), "or by an older version of it (no 'config.engine.model')"),
        (lambda r: r.update(interrupted="SIGINT"), "'interrupted' is a string, not an object or null"),
    ],
)
def test_a_damaged_value_deep_in_run_json_is_named_by_its_path(two_replica_run, tmp_path, damage, said):
    raw = json.loads((two_replica_run.run_dir / RUN_JSON).read_text())
    damage(raw)
    (tmp_path / RUN_JSON).write_text(json.dumps(raw))
    with pytest.raises(HarnessError) as error:
        read_run_record(tmp_path)
    message = str(error.value)
    assert message.startswith(f"run record {tmp_path / RUN_JSON} ") and message.endswith(f"{said}."), message


@dataclass
class _Row:
    name: str
    where: Path | None = None
    window: tuple[float, float] | None = None
    by_slot: dict[int, float] = field(default_factory=dict)
    stop: Interruption | None = None
    details: dict[str, Any] = field(default_factory=dict, metadata={FLATTEN: True})


def test_typed_json_round_trips_paths_tuples_int_keys_and_flattened_details():
    row = _Row("a", Path("/x"), (1.0, 2.5), {3: 0.5}, Interruption("SIGINT", "test"), {"retries": 2})
    plain = to_json(row)
    assert plain == {
        "name": "a",
        "where": "/x",
        "window": [1.0, 2.5],
        "by_slot": {"3": 0.5},
        "stop": {"signal": "SIGINT", "phase": "test"},
        "retries": 2,
    }
    assert from_json(_Row, json.loads(json.dumps(plain)), where="w") == row
    assert from_json(_Row, {"name": "b", "window": [1, 2]}, where="w") == _Row("b", window=(1.0, 2.0))


def test_typed_json_refuses_a_bool_where_a_number_belongs():
    with pytest.raises(HarnessError, match=r"w is damaged: 'by_slot.1' is true or false, not a number\."):
        from_json(_Row, {"name": "a", "by_slot": {"1": True}}, where="w")
