"""`python -m harness report RUNS_OR_SWEEPS... --output DIR`: many runs in one report, with plots.

It reads run directories (or sweep and peak-search directories, or any folder with runs under it) and
writes `results.json`, `results.csv`, `report.md` and a self-contained `report.html` (its PNGs inline, so
it needs no network to view), with:

* throughput against accuracy: each configuration's Offline tokens/s against each ROUGE score of its
  accuracy run, the accuracy targets drawn, the configurations that pass them filled, and the Pareto front;
* TTFT and TPOT p99 against the offered QPS of Server and Interactive runs, with the benchmark's limits;
* each replica's share of the samples and its tokens/s;
* where runs sampled telemetry: per run, each replica's KV cache usage and running and waiting requests
  over time (from the run's telemetry.jsonl, the test window shaded), and the energy per output token of
  each configuration.

A configuration is everything a run was configured with except what varies between the runs of one
setting (scenario, mode, target QPS, LoadGen durations, output folder). Every row carries what differs
from the most common value of each setting, so a reader sees what changed.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from harness.single.figures import telemetry_figures
from harness.single.record import RunRecord, console_warning, read_run_record
from mlperf_llm_sut.benchmarks import get_benchmark
from mlperf_llm_sut.common.errors import HarnessError, report_failure
from mlperf_llm_sut.common.files import read_each
from mlperf_llm_sut.common.typed_json import to_json
from mlperf_llm_sut.telemetry import metrics
from mlperf_llm_sut.telemetry.loop import read_jsonl

PER_RUN = (
    "loadgen.scenario",
    "loadgen.mode",
    "loadgen.target_qps",
    "loadgen.min_duration_ms",
    "loadgen.min_query_count",
    "loadgen.calibrate",
    "loadgen.compliance",
    "loadgen.enable_trace",
    "output_dir",
    "command",
    "save_outputs",
    "warmup_samples",
    "warmup_tokens",
    "scoring_workers",
)
"""Settings that differ between the runs of one configuration, not between configurations."""
ROUGE = ("rouge1", "rouge2", "rougeL")


@dataclass
class Row:
    run_dir: str
    benchmark: str
    scenario: str
    mode: str
    verdict: str
    configuration: str
    """What differs from the most common settings ("base" when nothing does)."""
    differs: dict[str, Any]
    target_qps: float | None = None
    tokens_per_second: float | None = None
    samples_per_second: float | None = None
    ttft_p50_ms: float | None = None
    ttft_p99_ms: float | None = None
    tpot_p50_ms: float | None = None
    tpot_p99_ms: float | None = None
    accuracy: dict[str, float] = field(default_factory=dict)
    accuracy_passed: bool | None = None
    accuracy_targets: dict[str, float] = field(default_factory=dict)
    replicas: list[dict[str, Any]] = field(default_factory=list)
    joules_per_output_token: float | None = None
    tokens_per_second_per_watt: float | None = None
    preemptions: int | None = None
    """Of all replicas, over the test window."""
    kv_cache_usage_mean: float | None = None
    """0-1: the mean over the replicas of their mean usage over the test window."""
    prefix_cache_hit_rate: float | None = None
    """0-1: the mean over the replicas."""
    window: tuple[float, float] | None = None
    """The test window on the telemetry clock (records that kept it)."""


@dataclass
class Report:
    output: Path
    rows: list[Row]
    plots: list[Path]


def build_report(paths: Sequence[Path], output: Path, *, warn: Callable[[str], None] | None = None) -> Report:
    """The report of every run under `paths`; a run whose run.json is damaged is left out, with a `warn`ing
    (on stderr by default)."""
    run_dirs = find_runs(paths)
    warn = warn or console_warning(Console(stderr=True))
    records = read_each(
        run_dirs,
        lambda run_dir: (run_dir, read_run_record(run_dir)),
        warn,
        left_out="Left out of the report.",
    )
    flats = [_flatten(to_json(record.config)) for _, record in records]
    base = _most_common(flats)
    rows = [_row(run_dir, record, flat, base) for (run_dir, record), flat in zip(records, flats, strict=True)]
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HarnessError(
            f"cannot create the report folder {output}: {exc.strerror}. Give another --output."
        ) from None
    plots = [
        plot
        for plot in (
            _accuracy_plot(rows, output),
            _latency_plot(rows, output),
            _replica_plot(rows, output),
            _energy_plot(rows, output),
        )
        if plot
    ]
    plots += _telemetry_plots(rows, output, warn)
    report = Report(output, rows, plots)
    (output / "results.json").write_text(json.dumps([asdict(row) for row in rows], indent=2, default=str) + "\n")
    _write_csv(rows, output / "results.csv")
    (output / "report.md").write_text(_markdown(report))
    (output / "report.html").write_text(_html(report))
    return report


def find_runs(paths: Sequence[Path]) -> list[Path]:
    """Run directories: those given, and every one under a folder given (a sweep, a peak search), in order."""
    found: list[Path] = []
    for path in paths:
        if (path / "run.json").is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(run_json.parent for run_json in path.rglob("run.json"))
        else:
            raise HarnessError(f"{path} is neither a run directory nor a folder with runs under it.")
    unique = list(dict.fromkeys(run_dir.resolve() for run_dir in found))
    if not unique:
        raise HarnessError(f"no runs (directories with run.json) under {', '.join(map(str, paths))}.")
    return unique


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness report",
        description="One report (Markdown, CSV, JSON, self-contained HTML with plots) of many runs or sweeps.",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="RUN_OR_SWEEP_DIR")
    parser.add_argument("--output", type=Path, required=True, help="a folder for the report's files")
    args = parser.parse_args(argv)
    try:
        report = build_report(args.paths, args.output)
    except Exception as exc:
        return report_failure(exc, lambda line: print(f"error: {line}", flush=True))
    print(f"{len(report.rows)} runs; report: {report.output / 'report.html'}")
    return 0


# -- rows ----------------------------------------------------------------------------------------------------
def _row(run_dir: Path, record: RunRecord, flat: dict[str, Any], base: dict[str, Any]) -> Row:
    result = record.result
    differs = {
        key: value
        for key, value in flat.items()
        if key not in PER_RUN and json.loads(json.dumps(value, default=str)) != base.get(key)
    }
    accuracy = record.accuracy
    effective = record.loadgen.effective or {}
    sampled = telemetry_figures(record.telemetry)
    telemetry = record.telemetry
    return Row(
        run_dir=str(run_dir),
        benchmark=record.benchmark,
        scenario=record.scenario,
        mode=record.mode,
        verdict=record.verdict,
        configuration=", ".join(f"{key}={value}" for key, value in differs.items()) or "base",
        differs=differs,
        target_qps=effective.get("target_qps") if record.scenario != "Offline" else None,
        tokens_per_second=result.tokens_per_second,
        samples_per_second=result.samples_per_second,
        ttft_p50_ms=(result.ttft_ms or {}).get("p50"),
        ttft_p99_ms=(result.ttft_ms or {}).get("p99"),
        tpot_p50_ms=(result.tpot_ms or {}).get("p50"),
        tpot_p99_ms=(result.tpot_ms or {}).get("p99"),
        accuracy={name: value for name, value in accuracy.metrics.items() if name in ROUGE} if accuracy else {},
        accuracy_passed=accuracy.passed if accuracy else None,
        accuracy_targets=(
            {check["metric"]: check["min"] for check in accuracy.checks if "min" in check} if accuracy else {}
        ),
        replicas=[
            {"name": r.name, "share": r.share, "tokens_per_second": r.tokens_per_second} for r in record.replicas
        ],
        joules_per_output_token=sampled["joules_per_output_token"],
        tokens_per_second_per_watt=sampled["tokens_per_second_per_watt"],
        preemptions=sampled["preemptions"],
        kv_cache_usage_mean=sampled["kv_cache_usage_mean"],
        prefix_cache_hit_rate=sampled["prefix_cache_hit_rate"],
        window=(
            (telemetry.window_start, telemetry.window_end)
            if telemetry and telemetry.window_start is not None and telemetry.window_end is not None
            else None
        ),
    )


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(_flatten(inner, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): json.dumps(value) if isinstance(value, list | dict) else value}


def _most_common(flats: list[dict[str, Any]]) -> dict[str, Any]:
    """Per setting, the value more than half the runs have. A setting without one (two values in equal
    numbers, as a sweep axis has) has no base: every row names its value."""
    base: dict[str, Any] = {}
    for key in dict.fromkeys(key for flat in flats for key in flat):
        counts = Counter(json.dumps(flat.get(key), default=str) for flat in flats)
        value, count = counts.most_common(1)[0]
        base[key] = json.loads(value) if count * 2 > len(flats) else _NO_BASE
    return base


_NO_BASE = object()


# -- plots ----------------------------------------------------------------------------------------------------
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _accuracy_plot(rows: list[Row], output: Path) -> Path | None:
    """Offline tokens/s against ROUGE, one point per configuration that has both."""
    offline = {r.configuration: r for r in rows if r.scenario == "Offline" and r.mode == "performance"}
    scored = {r.configuration: r for r in rows if r.mode == "accuracy" and r.accuracy}
    points = [
        (name, offline[name], scored[name]) for name in offline if name in scored and offline[name].tokens_per_second
    ]
    if not points:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(ROUGE), figsize=(5 * len(ROUGE), 4.2), squeeze=False)
    for ax, metric in zip(axes[0], ROUGE, strict=True):
        xs = [acc.accuracy[metric] for _, _, acc in points]
        ys = [perf.tokens_per_second or 0.0 for _, perf, acc in points]
        for (name, _, acc), x, y in zip(points, xs, ys, strict=True):
            passed = bool(acc.accuracy_passed)
            ax.scatter(
                [x],
                [y],
                s=60,
                facecolors="tab:green" if passed else "none",
                edgecolors="tab:green" if passed else "tab:red",
                zorder=3,
            )
            ax.annotate(_short(name), (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
        target = next(
            (acc.accuracy_targets.get(metric) for _, _, acc in points if metric in acc.accuracy_targets), None
        )
        if target is not None:
            ax.axvline(target, color="tab:red", linewidth=1, label=f"target {target:.4g}")
        front = _pareto(list(zip(xs, ys, strict=True)))
        if len(front) > 1:
            ax.plot([p[0] for p in front], [p[1] for p in front], color="gray", linestyle="--", label="Pareto front")
        ax.set_xlabel(metric)
        ax.set_ylabel("Offline tokens/s")
        ax.legend(fontsize=8)
    fig.suptitle("throughput against accuracy (filled: meets the accuracy targets)")
    return _save(plt, fig, output / "tokens_vs_accuracy.png")


def _pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both axes (higher is better on both), by rising x."""
    front = [p for p in points if not any(q[0] >= p[0] and q[1] >= p[1] and q != p for q in points)]
    return sorted(set(front))


