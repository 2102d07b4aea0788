"""Real vLLM OpenAI servers on 127.0.0.1: they start, and generate what a local engine generates."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from harness.single.config import build_config
from mlperf_llm_sut.common import embedded
from mlperf_llm_sut.common.dataset import load_dataset
from mlperf_llm_sut.common.errors import HarnessError
from scenarios.requests import GenerationRequest
from sut import local_servers
from sut.engine_replica import EngineReplica
from sut.engine_worker import WorkerSpec
from sut.layout import Placement
from tests.conftest import ROOT

pytestmark = [pytest.mark.engine, pytest.mark.server]
PROMPTS = 6


class _Collector:
    def __init__(self, expected: int) -> None:
        self.outputs: dict[int, list[int]] = {}
        self.expected = expected
        self.done = threading.Event()

    def first_token(self, request, token_id):
        pass

    def completed(self, results):
        for request, tokens in results:
            self.outputs[request.sample_index] = list(tokens)
        if len(self.outputs) == self.expected:
            self.done.set()

    def failed(self, requests, reason):
        raise AssertionError(reason)

    def replica_failed(self, unstarted, reason):
        raise AssertionError(reason)


def _streamed_token_ids(url: str, model: str, prompt: list[int], max_tokens: int) -> list[int]:
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "return_token_ids": True,
    }
    tokens: list[int] = []
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=60) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                for choice in json.loads(line.removeprefix("data: "))["choices"]:
                    tokens += choice.get("token_ids") or []
    return tokens


def test_local_servers_serve_the_embedded_model_and_match_a_local_engine(tmp_path):
    prompts = load_dataset(embedded.DATASET).prompts[:PROMPTS]
    with local_servers.start(1, served_model_name="tiny", base_port=18100, log_dir=tmp_path) as servers:
        (url,) = servers.urls
        models = httpx.get(f"{url}/v1/models", timeout=10).json()
        assert [m["id"] for m in models["data"]] == ["tiny"]
        served = {i: _streamed_token_ids(url, "tiny", prompt, 64) for i, prompt in enumerate(prompts)}

    config = build_config(output_dir=tmp_path, generation={"max_new_tokens": 64})
    collector = _Collector(PROMPTS)
    spec = WorkerSpec("replica-0", config.engine, config.generation, Placement(devices=["cpu"]), tmp_path / "e.log")
    replica = EngineReplica(spec, collector)
    replica.start()
    try:
        replica.submit([GenerationRequest(i, i, prompt, stream=False) for i, prompt in enumerate(prompts)])
        assert collector.done.wait(120)
    finally:
        replica.stop()
    assert served == collector.outputs
    assert all(served.values())


def test_a_server_that_cannot_start_is_a_clear_error_with_its_log(tmp_path):
    with pytest.raises(HarnessError, match=r"exited with code \d+ while starting; end of .*server-0\.log"):
        local_servers.start(1, base_port=18200, log_dir=tmp_path, server_args=["--max-model-len", "not-a-number"])


@pytest.mark.parametrize("when", ["starting", "serving"])
def test_serve_local_stops_its_servers_on_sigterm(tmp_path, when):
    port = 18190
    options = ["--servers", "1", "--base-port", str(port), "--log-dir", str(tmp_path)]
    script = subprocess.Popen(
        [sys.executable, "scripts/serve_local.py", *options, "--endpoints-file", str(tmp_path / "endpoints.txt")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if when == "serving":
            assert script.stdout is not None
            for line in script.stdout:  # ends at EOF if the script exits first
                if "Ctrl-C stops them" in line:
                    break
            assert script.poll() is None, "the script ended before serving"
        else:
            deadline = time.monotonic() + 60
            while not _servers_on(port) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _servers_on(port), "the server never started"
        script.send_signal(signal.SIGTERM)
        script.wait(40)
        assert not _servers_on(port), "a server outlived the script that started it"
    finally:
        script.kill()


def _servers_on(port: int) -> list[int]:
    """Live vLLM server processes listening on `port` by their command line."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if b"--port" in command and str(port).encode() in command and stat[stat.rindex(")") + 2] != "Z":
            found.append(int(entry.name))
    return found
