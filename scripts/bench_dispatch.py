"""Benchmark: the dispatch policies on real vLLM replicas, with one of them slowed down and with none.

Runs the same LoadGen Server test once per policy (round-robin, least-requests,
least-tokens, least-delay) and per setting: N in-process vLLM replicas for each N of
`--replicas`, once with the last one sleeping `--slow-step` seconds after each engine
step (a slower device, emulated) and once with all equal. Prints, per setting and
policy, throughput, TTFT p50/p99 and TPOT p99 as LoadGen measured them, the slowed
replica's share of the samples and its own TTFT p99; writes them as JSON and a PNG
(TTFT p99 per policy and setting). Defaults: the embedded tiny model on this host's
CPU cores; more replicas than cores share them (two engines a core).

    python scripts/bench_dispatch.py [--replicas 2 4] [--qps 25] [--queries 1000] [--slow-step 0.04]
                                     [--model DIR --dataset FILE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.single.config import build_config
from harness.single.runner import run
from mlperf_llm_sut.common.typed_json import to_json
from scripts.plots import side_by_side
from sut.dispatch import POLICIES

ROOT = Path(__file__).resolve().parent.parent


def measure(args: argparse.Namespace, replicas: int, slow_step: float, policy: str, console: Console) -> dict:
    slow = replicas - 1
    cores = sorted(os.sched_getaffinity(0))
    config = build_config(
        scenario="Server",
        model=args.model,
        dataset=args.dataset,
        output_dir=args.out.parent / "bench_dispatch_runs",
        target_qps=args.qps,
        min_query_count=args.queries,
        min_duration_ms=args.min_duration_ms,
        replicas=replicas,
        dispatch=policy,
        step_delays={slow: slow_step} if slow_step else {},
        cpu_bind=[str(cores[i * len(cores) // replicas]) for i in range(replicas)] if replicas > len(cores) else None,
    )
    report = run(config, console=console)
    result, rows = report.result, report.record.replicas
    return {
        "valid": result.valid,
        "tokens_per_second": result.tokens_per_second,
        "ttft_ms": result.ttft_ms,
        "tpot_ms": result.tpot_ms,
        "slow_share": rows[slow].share,
        "slow_ttft_p99_ms": (rows[slow].ttft_ms or {}).get("p99"),
        "replicas": to_json(rows),
        "run_dir": str(report.run_dir),
    }


def setting_name(replicas: int, slow_step: float) -> str:
    return f"{replicas} replicas, " + (f"last +{slow_step * 1e3:g} ms/step" if slow_step else "equal")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--qps", type=float, default=25.0)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--min-duration-ms", type=int, default=10000)
    parser.add_argument("--slow-step", type=float, default=0.04, help="seconds the last replica sleeps per step")
    parser.add_argument("--no-equal", action="store_true", help="skip the settings with no replica slowed")
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    parser.add_argument("--model", help="model directory (default: the embedded tiny model)")
    parser.add_argument("--dataset", help="data set (default: the bundled sample)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_dispatch.json")
    args = parser.parse_args()
    if min(args.replicas) < 2:
        parser.error("--replicas must be at least 2: one of them is the slow one")
    console = Console(width=None if sys.stdout.isatty() else 120)

    settings = [(n, step) for n in args.replicas for step in ([args.slow_step] + ([] if args.no_equal else [0.0]))]
    results = {
        setting_name(n, step): {policy: measure(args, n, step, policy, console) for policy in args.policies}
        for n, step in settings
    }

    table = Table(
        title=f"Server, {args.qps:g} QPS, {args.queries} queries",
        title_justify="left",
        caption="TTFT / TPOT as LoadGen measured them, in ms; 'last' is the slowed replica, or the last of equals",
    )
    columns = ("setting", "policy", "valid", "tokens/s", "TTFT p50", "TTFT p99", "TPOT p99", "last share")
    for column in (*columns, "last TTFT p99"):
        table.add_column(column, justify="left" if column in ("setting", "policy") else "right")
    for setting, by_policy in results.items():
        for policy, r in by_policy.items():
            table.add_row(
                setting,
                policy,
                "yes" if r["valid"] else "[red]no",
                f"{r['tokens_per_second']:,.0f}",
                f"{r['ttft_ms']['p50']:.1f}",
                f"{r['ttft_ms']['p99']:.1f}",
                f"{r['tpot_ms']['p99']:.1f}",
                f"{r['slow_share']:.0%}",
                f"{r['slow_ttft_p99_ms']:.1f}" if r["slow_ttft_p99_ms"] is not None else "-",
            )
        table.add_section()
    console.print(table)
    record = {
        "scenario": "Server",
        "qps": args.qps,
        "queries": args.queries,
        "slow_step_seconds": args.slow_step,
        "model": args.model or "embedded tiny model",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    plot(results, args.out.with_suffix(".png"), f"Server {args.qps:g} QPS")
    console.print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


def plot(results: dict[str, dict[str, dict[str, Any]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(results)
    policies = list(next(iter(results.values())))
    fig, ax = plt.subplots(figsize=(3 + 2.2 * len(settings), 3.6))
    p99 = {policy: [results[s][policy]["ttft_ms"]["p99"] for s in settings] for policy in policies}
    side_by_side(ax, settings, p99, "%.0f")
    ax.set_ylim(0, max(max(values) for values in p99.values()) * 1.3)
    ax.set(ylabel="TTFT p99, ms", title=f"TTFT p99 per dispatch policy ({title})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
