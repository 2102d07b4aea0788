"""`--target-qps search`: the highest Server (or Interactive) target QPS whose run is VALID.

The search starts from an estimate: a given Offline throughput, or a short Offline probe run (a Server
run cannot sustain more samples a second than Offline does, and latency limits usually hold it well
below). From there it brackets the peak, stepping the target up by STEP while runs stay VALID and down
while they are INVALID, then bisects until the bracket is within the tolerance, never running more than
`max_runs` search runs. Each search run is a real run with shorter LoadGen settings (`search_duration_ms`);
the last run is a full run at the QPS found, with the configuration's own settings: that is the run to
submit, if its settings are compliant. Every run keeps its own run directory under the search directory,
and `search.json` and `search.png` there hold the curve.

Why not LoadGen's own FindPeakPerformance test mode: it needs a lower bound the user already knows to be
VALID, judges each step by its latency percentiles alone (not by early stopping, which decides whether an
MLPerf Server run is VALID, nor by the minimum duration), writes the steps only into its detail log, and
runs them all inside one StartTest, so a step cannot be stopped, reported or retried on its own.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.single.config import RunConfig
from harness.single.record import RUN_JSON, read_run_record
from harness.single.runner import RunReport, run
from harness.single.settings import requested_settings
from mlperf_llm_sut.benchmarks import ScenarioRules, get_benchmark
from mlperf_llm_sut.common.errors import HarnessError
from mlperf_llm_sut.common.stopping import Interrupted

STEP = 1.5
"""How far the bracket widens per run while looking for the first VALID and the first INVALID target."""
SEARCH_DURATION_MS = 60_000
"""The search runs' minimum duration, at most (a shorter one the configuration has stays)."""
SEARCH_QUERIES = 500
"""The search runs' minimum query count, at most: LoadGen's early stopping needs about 460 queries to pass
at p99, and a run it fails is INVALID whatever its latencies."""
PROBE_DURATION_MS = 10_000
FINAL_ATTEMPTS = 3
"""Full runs at most, each at the next lower target the search found VALID, until one is VALID."""


@dataclass
class SearchStep:
    target_qps: float
    valid: bool
    run_dir: str
    ttft_ms: dict[str, float] | None
    tpot_ms: dict[str, float] | None
    tokens_per_second: float | None
    reasons: list[str]


@dataclass
class PeakSearch:
    """The search's curve, the QPS found, and the final run at it."""

    directory: Path
    rules: ScenarioRules
    estimate: float
    estimate_from: str
    tolerance: float
    steps: list[SearchStep] = field(default_factory=list)
    peak_qps: float | None = None
    """The target of the last final run: VALID in full unless every attempt was INVALID."""
    final: RunReport | None = None
    finals: list[dict[str, Any]] = field(default_factory=list)
    """Each full run at a found target: its QPS, verdict and run directory."""

    def to_json(self) -> dict[str, Any]:
        return {
            "estimate_qps": self.estimate,
            "estimate_from": self.estimate_from,
            "tolerance": self.tolerance,
            "peak_qps": self.peak_qps,
            "steps": [dataclasses.asdict(step) for step in self.steps],
            "final_run": str(self.final.run_dir) if self.final else None,
            "final_runs": self.finals,
        }


