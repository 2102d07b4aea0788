"""The embedded default: a tiny Llama model and a synthetic OpenOrca sample shipped in the repo.

They let `python -m harness` run end to end on a fresh CPU machine with nothing
downloaded. Both are made by scripts in scripts/ (see their docstrings); the
LoadGen settings here are short demo settings and are never compliant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent / "embedded"
MODEL_DIR = ROOT / "tiny-llama"
DATASET = ROOT / "openorca-synthetic-600.jsonl"
# The tiny model's own scores on the bundled sample (an accuracy run of the demo), at 99%.
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
}
