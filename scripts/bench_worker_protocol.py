"""Benchmark: what the harness <-> engine worker protocol costs per sample.

A real worker process (`sut.engine_worker`) and its real harness side
(`sut.engine_replica.EngineReplica`) run with an echo engine in place of vLLM:
it "generates" instantly, so all that is measured is the protocol: packing
requests, the pipe, the worker loop, step messages back, unpacking, and the
sink calls. Two shapes:

* Offline: requests go in batches (the dispatcher sends chunks), one final
  message per sample, batched per step;
* Server: one request per submit (LoadGen issues them one by one), a first-token
  message and a final message per sample.

Per sample, it reports the wall time and the CPU time the harness process spent
(the part that competes with LoadGen for cores). `--link ray` puts the worker in a
Ray actor on a local Ray cluster (`--sut ray`'s path) instead of a process of its
own; `--link both` measures both.

    python scripts/bench_worker_protocol.py [--samples 20000] [--prompt-tokens 300] [--output-tokens 300]
        [--link process|ray|both]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scenarios.requests import GenerationRequest
from scripts.plots import horizontal_bars
from sut.engine_config import EngineConfig
from sut.engine_replica import EngineReplica
from sut.engine_worker import WorkerSpec
from sut.generation import GenerationConfig
from sut.layout import Placement

ROOT = Path(__file__).resolve().parent.parent


@dataclass(slots=True)
class _Completion:
    token_ids: list[int]


@dataclass(slots=True)
class _Output:
    request_id: str
    outputs: list[_Completion]
    finished: bool


@dataclass
class EchoEngine:
    """vLLM's engine interface, answering at once: streams in two steps (first token, rest), others in one."""

    output_tokens: int
    pending: dict[str, tuple[list[int], bool]] = field(default_factory=dict)
    started: set[str] = field(default_factory=set)

    def add_request(self, key: str, prompt: dict[str, Any], params: Any) -> None:
        tokens = (prompt["prompt_token_ids"] * (self.output_tokens // len(prompt["prompt_token_ids"]) + 1))[
            : self.output_tokens
        ]
        self.pending[key] = (tokens, params.output_kind.name == "DELTA")

    def step(self) -> list[_Output]:
        outputs = []
        for key, (tokens, stream) in list(self.pending.items()):
            if stream and key not in self.started:
                self.started.add(key)
                outputs.append(_Output(key, [_Completion(tokens[:1])], False))
                continue
            del self.pending[key]
            self.started.discard(key)
            outputs.append(_Output(key, [_Completion(tokens[1:] if stream else tokens)], True))
        return outputs

    def has_unfinished_requests(self) -> bool:
        return bool(self.pending)

    def abort_request(self, request_ids: list[str]) -> None:
        for key in request_ids:
            self.pending.pop(key, None)
            self.started.discard(key)


def echo_engine(spec: WorkerSpec) -> EchoEngine:
    return EchoEngine(output_tokens=spec.generation.max_new_tokens)


class _CountingSink:
    def __init__(self, expected: int) -> None:
        self.expected, self.answered, self.first_tokens = expected, 0, 0
        self.done = threading.Event()

    def first_token(self, request: GenerationRequest, token_id: int) -> None:
        self.first_tokens += 1

    def completed(self, results: Any) -> None:
        self.answered += len(results)
        if self.answered >= self.expected:
            self.done.set()

    def failed(self, requests: Any, reason: str) -> None:
        raise SystemExit(f"a request failed: {reason}")

    def replica_failed(self, unstarted: Any, reason: str) -> None:
        raise SystemExit(f"the worker failed: {reason}")


def measure(
    samples: int, prompt_tokens: int, output_tokens: int, *, stream: bool, chunk: int, link: str = "process"
) -> dict[str, float]:
    sink = _CountingSink(samples)
    spec = WorkerSpec(
        name="echo",
        engine=EngineConfig(model="echo"),
        generation=GenerationConfig(max_new_tokens=output_tokens),
        placement=Placement(devices=["cpu"]),
        engine_factory=echo_engine,
    )
    if link == "ray":
        from sut.ray_replica import RayLink, connect

        replica = EngineReplica(spec, sink, RayLink(connect(), {"CPU": 1.0}))
    else:
        replica = EngineReplica(spec, sink)
    replica.start()
    prompt = [(7 * i) % 32000 + 1 for i in range(prompt_tokens)]
    requests = [GenerationRequest(i, i, prompt, stream) for i in range(samples)]
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        for start in range(0, samples, chunk):
            replica.submit(requests[start : start + chunk])
        sink.done.wait()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        replica.stop()
    if stream and sink.first_tokens != samples:
        raise SystemExit(f"{sink.first_tokens} first tokens for {samples} streams")
    return {"wall_us_per_sample": wall / samples * 1e6, "harness_cpu_us_per_sample": cpu / samples * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--prompt-tokens", type=int, default=300)
    parser.add_argument("--output-tokens", type=int, default=300)
    parser.add_argument("--link", choices=["process", "ray", "both"], default="process")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_worker_protocol.json")
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 120)
    shapes = {"Offline (chunks of 16)": (False, 16), "Server (one per submit)": (True, 1)}
    links = ["process", "ray"] if args.link == "both" else [args.link]
    results = {}
    for link in links:
        for shape, (stream, chunk) in shapes.items():
            name = shape if len(links) == 1 and link == "process" else f"{shape}, {link}"
            with console.status(f"{name}: {args.samples:,} samples"):
                results[name] = measure(
                    args.samples, args.prompt_tokens, args.output_tokens, stream=stream, chunk=chunk, link=link
                )
    table = Table(
        title=f"protocol cost per sample ({args.prompt_tokens} prompt + {args.output_tokens} output tokens, "
        "echo engine)",
        title_justify="left",
    )
    for column in ("shape", "wall µs/sample", "harness CPU µs/sample", "samples/s"):
        table.add_column(column, justify="left" if column == "shape" else "right")
    for name, figures in results.items():
        table.add_row(
            name,
            f"{figures['wall_us_per_sample']:.1f}",
            f"{figures['harness_cpu_us_per_sample']:.1f}",
            f"{1e6 / figures['wall_us_per_sample']:,.0f}",
        )
    console.print(table)
    record = {
        "samples": args.samples,
        "prompt_tokens": args.prompt_tokens,
        "output_tokens": args.output_tokens,
        "results": {name: {k: round(v, 2) for k, v in figures.items()} for name, figures in results.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    names = list(results)
    series = {
        "wall": [results[name]["wall_us_per_sample"] for name in names],
        "harness CPU": [results[name]["harness_cpu_us_per_sample"] for name in names],
    }
    horizontal_bars(
        args.out.with_suffix(".png"),
        names,
        series,
        "%.1f µs",
        xlabel="µs per sample",
        title="harness <-> worker protocol cost",
    )
    console.print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
