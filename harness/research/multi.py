"""`python -m harness multi PLAN`: several runs at once, each with its own LoadGen, and the same runs alone.

Platform teams serve several models on shared hosts and want each one's throughput and latency when the
others are busy too. A plan (YAML or TOML) names the runs; each is `build_config`'s keyword arguments (its
own model or endpoints, scenario, benchmark, replicas), as a sweep's `base` is::

    name: two-models
    runs:
      llama: {model: /models/llama-2-7b, scenario: Server, target_qps: 4}
      mistral: {model: /models/mistral-7b, scenario: Server, target_qps: 6}

Each run is a process of its own (LoadGen is one per process). They start their engines together and wait
for each other, warm, so that their LoadGen tests start at the same moment; then each run is measured
again alone, unless `--skip-alone`. The report (`multi.json`, a table, `multi.png`) puts each run's
tokens/s and TTFT/TPOT p99 alone and together side by side, with the ratio, each verdict, and how much of
each test the others' tests overlapped, all read from the runs' own run.json.

Runs that share this host get disjoint resources: a run that names its cores (`cpu_bind`) or GPUs
(`devices`) keeps them, and the others share what is left, evenly; a plan whose runs overlap, or that
asks for more than the host has, is refused with the reason.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.research.plans import MULTI_PLAN, Plan, PlanLines, PlannedRun, cell, plan_directory, read_plan
from harness.single.config import RunConfig, build_config
from harness.single.record import RUN_JSON, RunRecord, console_warning, read_run_record
from mlperf_llm_sut.common.errors import HarnessError, InternalError, report_failure
from mlperf_llm_sut.common.files import Shape, read_json
from mlperf_llm_sut.common.stopping import Interrupted, StopSignals
from sut.layout import cpu_sets_for, format_cpus, gpu_sets_for, running_on_cpu, visible_gpus

POLL_SECONDS = 0.2
OUTCOME = "outcome.json"
"""What each run's process leaves in its output folder: its exit code, and its run directory or its error."""
OUTCOME_KEYS: Shape = {"code": int}
OPTIONAL_OUTCOME_KEYS: Shape = {"run_dir": str, "error": str}


@dataclass
class Measured:
    """One run, measured in one setting (together or alone)."""

    name: str
    code: int
    run_dir: str | None = None
    error: str | None = None
    record: RunRecord | None = None
    """Its run.json, where it wrote one that could be read."""

    @property
    def valid(self) -> bool | None:
        return self.record.result.valid if self.record else None

    def figure(self, key: str) -> float | None:
        """Its tokens/s, or the p99 of `ttft` or `tpot` in ms."""
        if self.record is None:
            return None
        result = self.record.result
        if key == "tokens_per_second":
            return result.tokens_per_second
        latencies = {"ttft": result.ttft_ms, "tpot": result.tpot_ms}[key] or {}
        return latencies.get("p99")


# -- the plan ---------------------------------------------------------------------------------------------
def load_multi_plan(path: Path, *, output_dir: Path | None = None) -> Plan:
    """Read and check a plan, and place its local runs on disjoint cores or GPUs."""
    data, lines = read_plan(path, MULTI_PLAN)
    runs = data.get("runs")
    if not isinstance(runs, dict) or len(runs) < 2:
        raise HarnessError(f"{lines.of('runs')}: `runs` needs a mapping of two or more named runs.")
    name, directory = plan_directory(data, lines, output_dir=output_dir, default="multi")
    configs: dict[str, tuple[dict[str, Any], RunConfig]] = {}
    for run_name, options in runs.items():
        configs[str(run_name)] = (dict(options), _config(lines, str(run_name), options, directory))
    return Plan(path, name, directory, _place(configs, lines))


