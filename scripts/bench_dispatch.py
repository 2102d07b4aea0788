"""Benchmark: the dispatch policies on real vLLM replicas, one of them slowed down.

Runs the same LoadGen Server test once per policy (round-robin, least-requests,
least-tokens) on N in-process vLLM replicas, the last one sleeping `--slow-step`
seconds after each engine step (a slower device, emulated). Prints, per policy,
throughput, TTFT p50/p99 and TPOT p99 as LoadGen measured them, the slowed
replica's share of the samples and its own TTFT p99; writes them as JSON and a
PNG. Defaults: the embedded tiny model on this host's CPU cores.

    python scripts/bench_dispatch.py [--replicas 2] [--qps 25] [--queries 1000] [--slow-step 0.04]
                                     [--model DIR --dataset FILE ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.config import build_config
from harness.runner import run
from scripts.plots import side_by_side
from sut.dispatch import POLICIES

ROOT = Path(__file__).resolve().parent.parent


def measure(args: argparse.Namespace, policy: str, console: Console) -> dict[str, Any]:
    slow = args.replicas - 1
    config = build_config(
        scenario="Server",
        model=args.model,
        dataset=args.dataset,
        output_dir=args.out.parent / "bench_dispatch_runs",
        target_qps=args.qps,
        min_query_count=args.queries,
        min_duration_ms=args.min_duration_ms,
        replicas=args.replicas,
        dispatch=policy,
        step_delays={slow: args.slow_step},
    )
    report = run(config, console=console)
    result, replicas = report.result, report.record["replicas"]
    return {
        "valid": result.valid,
        "tokens_per_second": result.tokens_per_second,
        "ttft_ms": result.ttft_ms,
        "tpot_ms": result.tpot_ms,
        "slow_share": replicas[slow]["share"],
        "slow_ttft_p99_ms": (replicas[slow]["ttft_ms"] or {}).get("p99"),
        "replicas": replicas,
        "run_dir": str(report.run_dir),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--qps", type=float, default=25.0)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--min-duration-ms", type=int, default=10000)
    parser.add_argument("--slow-step", type=float, default=0.04, help="seconds the last replica sleeps per step")
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    parser.add_argument("--model", help="model directory (default: the embedded tiny model)")
    parser.add_argument("--dataset", help="data set (default: the bundled sample)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_dispatch.json")
    args = parser.parse_args()
    if args.replicas < 2:
        parser.error("--replicas must be at least 2: one of them is the slow one")
    console = Console(width=None if sys.stdout.isatty() else 120)

    results = {policy: measure(args, policy, console) for policy in args.policies}

    table = Table(
        title=f"Server, {args.qps:g} QPS, {args.replicas} replicas, the last slowed by {args.slow_step * 1e3:g} ms "
        "a step",
        title_justify="left",
        caption="TTFT / TPOT as LoadGen measured them, in ms",
    )
    for column in ("policy", "valid", "tokens/s", "TTFT p50", "TTFT p99", "TPOT p99", "slow share", "slow TTFT p99"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for policy, r in results.items():
        table.add_row(
            policy,
            "yes" if r["valid"] else "[red]no",
            f"{r['tokens_per_second']:,.0f}",
            f"{r['ttft_ms']['p50']:.1f}",
            f"{r['ttft_ms']['p99']:.1f}",
            f"{r['tpot_ms']['p99']:.1f}",
            f"{r['slow_share']:.0%}",
            f"{r['slow_ttft_p99_ms']:.1f}" if r["slow_ttft_p99_ms"] is not None else "-",
        )
    console.print(table)
    record = {
        "scenario": "Server",
        "qps": args.qps,
        "queries": args.queries,
        "replicas": args.replicas,
        "slow_step_seconds": args.slow_step,
        "model": args.model or "embedded tiny model",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    plot(results, args.out.with_suffix(".png"), f"{args.qps:g} QPS, {args.replicas} replicas, one slowed")
    console.print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


def plot(results: dict[str, dict[str, Any]], path: Path, subtitle: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies = list(results)
    fig, (latency, share) = plt.subplots(1, 2, figsize=(10, 3.4))
    ttft = {f"TTFT {key}": [results[p]["ttft_ms"][key] for p in policies] for key in ("p50", "p99")}
    side_by_side(latency, policies, ttft, "%.0f")
    latency.set_ylim(0, max(results[p]["ttft_ms"]["p99"] for p in policies) * 1.3)
    latency.set(ylabel="ms", title=f"TTFT per policy ({subtitle})")
    bars = share.bar(policies, [results[p]["slow_share"] * 100 for p in policies], color="tab:red")
    share.bar_label(bars, fmt="%.0f%%")
    share.set(ylabel="% of samples", title="the slowed replica's share", ylim=(0, 100))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
