"""Benchmark: the whole harness path with an engine that costs nothing.

`harness.run` drives a real LoadGen test through the scenario driver, the
responder and a real engine worker process (`sut.engine_replica`), whose engine
is the protocol benchmark's echo engine (it "generates" at once). So what is
measured is everything the harness adds around an engine: what bounds it on a
GPU box where the engine is fast.

* Offline: one query of `--samples` samples; samples/s and the harness process's
  CPU per sample from the test's start to the run's end (LoadGen runs in that
  process too; the worker's own CPU is not counted).
* Server: a run per target QPS of `--qps` (each `--seconds` long); whether it is
  VALID, the QPS LoadGen completed, and CPU per sample. The highest VALID one is
  the harness's own Server ceiling.

    python scripts/bench_harness_path.py [--samples 50000] [--qps 1000 2000 5000] [--seconds 5]
        [--output-tokens 16]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.single.config import RunConfig, build_config
from harness.single.runner import run
from scenarios.requests import ResultSink
from scripts.bench_worker_protocol import echo_engine
from scripts.plots import horizontal_bars
from sut.engine_replica import EngineReplica
from sut.engine_worker import WorkerSpec
from sut.layout import Placement
from sut.replica import ReplicaGroup
from sut.solo import Solo

ROOT = Path(__file__).resolve().parent.parent


def echo_replica(config: RunConfig, sink: ResultSink, run_dir: Path) -> ReplicaGroup:
    """A real worker process whose engine is the echo engine: the `ReplicaFactory` of these runs."""
    spec = WorkerSpec(
        name="replica-0",
        engine=config.engine,
        generation=config.generation,
        placement=Placement(devices=["cpu"]),
        log_path=run_dir / "engine.log",
        engine_factory=echo_engine,
    )
    return Solo(EngineReplica(spec, sink))


def measure(output_dir: Path, output_tokens: int, **options: Any) -> dict[str, Any]:
    config = build_config(
        output_dir=output_dir, warmup_samples=0, generation={"max_new_tokens": output_tokens}, **options
    )
    # From the LoadGen test's start: the worker's start-up and the tokenizer's loading are not per sample.
    started: list[float] = []
    report = run(
        config,
        console=Console(file=io.StringIO()),
        replica_factory=echo_replica,
        before_test=lambda: started.append(time.process_time()),
    )
    cpu = time.process_time() - started[0]
    samples = report.record.samples
    return {
        "valid": report.result.valid,
        "samples": samples.completed,
        "samples_per_second": report.result.samples_per_second,
        "harness_cpu_us_per_sample": round(cpu / max(samples.completed, 1) * 1e6, 1),
        "invalid_reasons": report.result.invalid_reasons,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=50000)
    parser.add_argument("--qps", type=float, nargs="+", default=[1000.0, 2000.0, 5000.0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--output-tokens", type=int, default=16)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_harness_path.json")
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 120)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        with console.status(f"Offline: {args.samples:,} samples"):
            results["Offline"] = measure(
                Path(scratch) / "offline",
                args.output_tokens,
                target_qps=1.0,
                min_query_count=args.samples,
                min_duration_ms=0,
            )
        for qps in args.qps:
            with console.status(f"Server at {qps:g} QPS for {args.seconds:g} s"):
                results[f"Server {qps:g} QPS"] = measure(
                    Path(scratch) / f"server-{qps:g}",
                    args.output_tokens,
                    scenario="Server",
                    target_qps=qps,
                    min_query_count=int(qps * args.seconds),
                    min_duration_ms=int(args.seconds * 1000),
                )
    table = Table(
        title=f"the harness path with an echo engine ({args.output_tokens} output tokens)", title_justify="left"
    )
    for column in ("run", "verdict", "samples", "samples/s", "harness CPU µs/sample"):
        table.add_column(column, justify="left" if column in ("run", "verdict") else "right")
    for name, figures in results.items():
        table.add_row(
            name,
            "VALID" if figures["valid"] else "INVALID: " + "; ".join(figures["invalid_reasons"])[:60],
            f"{figures['samples']:,}",
            f"{figures['samples_per_second'] or 0:,.0f}",
            f"{figures['harness_cpu_us_per_sample']:.1f}",
        )
    console.print(table)
    valid = [qps for qps in args.qps if results[f"Server {qps:g} QPS"]["valid"]]
    console.print(f"highest VALID Server target QPS: {max(valid):g}" if valid else "no Server run was VALID")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {"output_tokens": args.output_tokens, "seconds": args.seconds, "results": results}
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    names = list(results)
    horizontal_bars(
        args.out.with_suffix(".png"),
        names,
        {"harness CPU": [results[name]["harness_cpu_us_per_sample"] for name in names]},
        "%.1f µs",
        xlabel="µs of harness CPU per sample",
        title="the harness path, echo engine",
    )
    console.print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
