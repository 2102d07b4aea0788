"""`python -m harness compare BASELINE CANDIDATE`: two runs, or two sweeps, side by side, gated.

Each pair of runs (a sweep's runs pair up by point, scenario and mode) is compared figure by figure:
tokens/s and samples/s and the ROUGE scores should not fall, TTFT and TPOT p99 should not rise, a VALID
run should stay VALID. A change beyond the allowed regression (`--max-regression 2%`, or per figure,
`--max-regression tokens_per_second=5%`) is a regression, and the command exits 1, so CI can gate on it.
Where both runs sampled telemetry, their energy per output token, preemptions and mean KV cache usage are
shown too, with their change, but not gated. Accuracy runs also get the per-sample comparison of
`python -m accuracy compare` (the samples that dropped most).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from harness.single.figures import TELEMETRY_FIGURES, compare_runs
from harness.single.record import RUN_JSON, console_warning, read_run_record
from mlperf_llm_sut.common.errors import HarnessError, report_failure
from mlperf_llm_sut.common.files import read_each

if TYPE_CHECKING:
    from accuracy.sample_deltas import Comparison as AccuracyComparison

HIGHER_IS_BETTER = ("tokens_per_second", "samples_per_second", "rouge1", "rouge2", "rougeL")
LOWER_IS_BETTER = ("ttft_ms p99", "tpot_ms p99")
GATED = HIGHER_IS_BETTER + LOWER_IS_BETTER
DEFAULT_MAX_REGRESSION = 0.02


@dataclass
class Change:
    figure: str
    baseline: Any
    candidate: Any
    change: float | None
    """Relative change, candidate against baseline."""
    regression: bool


@dataclass
class PairComparison:
    label: str
    baseline: Path
    candidate: Path
    changes: list[Change]
    accuracy: AccuracyComparison | None = None
    """Accuracy runs: the per-sample comparison of `python -m accuracy compare`."""

    @property
    def regressions(self) -> list[Change]:
        return [change for change in self.changes if change.regression]


def compare_dirs(
    baseline: Path, candidate: Path, limits: dict[str, float], *, warn: Callable[[str], None] | None = None
) -> list[PairComparison]:
    """Pair up the runs of `baseline` and `candidate` (two runs, or two sweeps) and compare each pair. Of two
    sweeps, a pair with a damaged file is left out with a `warn`ing (on stderr by default); two runs given as
    such are compared, or refused."""
    if (baseline / RUN_JSON).exists() and (candidate / RUN_JSON).exists():
        return [_compare_pair(f"{baseline.name} -> {candidate.name}", baseline, candidate, limits)]
    runs_a, runs_b = _sweep_runs(baseline), _sweep_runs(candidate)
    pairs = [(key, runs_a[key], runs_b[key]) for key in runs_a if key in runs_b]
    if not pairs:
        raise HarnessError(f"{baseline} and {candidate} have no runs in common (same point, scenario and mode).")
    return read_each(
        pairs,
        lambda pair: _compare_pair(*pair, limits),
        warn or console_warning(Console(stderr=True)),
        left_out="Left out of the comparison.",
    )


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness compare",
        description="Performance and accuracy of two runs or two sweeps side by side; exits 1 on a regression.",
    )
    parser.add_argument("baseline", type=Path, metavar="BASELINE", help="a run or sweep directory")
    parser.add_argument("candidate", type=Path, metavar="CANDIDATE", help="a run or sweep directory")
    parser.add_argument(
        "--max-regression",
        action="append",
        default=[],
        metavar="[FIGURE=]PERCENT",
        help=f"allowed worsening, for every figure (default {DEFAULT_MAX_REGRESSION:.0%}%) or one "
        f"({', '.join(GATED)}); repeat for several",
    )
    args = parser.parse_args(argv)
    console = Console()
    try:
        limits = parse_limits(args.max_regression)
        comparisons = compare_dirs(args.baseline, args.candidate, limits)
    except Exception as exc:
        return report_failure(exc, lambda line: print(f"error: {line}"))
    for comparison in comparisons:
        print_pair(comparison, console)
        if comparison.accuracy is not None:
            from accuracy.sample_deltas import print_comparison

            print_comparison(comparison.accuracy, console)
    regressions = sum(len(comparison.regressions) for comparison in comparisons)
    console.print(
        f"[bold red]{regressions} regressions[/]" if regressions else "[green]no regression[/]",
        f"in {len(comparisons)} compared runs",
    )
    return 1 if regressions else 0


def parse_limits(texts: Sequence[str]) -> dict[str, float]:
    """`["2%", "tokens_per_second=5%"]` -> {"*": 0.02, "tokens_per_second": 0.05}."""
    limits = {"*": DEFAULT_MAX_REGRESSION}
    for text in texts:
        figure, _, amount = text.rpartition("=")
        if figure and figure not in GATED:
            raise HarnessError(f"--max-regression {text}: no figure {figure!r}; use one of {', '.join(GATED)}.")
        try:
            value = float(amount.rstrip("%")) / (100 if amount.endswith("%") else 1)
        except ValueError:
            raise HarnessError(f"--max-regression {text}: give a share like 2% or 0.02.") from None
        if not 0 <= value < 10:
            raise HarnessError(f"--max-regression {text}: give a share between 0% and 1000%.")
        limits[figure or "*"] = value
    return limits


def print_pair(comparison: PairComparison, console: Console) -> None:
    table = Table(
        title=comparison.label, title_justify="left", caption=f"{comparison.baseline} -> {comparison.candidate}"
    )
    for column in ("figure", "baseline", "candidate", "change", ""):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for change in comparison.changes:
        table.add_row(
            change.figure,
            _show(change.figure, change.baseline),
            _show(change.figure, change.candidate),
            "" if change.change is None else f"{change.change:+.1%}",
            "[bold red]REGRESSION" if change.regression else "",
        )
    console.print(table)


def _show(figure: str, value: Any) -> str:
    if figure in TELEMETRY_FIGURES and isinstance(value, float):
        return f"{value:.0%}" if figure == "kv_cache_usage_mean" else f"{value:.4g}"
    return str(value)


def _compare_pair(label: str, baseline: Path, candidate: Path, limits: dict[str, float]) -> PairComparison:
    figures = compare_runs(baseline, read_run_record(baseline), candidate, read_run_record(candidate)).figures
    changes = []
    for figure, (old, new) in figures.items():
        if figure == "valid":
            changes.append(Change(figure, old, new, None, bool(old) and not new))
            continue
        if not isinstance(old, int | float) or not isinstance(new, int | float) or not old:
            changes.append(Change(figure, old, new, None, False))
            continue
        relative = (new - old) / abs(old)
        allowed = limits.get(figure, limits["*"])
        worse = -relative if figure in HIGHER_IS_BETTER else relative if figure in LOWER_IS_BETTER else 0.0
        changes.append(Change(figure, old, new, relative, worse > allowed))
    accuracy = None
    if (baseline / "accuracy.json").exists() and (candidate / "accuracy.json").exists():
        from accuracy.sample_deltas import compare

        accuracy = compare(baseline, candidate)
    return PairComparison(label, baseline, candidate, changes, accuracy)


def _sweep_runs(path: Path) -> dict[str, Path]:
    from harness.research.sweep import MANIFEST, read_manifest

    manifest = path / MANIFEST
    if not manifest.exists():
        raise HarnessError(f"{path} is neither a run directory (run.json) nor a sweep directory (sweep.json).")
    runs = {}
    for entry in read_manifest(manifest):
        run_dir = Path(entry.get("run_dir") or "")
        if entry["status"] in ("done", "skipped") and (run_dir / RUN_JSON).exists():
            values = ", ".join(f"{axis}={value}" for axis, value in entry["values"].items()) or "base"
            runs[f"{values} · {entry['scenario']} {entry['mode']}"] = run_dir
    return runs
