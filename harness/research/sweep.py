"""`python -m harness sweep PLAN`: many runs from one plan, resumable, each in its own run directory.

A plan (YAML or TOML) has a `base` configuration (the keyword arguments of `build_config`, as the library
takes them) and `axes`: keys, dotted into nested settings (`engine.kv_cache_dtype`), each with the values
to try (a mapping value is merged into the base's mapping, so it changes several settings together);
`target_qps: search` runs the peak search (`harness.research.peak`) for Server and Interactive. Every
combination of axis values is a point; each point runs a performance run per scenario and, unless
`accuracy: false`, one accuracy run (an engine configuration's accuracy does not depend on the scenario).
For example::

    name: kv-cache
    scenarios: [Offline, Server]
    base:
      model: /models/Llama-2-70b-chat-hf
      dataset: open_orca.parquet
      engine: {tensor_parallel_size: 2}
    axes:
      engine.kv_cache_dtype: [auto, fp8]
      replicas: [1, 2]

The whole plan is checked before the first run: its keys and their values' kinds against the plan schema
(`harness.research.plans`, which says which settings a sweep may vary), then every run's configuration is built, and
local engine arguments are checked against vLLM's own `EngineArgs`; an error names the plan's line. Runs go under
`OUTPUT_DIR/NAME/<point>/`, and `sweep.json` there lists every run with its configuration hash and status,
rewritten after each run. Running the same plan again skips runs that finished with the same hash; a run
that fails is recorded with its reason and the sweep goes on.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.research.peak import search_peak
from harness.research.plans import SWEEP_PLAN, Plan, PlanLines, PlannedRun, cell, plan_directory, read_plan
from harness.single.config import SEARCH, RunConfig, build_config
from harness.single.record import RUN_JSON, console_warning, read_run_record
from harness.single.runner import RunReport, run
from mlperf_llm_sut.common.errors import HarnessError, InternalError, report_failure
from mlperf_llm_sut.common.files import NULL, NUMBER, Shape, check_shape, read_json
from mlperf_llm_sut.common.stopping import Interrupted, Interruption
from sut.layout import plan_layout, running_on_cpu

MANIFEST = "sweep.json"
ENTRY_KEYS: Shape = {"key": str, "status": str, "values": dict, "scenario": str, "mode": str}
"""What each run of sweep.json has, and what the commands that read it rely on."""
OPTIONAL_ENTRY_KEYS: Shape = {
    "run_dir": str,
    "verdict": str,
    "result": (dict, NULL),
    "accuracy": (str, NULL),
    "reason": str,
    "peak_qps": (*NUMBER, NULL),
}


def load_plan(path: Path, *, output_dir: Path | None = None) -> Plan:
    """Read and check a plan: every run's configuration is built now, so a mistake stops the sweep before
    its first run, with the plan's line."""
    data, lines = read_plan(path, SWEEP_PLAN)
    base = data.get("base") or {}
    axes = data.get("axes") or {}
    scenarios = data.get("scenarios") or ["Offline"]
    name, directory = plan_directory(data, lines, output_dir=output_dir, default="sweeps")
    plan = Plan(path, name, directory, [], dict(axes))
    accuracy = data.get("accuracy", True)
    combinations = list(itertools.product(*axes.values()))
    for number, combination in enumerate(combinations, 1):
        values = dict(zip(axes, combination, strict=True))
        point = _point_name(number, values)
        options = _with_values(base, values)
        runs = [(scenario, "performance") for scenario in scenarios]
        if accuracy:
            runs.append(("Offline" if "Offline" in scenarios else scenarios[0], "accuracy"))
        for scenario, mode in runs:
            # The peak search finds the target QPS; the configuration has none until it does.
            search = options.get("target_qps") == SEARCH
            own = {k: v for k, v in options.items() if not (search and k == "target_qps")}
            config = _checked_config(plan, lines, base, values, own, scenario, mode, point)
            plan.runs.append(PlannedRun(point, options, config, values))
    return plan


@dataclass
class SweepOutcome:
    plan: Plan
    entries: list[dict[str, Any]]
    """sweep.json's runs: each planned run with its status (done, skipped, failed, interrupted, pending)."""
    interrupted: Interruption | None = None

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [entry for entry in self.entries if entry["status"] == "failed"]


