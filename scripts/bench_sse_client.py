"""Benchmark: client CPU per streamed token, `--sut remote` Server against `vllm bench serve`, same server.

One real vLLM OpenAI server on 127.0.0.1, pinned to one core; each client in a
process of its own, pinned to another core, sends the same number of streamed
requests at the same Poisson rate, each exactly `--tokens` output tokens long
(ours: `--min-new-tokens`/`--max-new-tokens`; vLLM's: `--ignore-eos` with
`--random-output-len`). The figure is each client process's CPU time over its
timed window, divided by the tokens streamed and by the requests answered:

* ours, twice: with the replica's HTTP client in a client worker process (the
  default) and in the LoadGen process (`--client-processes 0`):
  `harness_cpu_seconds` from run.json (the LoadGen process over the test window:
  LoadGen, the scenario driver, and the client too when it runs there) and
  `worker_cpu_seconds` (the client worker's), with LoadGen's TTFT and the
  first-token hop from the worker to LoadGen;
* vLLM's: `vllm.benchmarks.serve` run in-process here, its process CPU time
  from the first Poisson request to the end of its traffic (before its own
  metrics, which may re-tokenize every output).

Both clients stream (one server-sent event per token) and answer every request.
Median of `--repeats`, alternating the clients; a table, JSON and a PNG.

    python scripts/bench_sse_client.py [--requests 600] [--qps 10] [--tokens 128] [--repeats 3]
    python scripts/bench_sse_client.py --profile results/sse_client.prof   # ours once, its event loop profiled
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
LOADGEN_THREADS = "LoadGen's own threads"
"""The threads of LoadGen's process that Python did not start, which end with the test."""
OURS = {"ours, client worker": 1, "ours, in the LoadGen process": 0}
"""Our two ways, by their `client_processes`."""
CLIENTS = (*OURS, "vllm bench serve")
SERVED = "tiny"


# -- the two clients, each run in a child process pinned to its core ------------------------------------------
def ours(args: argparse.Namespace) -> dict[str, Any]:
    from harness.single.config import build_config
    from harness.single.runner import run

    if args.profile:
        _profile_loop_threads(args.profile)
    config = build_config(
        scenario="Server",
        sut="remote",
        remote={"endpoints": [args.url], "served_model_name": SERVED, "client_processes": args.client_processes},
        target_qps=args.qps,
        min_query_count=args.requests,
        total_sample_count=args.requests,
        min_duration_ms=0,
        generation={"min_new_tokens": args.tokens, "max_new_tokens": args.tokens},
        output_dir=Path(args.work) / "ours",
    )
    # Each thread's CPU over the test: from when it starts to when LoadGen's StartTest returns, while the
    # replicas' threads are still there to be read.
    import mlperf_loadgen as lg

    at_test: dict[str, float] = {}
    after: dict[str, float] = {}
    start_test = lg.StartTestWithLogSettings

    def measured_test(*test: Any) -> None:
        try:
            start_test(*test)
        finally:
            after.update(thread_cpu())

    lg.StartTestWithLogSettings = measured_test
    report = run(config, console=Console(quiet=True), before_test=lambda: at_test.update(thread_cpu()))
    record = report.record
    (replica,) = record.replicas
    threads = {
        name: seconds - at_test.get(name, 0.0)
        for name, seconds in after.items()
        if seconds - at_test.get(name, 0.0) > 0 and name != LOADGEN_THREADS
    }
    # LoadGen's issue threads end with the test, and with them what /proc knew of their CPU: theirs is the rest.
    threads[LOADGEN_THREADS] = max(0.0, (record.harness_cpu_seconds or 0.0) - sum(threads.values()))
    return {
        "cpu_seconds": record.harness_cpu_seconds,
        "worker_cpu_seconds": record.worker_cpu_seconds,
        "requests": record.samples.completed,
        "failed": record.samples.failed,
        "tokens": replica.output_tokens,
        "ttft_ms": record.result.ttft_ms if record.result else None,
        "first_token_hop_ms": replica.details.get("first_token_hop_ms"),
        # The telemetry thread of the LoadGen process, over the whole run (the server's /metrics is scraped there
        # only with the client in that process).
        "sampling_cpu_ms": record.telemetry.sampling_cpu_seconds * 1e3 if record.telemetry else None,
        # Where the LoadGen process's CPU went over the test (10 ms resolution).
        "thread_cpu_seconds": {
            name: round(seconds, 3) for name, seconds in sorted(threads.items(), key=lambda item: -item[1])
        },
    }


def thread_cpu() -> dict[str, float]:
    """CPU seconds so far of each thread of this process, by name; threads Python did not start (LoadGen's own)
    under one name."""
    import threading

    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    ticks = os.sysconf("SC_CLK_TCK")
    seconds: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended
        name = names.get(int(tid), LOADGEN_THREADS)
        seconds[name] = seconds.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return seconds


