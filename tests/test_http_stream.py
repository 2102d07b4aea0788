"""The lean HTTP/1.1 client of generation requests, against a loopback server that writes exact bytes."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from sut.apis.openai import OpenAICompletions, _vllm_token_event
from sut.generation import GenerationConfig
from sut.http_stream import ConnectFailed, ConnectionBroke, Pool, Target
from sut.output_ids import Retokenizer


def _chunked(body: bytes, sizes: list[int]) -> bytes:
    out, position = b"", 0
    for size in sizes:
        piece = body[position : position + size]
        if piece:
            out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        position += size
    if position < len(body):
        out += f"{len(body) - position:x}\r\n".encode() + body[position:] + b"\r\n"
    return out + b"0\r\n\r\n"


class _Server:
    """Answers each request on a connection with the next scripted response, written in the given pieces."""

    def __init__(self, responses: list[list[bytes]], *, close_after: int | None = None) -> None:
        self.responses = responses
        self.requests: list[bytes] = []
        self.connections = 0
        self._close_after = close_after

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://user:pw@127.0.0.1:{port}/prefix"

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while self.responses:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                self.requests.append(head + await reader.readexactly(length))
                for piece in self.responses.pop(0):
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.002)  # separate reads on the client's side
                served += 1
                if self._close_after is not None and served >= self._close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


def _split(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), min(6, len(data) - 1)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def _head(extra: str = "Transfer-Encoding: chunked") -> bytes:
    return f"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n{extra}\r\n\r\n".encode()


EVENTS = [f'{{"n":{i}}}' for i in range(20)]
SSE = "".join(f"data: {event}\n\n" for event in [*EVENTS[:3], ": keep-alive", *EVENTS[3:]]).replace(
    "data: : keep-alive", ": keep-alive"
)


async def _collect(pool: Pool, path: str = "/v1/completions", *, until: str | None = None) -> list[str]:
    got: list[str] = []

    def on_event(payload: str) -> bool:
        got.append(payload)
        return payload == until

    connection, response = await pool.exchange(path, b'{"x":1}')
    assert response.status == 200
    await connection.body(on_event)
    pool.release(connection)
    return got


@pytest.mark.parametrize("seed", range(5))
def test_events_come_out_whole_however_the_bytes_are_cut(seed):
    rng = random.Random(seed)
    body = _chunked(SSE.encode(), [rng.randrange(1, 40) for _ in range(30)])

    async def go() -> tuple[list[str], list[str], _Server]:
        server = _Server([_split(_head() + body, rng), _split(_head() + body, rng)])
        async with server as url:
            pool = Pool(Target.of(url, tls=None, token=None), 5.0)
            first = await _collect(pool)
            second = await _collect(pool)  # on the same kept-alive connection
            pool.close()
        return first, second, server

    first, second, server = asyncio.run(go())
    assert first == second == EVENTS
    assert server.connections == 1
    request = server.requests[0].decode()
    assert request.startswith("POST /prefix/v1/completions HTTP/1.1\r\n")
    assert "Authorization: Basic dXNlcjpwdw==\r\n" in request and request.endswith('\r\n\r\n{"x":1}')


def test_a_bearer_token_replaces_the_urls_basic_auth():
    target = Target.of("https://u:p@example.com:8443/v2", tls=None, token="secret")
    assert b"Authorization: Bearer secret\r\n" in target.head and b"Basic" not in target.head
    assert (target.host, target.port, target.prefix) == ("example.com", 8443, "/v2")
    assert target.tls is not None and target.tls.verify_mode.name == "CERT_REQUIRED"


def test_after_the_end_marker_the_rest_is_read_but_not_passed_on_and_the_connection_is_reused():
    body = _chunked(b"data: a\n\ndata: [DONE]\n\ndata: late\n\n", [9, 5, 100])

    async def go() -> tuple[list[str], list[str], _Server]:
        server = _Server([[_head(), body], [_head(), body]])
        async with server as url:
            pool = Pool(Target.of(url, tls=None, token=None), 5.0)
            first = await _collect(pool, until="[DONE]")
            second = await _collect(pool, until="[DONE]")
        return first, second, server

    first, second, server = asyncio.run(go())
    assert first == second == ["a", "[DONE]"]
    assert server.connections == 1


def test_a_whole_body_by_content_length_and_one_that_ends_with_the_connection():
    async def go() -> list[bytes]:
        server = _Server(
            [
                [b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 11\r\nRetry-After: 2\r\n\r\n", b"no capacity"],
                [b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", b'{"whole":', b"true}"],
            ],
            close_after=2,
        )
        bodies = []
        async with server as url:
            pool = Pool(Target.of(url, tls=None, token=None), 5.0)
            connection, response = await pool.exchange("/x", b"{}")
            assert (response.status, response.headers["retry-after"]) == (500, "2")
            bodies.append(await connection.body(None))
            pool.release(connection)
            connection, response = await pool.exchange("/x", b"{}")
            bodies.append(await connection.body(None))
            assert not connection.reusable
        return bodies

    assert asyncio.run(go()) == [b"no capacity", b'{"whole":true}']


def test_a_stream_cut_mid_answer_is_a_broken_connection():
    async def go() -> None:
        server = _Server([[_head(), b"1a\r\ndata: cut\n\n"]], close_after=1)
        async with server as url:
            pool = Pool(Target.of(url, tls=None, token=None), 5.0)
            with pytest.raises(ConnectionBroke):
                await _collect(pool)

    asyncio.run(go())


def test_an_idle_connection_the_server_closed_is_replaced_without_a_failed_request():
    body = _chunked(b"data: x\n\n", [100])

    async def go() -> _Server:
        server = _Server([[_head(), body], [_head(), body]], close_after=1)
        async with server as url:
            pool = Pool(Target.of(url, tls=None, token=None), 5.0)
            assert await _collect(pool) == ["x"]
            await asyncio.sleep(0.05)  # the server closes its end, as at a keep-alive timeout
            assert await _collect(pool) == ["x"]
        return server

    assert asyncio.run(go()).connections == 2


def test_no_server_is_a_connect_failure():
    async def go() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        pool = Pool(Target.of(f"http://127.0.0.1:{port}", tls=None, token=None), 2.0)
        with pytest.raises(ConnectFailed):
            await pool.exchange("/x", b"{}")

    asyncio.run(go())


# -- vLLM's token events read without a JSON parser -------------------------------------------------------------
def _event(text: str, ids: list[int], finish: str | None, usage_key: bool = True) -> str:
    choice = {
        "index": 0,
        "text": text,
        "logprobs": None,
        "finish_reason": finish,
        "stop_reason": None,
        "token_ids": ids,
        "prompt_logprobs": None,
        "prompt_token_ids": None,
    }
    event = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "tiny", "choices": [choice]}
    return json.dumps(event | ({"usage": None} if usage_key else {}), separators=(",", ":"), ensure_ascii=False)


TRICKY = ['"token_ids":[9]', 'a "finish_reason":"stop" b', "]\\", '\\"', "ünïcødé ☃", "", ',"usage":null}', "\n"]


def test_a_vllm_token_event_reads_as_the_json_parser_reads_it():
    api = OpenAICompletions("tiny", GenerationConfig(), Retokenizer("unused"), server_ids=True)
    rng = random.Random(0)
    for _ in range(500):
        text = rng.choice(TRICKY) + rng.choice(TRICKY)
        ids = [rng.randrange(50_000) for _ in range(rng.randrange(0, 3))]
        # vLLM 0.32's token events have no usage key; other versions send "usage":null.
        payload = _event(text, ids, rng.choice([None, None, "length", "stop"]), usage_key=rng.random() < 0.5)
        fast = _vllm_token_event(payload)
        assert fast is not None, payload
        slow = api.parse(payload.replace('"token_ids":[', '"token_ids": ['))  # not the fast shape: parsed
        assert slow is not None and (fast.token_ids, fast.finished) == (slow.token_ids, slow.finished), payload


def test_events_of_another_shape_go_to_the_json_parser():
    usage = _event("", [], "length").replace('"usage":null}', '"usage":{"completion_tokens":5}}')
    assert _vllm_token_event(usage) is None
    assert _vllm_token_event('{"error":{"message":"x"},"usage":null}') is None
    assert _vllm_token_event('{"error":{"message":"x"},"choices":[{"token_ids":[1],"finish_reason":null}]}') is None
    assert _vllm_token_event(_event("t", [1], None).replace('"token_ids":[1]', '"token_ids":null')) is None