def run_sweep(plan: Plan, *, console: Console | None = None) -> SweepOutcome:
    """Run the plan's runs in order, skipping those a previous sweep of it finished."""
    console = console or Console(stderr=True)
    try:
        plan.directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HarnessError(
            f"cannot create the sweep folder {plan.directory}: {exc.strerror}. Give another --output-dir."
        ) from None
    manifest = plan.directory / MANIFEST
    finished = _finished_runs(manifest, console)
    entries = [_entry(planned) for planned in plan.runs]
    outcome = SweepOutcome(plan, entries)
    started = time.monotonic()
    durations: list[float] = []
    for index, (planned, entry) in enumerate(zip(plan.runs, entries, strict=True), 1):
        if planned.key in finished:
            entry.update(finished[planned.key], status="skipped")
            continue
        _say_progress(console, index, len(entries), planned, time.monotonic() - started, durations, entries)
        t0 = time.monotonic()
        try:
            if planned.search:
                found = search_peak(planned.config, console=console)
                assert found.final is not None
                report = found.final
                entry["peak_qps"] = found.peak_qps
            else:
                report = run(planned.config, console=console)
        except Interrupted as stop:
            entry.update(status="interrupted", reason=str(stop))
            outcome.interrupted = stop.interruption
        except (HarnessError, InternalError) as exc:
            entry.update(status="failed", reason=str(exc).splitlines()[0])
            console.print(f"[red]{_label(planned)}: failed:[/] {entry['reason']}", highlight=False)
        else:
            entry.update(_finished(report))
            outcome.interrupted = report.interrupted
        durations.append(time.monotonic() - t0)
        _write_manifest(manifest, plan, entries)
        if outcome.interrupted is not None:
            break
    _write_manifest(manifest, plan, entries)
    return outcome


def print_outcome(outcome: SweepOutcome, console: Console) -> None:
    table = Table(title=f"sweep {outcome.plan.name}", title_justify="left")
    for column in ("point", "run", "status", "verdict", "tokens/s", "TTFT p99", "TPOT p99", "accuracy"):
        table.add_column(column, justify="right" if column in ("tokens/s", "TTFT p99", "TPOT p99") else "left")
    for entry in outcome.entries:
        result = entry.get("result") or {}
        table.add_row(
            ", ".join(f"{axis}={value}" for axis, value in entry["values"].items()) or "base",
            f"{entry['scenario']} {entry['mode']}",
            entry["status"],
            entry.get("verdict", "-"),
            cell(result.get("tokens_per_second"), ",.0f"),
            cell((result.get("ttft_ms") or {}).get("p99"), ".1f", " ms"),
            cell((result.get("tpot_ms") or {}).get("p99"), ".1f", " ms"),
            entry.get("accuracy") or "-",
        )
    console.print(table)
    console.print(f"runs and {MANIFEST}: {outcome.plan.directory}")


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness sweep",
        description="Run every combination of a plan's axes (performance per scenario, and accuracy), resumably.",
    )
    parser.add_argument("plan", type=Path, metavar="PLAN", help="a .yaml or .toml sweep plan")
    parser.add_argument(
        "--output-dir", type=Path, help="where the sweep's directory goes (default: the plan's, else ./sweeps)"
    )
    parser.add_argument("--dry-run", action="store_true", help="check the plan and list its runs; run nothing")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    try:
        plan = load_plan(args.plan, output_dir=args.output_dir)
        if args.dry_run:
            for planned in plan.runs:
                print(f"{planned.name}: {_label(planned)}")
            print(f"{len(plan.runs)} runs in {plan.directory}")
            return 0
        outcome = run_sweep(plan, console=console)
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/]")
        return 130
    except Exception as exc:
        return report_failure(
            exc, lambda line: console.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
        )
    print_outcome(outcome, Console())
    if outcome.interrupted is not None:
        return outcome.interrupted.exit_code
    return 1 if outcome.failed else 0


# -- plan checking -------------------------------------------------------------------------------------------
def _checked_config(
    plan: Plan,
    lines: PlanLines,
    base: dict[str, Any],
    values: dict[str, Any],
    options: dict[str, Any],
    scenario: str,
    mode: str,
    point: str,
) -> RunConfig:
    try:
        return _config(options, scenario, mode, plan.directory / point)
    except HarnessError as exc:
        problem = str(exc)
    # Name the axis value that is wrong on its own, else the base, else every value of the combination.
    for axis, value in values.items():
        try:
            _config(_with_values(base, {axis: value}), scenario, mode, plan.directory / point)
        except HarnessError:
            raise HarnessError(f"{lines.of('axes', axis)}: {axis} = {value!r} ({scenario} {mode}): {problem}") from None
    if not values:
        for key in base:
            try:
                _config({k: v for k, v in base.items() if k != key}, scenario, mode, plan.directory / point)
            except HarnessError:
                continue
            raise HarnessError(f"{lines.of('base', key)}: {key} ({scenario} {mode}): {problem}") from None
        raise HarnessError(f"{lines.of('base')}: the base configuration ({scenario} {mode}): {problem}")
    where = ", ".join(f"{lines.of('axes', axis)} {axis} = {value!r}" for axis, value in values.items())
    raise HarnessError(f"{where} together ({scenario} {mode}): {problem}")


def _config(options: dict[str, Any], scenario: str, mode: str, output_dir: Path) -> RunConfig:
    try:
        config = build_config(**options, scenario=scenario, mode=mode, output_dir=output_dir)
    except TypeError as exc:
        raise HarnessError(f"a setting has the wrong form: {exc}") from None
    if config.sut != "remote":
        # What a run would find only after its data set loaded: vLLM's own argument check and (on this host)
        # the layout; a Ray cluster's layout is its own business, checked when the run joins it.
        on_cpu = running_on_cpu()
        config.engine.to_engine_args(on_cpu=on_cpu)
    if config.sut == "local":
        layout = config.layout
        plan_layout(
            layout.replicas,
            config.engine.tensor_parallel_size,
            on_cpu=on_cpu,
            devices=layout.devices,
            cpu_bind=layout.cpu_bind,
        )
    return config


