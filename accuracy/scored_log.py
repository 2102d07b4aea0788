"""An accuracy log scored against a data set: the verdict, the files, the console table.

Files written next to the log:

* `accuracy.txt`: the reference evaluator's output, which the MLCommons
  submission checker parses (a Python-dict line of plain numbers), the log's
  sha256, and one PASS/FAIL line per target;
* `accuracy.json`: the same figures, targets and verdict, for programs;
* `accuracy_samples.jsonl`: per sample its scores, token count and prediction.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from accuracy.log import read_accuracy_log
from accuracy.scoring import AccuracyResult, ScoringPool, evaluate
from accuracy.targets import LENGTH_KEYS, ROUGE_KEYS
from mlperf_llm_sut.benchmarks import Targets
from mlperf_llm_sut.common.dataset import Dataset, load_tokenizer, sha256_of
from mlperf_llm_sut.common.errors import HarnessError

ACCURACY_TXT = "accuracy.txt"
ACCURACY_JSON = "accuracy.json"
SAMPLES_JSONL = "accuracy_samples.jsonl"
POOL_WORTHY_LOG_BYTES = 1 << 20
"""A log this big (a thousand samples of 128 tokens, say) is scored by worker processes; a smaller one in ours."""


@dataclass
class AccuracyReport:
    metrics: dict[str, Any]
    checks: list[dict[str, Any]]
    passed: bool
    targets: dict[str, Any]
    accuracy_log: str
    accuracy_log_sha256: str
    dataset: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def score_log(
    log_path: Path,
    dataset: Dataset,
    tokenizer_dir: str | Path,
    targets: Targets,
    *,
    dtype: str = "int32",
    workers: int | None = None,
    out_dir: Path | None = None,
) -> AccuracyReport:
    """Score `log_path` against `dataset`'s references and write the report files to `out_dir`."""
    if dataset.references is None:
        raise HarnessError(
            f"dataset {dataset.path} has no reference outputs (an 'output' or 'response' column), "
            "so accuracy cannot be scored against it."
        )
    # The workers start while the log is read and the tokenizer loads; a small log is scored here.
    big = Path(log_path).is_file() and Path(log_path).stat().st_size > POOL_WORTHY_LOG_BYTES
    with ScoringPool(workers if big else 1) as pool:
        outputs = read_accuracy_log(log_path, dtype=dtype)
        # use_fast=False as the reference; tokenizers without a slow variant fall back to the fast one.
        tokenizer = load_tokenizer(tokenizer_dir, use_fast=False)
        result = evaluate(outputs, dataset.references, tokenizer, pool=pool)
    checks = targets.check(result.metrics)
    report = AccuracyReport(
        metrics=result.metrics,
        checks=checks,
        passed=all(row["passed"] for row in checks),
        targets=targets.describe(),
        accuracy_log=str(log_path),
        accuracy_log_sha256=sha256_of(log_path),
        dataset=dataset.describe(),
    )
    write_report(report, result, out_dir or log_path.parent)
    return report


def reference_line(metrics: dict[str, Any]) -> str:
    """The dict line the reference evaluator prints, with plain Python numbers."""
    return repr({key: (float(v) if isinstance(v, float) else int(v)) for key, v in metrics.items()})


def write_report(report: AccuracyReport, result: AccuracyResult, out_dir: Path) -> None:
    verdicts = [
        f"{row['metric']}: {row['value']} "
        + (f"in [{row['min']:.4f}, {row['max']:.4f}]" if "max" in row else f">= {row['min']:.4f}")
        + (f" (the target's share for {row['scaled_to']} samples)" if "scaled_to" in row else "")
        + f" {'PASS' if row['passed'] else 'FAIL'}"
        for row in report.checks
    ]
    overall = "PASS" if report.passed else "FAIL"
    (out_dir / ACCURACY_TXT).write_text(
        "\nResults\n\n"
        + reference_line(report.metrics)
        + f"\n\nhash={report.accuracy_log_sha256}\n\n"
        + f"targets: {report.targets['name']}\n"
        + "".join(line + "\n" for line in verdicts)
        + f"accuracy: {overall}\n"
    )
    (out_dir / ACCURACY_JSON).write_text(json.dumps(report.to_json(), indent=2) + "\n")
    with (out_dir / SAMPLES_JSONL).open("w") as f:
        for sample in result.samples:
            f.write(json.dumps(asdict(sample)) + "\n")


def print_report(report: AccuracyReport, console: Console) -> None:
    verdict = "[bold green]PASS" if report.passed else "[bold red]FAIL"
    table = Table(title=f"accuracy vs {report.targets['name']} · {verdict}", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_column("")
    checked = {row["metric"]: row for row in report.checks}
    lengths = [key for key in LENGTH_KEYS if key in checked] or ["tokens_per_sample"]
    for key in (*ROUGE_KEYS, *lengths):
        row = checked.get(key)
        if row is None:
            table.add_row(key, f"{report.metrics[key]}", "", "")
            continue
        bound = f"{row['min']:,.2f} - {row['max']:,.2f}" if "max" in row else f">= {row['min']:.4f}"
        table.add_row(key, f"{row['value']}", bound, "[green]PASS" if row["passed"] else "[red]FAIL")
    metrics = report.metrics
    table.caption = (
        f"{metrics['gen_num']} samples, {metrics['gen_tok_len']:,} tokens, {metrics['gen_len']:,} characters"
    )
    console.print(table)