def _latency_plot(rows: list[Row], output: Path) -> Path | None:
    served = [r for r in rows if r.scenario != "Offline" and r.mode == "performance" and r.target_qps and r.ttft_p99_ms]
    if not served:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, metric, name in ((axes[0], "ttft", "TTFT p99 (ms)"), (axes[1], "tpot", "TPOT p99 (ms)")):
        for (configuration, scenario), runs in _groups(served).items():
            runs.sort(key=lambda r: r.target_qps or 0.0)
            ax.plot(
                [r.target_qps for r in runs],
                [getattr(r, f"{metric}_p99_ms") for r in runs],
                marker="o",
                label=_short(f"{configuration} ({scenario})"),
            )
        limits = {(r.scenario, getattr(get_benchmark(r.benchmark).rules(r.scenario), f"{metric}_ms")) for r in served}
        for (scenario, limit), style in zip(sorted(pair for pair in limits if pair[1]), ("-", "--", ":"), strict=False):
            ax.axhline(limit, color="tab:red", linewidth=1, linestyle=style, label=f"{scenario} limit {limit:g} ms")
        ax.set_xlabel("offered QPS (LoadGen target)")
        ax.set_ylabel(name)
        ax.legend(fontsize=7)
    fig.suptitle("token latencies against offered load")
    return _save(plt, fig, output / "latency_vs_qps.png")