def _with_values(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The base with each axis value set; a mapping value is merged into the base's mapping, so that an axis
    such as `remote: [{endpoints: [...], protocol: tgi}, ...]` changes settings together and keeps the rest."""
    options = copy.deepcopy(base)
    for axis, value in values.items():
        *parents, last = axis.split(".")
        node = options
        for parent in parents:
            if node.get(parent) is None:  # a null mapping in the base is one left out
                node[parent] = {}
            node = node[parent]
        if isinstance(value, dict) and isinstance(node.get(last), dict):
            node[last] = _merged(node[last], value)
        else:
            node[last] = copy.deepcopy(value)
    return options


def _merged(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        both = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = _merged(base[key], value) if both else copy.deepcopy(value)
    return merged


def _point_name(number: int, values: dict[str, Any]) -> str:
    parts = [_name_part(axis.split(".")[-1], value) for axis, value in values.items()]
    return re.sub(r"[^\w.=,-]+", "_", "-".join([f"p{number:02d}", *parts]))[:120]


def _name_part(key: str, value: Any) -> str:
    """`key=value`; a mapping names its plain settings (URL lists are too long for a folder name)."""
    if not isinstance(value, dict):
        return f"{key}={value}"
    plain = [_name_part(k, v) for k, v in value.items() if not isinstance(v, list)]
    return ",".join(plain) or key


# -- the manifest --------------------------------------------------------------------------------------------
def _entry(planned: PlannedRun) -> dict[str, Any]:
    return {
        "point": planned.name,
        "values": planned.values,
        "scenario": planned.scenario,
        "mode": planned.mode,
        "key": planned.key,
        "status": "pending",
    }


def _finished(report: RunReport) -> dict[str, Any]:
    result, record = report.result, report.record
    accuracy = record.accuracy
    if record.mode == "accuracy" or record.compliance:
        verdict = "PASS" if result.passed else "FAIL"
    else:
        verdict = "VALID" if result.valid else "INVALID"
    return {
        "status": "interrupted" if report.interrupted else "done",
        "run_dir": str(report.run_dir),
        "verdict": verdict,
        "result": result.to_json(),
        "accuracy": ", ".join(f"{row['metric']} {row['value']}" for row in accuracy.checks) if accuracy else None,
    }


def read_manifest(path: Path, *, remedy: str = "") -> list[dict[str, Any]]:
    """sweep.json's runs, each checked: a damaged or foreign manifest is one error line (ending with `remedy`)."""
    runs: list[dict[str, Any]] = read_json(path, what="sweep manifest", required={"runs": list}, remedy=remedy)["runs"]
    for number, entry in enumerate(runs, 1):
        where = f"sweep manifest {path}, run {number}"
        check_shape(entry, where=where, required=ENTRY_KEYS, optional=OPTIONAL_ENTRY_KEYS, remedy=remedy)
    return runs


def _finished_runs(manifest: Path, console: Console) -> dict[str, dict[str, Any]]:
    """What an earlier sweep of this plan finished, by configuration hash (its run directory must still be there)."""
    if not manifest.exists():
        return {}
    entries = read_manifest(manifest, remedy="move it away to start this sweep afresh")
    finished = {}
    for entry in entries:
        run_dir = Path(entry.get("run_dir", ""))
        if entry["status"] not in ("done", "skipped") or not (run_dir / RUN_JSON).exists():
            continue
        try:
            read_run_record(run_dir)
        except HarnessError as exc:
            # Run again rather than skipped: a run whose record cannot be read has no figures for this sweep's
            # table, `report` or `compare`, so only running it again completes the sweep. The damaged directory
            # stays where it is; the new run gets a directory of its own.
            console_warning(console)(f"{exc} That run is run again.")
            continue
        finished[entry["key"]] = {k: v for k, v in entry.items() if k not in ("status",)}
    return finished


def _write_manifest(path: Path, plan: Plan, entries: list[dict[str, Any]]) -> None:
    record = {"plan": str(plan.path), "name": plan.name, "axes": plan.axes, "runs": entries}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=2, default=str) + "\n")
    temporary.replace(path)


def _say_progress(
    console: Console,
    index: int,
    total: int,
    planned: PlannedRun,
    elapsed: float,
    durations: list[float],
    entries: list[dict[str, Any]],
) -> None:
    left = sum(entry["status"] == "pending" for entry in entries)
    eta = f" · about {_clock(left * sum(durations) / len(durations))} left" if durations else ""
    console.rule(f"[bold]sweep {index}/{total}[/] · {_label(planned)} · {_clock(elapsed)} elapsed{eta}")


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}" if minutes >= 60 else f"{minutes}:{seconds:02d}"


def _label(planned: PlannedRun) -> str:
    values = ", ".join(f"{axis}={value}" for axis, value in planned.values.items()) or "base"
    return f"{values} · {planned.scenario} {planned.mode}"