def search_peak(
    config: RunConfig,
    *,
    offline_samples_per_second: float | None = None,
    tolerance: float = 0.05,
    max_runs: int = 8,
    search_duration_ms: int = SEARCH_DURATION_MS,
    console: Console | None = None,
    runner: Callable[[RunConfig], RunReport] | None = None,
) -> PeakSearch:
    """Search `config`'s Server/Interactive target QPS (whatever it has is ignored), then run it there."""
    console = console or Console(stderr=True)
    if config.loadgen.scenario not in ("Server", "Interactive"):
        raise HarnessError("--target-qps search is for Server and Interactive; Offline has --target-qps auto.")
    if not 0 < tolerance < 1 or max_runs < 2:
        raise HarnessError("the search needs a tolerance between 0 and 1 and at least 2 runs.")
    runner = runner or (lambda c: run(c, console=console))
    directory = config.output_dir / f"peak-{config.loadgen.benchmark}-{config.loadgen.scenario}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HarnessError(
            f"cannot create the search folder {directory}: {exc.strerror}. Check --output-dir."
        ) from None
    if offline_samples_per_second is None:
        estimate_from = "an Offline probe run"
        probe = runner(_probe_config(config, directory))
        if probe.interrupted is not None:
            raise Interrupted(probe.interrupted)
        if not probe.result.samples_per_second:
            raise HarnessError(f"the Offline probe run gave no throughput to start from: see {probe.run_dir}.")
        offline_samples_per_second = probe.result.samples_per_second
    else:
        estimate_from = "the given Offline throughput"
    rules = get_benchmark(config.loadgen.benchmark).rules(config.loadgen.scenario)
    search = PeakSearch(directory, rules, offline_samples_per_second / 2, estimate_from, tolerance)
    valid = _bracket_and_bisect(search, config, runner, console, max_runs, search_duration_ms)
    _write(search)
    if valid is None:
        raise HarnessError(
            f"no target QPS down to {search.steps[-1].target_qps:.3g} was VALID in {len(search.steps)} runs: "
            f"{'; '.join(search.steps[-1].reasons[:2])}. See {directory / 'search.json'}."
        )
    # Near the peak, a run can land either side of the limits: a final run that is INVALID steps back to
    # the next lower target the search found VALID, a bounded number of times.
    candidates = sorted({step.target_qps for step in search.steps if step.valid}, reverse=True)
    for qps in candidates[:FINAL_ATTEMPTS]:
        console.rule(f"[bold]peak search[/]: the final run at {qps:.4g} QPS, with the configuration's own settings")
        search.final = runner(_at(config, qps, directory, duration_ms=None))
        if search.final.interrupted is not None:
            raise Interrupted(search.final.interrupted)
        search.finals.append(
            {"target_qps": qps, "valid": search.final.result.valid, "run_dir": str(search.final.run_dir)}
        )
        search.peak_qps = qps
        _write(search)
        if search.final.result.valid:
            break
    return search


def _bracket_and_bisect(
    search: PeakSearch,
    config: RunConfig,
    runner: Callable[[RunConfig], RunReport],
    console: Console,
    max_runs: int,
    duration_ms: int,
) -> float | None:
    """The highest VALID target tried (None when none was, in `max_runs` runs)."""
    valid: float | None = None
    invalid: float | None = None
    qps = search.estimate
    for number in range(1, max_runs + 1):
        qps = round(qps, 4)  # as LoadGen's settings and run.json have it
        console.rule(f"[bold]peak search {number}/{max_runs}[/]: target {qps:.4g} QPS")
        report = runner(_at(config, qps, search.directory, duration_ms=duration_ms))
        if report.interrupted is not None:
            raise Interrupted(report.interrupted)  # the runs so far stay in search.json
        search.steps.append(_step(qps, report))
        _write(search)
        if report.result.valid:
            valid = qps if valid is None else max(valid, qps)
        else:
            invalid = qps if invalid is None else min(invalid, qps)
        if valid is not None and invalid is not None:
            if (invalid - valid) / valid <= search.tolerance:
                break
            qps = math.sqrt(valid * invalid)  # bisect on a log scale: QPS spans orders of magnitude
        elif valid is not None:
            qps = valid * STEP
        else:
            qps = qps / STEP
    return valid


def offline_rate(text: str | None) -> float | None:
    """`--search-from`: an Offline run directory (its samples/s) or a number of samples a second."""
    if text is None:
        return None
    if (Path(text) / RUN_JSON).exists():
        try:
            record = read_run_record(Path(text))
        except HarnessError as exc:
            raise HarnessError(f"--search-from {text}: {exc}") from None
        recorded = record.result.samples_per_second
        if record.scenario != "Offline" or not recorded:
            raise HarnessError(f"--search-from {text}: give an Offline performance run (this one has no Offline rate).")
        rate = recorded
    else:
        try:
            rate = float(text)
        except ValueError:
            raise HarnessError(f"--search-from {text}: neither a number nor a run directory with run.json.") from None
    if not rate > 0:
        raise HarnessError(f"--search-from {text}: the rate must be above 0.")
    return rate


