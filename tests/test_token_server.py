"""The token server of client benchmarks (`scripts/token_server.py`), read by the harness's own client: every
token in order, in the shape the client reads without a JSON parser, and no process left once it is done."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import psutil

from harness.single.config import build_config
from harness.single.runner import run
from scenarios.requests import GenerationRequest
from sut.apis.openai import OpenAICompletions
from sut.generation import GenerationConfig
from sut.http_stream import Pool, Target
from sut.output_ids import Delta, Retokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import token_server

TOKENS = 24
"""The server's cap, below what the requests ask for: answers end with finish reason "stop"."""


def _server_processes() -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process().children(recursive=True)
        if any("token_server.py" in word for word in child.cmdline())
    ]


async def _ask(url: str, stream: bool) -> list[Delta]:
    """One completion of 32 tokens through the client's connection pool and OpenAI reader, as a replica asks."""
    api = OpenAICompletions("tiny", GenerationConfig(), Retokenizer("unused"), server_ids=True)
    request = GenerationRequest(0, 0, list(range(1, 41)), stream)
    pool = Pool(Target.of(url, tls=None, token=None), 5.0)
    deltas: list[Delta] = []

    def on_event(payload: str) -> bool:
        delta = api.parse(payload)
        if delta is not None:
            deltas.append(delta)
        return delta is None

    try:
        connection, response = await pool.exchange(api.path(stream), json.dumps(api.body(request, 32, stream)).encode())
        assert response.status == 200
        if stream:
            await connection.body(on_event)
        else:
            deltas.append(api.parse((await connection.body(None)).decode()) or Delta())
        pool.release(connection)
    finally:
        pool.close()
    return deltas


def test_every_token_reaches_the_client_in_order_and_no_process_outlives_the_server() -> None:
    with token_server.serve(endpoints=2, processes=2, tokens=TOKENS) as urls:
        processes = _server_processes()
        assert len(urls) == 2 and len(processes) == 2
        for url in urls:
            *events, usage = asyncio.run(_ask(url, stream=True))
            assert [delta.token_ids for delta in events] == [[token] for token in token_server.token_ids(TOKENS)]
            # Each token event went the JSON-free way (its text unread); only the last one ends the answer.
            assert all(not delta.text_read for delta in events)
            assert [delta.finished for delta in events] == [False] * (TOKENS - 1) + [True]
            assert usage.completion_tokens == TOKENS and usage.token_ids == []
            (whole,) = asyncio.run(_ask(url, stream=False))
            assert whole.token_ids == token_server.token_ids(TOKENS) and whole.finished
            assert whole.completion_tokens == TOKENS

    assert not any(process.is_running() for process in processes)
    assert _server_processes() == []


def test_a_remote_server_run_gets_every_token_of_every_sample(tmp_path: Path) -> None:
    with token_server.serve(endpoints=2, processes=2, tokens=TOKENS) as urls:
        config = build_config(
            scenario="Server",
            sut="remote",
            remote={"endpoints": urls, "served_model_name": "tiny"},
            target_qps=500,
            min_query_count=500,  # what LoadGen's early stopping needs to call a Server run valid
            min_duration_ms=0,
            generation={"min_new_tokens": TOKENS, "max_new_tokens": TOKENS},
            warmup_samples=2,
            save_outputs=True,
            output_dir=tmp_path,
        )
        report = run(config)

    assert report.result.valid, report.result.invalid_reasons
    rows = [json.loads(line) for line in (report.run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(rows) >= 500
    assert all(row["n_tokens"] == TOKENS for row in rows)
    assert all(row["output_token_ids"] == token_server.token_ids(TOKENS) for row in rows)
    assert [replica.details["errors"] for replica in report.record.replicas] == [{}, {}]