def _profile_loop_threads(path: str) -> None:
    """cProfile the replica's event-loop thread (named `<replica>-loop`), where nearly all client work is."""
    import cProfile
    import threading

    run = threading.Thread.run

    def profiled(thread: threading.Thread) -> None:
        if not thread.name.endswith("-loop"):
            run(thread)
            return
        profile = cProfile.Profile()
        try:
            profile.runcall(run, thread)
        finally:
            profile.dump_stats(path)

    threading.Thread.run = profiled  # type: ignore[method-assign]


def vllm_bench(args: argparse.Namespace) -> dict[str, Any]:
    from vllm.benchmarks import serve
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    window: dict[str, float] = {}
    get_request, calculate_metrics = serve.get_request, serve.calculate_metrics

    def timed_get_request(*a: Any, **k: Any) -> Any:
        window["cpu0"] = time.process_time()
        return get_request(*a, **k)

    def timed_metrics(*a: Any, **k: Any) -> Any:
        window["cpu1"] = time.process_time()
        metrics, lens = calculate_metrics(*a, **k)
        window["requests"], window["tokens"] = metrics.completed, metrics.total_output
        return metrics, lens

    serve.get_request, serve.calculate_metrics = timed_get_request, timed_metrics
    parser = FlexibleArgumentParser()
    serve.add_cli_args(parser)
    # fmt: off
    serve.main(parser.parse_args([
        "--backend", "vllm", "--base-url", args.url, "--endpoint", "/v1/completions",
        "--model", SERVED, "--tokenizer", args.model, "--dataset-name", "random",
        "--random-input-len", str(args.input_len), "--random-output-len", str(args.tokens),
        "--random-range-ratio", "0", "--ignore-eos", "--num-prompts", str(args.requests),
        "--request-rate", str(args.qps), "--seed", "0", "--disable-tqdm",
    ]))
    # fmt: on
    return {
        "cpu_seconds": window["cpu1"] - window["cpu0"],
        "requests": int(window["requests"]),
        "failed": args.requests - int(window["requests"]),
        "tokens": int(window["tokens"]),
    }


