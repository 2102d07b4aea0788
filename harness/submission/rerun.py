"""Reproducible runs: `python -m harness rerun RUN_DIR`.

A rerun rebuilds the recorded configuration, refuses when the model files or the data set
are no longer the ones the run used, runs it again, and reports how far the figures moved
and, in accuracy mode, the share of samples whose output tokens are identical.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.single.config import RunConfig
from harness.single.figures import Comparison, compare_runs, read_outputs
from harness.single.fingerprint import fingerprint_changes, model_fingerprint
from harness.single.record import RunRecord, read_run_record
from harness.single.runner import ReplicaFactory, RunReport, exit_code, run
from harness.single.summary import print_summary
from mlperf_llm_sut.common.dataset import sha256_of
from mlperf_llm_sut.common.errors import HarnessError, report_failure
from mlperf_llm_sut.common.typed_json import to_json

REDACTED = "***"


def config_from_record(record: RunRecord, run_dir: Path, output_dir: Path | None) -> RunConfig:
    """The `RunConfig` a run.json recorded; the run's own copy of user.conf stands in for the path."""
    secrets = _redacted_keys(to_json(record.config))
    if secrets:
        raise HarnessError(
            f"{run_dir}/run.json has secrets redacted ({', '.join(secrets)}): a rerun cannot restore them. "
            "Run the original command again with them."
        )
    config = record.config
    user_conf = config.loadgen.user_conf
    kept_conf = run_dir / "user.conf"
    if user_conf is not None and kept_conf.is_file():
        user_conf = kept_conf
    return dataclasses.replace(
        config,
        loadgen=dataclasses.replace(config.loadgen, user_conf=user_conf),
        output_dir=Path(output_dir) if output_dir else run_dir.parent,
    )


def _redacted_keys(value: Any, prefix: str = "") -> list[str]:
    if isinstance(value, dict):
        return [key for k, v in value.items() for key in _redacted_keys(v, f"{prefix}{k}.")]
    if isinstance(value, list):
        return [key for v in value for key in _redacted_keys(v, prefix)]
    return [prefix.rstrip(".")] if value == REDACTED else []


def check_unchanged(record: RunRecord, config: RunConfig) -> None:
    """Refuse a rerun on other data or another model: one line per change."""
    problems = []
    dataset = config.dataset.path
    if not dataset.is_file():
        problems.append(f"the data set {dataset} is gone")
    elif sha256_of(dataset) != record.dataset.sha256:
        problems.append(f"the data set {dataset} changed (its sha256 is not the recorded one)")
    recorded = record.model
    if recorded is None:
        problems.append("run.json has no model fingerprint (a run from before fingerprints were kept)")
    elif not Path(config.engine.model).is_dir():
        problems.append(f"the model {config.engine.model} is gone")
    else:
        now = model_fingerprint(config.engine.model, quantization=config.engine.quantization)
        problems += [f"model {config.engine.model}: {change}" for change in fingerprint_changes(recorded, now)]
    if problems:
        raise HarnessError("\n".join(f"cannot rerun: {problem}" for problem in problems))


def print_comparison(comparison: Comparison, console: Console) -> None:
    table = Table(title="rerun against the original", title_justify="left")
    for column in ("figure", "original", "rerun", "change"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for name, (before, after) in comparison.figures.items():
        change = ""
        if (
            isinstance(before, int | float)
            and isinstance(after, int | float)
            and not isinstance(before, bool)
            and before
        ):
            change = f"{(after - before) / before:+.1%}"
        table.add_row(name, str(before), str(after), change)
    if comparison.identical_outputs is not None:
        table.caption = (
            f"identical output tokens: {comparison.identical_outputs:.1%} of {comparison.compared_samples} samples"
        )
    console.print(table)


def rerun(
    run_dir: Path,
    *,
    output_dir: Path | None = None,
    console: Console | None = None,
    replica_factory: ReplicaFactory | None = None,
) -> tuple[RunReport, Comparison]:
    """Run `run_dir`'s configuration again; returns the new `RunReport` and the comparison (also in rerun.json).
    `replica_factory` is `run`'s (tests use a scripted replica)."""

    record = read_run_record(Path(run_dir))
    # Read now, not after the run: a damaged samples.jsonl is refused before the time a run takes.
    outputs = read_outputs(Path(run_dir)) if record.mode == "accuracy" else None
    config = config_from_record(record, Path(run_dir), output_dir)
    check_unchanged(record, config)
    report = run(config, console=console, replica_factory=replica_factory)
    comparison = compare_runs(Path(run_dir), record, report.run_dir, report.record, before_outputs=outputs)
    (report.run_dir / "rerun.json").write_text(
        json.dumps({"original": str(run_dir), **comparison.to_json()}, indent=2) + "\n"
    )
    return report, comparison


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness rerun",
        description="Run a recorded run's configuration again; refuses if the model or the data changed.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    parser.add_argument("--output-dir", type=Path, help="where the new run goes (default: beside the original)")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    try:
        report, comparison = rerun(args.run_dir, output_dir=args.output_dir, console=console)
    except Exception as exc:
        return report_failure(
            exc, lambda line: console.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
        )
    out = Console()
    print_summary(report, out)
    print_comparison(comparison, out)
    return exit_code(report)