def _config(lines: PlanLines, name: str, options: dict[str, Any], directory: Path) -> RunConfig:
    where = lines.of("runs", name)
    try:
        config = build_config(**options, output_dir=directory / "together" / name)
    except TypeError as exc:
        raise HarnessError(f"{where}: run {name!r}: a setting has the wrong form: {exc}") from None
    except HarnessError as exc:
        raise HarnessError(f"{where}: run {name!r}: {exc}") from None
    if config.sut == "ray" and config.ray_address == "auto":
        raise HarnessError(
            f"{where}: run {name!r}: runs of a multi plan on Ray share a cluster: give its ray_address. "
            "Local clusters started by each run would each claim the whole host."
        )
    return config


def _place(configs: dict[str, tuple[dict[str, Any], RunConfig]], lines: PlanLines) -> list[PlannedRun]:
    """Local runs on disjoint resources: named ones keep theirs, the rest share what is left evenly."""
    local = {name: config for name, (_, config) in configs.items() if config.sut == "local"}
    placements = _share_out(local, lines) if len(local) > 1 else {}
    planned = []
    for name, (options, config) in configs.items():
        if name not in placements:
            planned.append(PlannedRun(name, options, config))
            continue
        key, value, placed = placements[name]
        options = {**options, key: value}
        config = _config(lines, name, options, config.output_dir.parent.parent)
        planned.append(PlannedRun(name, options, config, placed=placed))
    return planned


def _share_out(local: dict[str, RunConfig], lines: PlanLines) -> dict[str, tuple[str, list[str], str]]:
    """For each local run that names no cores (on CPU) or GPUs: the setting that gives it its share of what the
    others leave free, its value, and a description."""
    on_cpu = running_on_cpu()
    key, label = ("cpu_bind", "cores") if on_cpu else ("devices", "GPUs")
    owned = _owned(local, lines, on_cpu, key, label)
    taken = set().union(*owned.values())
    free = [unit for unit in (sorted(os.sched_getaffinity(0)) if on_cpu else visible_gpus()) if unit not in taken]
    unplaced = [name for name in local if name not in owned]
    placements = {}
    start = 0
    for name in unplaced:
        config = local[name]
        need = config.layout.replicas * (1 if on_cpu else config.engine.tensor_parallel_size)
        # Cores are shared out evenly (more cores, more speed); GPUs go by the count a layout needs.
        count = len(free) // len(unplaced) if on_cpu else need
        if count < need or start + count > len(free):
            raise HarnessError(
                f"{lines.of('runs', name)}: run {name!r} needs {need} {label} of its own, and after the other runs "
                f"this host has {len(free) - start} free: give the runs fewer replicas, or name each run's {label} "
                f"({key})."
            )
        units, start = free[start : start + count], start + count
        each = count // config.layout.replicas
        value = [_format_units(units[i * each : (i + 1) * each], on_cpu) for i in range(config.layout.replicas)]
        placements[name] = (key, value, f"{label} {_units(set(units), on_cpu)}")
    return placements


def _owned(local: dict[str, RunConfig], lines: PlanLines, on_cpu: bool, key: str, label: str) -> dict[str, set[Any]]:
    """The cores or GPUs each run names; two runs that name the same one are an error."""
    owned: dict[str, set[Any]] = {}
    for name, config in local.items():
        layout = config.layout
        given = layout.cpu_bind if on_cpu else layout.devices
        if not given:
            continue
        sets = (
            cpu_sets_for(layout.replicas, given, split_evenly=True)
            if on_cpu
            else gpu_sets_for(layout.replicas, config.engine.tensor_parallel_size, given)
        )
        units = {unit for unit_set in sets for unit in unit_set or ()}
        for other, theirs in owned.items():
            if units & theirs:
                raise HarnessError(
                    f"{lines.of('runs', name)}: runs {other!r} and {name!r} both use {label} "
                    f"{_units(units & theirs, on_cpu)}: runs on one host need disjoint {label} ({key})."
                )
        owned[name] = units
    return owned


def _units(units: set[Any], on_cpu: bool) -> str:
    return format_cpus(sorted(units)) if on_cpu else ",".join(sorted(units))