# -- the parent: server, repeats, table -------------------------------------------------------------------------
def measure(client: str, args: argparse.Namespace, url: str, work: Path, profile: str | None = None) -> dict[str, Any]:
    role = "ours" if client in OURS else client
    command = [sys.executable, __file__, "--as", role, "--url", url, "--work", str(work)]
    command += ["--client-processes", str(OURS.get(client, 0))]
    command += ["--requests", str(args.requests), "--qps", str(args.qps), "--tokens", str(args.tokens)]
    command += ["--input-len", str(args.input_len), "--model", args.model]
    if profile:
        command += ["--profile", profile]
    core = args.client_core
    done = subprocess.run(
        command, capture_output=True, text=True, preexec_fn=lambda: os.sched_setaffinity(0, {core}), check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"the {client} client failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    total = result["cpu_seconds"] + (result.get("worker_cpu_seconds") or 0.0)
    result["loadgen_us_per_token"] = result["cpu_seconds"] / result["tokens"] * 1e6
    result["us_per_token"] = total / result["tokens"] * 1e6
    result["us_per_request"] = total / result["requests"] * 1e6
    return result


def mean_prompt_tokens() -> int:
    """Of the bundled sample our client sends, so vLLM's random prompts are as long."""
    from mlperf_llm_sut.benchmarks import get_benchmark
    from mlperf_llm_sut.common import embedded
    from mlperf_llm_sut.common.dataset import load_dataset

    dataset = load_dataset(embedded.ROOT / get_benchmark("llama2-70b-99.9").demo_dataset)
    return round(statistics.fmean(len(ids) for ids in dataset.prompts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--qps", type=float, default=10.0)
    parser.add_argument("--tokens", type=int, default=128, help="output tokens of every request")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--client-core", type=int, default=1)
    parser.add_argument("--port", type=int, default=18400)
    parser.add_argument("--profile", help="run ours once with its event-loop thread under cProfile, stats here")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_sse_client.json")
    # For the child processes.
    parser.add_argument("--as", dest="role", choices=("ours", "vllm bench serve"), help=argparse.SUPPRESS)
    parser.add_argument("--client-processes", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--input-len", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--model", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        print(json.dumps((ours if args.role == "ours" else vllm_bench)(args)))
        return

    from mlperf_llm_sut.common import embedded
    from sut import local_servers

    console = Console(width=None if sys.stdout.isatty() else 120)
    args.model = str(embedded.MODEL_DIR)
    args.input_len = mean_prompt_tokens()
    runs: dict[str, list[dict[str, Any]]] = {client: [] for client in CLIENTS}
    with tempfile.TemporaryDirectory() as work:
        console.print(f"starting a vLLM server on core {args.server_core}, port {args.port}")
        with local_servers.start(
            1,
            served_model_name=SERVED,
            base_port=args.port,
            log_dir=Path(work) / "logs",
            cpu_bind=[str(args.server_core)],
            server_args=["--max-num-seqs", "256"],
        ) as servers:
            url = servers.urls[0]
            if args.profile:
                result = measure("ours, in the LoadGen process", args, url, Path(work), profile=args.profile)
                console.print(f"ours: {result['us_per_token']:.1f} µs a token; profile in {args.profile}")
                return
            for repeat in range(args.repeats):
                for client in CLIENTS if repeat % 2 == 0 else reversed(CLIENTS):
                    result = measure(client, args, url, Path(work))
                    runs[client].append(result)
                    console.print(
                        f"{client} #{repeat + 1}: {result['us_per_token']:.1f} µs a token "
                        f"({result['loadgen_us_per_token']:.1f} in the LoadGen process), "
                        f"{result['us_per_request']:,.0f} µs a request ({result['requests']} answered)"
                    )
                    if "thread_cpu_seconds" in result:
                        threads = ", ".join(
                            f"{name} {seconds / result['tokens'] * 1e6:.1f}"
                            for name, seconds in result["thread_cpu_seconds"].items()
                        )
                        console.print(f"  the LoadGen process's µs a token, by thread: {threads}")
    summary = {client: _median_row(results) for client, results in runs.items()}
    table = Table(
        title=f"client CPU, {args.requests} streamed requests x {args.tokens} tokens at {args.qps:g} QPS, "
        f"one vLLM server (core {args.server_core}), client on core {args.client_core}",
        title_justify="left",
        caption=f"median of {args.repeats}",
    )
    columns = (
        "client",
        "CPU per token",
        "of it in LoadGen's process",
        "CPU per request",
        "TTFT p50 / p99",
        "hop p50 / p99",
        "telemetry CPU, LoadGen's process",
    )
    for column in (*columns, "failed"):
        table.add_column(column, justify="left" if column == "client" else "right")
    for client, row in summary.items():
        table.add_row(
            client,
            f"{row['us_per_token']:.1f} µs",
            f"{row['loadgen_us_per_token']:.1f} µs",
            f"{row['us_per_request']:,.0f} µs",
            _pair(row.get("ttft_p50_ms"), row.get("ttft_p99_ms")),
            _pair(row.get("hop_p50_ms"), row.get("hop_p99_ms")),
            f"{row['sampling_cpu_ms']:.0f} ms" if "sampling_cpu_ms" in row else "-",
            str(row["failed"]),
        )
    ratio = summary["vllm bench serve"]["us_per_token"] / summary["ours, client worker"]["us_per_token"]
    console.print(table)
    console.print(f"ours (client worker) is {ratio:.2f}x cheaper a token than vllm bench serve, all processes counted")
    record = {
        "requests": args.requests,
        "qps": args.qps,
        "tokens": args.tokens,
        "input_len": args.input_len,
        "summary": summary,
        "ratio": ratio,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    plot(summary, args.out.with_suffix(".png"))
    console.print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


def _median_row(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The medians of one client's repeats (latencies only where the client reports them)."""
    row: dict[str, Any] = {
        key: statistics.median(r[key] for r in results)
        for key in ("us_per_token", "loadgen_us_per_token", "us_per_request")
    }
    row["failed"] = sum(r["failed"] for r in results)
    sampling = [r["sampling_cpu_ms"] for r in results if r.get("sampling_cpu_ms") is not None]
    if sampling:
        row["sampling_cpu_ms"] = statistics.median(sampling)
    for name, key, field in (
        ("ttft", "ttft_ms", "p50"),
        ("ttft", "ttft_ms", "p99"),
        ("hop", "first_token_hop_ms", "p50"),
        ("hop", "first_token_hop_ms", "p99"),
    ):
        values = [r[key][field] for r in results if r.get(key)]
        if values:
            row[f"{name}_{field}_ms"] = statistics.median(values)
    return row


def _pair(first: float | None, second: float | None) -> str:
    return f"{first:.2f} / {second:.2f} ms" if first is not None and second is not None else "-"


def plot(summary: dict[str, dict[str, float]], path: Path) -> None:
    from scripts.plots import horizontal_bars

    horizontal_bars(
        path,
        list(summary),
        {
            "CPU per streamed token, all processes": [row["us_per_token"] for row in summary.values()],
            "in the LoadGen process": [row["loadgen_us_per_token"] for row in summary.values()],
        },
        "%.1f µs",
        xlabel="µs of client CPU per token (lower is better)",
        title="streaming client cost",
    )


if __name__ == "__main__":
    main()