def _probe_config(config: RunConfig, directory: Path) -> RunConfig:
    """A short Offline run with its query sized by calibration: what this configuration does flat out."""
    loadgen = dataclasses.replace(
        config.loadgen,
        scenario="Offline",
        target_qps=None,
        calibrate=True,
        min_duration_ms=min(requested_settings(config.loadgen).min_duration_ms, PROBE_DURATION_MS),
        min_query_count=None,
    )
    return dataclasses.replace(config, loadgen=loadgen, output_dir=directory / "probe")


def _at(config: RunConfig, qps: float, directory: Path, *, duration_ms: int | None) -> RunConfig:
    changes: dict[str, Any] = {"target_qps": qps}
    if duration_ms is not None:
        # Shorter than the configuration's own settings, wherever those come from (user.conf, the demo, ...).
        own = requested_settings(config.loadgen)
        changes["min_duration_ms"] = min(own.min_duration_ms, duration_ms)
        changes["min_query_count"] = min(own.min_query_count, SEARCH_QUERIES)
    name = f"qps-{qps:.4g}" if duration_ms is not None else f"final-{qps:.4g}"
    return dataclasses.replace(
        config, loadgen=dataclasses.replace(config.loadgen, **changes), output_dir=directory / name
    )


def _step(qps: float, report: RunReport) -> SearchStep:
    result = report.result
    return SearchStep(
        target_qps=qps,
        valid=result.valid,
        run_dir=str(report.run_dir),
        ttft_ms=result.ttft_ms,
        tpot_ms=result.tpot_ms,
        tokens_per_second=result.tokens_per_second,
        reasons=result.invalid_reasons,
    )


def _write(search: PeakSearch) -> None:
    (search.directory / "search.json").write_text(json.dumps(search.to_json(), indent=2, default=str) + "\n")
    if search.steps:
        plot_search(search, search.directory / "search.png")


def plot_search(search: PeakSearch, path: Path) -> Path:
    """TTFT and TPOT p99 against the target QPS tried, VALID runs filled, the QPS found marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = sorted(search.steps, key=lambda step: step.target_qps)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, name in ((axes[0], "ttft_ms", "TTFT p99 (ms)"), (axes[1], "tpot_ms", "TPOT p99 (ms)")):
        limit = getattr(search.rules, metric)
        if limit:
            ax.axhline(limit, color="tab:red", linewidth=1, label=f"limit {limit:g} ms")
        points = [(s.target_qps, getattr(s, metric)["p99"], s.valid) for s in steps if getattr(s, metric)]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], color="gray", linewidth=1)
            for qps, value, valid in points:
                ax.scatter([qps], [value], color="tab:green" if valid else "tab:red", zorder=3)
        if search.peak_qps is not None:
            ax.axvline(search.peak_qps, linestyle="--", color="tab:green", label=f"peak {search.peak_qps:.4g} QPS")
        ax.legend()
        ax.set_xlabel("target QPS (green: VALID, red: INVALID)")
        ax.set_ylabel(name)
    fig.suptitle(f"peak search: {len(search.steps)} runs from {search.estimate:.4g} QPS ({search.estimate_from})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def print_search(search: PeakSearch, console: Console) -> None:
    table = Table(title="peak search", title_justify="left")
    for column in ("target QPS", "verdict", "tokens/s", "TTFT p50/p99 ms", "TPOT p50/p99 ms", "why INVALID"):
        table.add_column(column)
    for step in sorted(search.steps, key=lambda s: s.target_qps):
        table.add_row(
            f"{step.target_qps:.4g}",
            "[green]VALID" if step.valid else "[red]INVALID",
            f"{step.tokens_per_second:,.0f}" if step.tokens_per_second else "-",
            _pair(step.ttft_ms),
            _pair(step.tpot_ms),
            "; ".join(step.reasons[:2]),
        )
    console.print(table)
    if search.peak_qps is not None:
        console.print(
            f"peak: {search.peak_qps:.4g} QPS (tolerance {search.tolerance:.0%}); the final run at it, with the "
            f"configuration's own settings: {search.final.run_dir if search.final else '-'}"
        )
    console.print(f"curve: {search.directory / 'search.json'}, {search.directory / 'search.png'}")


def _pair(values: dict[str, float] | None) -> str:
    return f"{values['p50']:.1f} / {values['p99']:.1f}" if values else "-"
