"""Soak benchmark: long runs against two real local vLLM servers, watching the harness process itself.

Phase 1 runs Server at a rate the servers sustain for --minutes (default 30); phase 2 runs
Offline over --offline-samples (default 24,576: the embedded 600 samples, repeated, as many
as llama2-70b's Offline query holds). A thread samples the harness process's resident memory
and CPU time every --every seconds. Prints a table per phase (samples issued and answered
once, failures, duplicates, harness CPU per sample, memory at start / end / peak and its
slope) and writes JSON and a PNG of memory over time.

    python scripts/soak.py [--minutes 30] [--qps 5] [--offline-samples 24576] [--out soak.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.single.config import build_config
from harness.single.runner import run
from sut import local_servers

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib() -> float:
    """This process's resident memory, from /proc (no extra dependency)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / (1 << 20)


class Sampler:
    """Samples (seconds since start, RSS MiB, process CPU seconds) on its own thread."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.points: list[tuple[float, float, float]] = []
        self._stop = threading.Event()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._loop, name="soak-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            self.points.append((time.perf_counter() - self._t0, rss_mib(), time.process_time()))
            if self._stop.wait(self.every):
                return


def slope_mib_per_hour(points: list[tuple[float, float, float]]) -> float | None:
    """Least-squares slope of RSS over the second half of a phase (after warm-up allocations settle)."""
    half = points[len(points) // 2 :]
    if len(half) < 3:
        return None
    n = len(half)
    mean_t = sum(p[0] for p in half) / n
    mean_m = sum(p[1] for p in half) / n
    var = sum((p[0] - mean_t) ** 2 for p in half)
    if not var:
        return None
    return sum((p[0] - mean_t) * (p[1] - mean_m) for p in half) / var * 3600


def phase(name: str, options: dict[str, Any], every: float, console: Console) -> dict[str, Any]:
    with Sampler(every) as sampler:
        report = run(build_config(**options), console=console)
    samples = report.record.samples
    answered = samples.completed + samples.failed
    memory = [p[1] for p in sampler.points]
    return {
        "phase": name,
        "valid": report.result.valid,
        "invalid_reasons": report.result.invalid_reasons,
        "wall_seconds": report.record.wall_seconds,
        "issued": samples.issued,
        "answered": answered,
        "answered_once": answered == samples.issued and samples.duplicates == 0 and samples.unanswered == 0,
        "failed": samples.failed,
        "duplicates": samples.duplicates,
        "tokens_per_second": report.result.tokens_per_second,
        "harness_cpu_us_per_sample": round(report.record.harness_cpu_seconds / max(samples.issued, 1) * 1e6, 1),
        "rss_mib_start": round(memory[0], 1),
        "rss_mib_end": round(memory[-1], 1),
        "rss_mib_peak": round(max(memory), 1),
        "rss_mib_per_hour_second_half": _round(slope_mib_per_hour(sampler.points)),
        "memory_over_time": [(round(t, 1), round(m, 2)) for t, m, _ in sampler.points],
        "run_dir": str(report.run_dir),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="Server phase length (default: 30)")
    parser.add_argument("--qps", type=float, default=5.0, help="Server target QPS (default: 5)")
    parser.add_argument("--offline-samples", type=int, default=24576)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between memory samples (default: 10)")
    parser.add_argument("--base-port", type=int, default=18400)
    parser.add_argument("--out", type=Path, default=Path("soak.json"))
    args = parser.parse_args()
    console = Console(stderr=True)
    runs = Path(tempfile.mkdtemp(prefix="soak-runs-"))
    with local_servers.start(2, served_model_name="tiny", base_port=args.base_port, log_dir=runs / "logs") as servers:
        remote = {"endpoints": servers.urls, "served_model_name": "tiny"}
        base: dict[str, Any] = {"sut": "remote", "remote": remote, "output_dir": runs}
        server = base | {
            "scenario": "Server",
            "dispatch": "least-requests",
            "target_qps": args.qps,
            "min_duration_ms": int(args.minutes * 60_000),
            "min_query_count": 1,
        }
        offline = base | {"scenario": "Offline", "min_query_count": args.offline_samples, "min_duration_ms": 0}
        results = [phase("Server", server, args.every, console), phase("Offline", offline, args.every, console)]
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    table = Table(title=f"soak: Server {args.minutes:g} min at {args.qps:g} QPS, then Offline ({args.out})")
    columns = {
        "phase": "phase",
        "valid": "valid",
        "wall_seconds": "wall s",
        "issued": "issued",
        "answered_once": "answered once",
        "failed": "failed",
        "tokens_per_second": "tokens/s",
        "harness_cpu_us_per_sample": "harness CPU µs/sample",
        "rss_mib_start": "RSS start MiB",
        "rss_mib_end": "RSS end MiB",
        "rss_mib_peak": "RSS peak MiB",
        "rss_mib_per_hour_second_half": "RSS MiB/h (2nd half)",
    }
    for key, title in columns.items():
        table.add_column(title, justify="left" if key == "phase" else "right")
    for row in results:
        table.add_row(*(str(row[key]) for key in columns))
    Console(width=200).print(table)
    plot(results, args.out.with_suffix(".png"))
    return 0 if all(r["answered_once"] for r in results) else 1


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for ax, row in zip(axes[0], results, strict=True):
        t = [p[0] / 60 for p in row["memory_over_time"]]
        ax.plot(t, [p[1] for p in row["memory_over_time"]])
        ax.set_title(f"{row['phase']}: {row['issued']:,} samples")
        ax.set_xlabel("minutes")
        ax.set_ylabel("harness RSS (MiB)")
        ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"plot: {path}")


if __name__ == "__main__":
    sys.exit(main())
