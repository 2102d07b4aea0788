"""The short end-of-run summary a person reads."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.single.record import LoadGenRecord, ReplicaRow
from harness.single.runner import RunReport
from mlperf_llm_sut.telemetry.summary import explain

MAX_REASONS = 3


def _ms(values: dict[str, float] | None) -> str:
    if not values:
        return "-"
    return " / ".join(f"{values[k]:.1f}" for k in ("p50", "p90", "p99") if k in values) + " ms"


def print_summary(report: RunReport, console: Console) -> None:
    record, result = report.record, report.result
    compliance = record.compliance
    if result.interrupted:
        title = f"{record.benchmark} · {record.scenario} · {record.mode} · [bold red]{result.interrupted}"
    elif compliance:
        verdict = "[bold green]PASS" if compliance.passed else "[bold red]FAIL"
        title = f"{record.benchmark} · {record.scenario} · {compliance.test} · {verdict}"
    else:
        verdict = "[bold green]VALID" if result.valid else "[bold red]INVALID"
        title = f"{record.benchmark} · {record.scenario} · {record.mode} · {verdict}"
    table = Table(title=title, show_header=False, box=None, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    if record.mode == "performance":
        if result.tokens_per_second is not None:
            table.add_row("tokens/s", f"{result.tokens_per_second:,.1f}")
        if result.samples_per_second is not None:
            table.add_row("samples/s", f"{result.samples_per_second:,.2f}")
        if result.latency_ms is not None:
            table.add_row("latency p50/p90/p99", _ms(result.latency_ms))
        if result.ttft_ms is not None:
            table.add_row("TTFT p50/p90/p99", _ms(result.ttft_ms))
            table.add_row("TPOT p50/p90/p99", _ms(result.tpot_ms))
    samples = record.samples
    table.add_row(
        "samples",
        f"{samples.issued} issued, {samples.completed} answered, {samples.failed} failed, "
        f"{samples.output_tokens:,} output tokens",
    )
    accuracy = record.accuracy
    if accuracy:
        scores = ", ".join(f"{row['metric']} {row['value']}" for row in accuracy.checks)
        verdict = "[green]PASS" if accuracy.passed else "[red]FAIL"
        table.add_row("accuracy", f"{verdict}[/] vs {accuracy.targets['name']}: {scores}")
    if compliance:
        table.add_row(compliance.test, compliance.describe())
    table.add_row("data set", f"{record.dataset.path} ({record.dataset.sample_count} samples)")
    if record.loadgen.effective:
        table.add_row("LoadGen used", _effective(record.loadgen.effective, record.loadgen))
    calibration = record.calibration
    if calibration:
        table.add_row(
            "calibrated",
            f"{calibration.samples} samples in {calibration.seconds:.2f} s "
            f"({calibration.samples_per_second:,.0f}/s): "
            f"query sized for {calibration.offline_expected_qps:,.0f}/s",
        )
    shown = record.non_compliant[:MAX_REASONS]
    for reason in shown:
        table.add_row("[yellow]not compliant" if reason == shown[0] else "", reason)
    if len(record.non_compliant) > len(shown):
        table.add_row("", f"and {len(record.non_compliant) - len(shown)} more reasons (run.json: non_compliant)")
    if compliance is None and not record.non_compliant:
        table.add_row("[green]compliant", f"the {record.benchmark} rules hold for these settings")
    for reason in result.invalid_reasons:
        table.add_row("[red]why INVALID" if reason == result.invalid_reasons[0] else "", reason)
    if record.telemetry is not None:
        lines = [*explain(record.telemetry), *(f"[yellow]{w}[/]" for w in record.telemetry.warnings)]
        for line in lines:
            table.add_row("telemetry" if line == lines[0] else "", line)
    table.add_row("logs", str(report.run_dir))
    console.print(table)
    replicas = record.replicas
    hops = [r.details["first_token_hop_ms"] for r in replicas if r.details.get("first_token_hop_ms")]
    if hops:
        p50, p99 = max(hop["p50"] for hop in hops), max(hop["p99"] for hop in hops)
        processes = len({r.details["client_process"] for r in replicas})
        console.print(
            f"streams read in {processes} client process{'es' if processes > 1 else ''}; first tokens reached LoadGen "
            f"{p50:.2f} ms (p50) / {p99:.2f} ms (p99) after their bytes",
            highlight=False,
        )
    if len(replicas) > 1 or any(r.details.get("errors") or r.details.get("ejections") for r in replicas):
        console.print(replica_table(replicas))
        for replica in replicas:
            if replica.details.get("errors"):
                console.print(_errors(replica), highlight=False)
        if record.offline_tail_seconds is not None:
            stolen = record.offline_stolen or {}
            moved = f"; work stealing moved {sum(stolen.values())} unstarted requests" if stolen else ""
            console.print(
                f"Offline tail (first to last replica finishing): {record.offline_tail_seconds:.2f} s{moved}",
                highlight=False,
            )


def replica_table(replicas: list[ReplicaRow]) -> Table:
    """One row per replica: where it ran, what it did, and (Server) its own latencies."""
    columns: dict[str, Callable[[ReplicaRow], str]] = {
        "replica": lambda r: r.name,
        "runs on": _where,
        "samples": lambda r: f"{r.samples} ({r.share:.0%})",
        "failed": lambda r: str(r.failed),
        "tokens": lambda r: f"{r.output_tokens:,}",
        "tok/s": lambda r: f"{r.tokens_per_second:,.0f}",
        "busy s": lambda r: f"{r.busy_seconds:.1f}",
    }
    if any(r.ttft_ms is not None for r in replicas):
        columns["TTFT p50/p99"] = lambda r: _pair(r.ttft_ms)
        columns["TPOT p50/p99"] = lambda r: _pair(r.tpot_ms)
    table = Table(show_edge=False, caption="latencies in ms" if "TTFT p50/p99" in columns else None)
    for name in columns:
        table.add_column(name, justify="left" if name in ("replica", "runs on") else "right", no_wrap=True)
    for r in replicas:
        table.add_row(*(cell(r) for cell in columns.values()))
    return table


def _where(replica: ReplicaRow, here: str = socket.gethostname()) -> str:
    endpoint = replica.details.get("endpoint")
    if endpoint:
        client = replica.details.get("client_process")
        return str(endpoint).split("://", 1)[-1] + (f" ({client})" if client else "")
    devices = ",".join(replica.devices)
    where = devices if devices == "cpu" else f"gpu {devices}"
    where = f"{where} {replica.cpus}" if replica.cpus else where
    node = replica.node
    return f"{node}: {where}" if node and node != here else where  # another host: a Ray actor's node


def _errors(replica: ReplicaRow) -> str:
    """`replica-0: 7 failed attempts (http_500 5, connect 2), 5 retried; out of dispatch 1 time`."""
    details = replica.details
    kinds = sorted(details["errors"].items(), key=lambda item: -item[1])
    total = sum(n for _, n in kinds)
    text = f"{replica.name}: {total} failed attempts ({', '.join(f'{kind} {n}' for kind, n in kinds)})"
    text += f", {details['retries']} retried"
    if details["ejections"]:
        text += f"; out of dispatch {details['ejections']} time{'s' if details['ejections'] > 1 else ''}"
    return text


def _effective(effective: dict[str, Any], loadgen: LoadGenRecord) -> str:
    """The settings people check first, as LoadGen used them, each with where its value came from."""
    requested, sources = loadgen.settings, loadgen.sources

    def said(text: str, name: str) -> str:
        return f"{text} ({sources[name]})" if name in sources else text

    scenario = effective.get("scenario")
    parts = [said(f"min duration {effective.get('min_duration_ms', 0) / 1000:g} s", "min_duration_ms")]
    if scenario == "Offline":
        # LoadGen's effective Offline query count is 1 (one query); what was asked for is a sample count.
        parts.append(said(f"min queries {requested.get('min_query_count')}", "min_query_count"))
        parts.append(said(f"expected QPS {effective.get('target_qps'):,.4g}", "offline_expected_qps"))
    elif scenario == "SingleStream":
        latency = 1e3 / (effective.get("target_qps") or float("inf"))
        parts.append(said(f"expected latency {latency:g} ms", "single_stream_expected_latency_ns"))
        parts.append(said(f"min queries {effective.get('min_query_count')}", "min_query_count"))
    else:
        parts.append(said(f"target QPS {effective.get('target_qps')}", "server_target_qps"))
        parts.append(said(f"min queries {effective.get('min_query_count')}", "min_query_count"))
    parts.append(
        said(f"performance samples {effective.get('performance_sample_count')}", "performance_sample_count_override")
    )
    if scenario == "Offline":
        parts.append(f"samples in the query {effective.get('samples_per_query')}")
    if effective.get("accuracy_log_sampling_target"):
        parts.append(
            said(f"accuracy log sampling {effective['accuracy_log_sampling_target']}", "accuracy_log_sampling_target")
        )
    return ", ".join(parts)


def _pair(values: dict[str, float] | None) -> str:
    return f"{values['p50']:.1f} / {values['p99']:.1f}" if values else "-"
