"""Benchmark: the streamed-token ceiling of `--sut remote` with 0, 1, 2, ... client processes.

A token server (`scripts/token_server.py`: pre-encoded server-sent events, `--endpoints` ports over as many
processes) is the remote fleet: it costs next to nothing per token, so what is measured is the harness. For each
`--client-processes` value, one LoadGen Server run streams `--tokens` tokens per answer at `--qps`, a rate above
what the clients can read (the queue then grows inside the harness, and the rate the answers come back at is the
ceiling). Per run: streamed tokens per second over the test (tokens / test wall time), the CPU per streamed token
of the LoadGen process (`harness_cpu_seconds`) and of the client workers (`worker_cpu_seconds`), and the
first-token hop from a worker to LoadGen (p50 / p99). 0 is the clients in the LoadGen process, as before issue 29.

On a host with few cores the token server, the client workers and LoadGen share them: there the figure to read is
where the CPU per token goes; with more cores than processes, how the ceiling grows.

    python scripts/bench_client_processes.py [--endpoints 4] [--client-processes 0,1,2,4] [--qps 1500] \\
        [--seconds 10] [--tokens 128]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import token_server

from harness.single.config import build_config
from harness.single.runner import run

ROOT = Path(__file__).resolve().parent.parent


def measure(urls: list[str], processes: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    queries = round(args.qps * args.seconds)
    config = build_config(
        scenario="Server",
        sut="remote",
        remote={
            "endpoints": urls,
            "served_model_name": token_server.MODEL,
            "client_processes": processes,
            "max_in_flight": args.max_in_flight,
        },
        target_qps=args.qps,
        min_query_count=queries,
        total_sample_count=queries,
        min_duration_ms=round(args.seconds * 1000),
        generation={"min_new_tokens": args.tokens, "max_new_tokens": args.tokens},
        telemetry_interval=0,
        output_dir=work / f"clients-{processes}",
    )
    report = run(config, console=Console(quiet=True))
    record = report.record
    rows = [json.loads(line) for line in (report.run_dir / "samples.jsonl").read_text().splitlines()]
    tokens = sum(row["n_tokens"] for row in rows if "error" not in row)
    wall = record.wall_seconds or 1.0
    hops = [row.details["first_token_hop_ms"] for row in record.replicas if row.details.get("first_token_hop_ms")]
    return {
        "client_processes": processes,
        "tokens": tokens,
        "failed": record.samples.failed,
        "wall_seconds": wall,
        "tokens_per_second": round(tokens / wall),
        "loadgen_us_per_token": round((record.harness_cpu_seconds or 0.0) / tokens * 1e6, 2),
        "workers_us_per_token": round((record.worker_cpu_seconds or 0.0) / tokens * 1e6, 2),
        "ttft_ms": record.result.ttft_ms if record.result else None,
        "hop_p50_ms": max((hop["p50"] for hop in hops), default=None),
        "hop_p99_ms": max((hop["p99"] for hop in hops), default=None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoints", type=int, default=4, help="token server ports (and processes)")
    parser.add_argument("--client-processes", default="0,1,2,4", help="comma-separated; each at most --endpoints")
    parser.add_argument("--qps", type=float, default=1500.0, help="above what the clients read: the ceiling shows")
    parser.add_argument("--seconds", type=float, default=10.0, help="LoadGen's minimum duration per run")
    parser.add_argument("--tokens", type=int, default=128, help="streamed tokens per answer")
    parser.add_argument("--max-in-flight", type=int, default=256, help="per endpoint")
    parser.add_argument(
        "--interval-ms",
        type=float,
        default=0.0,
        help="between one stream's events (default 0: each answer written at once, so one read often holds many "
        "events; a decode's pace makes each event wake the client, as a real server's do)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_client_processes.json")
    args = parser.parse_args()
    counts = [int(n) for n in args.client_processes.split(",")]
    if any(not 0 <= n <= args.endpoints for n in counts):
        parser.error(f"--client-processes: each between 0 and --endpoints ({args.endpoints})")
    console = Console(width=None if sys.stdout.isatty() else 140)

    results = []
    with (
        tempfile.TemporaryDirectory() as work,
        token_server.serve(endpoints=args.endpoints, tokens=args.tokens) as urls,
    ):
        for processes in counts:
            result = measure(urls, processes, args, Path(work))
            results.append(result)
            console.print(
                f"{processes} client processes: {result['tokens_per_second']:,} tokens/s, "
                f"{result['loadgen_us_per_token']} µs a token in the LoadGen process, "
                f"{result['workers_us_per_token']} in the workers"
            )

    table = Table(
        title=f"--sut remote Server at {args.qps:g} QPS x {args.tokens} tokens, {args.endpoints} token-server "
        f"endpoints, {args.interval_ms:g} ms between events, {args.seconds:g} s",
        title_justify="left",
    )
    for column in ("client processes", "tokens/s", "CPU/token LoadGen", "CPU/token workers", "hop p50 / p99"):
        table.add_column(column, justify="right")
    for r in results:
        hop = f"{r['hop_p50_ms']:.2f} / {r['hop_p99_ms']:.2f} ms" if r["hop_p50_ms"] is not None else "-"
        table.add_row(
            str(r["client_processes"]),
            f"{r['tokens_per_second']:,}",
            f"{r['loadgen_us_per_token']:.2f} µs",
            f"{r['workers_us_per_token']:.2f} µs",
            hop,
        )
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()}, "runs": results}, indent=2))
    plot(results, args.out.with_suffix(".png"))
    console.print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scripts.plots import side_by_side

    labels = [str(r["client_processes"]) for r in results]
    fig, (rate, cpu) = plt.subplots(1, 2, figsize=(10, 3.4))
    side_by_side(rate, labels, {"streamed tokens/s": [r["tokens_per_second"] for r in results]}, "%d")
    rate.set(xlabel="client processes (0: in the LoadGen process)", title="streamed-token ceiling")
    side_by_side(
        cpu,
        labels,
        {
            "LoadGen process": [r["loadgen_us_per_token"] for r in results],
            "client workers": [r["workers_us_per_token"] for r in results],
        },
        "%.1f",
    )
    cpu.set(xlabel="client processes", ylabel="µs CPU per streamed token", title="where the CPU goes")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
