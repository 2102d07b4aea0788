"""The embedded default: a tiny Llama model and a synthetic sample of each benchmark's data set, shipped in
the repo (each benchmark names its own: `Benchmark.demo_dataset`, `demo_targets`).

They let `python -m harness` run end to end on a fresh CPU machine with nothing
downloaded. All are made by scripts in scripts/ (see their docstrings); the
LoadGen settings here are short demo settings and are never compliant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent / "embedded"
MODEL_DIR = ROOT / "tiny-llama"
# The default benchmark's sample, and the tiny model's own scores on it (an accuracy run of the demo), at 99%.
DATASET = ROOT / "openorca-synthetic-600.jsonl"
ACCURACY_TARGETS = ROOT / "tiny-llama-targets.json"

# Eager mode skips ~30 s of compilation, which the tiny model does not need.
ENGINE_DEFAULTS: dict[str, Any] = {"max_model_len": 2048, "enforce_eager": True}
# The tiny model needs ~2 KiB of KV cache per token: a fixed 256 MiB holds 128k
# tokens on any machine, where a share of RAM would depend on the machine.
KV_CACHE_BYTES = 256 << 20

# Server needs ~460 queries before LoadGen's early-stopping check can pass at p99. Offline has no
# target QPS here: the demo calibrates its query to this machine's speed (`--target-qps auto`).
DEMO_LOADGEN: dict[str, dict[str, Any]] = {
    "Offline": {"min_query_count": 600, "min_duration_ms": 1000},
    "Server": {"min_query_count": 500, "min_duration_ms": 10000, "target_qps": 10.0},
    "Interactive": {"min_query_count": 500, "min_duration_ms": 10000, "target_qps": 10.0},
    # One query at a time: LoadGen's early stopping needs 64 for its 90th-percentile estimate, and equal issue
    # rounds the count up to the next whole pass over the performance samples (a further pass when it is one
    # already: 64 of 64 samples would be 128). Its target QPS is 1 / the expected latency; a low one keeps
    # LoadGen from sizing the test at 100 queries a second.
    "SingleStream": {"min_query_count": 63, "min_duration_ms": 1000, "target_qps": 2.0},
}