def _format_units(units: list[Any], on_cpu: bool) -> str:
    return format_cpus(units) if on_cpu else ",".join(units)


# -- running ----------------------------------------------------------------------------------------------
@dataclass
class MultiOutcome:
    report: dict[str, Any]
    interrupted: int | None = None
    """The exit code of the stop signal that ended the runs early (130, 143), if one did."""
    failed: list[str] = field(default_factory=list)
    """Runs that ended with an error rather than a verdict."""

    @property
    def exit_code(self) -> int:
        """0 when every run finished (VALID or not: the point is how they held up), 1 when one failed."""
        return self.interrupted or (1 if self.failed else 0)


def run_multi(plan: Plan, *, alone: bool = True, console: Console | None = None) -> MultiOutcome:
    """The runs together, then (with `alone`) each alone; the report is written to `multi.json` and
    `multi.png` in the plan's directory."""
    console = console or Console(stderr=True)
    try:
        plan.directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HarnessError(f"cannot create {plan.directory}: {exc.strerror}. Check --output-dir.") from None
    with StopSignals() as stop:
        measured = {"together": _run_processes(plan, [run.name for run in plan.runs], "together", stop, console)}
        measured["alone"] = {}
        for run in plan.runs if alone else ():
            if stop.requested is not None:
                break
            measured["alone"].update(_run_processes(plan, [run.name], "alone", stop, console))
    report = _report(plan, measured["together"], measured["alone"])
    (plan.directory / "multi.json").write_text(json.dumps(report, indent=2) + "\n")
    _plot(report, plan.directory / "multi.png")
    failed = [
        f"{setting} {m.name}: {m.error}"
        for setting, runs in measured.items()
        for m in runs.values()
        if m.error and m.code not in INTERRUPTED
    ]
    return MultiOutcome(report, stop.requested.exit_code if stop.requested else None, failed)


INTERRUPTED = (130, 143)


def _run_processes(
    plan: Plan, names: list[str], setting: str, stop: StopSignals, console: Console
) -> dict[str, Measured]:
    """The named runs, each in a process of its own; their LoadGen tests start when all are warm (a run that
    fails before that does not hold up the others)."""
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    runs = {run.name: run for run in plan.runs}
    processes = {}
    ready = {}
    for name in names:
        output_dir = plan.directory / setting / name
        output_dir.mkdir(parents=True, exist_ok=True)
        ready[name] = context.Event()
        process = context.Process(
            target=_child,
            args=(runs[name].options, output_dir, ready[name], go),
            name=f"multi-{setting}-{name}",
        )
        process.start()
        processes[name] = process
    label = " + ".join(names)
    with console.status(f"{setting}: {label}: starting") as status:
        forwarded = False
        while any(process.is_alive() for process in processes.values()):
            if stop.requested is not None and not forwarded:
                # Each run is a process group of its own: the signal goes to each, once.
                for process in processes.values():
                    if process.is_alive() and process.pid is not None:
                        os.kill(process.pid, signal.Signals[stop.requested.signal])
                forwarded = True
            if not go.is_set() and all(
                ready[name].is_set() or not process.is_alive() for name, process in processes.items()
            ):
                go.set()
            states = [
                f"{name} " + ("done" if not p.is_alive() else "testing" if go.is_set() else "starting")
                for name, p in processes.items()
            ]
            status.update(f"{setting}: {', '.join(states)}")
            time.sleep(POLL_SECONDS)
    measured = {}
    for name, process in processes.items():
        process.join()
        measured[name] = _outcome(name, process.exitcode or 0, plan.directory / setting / name, console)
        verdict = measured[name].error or ("VALID" if measured[name].valid else "INVALID")
        console.print(f"[dim]{setting}: {name}: {verdict}[/]", highlight=False)
    if stop.requested is not None:
        for name in measured:
            measured[name].code = stop.requested.exit_code
    return measured


