"""Benchmark: the same LoadGen runs on in-process replicas and on local vLLM OpenAI servers (`--sut remote`).

Starts N vLLM OpenAI servers on 127.0.0.1 (`sut.local_servers`, each on its own
share of the host, as N in-process replicas would be), then runs Offline and
Server once against N in-process replicas and once against the servers. Prints
tokens/s, TTFT and TPOT as LoadGen measured them, and the harness's CPU time per
sample during the test: its own process (LoadGen, the scenario driver), and for
the servers its client worker processes too (HTTP, SSE parsing); the engines' and
servers' CPU is not in it. Writes JSON and a PNG. Defaults: the embedded tiny
model on this host's CPU cores.

    python scripts/bench_remote.py [--replicas 2] [--qps 10] [--queries 600] [--base-port 18300]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.single.config import build_config
from harness.single.runner import run
from scripts.plots import side_by_side
from sut import local_servers

ROOT = Path(__file__).resolve().parent.parent
SUTS = ("local", "remote")


def measure(args: argparse.Namespace, sut: str, scenario: str, urls: list[str], console: Console) -> dict[str, Any]:
    options: dict[str, Any] = {"scenario": scenario, "output_dir": args.out.parent / "bench_remote_runs"}
    if scenario == "Server":
        options |= {"target_qps": args.qps, "min_query_count": args.queries, "min_duration_ms": args.min_duration_ms}
    if sut == "remote":
        options |= {"sut": "remote", "remote": {"endpoints": urls, "served_model_name": "tiny"}}
    else:
        options |= {"replicas": args.replicas}
    report = run(build_config(**options), console=console)
    result, samples = report.result, report.record.samples.issued
    cpu = report.record.harness_cpu_seconds or 0.0
    if sut == "remote":  # the HTTP clients' own processes (an in-process replica's engine worker is not the harness)
        cpu += report.record.worker_cpu_seconds or 0.0
    return {
        "sut": sut,
        "scenario": scenario,
        "valid": result.valid,
        "tokens_per_second": result.tokens_per_second,
        "ttft_ms": result.ttft_ms,
        "tpot_ms": result.tpot_ms,
        "samples": samples,
        "harness_cpu_seconds": round(cpu, 3),
        "harness_cpu_us_per_sample": round(cpu / samples * 1e6, 1),
        "run_dir": str(report.run_dir),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=2, help="in-process replicas, and servers")
    parser.add_argument("--qps", type=float, default=10.0)
    parser.add_argument("--queries", type=int, default=600)
    parser.add_argument("--min-duration-ms", type=int, default=10000)
    parser.add_argument("--base-port", type=int, default=18300)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_remote.json")
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 120)

    results: list[dict[str, Any]] = []
    for scenario in ("Offline", "Server"):
        results.append(measure(args, "local", scenario, [], console))
    with tempfile.TemporaryDirectory() as logs:
        console.print(f"starting {args.replicas} local vLLM servers from port {args.base_port}")
        with local_servers.start(
            args.replicas, served_model_name="tiny", base_port=args.base_port, log_dir=Path(logs)
        ) as servers:
            for scenario in ("Offline", "Server"):
                results.append(measure(args, "remote", scenario, servers.urls, console))

    table = Table(
        title=f"{args.replicas} in-process replicas vs {args.replicas} local vLLM OpenAI servers",
        title_justify="left",
        caption="TTFT / TPOT as LoadGen measured them; harness CPU: the LoadGen process alone",
    )
    for column in ("scenario", "sut", "valid", "tokens/s", "TTFT p50", "TTFT p99", "TPOT p99", "harness CPU/sample"):
        table.add_column(column, justify="left" if column in ("scenario", "sut") else "right")
    for r in results:
        ttft, tpot = r["ttft_ms"] or {}, r["tpot_ms"] or {}
        table.add_row(
            r["scenario"] + (f" {args.qps:g} QPS" if r["scenario"] == "Server" else ""),
            r["sut"],
            "yes" if r["valid"] else "[red]no",
            f"{r['tokens_per_second']:,.0f}",
            f"{ttft['p50']:.1f} ms" if ttft else "-",
            f"{ttft['p99']:.1f} ms" if ttft else "-",
            f"{tpot['p99']:.1f} ms" if tpot else "-",
            f"{r['harness_cpu_us_per_sample']:,.0f} µs",
        )
    console.print(table)
    record = {"replicas": args.replicas, "qps": args.qps, "queries": args.queries, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    plot(results, args.out.with_suffix(".png"))
    console.print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Offline: tokens/s per SUT. Server (its tokens/s is the offered load): TTFT p50 and p99 per SUT."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (offline, server) = plt.subplots(1, 2, figsize=(10, 3.4))
    rows = [r for r in results if r["scenario"] == "Offline"]
    bars = offline.bar(
        [r["sut"] for r in rows], [r["tokens_per_second"] for r in rows], color=["tab:blue", "tab:green"]
    )
    offline.bar_label(bars, fmt="%.0f")
    offline.set(
        ylabel="tokens/s", title="Offline throughput", ylim=(0, max(r["tokens_per_second"] for r in rows) * 1.25)
    )
    rows = [r for r in results if r["scenario"] == "Server"]
    ttft = {key: [r["ttft_ms"][key] for r in rows] for key in ("p50", "p99")}
    side_by_side(server, [r["sut"] for r in rows], ttft, "%.0f")
    server.set(ylabel="ms", title="Server TTFT", ylim=(0, max(r["ttft_ms"]["p99"] for r in rows) * 1.3))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