def _groups(rows: list[Row]) -> dict[tuple[str, str], list[Row]]:
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.configuration, row.scenario), []).append(row)
    return groups


def _replica_plot(rows: list[Row], output: Path) -> Path | None:
    grouped = [r for r in rows if r.mode == "performance" and len(r.replicas) > 1]
    if not grouped:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.5 * len(grouped) + 2.5))
    labels = [_short(f"{r.configuration} · {r.scenario}") for r in grouped]
    names = list(dict.fromkeys(replica["name"] for r in grouped for replica in r.replicas))
    height = 0.8 / len(names)
    for ax, key, title in (
        (axes[0], "share", "share of the samples"),
        (axes[1], "tokens_per_second", "tokens/s while busy"),
    ):
        for k, name in enumerate(names):
            values = [next((rep[key] for rep in r.replicas if rep["name"] == name), 0.0) for r in grouped]
            ax.barh([i + k * height for i in range(len(grouped))], values, height=height, label=name)
        ax.set_yticks([i + height * (len(names) - 1) / 2 for i in range(len(grouped))], labels, fontsize=7)
        ax.set_title(title)
        ax.legend(fontsize=7)
    fig.suptitle("per replica")
    return _save(plt, fig, output / "replicas.png")


def _energy_plot(rows: list[Row], output: Path) -> Path | None:
    """The energy per output token of each run that measured it, by configuration."""
    measured = [r for r in rows if r.joules_per_output_token is not None]
    if not measured:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(measured) + 2))
    labels = [_short(f"{r.configuration} · {r.scenario} {r.mode}") for r in measured]
    ax.barh(range(len(measured)), [r.joules_per_output_token for r in measured], color="tab:orange")
    ax.set_yticks(range(len(measured)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("J per output token (all GPUs, test window)")
    ax.set_title("energy per output token")
    return _save(plt, fig, output / "energy_per_token.png")


SERIES_FILE = "telemetry.jsonl"
"""A run's time series (`harness.single.sampling.SERIES_FILE`)."""


def _telemetry_plots(rows: list[Row], output: Path, warn: Callable[[str], None]) -> list[Path]:
    """Per run with a telemetry.jsonl: each replica's KV cache usage, and its running and waiting requests,
    over the time since the first reading, the test window shaded where the record kept it."""
    plots = []
    for number, row in enumerate(rows, 1):
        path = Path(row.run_dir) / SERIES_FILE
        if not path.is_file():
            continue
        try:
            readings = read_jsonl(path)
        except (OSError, ValueError) as exc:
            warn(f"{path}: {exc}; no telemetry plot of this run.")
            continue
        wanted = (metrics.KV_CACHE_USAGE, metrics.RUNNING, metrics.WAITING)
        series: dict[str, dict[str, list[tuple[float, float]]]] = {}
        for reading in readings:
            if reading.metric in wanted and not reading.source.startswith("gpu:"):
                series.setdefault(reading.source, {}).setdefault(reading.metric, []).append(
                    (reading.time, reading.value)
                )
        if not series or not readings:
            continue
        start = min(reading.time for reading in readings)
        plt = _pyplot()
        fig, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for k, (source, by_metric) in enumerate(sorted(series.items())):
            color = colors[k % len(colors)]
            for ax, metric, scale, style, label in (
                (axes[0], metrics.KV_CACHE_USAGE, 100.0, "-", source),
                (axes[1], metrics.RUNNING, 1.0, "-", f"{source} running"),
                (axes[1], metrics.WAITING, 1.0, "--", f"{source} waiting"),
            ):
                points = by_metric.get(metric)
                if points:
                    ax.plot(
                        [t - start for t, _ in points],
                        [v * scale for _, v in points],
                        color=color,
                        linestyle=style,
                        linewidth=1,
                        label=label,
                    )
        for ax in axes:
            if row.window is not None:
                ax.axvspan(row.window[0] - start, row.window[1] - start, color="gray", alpha=0.12, label="test")
            if ax.has_data():
                ax.legend(fontsize=7, loc="best")
        axes[0].set_ylabel("KV cache usage (%)")
        axes[0].set_ylim(0, 105)
        axes[1].set_ylabel("requests")
        axes[1].set_xlabel("seconds since the first reading")
        fig.suptitle(_short(f"{Path(row.run_dir).name} · {row.configuration}", 90), fontsize=10)
        plots.append(_save(plt, fig, output / f"telemetry-{number:03d}.png"))
    return plots


def _short(label: str, limit: int = 60) -> str:
    """A plot label that leaves room for the plot (the tables keep the whole configuration)."""
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# -- files ----------------------------------------------------------------------------------------------------
COLUMNS = (
    ("configuration", "configuration"),
    ("scenario", "scenario"),
    ("mode", "mode"),
    ("verdict", "verdict"),
    ("target QPS", "target_qps"),
    ("tokens/s", "tokens_per_second"),
    ("TTFT p99 ms", "ttft_p99_ms"),
    ("TPOT p99 ms", "tpot_p99_ms"),
    ("J/token", "joules_per_output_token"),
    ("tokens/s/W", "tokens_per_second_per_watt"),
    ("preemptions", "preemptions"),
    ("KV cache mean", "kv_cache_usage_mean"),
    ("prefix hit rate", "prefix_cache_hit_rate"),
)
SHARES = ("kv_cache_usage_mean", "prefix_cache_hit_rate")
"""Columns of a share (0-1), shown as a percentage."""


def _cells(row: Row) -> list[str]:
    cells = [
        _format(value) if name not in SHARES or value is None else f"{value:.0%}"
        for name, value in ((name, getattr(row, name)) for _, name in COLUMNS)
    ]
    return [*cells, ", ".join(f"{k} {v}" for k, v in row.accuracy.items()) or "-"]


def _format(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 100 else f"{value:.4g}"
    return str(value)


def _write_csv(rows: list[Row], path: Path) -> None:
    names = [
        name
        for name in Row.__dataclass_fields__
        if name not in ("differs", "accuracy", "accuracy_targets", "replicas", "window")
    ]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*names, *ROUGE])
        for row in rows:
            writer.writerow([getattr(row, name) for name in names] + [row.accuracy.get(metric) for metric in ROUGE])


def _markdown(report: Report) -> str:
    header = [title for title, _ in COLUMNS] + ["accuracy", "run"]
    lines = ["# Runs", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in report.rows:
        link = Path(row.run_dir).name
        lines.append("| " + " | ".join([*_cells(row), f"[{link}]({row.run_dir})"]) + " |")
    lines += ["", *(f"![{plot.stem}]({plot.name})" for plot in report.plots), ""]
    return "\n".join(lines)


def _html(report: Report) -> str:
    header = "".join(f"<th>{html.escape(title)}</th>" for title, _ in COLUMNS) + "<th>accuracy</th><th>run</th>"
    body = []
    for row in report.rows:
        cells = "".join(f"<td>{html.escape(cell)}</td>" for cell in _cells(row))
        link = f'<a href="file://{html.escape(row.run_dir)}">{html.escape(Path(row.run_dir).name)}</a>'
        body.append(f'<tr class="{row.verdict.lower()}">{cells}<td>{link}</td></tr>')
    # Inline, so the one file is the whole report, viewable with no network and no other file.
    images = "".join(
        f'<figure><img alt="{plot.stem}" src="data:image/png;base64,{_base64(plot)}"></figure>' for plot in report.plots
    )
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:3px 8px;font-size:13px}tr.invalid td,tr.fail td,tr.interrupted td{color:#a00}img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>runs</title><style>{style}</style></head><body>"
        f"<h1>{len(report.rows)} runs</h1><table><tr>{header}</tr>{''.join(body)}</table>{images}</body></html>\n"
    )


def _base64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()