def _child(options: dict[str, Any], output_dir: Path, ready: Any, go: Any) -> None:
    """One run, in its own process and process group; its console goes to `run.log` in `output_dir`."""
    from harness.single.runner import exit_code, run

    os.setpgrp()
    _end_with_parent()
    log = os.open(output_dir / "run.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    outcome: dict[str, Any] = {}

    def start_together() -> None:
        ready.set()
        go.wait()

    try:
        report = run(build_config(**options, output_dir=output_dir), before_test=start_together)
        outcome = {"run_dir": str(report.run_dir), "code": exit_code(report)}
    except Interrupted as stop:
        outcome = {"code": stop.interruption.exit_code, "error": str(stop)}
    except HarnessError as exc:
        outcome = {"code": exc.exit_code, "error": str(exc)}
    except InternalError as exc:
        outcome = {"code": exc.exit_code, "error": str(exc)}
    except Exception as exc:
        import traceback

        traceback.print_exc()
        outcome = {"code": 3, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        ready.set()
    (output_dir / OUTCOME).write_text(json.dumps(outcome) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(outcome.get("code", 3))


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _end_with_parent() -> None:
    """A multi that is killed outright (SIGKILL, the OOM killer) passes no signal on, and its runs are out of
    the terminal's reach: the kernel tells each instead, and each stops as on one SIGTERM, saying so.

    The kernel's notice is SIGHUP, not SIGTERM: it comes once for each of multi's threads that ends after
    adopting the run, so a dying multi can send two, and a second SIGTERM means "exit now, without clean-up"."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    signal.signal(signal.SIGHUP, _parent_gone)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGHUP)
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # it was gone before the line above
        _parent_gone(signal.SIGHUP, None)


def _parent_gone(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    os.kill(os.getpid(), signal.SIGTERM)


def _outcome(name: str, code: int, output_dir: Path, console: Console) -> Measured:
    """What the run's process left: its outcome file and its run.json. One of them damaged, the run has no
    figures: it counts as failed, with a warning naming the file, and the report is made of the others."""
    path = output_dir / OUTCOME
    if not path.exists():
        return Measured(name, code or 3, error=f"its process ended with code {code}; see {output_dir / 'run.log'}")
    try:
        outcome = read_json(path, what="run outcome", required=OUTCOME_KEYS, optional=OPTIONAL_OUTCOME_KEYS)
        measured = Measured(name, outcome["code"], outcome.get("run_dir"), outcome.get("error"))
        if measured.run_dir and (Path(measured.run_dir) / RUN_JSON).exists():
            measured.record = read_run_record(Path(measured.run_dir))
    except HarnessError as exc:
        console_warning(console)(f"{exc} Its figures are left out of the report.")
        return Measured(name, code or 3, error=str(exc))
    return measured


# -- the report -------------------------------------------------------------------------------------------
METRICS = ("tokens_per_second", "ttft", "tpot")


def _report(plan: Plan, together: dict[str, Measured], alone: dict[str, Measured]) -> dict[str, Any]:
    windows = {name: m.record.test_window if m.record else None for name, m in together.items()}
    rows = []
    for run in plan.runs:
        row: dict[str, Any] = {"name": run.name, "scenario": run.config.loadgen.scenario, "placed": run.placed}
        for setting, measured in (("together", together.get(run.name)), ("alone", alone.get(run.name))):
            if measured is None:
                continue
            row[setting] = {
                "run_dir": measured.run_dir,
                "valid": measured.valid,
                "error": measured.error,
                **{metric: measured.figure(metric) for metric in METRICS},
            }
        if "together" in row and "alone" in row:
            row["ratio"] = {
                metric: round(row["together"][metric] / row["alone"][metric], 4)
                if row["together"][metric] and row["alone"][metric]
                else None
                for metric in METRICS
            }
        row["overlap"] = _overlap(run.name, windows)
        rows.append(row)
    return {"plan": str(plan.path), "name": plan.name, "runs": rows}


def _overlap(name: str, windows: dict[str, Any]) -> float | None:
    """The share of `name`'s LoadGen test during which another run's test ran too."""
    own = windows.get(name)
    if not own or own[1] <= own[0]:
        return None
    others = sorted(w for other, w in windows.items() if other != name and w)
    covered, cursor = 0.0, own[0]
    for start, end in others:
        start, end = max(start, cursor), min(end, own[1])
        if end > start:
            covered += end - start
            cursor = end
    span: float = own[1] - own[0]
    return round(covered / span, 4)


def print_report(report: dict[str, Any], console: Console) -> None:
    table = Table(title=f"multi {report['name']}: alone and together", title_justify="left")
    columns = (
        "run",
        "alone / together",
        "tokens/s alone",
        "together",
        "ratio",
        "TTFT p99 ms",
        "TPOT p99 ms",
        "overlap",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in columns[:2] else "right")
    for row in report["runs"]:
        alone, together, ratio = row.get("alone") or {}, row.get("together") or {}, row.get("ratio") or {}
        table.add_row(
            row["name"],
            f"{_verdict(alone)} / {_verdict(together)}",
            cell(alone.get("tokens_per_second"), ",.0f"),
            cell(together.get("tokens_per_second"), ",.0f"),
            cell(ratio.get("tokens_per_second"), ".2f"),
            f"{cell(alone.get('ttft'), '.0f')} / {cell(together.get('ttft'), '.0f')}",
            f"{cell(alone.get('tpot'), '.1f')} / {cell(together.get('tpot'), '.1f')}",
            cell(row.get("overlap"), ".0%"),
        )
    console.print(table)


def _verdict(figures: dict[str, Any]) -> str:
    if not figures:
        return "-"
    if figures.get("error"):
        return "failed"
    return "VALID" if figures.get("valid") else "INVALID"


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["runs"]
    names = [row["name"] for row in rows]
    panels = [("tokens_per_second", "tokens/s"), ("ttft", "TTFT p99 (ms)"), ("tpot", "TPOT p99 (ms)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.8))
    for axis, (metric, title) in zip(axes, panels, strict=True):
        for offset, setting in ((-0.2, "alone"), (0.2, "together")):
            values = [((row.get(setting) or {}).get(metric) or 0.0) for row in rows]
            axis.bar([i + offset for i in range(len(rows))], values, width=0.4, label=setting)
        axis.set_xticks(range(len(rows)), names, rotation=20)
        axis.set_title(title)
    axes[0].legend()
    fig.suptitle(f"multi {report['name']}: each run alone and together")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- the command ------------------------------------------------------------------------------------------
def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness multi",
        description="Run a plan's runs together (each with its own LoadGen), then each alone, and compare.",
    )
    parser.add_argument("plan", type=Path, metavar="PLAN", help="a .yaml or .toml plan with its runs")
    parser.add_argument("--output-dir", type=Path, help="where the plan's directory goes (default: ./multi)")
    parser.add_argument("--skip-alone", action="store_true", help="measure the runs together only")
    parser.add_argument("--dry-run", action="store_true", help="check and place the runs; run nothing")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    try:
        plan = load_multi_plan(args.plan, output_dir=args.output_dir)
        for run in plan.runs:
            where = f" on {run.placed}" if run.placed else ""
            console.print(f"[dim]{run.name}: {run.config.sut} {run.config.loadgen.scenario}{where}[/]", highlight=False)
        if args.dry_run:
            return 0
        outcome = run_multi(plan, alone=not args.skip_alone, console=console)
    except Exception as exc:
        return report_failure(
            exc, lambda line: console.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
        )
    print_report(outcome.report, Console(width=None if sys.stdout.isatty() else 140))
    for line in outcome.failed:
        console.print(f"[bold red]failed:[/] {line}", highlight=False, soft_wrap=True)
    print(f"report: {plan.directory / 'multi.json'} and {plan.directory / 'multi.png'}")
    return outcome.exit_code
