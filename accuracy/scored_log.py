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
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from accuracy.exact_match import ExactMatchSample, grading_rules, score_outputs
from accuracy.log import read_accuracy_log
from accuracy.scoring import SampleScore, ScoringPool, check_indices, evaluate
from accuracy.targets import LENGTH_KEYS, SCORE_KEYS
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
    livecodebench: Path | None = None,
    skip_code: bool = False,
    progress: bool = True,
) -> AccuracyReport:
    """Score `log_path` against `dataset`'s references, by ROUGE or by exact match as `targets` say (exact match
    by the reference rules their `grading` names), and write the report files to `out_dir`. Exact match grades
    LiveCodeBench samples with the problems in `livecodebench`, or leaves them out with `skip_code` (the report
    then fails: it does not cover the set)."""
    if targets.scoring == "exact_match":
        grading_rules(targets.grading)  # an unknown grading is one error before the log is read
    if dataset.references is None:
        raise HarnessError(
            f"dataset {dataset.path} has no reference outputs (an 'output', 'response' or 'ground_truth' "
            "column), so accuracy cannot be scored against it."
        )
    samples: Sequence[SampleScore | ExactMatchSample]
    if targets.scoring == "exact_match":
        outputs, tokenizer = _read(log_path, dataset, tokenizer_dir, dtype)
        judged = score_outputs(
            outputs,
            dataset,
            tokenizer,
            livecodebench=livecodebench,
            grading=targets.grading,
            skip_code=skip_code,
            workers=workers,
            progress=progress,
        )
        metrics, samples = judged.metrics, judged.samples
    else:
        # The workers start while the log is read and the tokenizer loads; a small log is scored here.
        big = Path(log_path).is_file() and Path(log_path).stat().st_size > POOL_WORTHY_LOG_BYTES
        with ScoringPool(workers if big else 1) as pool:
            outputs, tokenizer = _read(log_path, dataset, tokenizer_dir, dtype)
            scored = evaluate(outputs, dataset.references, tokenizer, pool=pool)
        metrics, samples = scored.metrics, scored.samples
    checks = targets.check(metrics)
    if metrics.get("skipped"):
        total = metrics["num-samples"] + metrics["skipped"]
        checks.append({"metric": "samples graded", "value": metrics["num-samples"], "min": total, "passed": False})
    report = AccuracyReport(
        metrics=metrics,
        checks=checks,
        passed=all(row["passed"] for row in checks),
        targets=targets.describe(),
        accuracy_log=str(log_path),
        accuracy_log_sha256=sha256_of(log_path),
        dataset=dataset.describe(),
    )
    write_report(report, samples, out_dir or log_path.parent)
    return report


def _read(log_path: Path, dataset: Dataset, tokenizer_dir: str | Path, dtype: str) -> tuple[dict[int, Any], Any]:
    """The log's outputs, each of a row of `dataset`, and the tokenizer that decodes them."""
    outputs = read_accuracy_log(log_path, dtype=dtype)
    check_indices(outputs, len(dataset))
    # use_fast=False as the references; tokenizers without a slow variant fall back to the fast one.
    return outputs, load_tokenizer(tokenizer_dir, use_fast=False)


def reference_line(metrics: dict[str, Any]) -> str:
    """The dict line the reference evaluator prints, with plain Python numbers: the scalar metrics only (a
    breakdown, such as gpt-oss-120b's `per_dataset`, goes to accuracy.json and the console)."""
    return repr(
        {
            key: (float(v) if isinstance(v, float) else int(v))
            for key, v in metrics.items()
            if isinstance(v, int | float | np.integer | np.floating)
        }
    )


def _bounds(row: dict[str, Any], number: str) -> str:
    """A checked row's bounds: "in [low, high]", "<= high" where there is no floor (gpt-oss-120b's output
    length), ">= low" for a score."""
    if "max" not in row:
        return ">= " + number.format(row["min"])
    if row["min"] is None:
        return "<= " + number.format(row["max"])
    return f"in [{number.format(row['min'])}, {number.format(row['max'])}]"


def write_report(report: AccuracyReport, samples: Sequence[SampleScore | ExactMatchSample], out_dir: Path) -> None:
    verdicts = [
        f"{row['metric']}: {row['value']} "
        + _bounds(row, "{:.4f}")
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
        for sample in samples:
            f.write(json.dumps(asdict(sample)) + "\n")


def print_report(report: AccuracyReport, console: Console) -> None:
    verdict = "[bold green]PASS" if report.passed else "[bold red]FAIL"
    table = Table(title=f"accuracy vs {report.targets['name']} · {verdict}", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_column("")
    checked = {row["metric"]: row for row in report.checks}
    metrics = report.metrics
    scores = [key for key in SCORE_KEYS if key in metrics]
    lengths = [key for key in LENGTH_KEYS if key in checked] or ["tokens_per_sample"]
    extra = [row["metric"] for row in report.checks if row["metric"] not in (*scores, *lengths)]
    for key in (*scores, *lengths, *extra):
        row = checked.get(key)
        if row is None:
            table.add_row(key, f"{metrics[key]}", "", "")
            continue
        bound = _bounds(row, "{:,.2f}") if "max" in row else _bounds(row, "{:.4f}")
        table.add_row(key, f"{row['value']}", bound, "[green]PASS" if row["passed"] else "[red]FAIL")
    if "gen_num" in metrics:
        table.caption = (
            f"{metrics['gen_num']} samples, {metrics['gen_tok_len']:,} tokens, {metrics['gen_len']:,} characters"
        )
    else:
        skipped = f", {metrics['skipped']} LiveCodeBench samples not graded" if metrics.get("skipped") else ""
        table.caption = f"{metrics['num-samples']} samples graded{skipped}"
    console.print(table)
    if "per_dataset" in metrics:
        console.print(_breakdown(metrics))


def _breakdown(metrics: dict[str, Any]) -> Table:
    """gpt-oss-120b's final score by data set, as eval_mlperf_accuracy.py prints its "Per-Dataset Breakdown"."""
    table = Table(title="exact_match by data set (each weighed by its repeats)", title_justify="left")
    for column in ("data set", "correct", "total", "repeats", "score", "accuracy"):
        table.add_column(column, justify="left" if column == "data set" else "right")
    for name, part in metrics["per_dataset"].items():
        table.add_row(
            name,
            str(part["correct"]),
            str(part["total"]),
            str(part["repeats"]),
            f"{part['component_score']:.2f} / {part['max_component_score']:.2f}",
            f"{part['accuracy']:.2f}%",
        )
    table.caption = (
        f"final score {metrics['final_score']:.2f} / {metrics['max_score']:.2f} = {metrics['exact_match']:.3f}%"
    )
    return table
