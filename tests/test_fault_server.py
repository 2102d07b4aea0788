"""The fault server does what the remote-replica tests rely on it to do."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from transformers import PreTrainedTokenizerBase

from tests.fault_server import OUTPUT_CAP, FaultServer, expected_text, expected_token_ids, prompt_ids_for_text

TIMEOUT = httpx.Timeout(5.0)
PROMPT = [1, 450, 4996, 17354, 1701]


@pytest.fixture
def server(tokenizer: PreTrainedTokenizerBase) -> Iterator[FaultServer]:
    with FaultServer(tokenizer) as fault_server:
        yield fault_server


def completion(max_tokens: int = 10, prompt: list[int] = PROMPT, **extra: Any) -> dict[str, Any]:
    """A request as the remote-replica client sends it."""
    return {
        "model": "tiny",
        "prompt": prompt,
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
        "return_token_ids": True,
        **extra,
    }


def sse_data(response: httpx.Response) -> list[str]:
    """The `data:` payloads of an SSE response, read as they arrive."""
    return [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]


def stream(client: httpx.Client, url: str, body: dict[str, Any]) -> list[str]:
    with client.stream("POST", url, json=body) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return sse_data(response)


def test_expected_output_is_whole_words_that_round_trip(tokenizer: PreTrainedTokenizerBase) -> None:
    for prompt_sum in range(60):
        prompt = [prompt_sum]
        for max_tokens in (1, 2, 5, 17, OUTPUT_CAP, OUTPUT_CAP + 40):
            ids = expected_token_ids(tokenizer, prompt, max_tokens)
            assert len(ids) == min(max_tokens, OUTPUT_CAP)
            text = tokenizer.decode(ids)
            assert text == expected_text(tokenizer, prompt, max_tokens).lstrip(" ")
            assert tokenizer.encode(text, add_special_tokens=False) == ids
            decoded = [tokenizer.decode(ids[:k]) for k in range(len(ids) + 1)]
            assert all(longer.startswith(shorter) for shorter, longer in itertools.pairwise(decoded))
    assert expected_text(tokenizer, [3], 20) != expected_text(tokenizer, [4], 20)


def test_stream_gives_expected_ids_pieces_usage_and_done(
    server: FaultServer, tokenizer: PreTrainedTokenizerBase
) -> None:
    with httpx.Client(timeout=TIMEOUT) as client:
        assert client.get(f"{server.url}/health").status_code == 200
        models = client.get(f"{server.url}/v1/models").json()
        assert models == {"object": "list", "data": [{"id": "tiny", "object": "model"}]}
        for max_tokens, finish in ((10, "length"), (OUTPUT_CAP + 5, "stop")):
            data = stream(client, f"{server.url}/v1/completions", completion(max_tokens))
            assert data[-1] == "[DONE]"
            chunks = [json.loads(item) for item in data[:-1]]
            usage_chunk, token_chunks = chunks[-1], chunks[:-1]
            choices = [chunk["choices"][0] for chunk in token_chunks]
            ids = [token for choice in choices for token in choice["token_ids"]]
            assert ids == expected_token_ids(tokenizer, PROMPT, max_tokens)
            assert all(len(choice["token_ids"]) == 1 for choice in choices)
            text = "".join(choice["text"] for choice in choices)
            assert text == tokenizer.decode(ids)
            assert tokenizer.encode(text, add_special_tokens=False) == ids
            assert [choice["finish_reason"] for choice in choices] == [None] * (len(ids) - 1) + [finish]
            assert token_chunks[0]["object"] == "text_completion" and token_chunks[0]["model"] == "tiny"
            assert usage_chunk["choices"] == []
            assert usage_chunk["usage"] == {
                "prompt_tokens": len(PROMPT),
                "completion_tokens": len(ids),
                "total_tokens": len(PROMPT) + len(ids),
            }
        without_usage = stream(client, f"{server.url}/v1/completions", completion(3, stream_options=None))
        assert len(without_usage) == 3 + 1


def test_text_only_server_sends_no_token_ids(tokenizer: PreTrainedTokenizerBase) -> None:
    with FaultServer(tokenizer, token_ids=False) as server, httpx.Client(timeout=TIMEOUT) as client:
        chunks = [json.loads(item) for item in stream(client, f"{server.url}/v1/completions", completion(8))[:-2]]
    assert all("token_ids" not in chunk["choices"][0] for chunk in chunks)
    text = "".join(chunk["choices"][0]["text"] for chunk in chunks)
    assert tokenizer.encode(text, add_special_tokens=False) == expected_token_ids(tokenizer, PROMPT, 8)


def test_unknown_model_is_openai_404(server: FaultServer) -> None:
    response = httpx.post(f"{server.url}/v1/completions", json=completion(model="other"), timeout=TIMEOUT)
    assert response.status_code == 404
    assert response.json() == {
        "error": {"message": "The model `other` does not exist.", "type": "NotFoundError", "code": 404}
    }


def test_api_key_guards_v1_and_v2_models_but_not_health(tokenizer: PreTrainedTokenizerBase) -> None:
    with FaultServer(tokenizer, api_key="sesame") as server, httpx.Client(timeout=TIMEOUT) as client:
        url = server.url
        assert client.get(f"{url}/health").status_code == 200
        assert client.get(f"{url}/v2/health/ready").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = client.post(f"{url}/v1/completions", json=completion(), headers=headers)
            assert response.status_code == 401
            assert response.json()["error"]["message"] == "Unauthorized"
            assert client.get(f"{url}/v1/models", headers=headers).status_code == 401
            assert client.get(f"{url}/v2/models/tiny/ready", headers=headers).status_code == 401
        good = {"Authorization": "Bearer sesame"}
        assert client.get(f"{url}/v1/models", headers=good).status_code == 200
        assert client.get(f"{url}/v2/models/tiny/ready", headers=good).status_code == 200
        with client.stream("POST", f"{url}/v1/completions", json=completion(), headers=good) as response:
            assert response.status_code == 200
            assert sse_data(response)[-1] == "[DONE]"
        assert server.requests == 3  # refused attempts count too


def test_fail_next_and_fail_every(server: FaultServer) -> None:
    server.fail_next(2, status=503, retry_after=2)
    with httpx.Client(timeout=TIMEOUT) as client:
        for _ in range(2):
            response = client.post(f"{server.url}/v1/completions", json=completion())
            assert response.status_code == 503
            assert response.headers["retry-after"] == "2"
            assert response.json()["error"]["code"] == 503
        assert stream(client, f"{server.url}/v1/completions", completion())[-1] == "[DONE]"
        server.fail_every(500)
        for _ in range(3):
            response = client.post(f"{server.url}/v1/completions", json=completion())
            assert response.status_code == 500 and "retry-after" not in response.headers
        server.fail_every(None)
        assert stream(client, f"{server.url}/v1/completions", completion())[-1] == "[DONE]"
    assert server.requests == 7


def test_cut_stream_is_a_protocol_error_to_httpx(server: FaultServer, caplog: pytest.LogCaptureFixture) -> None:
    """The client sees the first events, then httpx raises RemoteProtocolError (incomplete chunked read)."""
    server.cut_after(3, count=1)
    received: list[str] = []
    with httpx.Client(timeout=TIMEOUT) as client, caplog.at_level(logging.WARNING):
        with (
            pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"),
            client.stream("POST", f"{server.url}/v1/completions", json=completion(10)) as response,
        ):
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data: "):
                    received.append(line)
        assert len(received) == 3
        assert all(json.loads(item.removeprefix("data: "))["choices"][0]["finish_reason"] is None for item in received)
        assert stream(client, f"{server.url}/v1/completions", completion(10))[-1] == "[DONE]"  # count=1 used up
    assert not [record for record in caplog.records if "Exception in ASGI" in record.getMessage()]


def test_first_token_delay(server: FaultServer) -> None:
    server.first_token_delay(0.3, count=1)
    with httpx.Client(timeout=TIMEOUT) as client:
        for expect_slow in (True, False):
            began = time.monotonic()
            with client.stream("POST", f"{server.url}/v1/completions", json=completion(5)) as response:
                lines = response.iter_lines()
                next(lines)
                first = time.monotonic() - began
                assert list(lines)[-2:] == ["data: [DONE]", ""]
            assert (first >= 0.3) if expect_slow else (first < 0.25)


def test_first_token_delay_after_some_requests_delays_only_those_after(server: FaultServer) -> None:
    server.first_token_delay(0.3, count=1, after=2)
    with httpx.Client(timeout=TIMEOUT) as client:
        for expect_slow in (False, False, True, False):
            began = time.monotonic()
            client.post(f"{server.url}/v1/completions", json=completion(2)).raise_for_status()
            took = time.monotonic() - began
            assert (took >= 0.3) if expect_slow else (took < 0.25)


def test_wrong_usage(server: FaultServer) -> None:
    server.wrong_usage(-2)
    with httpx.Client(timeout=TIMEOUT) as client:
        usage = json.loads(stream(client, f"{server.url}/v1/completions", completion(6))[-2])["usage"]
    assert usage["completion_tokens"] == 4 and usage["total_tokens"] == len(PROMPT) + 4


def test_down_refuses_connections_and_up_serves_on_the_same_url(server: FaultServer) -> None:
    url = server.url
    with httpx.Client(timeout=TIMEOUT) as client:
        assert client.get(f"{url}/health").status_code == 200  # leaves a keep-alive connection open
        began = time.monotonic()
        server.down()
        assert time.monotonic() - began < 1.0
        with pytest.raises(httpx.ConnectError):
            client.get(f"{url}/health")
        server.down()  # idempotent
        server.up()
        assert server.url == url
        assert stream(client, f"{url}/v1/completions", completion(4))[-1] == "[DONE]"
    server.stop()
    server.stop()


def test_kserve_generate_stream_and_generate(server: FaultServer, tokenizer: PreTrainedTokenizerBase) -> None:
    text_input = "What is the capital of France?"
    prompt_ids = prompt_ids_for_text(tokenizer, text_input)
    expected = tokenizer.decode(expected_token_ids(tokenizer, prompt_ids, 7))
    body = {"text_input": text_input, "parameters": {"max_tokens": 7}}
    with httpx.Client(timeout=TIMEOUT) as client:
        assert client.get(f"{server.url}/v2/health/ready").status_code == 200
        assert client.get(f"{server.url}/v2/models/tiny/ready").status_code == 200
        assert client.get(f"{server.url}/v2/models/other/ready").status_code == 404
        with client.stream("POST", f"{server.url}/v2/models/tiny/generate_stream", json=body) as response:
            assert response.status_code == 200
            events = [json.loads(item) for item in sse_data(response)]
        assert len(events) == 7
        assert all(event["model_name"] == "tiny" for event in events)
        assert "".join(event["text_output"] for event in events) == expected
        assert [event.get("finish_reason") for event in events] == [None] * 6 + ["length"]
        whole = client.post(f"{server.url}/v2/models/tiny/generate", json=body)
        assert whole.json() == {"model_name": "tiny", "text_output": expected}
        missing = client.post(f"{server.url}/v2/models/other/generate", json=body)
        assert (missing.status_code, missing.json()) == (404, {"error": "Model other not found"})
        server.fail_next(1, status=503)
        failed = client.post(f"{server.url}/v2/models/tiny/generate_stream", json=body)
        assert (failed.status_code, failed.json()) == (503, {"error": "injected failure (503)"})
    assert server.requests == 4


def test_tgi_generate_stream_and_generate(server: FaultServer, tokenizer: PreTrainedTokenizerBase) -> None:
    inputs = "What is the capital of France?"
    ids = expected_token_ids(tokenizer, prompt_ids_for_text(tokenizer, inputs), 5)
    body = {"inputs": inputs, "parameters": {"max_new_tokens": 5, "details": True}}
    with httpx.Client(timeout=TIMEOUT) as client:
        info = client.get(f"{server.url}/info").json()
        assert (info["model_id"], info["max_total_tokens"]) == ("tiny", 4096)
        with client.stream("POST", f"{server.url}/generate_stream", json=body) as response:
            assert response.status_code == 200
            lines = [line for line in response.iter_lines() if line]
        assert all(line.startswith("data:{") for line in lines)  # as TGI writes them: no space after the colon
        events = [json.loads(line.removeprefix("data:")) for line in lines]
        assert [event["token"]["id"] for event in events] == ids
        assert [event["index"] for event in events] == [1, 2, 3, 4, 5]
        assert [event["generated_text"] for event in events[:-1]] == [None] * 4
        assert events[-1]["generated_text"] == tokenizer.decode(ids)
        assert events[-1]["details"] == {"finish_reason": "length", "generated_tokens": 5, "seed": None}
        whole = client.post(f"{server.url}/generate", json=body).json()
        assert whole["generated_text"] == tokenizer.decode(ids)
        assert [token["id"] for token in whole["details"]["tokens"]] == ids
        plain = client.post(f"{server.url}/generate", json={"inputs": inputs, "parameters": {"max_new_tokens": 5}})
        assert plain.json() == {"generated_text": tokenizer.decode(ids)}
        too_long = client.post(
            f"{server.url}/generate", json={"inputs": inputs, "parameters": {"max_new_tokens": 4090}}
        )
        assert too_long.status_code == 422
        assert too_long.json()["error_type"] == "validation"
        assert "must be <= 4096" in too_long.json()["error"]
        server.fail_next(1, status=503)
        failed = client.post(f"{server.url}/generate_stream", json=body)
        assert (failed.status_code, failed.json()) == (503, {"error": "injected failure (503)", "error_type": "error"})
    assert server.requests == 5


def test_counters_and_reset(server: FaultServer) -> None:
    async def concurrently(count: int) -> None:
        """`count` requests at once, each on a connection of its own."""

        async def one() -> None:
            async with httpx.AsyncClient(timeout=TIMEOUT) as client:
                response = await client.post(f"{server.url}/v1/completions", json=completion(3))
                assert response.text.endswith("data: [DONE]\n\n")

        await asyncio.gather(*(one() for _ in range(count)))

    server.first_token_delay(0.3)
    asyncio.run(concurrently(4))
    assert (server.requests, server.max_concurrent, server.connections) == (4, 4, 4)
    server.reset()
    assert (server.requests, server.max_concurrent, server.connections) == (0, 0, 0)
    mark = time.monotonic()
    with httpx.Client(timeout=TIMEOUT) as client:
        for _ in range(3):
            assert stream(client, f"{server.url}/v1/completions", completion(3))[-1] == "[DONE]"
    assert (server.requests, server.max_concurrent, server.connections) == (3, 1, 1)  # one keep-alive connection
    assert server.received_after(mark) == 3
    assert server.received_after(time.monotonic()) == 0


def test_responses_are_not_held_back_by_nagle(server: FaultServer) -> None:
    """Each response's body must leave with its headers: held back by Nagle's algorithm it waits ~40 ms per request."""
    with httpx.Client(timeout=TIMEOUT) as client:
        client.get(f"{server.url}/v1/models")
        began = time.monotonic()
        for _ in range(20):
            assert client.get(f"{server.url}/v1/models").status_code == 200
        assert time.monotonic() - began < 0.4


def test_metrics_modes(tokenizer: PreTrainedTokenizerBase) -> None:
    """/metrics is missing until a mode is set (as before it had modes), serves each server's page or fails as
    told, counts no generation request, and records each request's headers."""
    from prometheus_client.parser import text_string_to_metric_families

    from tests.fault_server import GARBAGE_PAGE, METRICS_PAGES

    with FaultServer(tokenizer, api_key="k") as server, httpx.Client(timeout=TIMEOUT) as client:
        url = f"{server.url}/metrics"
        assert client.get(url).status_code == 404
        for mode, page in METRICS_PAGES.items():
            server.metrics(mode)
            response = client.get(url)
            assert (response.status_code, response.text) == (200, page)
            assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
            assert list(text_string_to_metric_families(response.text))  # a valid Prometheus page
        server.metrics("garbage")
        assert client.get(url).text == GARBAGE_PAGE
        server.metrics("refusing")
        assert client.get(url, headers={"Authorization": "Bearer k"}).status_code == 401
        server.metrics("tgi", page="custom 1\n")
        assert client.get(url).text == "custom 1\n"
        server.metrics("vllm", require_key=True)
        assert client.get(url).status_code == 401
        assert client.get(url, headers={"Authorization": "Bearer k"}).text == METRICS_PAGES["vllm"]
        server.metrics("slow", delay=0.3)
        began = time.monotonic()
        assert client.get(url).text == METRICS_PAGES["vllm"]
        assert time.monotonic() - began >= 0.3
        with pytest.raises(ValueError):
            server.metrics("sideways")
        assert [headers.get("authorization") for headers in server.metrics_requests][-3:-1] == [None, "Bearer k"]
        assert server.requests == 0
        server.reset()
        assert client.get(url).status_code == 404 and len(server.metrics_requests) == 1
