"""Benchmark: the Offline tail (first to last replica finishing) with and without work stealing.

Runs the same LoadGen Offline test on N in-process vLLM replicas, with all equal
and with the last one sleeping `--slow-step` seconds after each engine step (a
slower device, emulated), each time with work stealing on and off
(`--no-work-stealing`). Prints, per setting, the tail, tokens/s, each replica's
share and how many unstarted requests moved; writes them as JSON and a PNG.
Defaults: the embedded tiny model on this host's CPU cores, its engine batching
`--max-num-seqs` requests at once (the dispatcher keeps a quarter more in each
replica, which is what can wait there unstarted).

    python scripts/bench_offline_tail.py [--replicas 2] [--samples 600] [--slow-step 0.04] [--max-num-seqs 64]
                                         [--kv-cache-mib 16] [--repeats 3] [--model DIR --dataset FILE ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.single.config import build_config
from harness.single.runner import run
from scripts.plots import horizontal_bars

ROOT = Path(__file__).resolve().parent.parent


def measure(args: argparse.Namespace, slow_step: float, stealing: bool, console: Console) -> dict[str, Any]:
    slow = args.replicas - 1
    runs = []
    for _ in range(args.repeats):
        config = build_config(
            model=args.model,
            dataset=args.dataset,
            output_dir=args.out.parent / "bench_offline_tail_runs",
            total_sample_count=args.samples,
            min_query_count=args.samples,
            min_duration_ms=0,
            replicas=args.replicas,
            work_stealing=stealing,
            step_delays={slow: slow_step} if slow_step else {},
            engine={"max_num_seqs": args.max_num_seqs},
            engine_extra={"kv_cache_memory_bytes": args.kv_cache_mib << 20} if args.kv_cache_mib else None,
        )
        report = run(config, console=console)
        runs.append(report)
    tails = [r.record.offline_tail_seconds for r in runs]
    return {
        "tail_seconds": tails,
        "tail_median_seconds": statistics.median(tails),
        "tokens_per_second": statistics.median(r.result.tokens_per_second for r in runs),
        "shares": [[row.share for row in r.record.replicas] for r in runs],
        "moved": [sum((r.record.offline_stolen or {}).values()) for r in runs],
        "answered_once": all(
            r.record.samples.issued == r.record.samples.completed and not r.record.samples.duplicates for r in runs
        ),
        "run_dirs": [str(r.run_dir) for r in runs],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--samples", type=int, default=600)
    parser.add_argument("--slow-step", type=float, default=0.04, help="seconds the last replica sleeps per step")
    parser.add_argument("--max-num-seqs", type=int, default=64, help="the engines' batch (vLLM --max-num-seqs)")
    parser.add_argument(
        "--kv-cache-mib",
        type=int,
        help="the engines' KV cache: a small one holds fewer sequences than the batch, so more wait in the "
        "engine's queue, as on a GPU with long sequences (default: the embedded model's)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting; the median is shown")
    parser.add_argument("--model", help="model directory (default: the embedded tiny model)")
    parser.add_argument("--dataset", help="data set (default: the bundled sample)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_offline_tail.json")
    args = parser.parse_args()
    if args.replicas < 2:
        parser.error("--replicas must be at least 2")
    console = Console(width=None if sys.stdout.isatty() else 120)

    settings = {"equal": 0.0, f"last +{args.slow_step * 1e3:g} ms/step": args.slow_step}
    results = {
        name: {mode: measure(args, step, mode == "stealing", console) for mode in ("no stealing", "stealing")}
        for name, step in settings.items()
    }

    table = Table(
        title=f"Offline, {args.samples} samples, {args.replicas} replicas, max_num_seqs {args.max_num_seqs}"
        + (f", KV cache {args.kv_cache_mib} MiB" if args.kv_cache_mib else ""),
        title_justify="left",
        caption=f"median of {args.repeats} runs; tail = first to last replica finishing",
    )
    for column in ("replicas", "work stealing", "tail s", "tokens/s", "last replica's share", "moved", "once"):
        table.add_column(column, justify="left" if column in ("replicas", "work stealing") else "right")
    for setting, modes in results.items():
        for mode, r in modes.items():
            table.add_row(
                setting,
                mode,
                f"{r['tail_median_seconds']:.3f}",
                f"{r['tokens_per_second']:,.0f}",
                f"{statistics.median(s[-1] for s in r['shares']):.0%}",
                f"{statistics.median(r['moved']):g}",
                "yes" if r["answered_once"] else "[red]no",
            )
        table.add_section()
    console.print(table)
    record = {
        "scenario": "Offline",
        "samples": args.samples,
        "replicas": args.replicas,
        "slow_step_seconds": args.slow_step,
        "max_num_seqs": args.max_num_seqs,
        "kv_cache_mib": args.kv_cache_mib,
        "repeats": args.repeats,
        "model": args.model or "embedded tiny model",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    horizontal_bars(
        args.out.with_suffix(".png"),
        list(results),
        {mode: [results[s][mode]["tail_median_seconds"] for s in results] for mode in ("no stealing", "stealing")},
        "%.2f s",
        xlabel="Offline tail, seconds (median)",
        title=f"Offline tail, {args.replicas} replicas, with and without work stealing",
    )
    console.print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
