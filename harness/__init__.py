"""MLPerf LoadGen system under test for LLM inference on vLLM.

Library use::

    from harness import build_config, run
    report = run(build_config(scenario="Server", model="/models/llama", dataset="orca.parquet"))
    print(report.result.valid, report.result.tokens_per_second)

`run` needs the `if __name__ == "__main__":` guard in scripts: vLLM starts
engine processes.
"""

from __future__ import annotations

import importlib
from typing import Any

# Resolved on first use: importing `harness` (e.g. for `python -m harness.dataset`) does not pull in
# the whole runner.
_EXPORTS = {
    "HarnessError": "mlperf_llm_sut.common.errors",
    "RunConfig": "harness.single.config",
    "build_config": "harness.single.config",
    "RunResult": "harness.single.results",
    "RunReport": "harness.single.runner",
    "run": "harness.single.runner",
    "rerun": "harness.submission.rerun",
    "load_plan": "harness.research.sweep",
    "run_sweep": "harness.research.sweep",
    "build_submission": "harness.submission.tree",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
