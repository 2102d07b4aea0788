"""Compare the accuracy of two runs: metric deltas, and the samples that dropped most."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from accuracy.scored_log import ACCURACY_JSON, SAMPLES_JSONL
from mlperf_llm_sut.common.dataset import load_dataset
from mlperf_llm_sut.common.errors import HarnessError, setting
from mlperf_llm_sut.common.files import NUMBER, Shape, read_json, read_jsonl

METRICS = ("rouge1", "rouge2", "rougeL", "rougeLsum", "tokens_per_sample", "gen_num")
ROUGE = METRICS[:4]
# What a comparison reads of the files `accuracy.scored_log` writes, with the types it computes with.
REPORT_KEYS: Shape = {"metrics": dict, **{f"metrics.{key}": NUMBER for key in METRICS}}
OPTIONAL_REPORT_KEYS: Shape = {"dataset": dict, "dataset.path": str}
SAMPLE_KEYS: Shape = {"qsl_idx": int, "prediction": str, **dict.fromkeys(ROUGE, NUMBER)}


@dataclass
class ScoredRun:
    path: Path
    report: dict[str, Any]
    samples: dict[int, dict[str, Any]]


@dataclass
class Drop:
    qsl_idx: int
    a: dict[str, Any]
    b: dict[str, Any]
    delta: float
    reference: str | None


@dataclass
class Comparison:
    a: ScoredRun
    b: ScoredRun
    deltas: dict[str, tuple[float, float, float]]
    drops: list[Drop]
    metric: str
    common: int


def load_scored_run(path: str | Path) -> ScoredRun:
    """A run directory (or its accuracy.json) that accuracy scoring has written to."""
    path = Path(path)
    directory = path.parent if path.is_file() else path
    report_file, samples_file = directory / ACCURACY_JSON, directory / SAMPLES_JSONL
    if not report_file.exists() and not samples_file.exists():
        raise HarnessError(
            f"{path} has no {ACCURACY_JSON} and {SAMPLES_JSONL}: pass a run directory of an accuracy-mode "
            "run, or score its log first with 'python -m accuracy --accuracy-log ... --dataset ...'."
        )
    report = read_json(report_file, what="accuracy report", required=REPORT_KEYS, optional=OPTIONAL_REPORT_KEYS)
    rows = read_jsonl(samples_file, what="accuracy samples", required=SAMPLE_KEYS)
    return ScoredRun(directory, report, {row["qsl_idx"]: row for row in rows})


def _references(run: ScoredRun) -> list[str] | None:
    try:
        return load_dataset(run.report["dataset"]["path"]).references
    except (HarnessError, KeyError):
        return None


def compare(a: str | Path, b: str | Path, *, metric: str = "rougeL", top: int = 5) -> Comparison:
    run_a, run_b = load_scored_run(a), load_scored_run(b)
    if metric not in ROUGE:
        raise HarnessError(f"{setting('metric')} {metric!r}: use rouge1, rouge2, rougeL or rougeLsum.")
    deltas = {}
    for key in METRICS:
        va, vb = run_a.report["metrics"][key], run_b.report["metrics"][key]
        deltas[key] = (va, vb, vb - va)
    common = sorted(set(run_a.samples) & set(run_b.samples))
    references = _references(run_b)
    ranked = sorted(common, key=lambda i: run_b.samples[i][metric] - run_a.samples[i][metric])
    drops = [
        Drop(
            i,
            run_a.samples[i],
            run_b.samples[i],
            run_b.samples[i][metric] - run_a.samples[i][metric],
            references[i] if references and i < len(references) else None,
        )
        for i in ranked[:top]
        if run_b.samples[i][metric] < run_a.samples[i][metric]
    ]
    return Comparison(run_a, run_b, deltas, drops, metric, len(common))


def plot_comparison(comparison: Comparison, path: Path) -> Path:
    """Per-sample scores of B against A, and the metric deltas, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = comparison.metric
    common = sorted(set(comparison.a.samples) & set(comparison.b.samples))
    xs = [comparison.a.samples[i][metric] for i in common]
    ys = [comparison.b.samples[i][metric] for i in common]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    left.scatter(xs, ys, s=6, alpha=0.4)
    left.plot([0, 1], [0, 1], color="grey", linewidth=1)
    left.set(xlabel=f"A {metric}", ylabel=f"B {metric}", title=f"per sample ({len(common)} samples)")
    names = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    deltas = [comparison.deltas[name][2] for name in names]
    right.bar(names, deltas, color=["tab:red" if d < 0 else "tab:green" for d in deltas])
    right.axhline(0, color="grey", linewidth=1)
    right.set(ylabel="B - A (points)", title="metric change")
    fig.suptitle(f"A: {comparison.a.path.name}   B: {comparison.b.path.name}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def print_comparison(comparison: Comparison, console: Console) -> None:
    table = Table(title=f"A: {comparison.a.path}\nB: {comparison.b.path}", title_justify="left")
    for column in ("metric", "A", "B", "B - A"):
        table.add_column(column, justify="right" if column != "metric" else "left")
    for key, (va, vb, delta) in comparison.deltas.items():
        style = "red" if delta < 0 and key != "gen_num" else ""
        table.add_row(key, f"{va}", f"{vb}", f"[{style}]{delta:+.4f}" if style else f"{delta:+.4f}")
    console.print(table)
    console.print(f"{comparison.common} samples in both runs")
    if not comparison.drops:
        console.print(f"no sample scores lower {comparison.metric} in B than in A")
        return
    console.print(f"\n[bold]largest {comparison.metric} drops from A to B[/]")
    for drop in comparison.drops:
        console.print(
            f"\n[bold]sample {drop.qsl_idx}[/]: {comparison.metric} {drop.a[comparison.metric]:.4f} -> "
            f"{drop.b[comparison.metric]:.4f} ({drop.delta:+.4f})"
        )
        if drop.reference is not None:
            console.print(f"  [dim]reference:[/] {drop.reference!r}", highlight=False)
        console.print(f"  [dim]A:[/] {drop.a['prediction']!r}", highlight=False)
        console.print(f"  [dim]B:[/] {drop.b['prediction']!r}", highlight=False)
