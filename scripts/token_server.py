"""A token server: OpenAI-compatible `/v1/completions` answers from pre-encoded bytes, for client benchmarks.

A benchmark of the harness's HTTP client (`sut/http_stream.py`, `sut/remote_replica.py`) measures how many
streamed tokens per second the client reads; the server must cost next to nothing per token, or the figure
is the server's. vLLM's server costs far more per token than the client, and uvicorn with starlette nearly
as much, so this one is an `asyncio.Protocol` on uvloop that parses HTTP/1.1 itself and answers every
completion from bytes built once per answer shape (token count, streamed or not, token ids or not): a
streamed answer is one cached buffer (headers and every chunk-framed event), written with a short
per-request tail that holds the usage. A few processes, each serving one or more ports (processes share a
port through SO_REUSEPORT when there are more processes than endpoints), stand in for several servers.

Every completion gets min(max_tokens, --tokens) tokens, whatever the prompt: ids 100, 101, ..., 199, 100, ...
(`token_ids`), one per event, in the shape vLLM streams with `return_token_ids` (which the client reads
without a JSON parser), the last one with its finish reason, then the usage event when
`stream_options.include_usage` asks for it, then `data: [DONE]`. Each token's text is " a", which the
embedded tiny model's tokenizer encodes as one token, so with it `--output-ids text` counts the same tokens.
A non-streamed request gets one JSON answer with every id. Routes: `GET /v1/models` and
`POST /v1/completions`; anything else (`/metrics` too) is a 404. It listens on 127.0.0.1 only.

    python scripts/token_server.py --endpoints 4 --processes 4 --base-port 18400 --tokens 128
    python scripts/token_server.py --ports 18400,18401 --processes 4 --interval-ms 20   # paced events
    python scripts/token_server.py --measure 5      # events/s that one server process writes

From Python (tests, benchmark scripts), with `scripts/` on sys.path:

    import token_server
    with token_server.serve(endpoints=4, processes=4, tokens=128) as urls:   # free ports unless base_port
        ...   # urls: ["http://127.0.0.1:PORT", ...], every process listening; all ended on exit
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import http.client
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import uvloop

MODEL = "tiny"
FIRST_TOKEN_ID = 100
DISTINCT_TOKENS = 100
"""Ids cycle through FIRST_TOKEN_ID.. FIRST_TOKEN_ID + DISTINCT_TOKENS - 1: inside the tiny model's
vocabulary (1024), clear of its special tokens (0 to 2), and varied enough that a test sees their order."""
TOKEN_TEXT = " a"
DEFAULT_MAX_TOKENS = 16  # OpenAI's default when a request gives none
CREATED = int(time.time())
"""Every answer's `created`: the process's start, since answers are built once."""
RESPONSE_ID = "cmpl-token-server"
"""One id for every answer: per-request ids would make each answer's bytes differ, and the client reads none."""
CACHED_ANSWERS = 64
"""Answer shapes kept per process: a benchmark asks for a few token counts (its own, the warm-up's, probes')."""
WRITE_BYTES = 256 * 1024
"""Most bytes handed to the transport at once, so that a long answer to a slow reader waits in the cache,
not copied into the transport's buffer (pause_writing stops the writes until resume_writing)."""
MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
BACKLOG = 4096  # a benchmark opens hundreds of connections at once
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
READY = b"ready\n"
"""What a server process writes to its stdout once every one of its ports listens."""

STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
)
DONE = b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"  # the last event and the empty chunk that ends the body
STATUS_TEXT = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
}


@dataclass(frozen=True)
class Settings:
    model: str = MODEL
    tokens: int | None = None
    """Most tokens any answer has, whatever max_tokens asks; None: max_tokens."""
    interval: float = 0.0
    """Seconds between a stream's events; 0: the whole answer at once."""


def token_ids(count: int) -> list[int]:
    """The ids of every answer `count` tokens long."""
    return [FIRST_TOKEN_ID + k % DISTINCT_TOKENS for k in range(count)]


# -- answers, built once per shape -------------------------------------------------------------------------------
def _dumps(value: object) -> bytes:
    # Compact, as vLLM writes it: the client's JSON-free reader looks for `"token_ids":[` and `"finish_reason":`.
    return json.dumps(value, separators=(",", ":")).encode()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def _head(model: str) -> dict[str, object]:
    return {"id": RESPONSE_ID, "object": "text_completion", "created": CREATED, "model": model}


@functools.cache
def _token_event(model: str, token: int, finish_reason: str | None, with_ids: bool) -> bytes:
    """One chunk-framed token event, as vLLM sends it."""
    choice: dict[str, object] = {
        "index": 0,
        "text": TOKEN_TEXT,
        "logprobs": None,
        "finish_reason": finish_reason,
        "stop_reason": None,
    }
    if with_ids:
        choice["token_ids"] = [token]
    return _chunk(b"data: " + _dumps({**_head(model), "choices": [choice], "usage": None}) + b"\n\n")


@functools.lru_cache(maxsize=CACHED_ANSWERS)
def _stream_events(model: str, count: int, finish_reason: str, with_ids: bool) -> tuple[bytes, ...]:
    ids = token_ids(count)
    return (
        *(_token_event(model, token, None, with_ids) for token in ids[:-1]),
        _token_event(model, ids[-1], finish_reason, with_ids),
    )


@functools.lru_cache(maxsize=CACHED_ANSWERS)
def _stream_body(model: str, count: int, finish_reason: str, with_ids: bool) -> bytes:
    """The headers and every token event of a streamed answer: all of it but the per-request tail."""
    return STREAM_HEAD + b"".join(_stream_events(model, count, finish_reason, with_ids))


@functools.lru_cache(maxsize=CACHED_ANSWERS)
def _whole_prefix(model: str, count: int, finish_reason: str, with_ids: bool) -> bytes:
    """A non-streamed answer up to its usage, which the request's prompt length completes."""
    choice: dict[str, object] = {
        "index": 0,
        "text": TOKEN_TEXT * count,
        "logprobs": None,
        "finish_reason": finish_reason,
        "stop_reason": None,
    }
    if with_ids:
        choice["token_ids"] = token_ids(count)
    whole = _dumps({**_head(model), "choices": [choice], "usage": None})
    return whole[: -len(b"null}")]


def _usage(prompt_tokens: int, count: int) -> bytes:
    return b'{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}' % (
        prompt_tokens,
        count,
        prompt_tokens + count,
    )


@functools.cache
def _usage_event_prefix(model: str) -> bytes:
    return b"data: " + _dumps({**_head(model), "choices": [], "usage": None})[: -len(b"null}")]


def _response(status: int, body: bytes) -> bytes:
    return b"HTTP/1.1 %d %b\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%b" % (
        status,
        STATUS_TEXT[status].encode(),
        len(body),
        body,
    )


def _error(status: int, message: str) -> bytes:
    """An error in OpenAI's shape, which the client's error reader takes the message from."""
    return _response(status, _dumps({"error": {"message": message, "type": "invalid_request_error", "code": status}}))


@functools.cache
def _models(model: str) -> bytes:
    return _response(200, _dumps({"object": "list", "data": [{"id": model, "object": "model"}]}))


# -- one connection ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Request:
    method: bytes
    path: bytes
    body: bytes
    close: bool


class _Connection(asyncio.Protocol):
    """One keep-alive connection: requests answered in order, one at a time."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._pending: deque[memoryview] = deque()
        """What is left of the answer being written, while the transport has asked for a pause."""
        self._paced: asyncio.Task[None] | None = None
        self._paused = False
        self._resumed: asyncio.Future[None] | None = None
        self._reading = True
        self._closing = False

    # -- asyncio.Protocol -------------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop sets TCP_NODELAY on it, so a paced event is not held back until the previous one is acknowledged.
        self._transport = cast(asyncio.Transport, transport)  # a TCP server's: a stream transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._serve()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._pending.clear()
        if self._paced is not None:
            self._paced.cancel()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)
        self._flush()
        self._serve()

    # -- requests -----------------------------------------------------------------------------------------------------
    @property
    def _busy(self) -> bool:
        return bool(self._pending) or self._paced is not None or self._closing

    def _serve(self) -> None:
        """Answer every complete request in the buffer, unless an answer is still on its way; while one is,
        reading stops, so a client that sends ahead cannot fill this process's memory."""
        assert self._transport is not None
        while not self._busy and (request := self._next_request()) is not None:
            self._answer(request)
        if self._busy == self._reading and not self._closing:
            self._reading = not self._busy
            (self._transport.resume_reading if self._reading else self._transport.pause_reading)()

    def _next_request(self) -> _Request | None:
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                self._refuse(431, "request headers longer than 64 KiB")
            return None
        lines = bytes(buffer[:end]).split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            self._refuse(400, "not an HTTP/1.x request")
            return None
        method, target, version = parts
        length, close = 0, version == b"HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length" and value.strip().isdigit():
                length = int(value)
            elif name == b"content-length":
                self._refuse(400, "a Content-Length that is not a number")
                return None
            elif name == b"connection":
                close = b"close" in value.lower() or (close and b"keep-alive" not in value.lower())
            elif name == b"transfer-encoding":  # no client of this server sends a chunked request
                self._refuse(501, "chunked request bodies are not supported: send a Content-Length")
                return None
        if length > MAX_BODY_BYTES:
            self._refuse(413, "request body larger than 64 MiB")
            return None
        start = end + 4
        if len(buffer) < start + length:
            return None
        body = bytes(buffer[start : start + length])
        del buffer[: start + length]
        return _Request(method, target.partition(b"?")[0], body, close)

    def _refuse(self, status: int, message: str) -> None:
        """A request this server cannot read: what follows it in the connection cannot be read either."""
        self._buffer.clear()
        self._closing = True
        self._write([_error(status, message)])

    def _answer(self, request: _Request) -> None:
        if request.method == b"POST" and request.path == b"/v1/completions":
            self._complete(request.body)
        elif request.method == b"GET" and request.path == b"/v1/models":
            self._write([_models(self._settings.model)])
        else:
            self._write([_error(404, f"no route {request.method.decode()} {request.path.decode()}")])
        if request.close:
            self._closing = True
            self._flush()

    def _complete(self, raw: bytes) -> None:
        settings = self._settings
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._write([_error(400, "the request body must be a JSON object")])
            return
        if body.get("model") != settings.model:
            self._write([_error(404, f"The model `{body.get('model')}` does not exist.")])
            return
        max_tokens, prompt = body.get("max_tokens", DEFAULT_MAX_TOKENS), body.get("prompt")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            self._write([_error(400, "max_tokens must be a positive integer")])
            return
        if not isinstance(prompt, list):  # its ids are not checked one by one: only their count is used
            self._write([_error(400, "prompt must be a list of token ids")])
            return
        count = min(max_tokens, settings.tokens or max_tokens)
        finish_reason = "length" if count == max_tokens else "stop"
        with_ids = body.get("return_token_ids") is True
        usage = _usage(len(prompt), count)
        if body.get("stream") is not True:
            whole = _whole_prefix(settings.model, count, finish_reason, with_ids) + usage + b"}"
            self._write([_response(200, whole)])
            return
        options = body.get("stream_options")
        usage_event = (
            _chunk(_usage_event_prefix(settings.model) + usage + b"}\n\n")
            if isinstance(options, dict) and options.get("include_usage") is True
            else b""
        )
        tail = usage_event + DONE
        if settings.interval > 0:
            events = _stream_events(settings.model, count, finish_reason, with_ids)
            writes = [STREAM_HEAD + events[0], *events[1:]]
            writes[-1] += tail
            self._paced = asyncio.get_running_loop().create_task(self._pace(writes))
        else:
            self._write([_stream_body(settings.model, count, finish_reason, with_ids), tail])

    # -- writing ----------------------------------------------------------------------------------------------------
    def _write(self, pieces: list[bytes]) -> None:
        self._pending.extend(map(memoryview, pieces))
        self._flush()

    def _flush(self) -> None:
        """Hand what is pending to the transport, WRITE_BYTES at a time, until it asks for a pause; several
        small pieces go in one call (one system call)."""
        assert self._transport is not None
        pending = self._pending
        while pending and not self._paused:
            batch: list[memoryview] = []
            room = WRITE_BYTES
            while pending and room > 0:
                piece = pending.popleft()
                if len(piece) > room:
                    pending.appendleft(piece[room:])
                    piece = piece[:room]
                batch.append(piece)
                room -= len(piece)
            self._transport.writelines(batch)
        if not pending and self._closing and self._paced is None:
            self._transport.close()

    async def _pace(self, writes: list[bytes]) -> None:
        assert self._transport is not None
        loop = asyncio.get_running_loop()
        for k, piece in enumerate(writes):
            if k:
                await asyncio.sleep(self._settings.interval)
            while self._paused:
                self._resumed = loop.create_future()
                await self._resumed
            self._transport.write(piece)
        self._paced = None
        self._flush()  # closes the connection, if it was to close after this answer
        self._serve()


# -- a server process ------------------------------------------------------------------------------------------------
def _listening_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    return sock


async def _serve_ports(ports: Sequence[int], settings: Settings) -> None:
    """Listen on `ports` until stdin ends: the parent closed it, or died."""
    loop = asyncio.get_running_loop()
    servers = [
        await loop.create_server(
            functools.partial(_Connection, settings), sock=_listening_socket(port), backlog=BACKLOG
        )
        for port in ports
    ]
    parent_gone = loop.create_future()

    def read_stdin() -> None:
        if not os.read(0, 4096):
            loop.remove_reader(0)
            parent_gone.set_result(None)

    loop.add_reader(0, read_stdin)
    os.write(1, READY)
    await parent_gone
    for server in servers:
        server.close()


# -- starting and ending the processes ---------------------------------------------------------------------------
def _shares(ports: Sequence[int], processes: int) -> list[list[int]]:
    """The ports each process serves: one each, several ports a process when there are more ports than
    processes, several processes a port (SO_REUSEPORT spreads its connections) when fewer."""
    if len(ports) >= processes:
        return [list(ports[k::processes]) for k in range(processes)]
    return [[ports[k % len(ports)]] for k in range(processes)]


def _reserve(port: int) -> socket.socket:
    """The port (0: a free one) held for the processes while they run: bound, not listening, so no connection
    goes to it. Bound before SO_REUSEPORT is set, so that a port any socket holds, even a forgotten token
    server's (which processes here would share it with), is refused; then set, so that the processes bind."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"token server: cannot have port {port} on 127.0.0.1: {exc}") from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


@contextlib.contextmanager
def serve(
    *,
    endpoints: int = 1,
    processes: int | None = None,
    ports: Sequence[int] | None = None,
    base_port: int = 0,
    tokens: int | None = None,
    interval_ms: float = 0.0,
    model: str = MODEL,
    start_timeout: float = START_TIMEOUT,
) -> Iterator[list[str]]:
    """Token-server processes on 127.0.0.1; yields the endpoints' URLs once every process listens and every
    endpoint answers `GET /v1/models`, and ends every process on exit.

    Ports: `ports`, else `endpoints` ports from `base_port`, else (base_port 0) `endpoints` free ports; each
    must be free. `processes` defaults to one per endpoint. A start that fails or takes longer than
    `start_timeout` seconds raises RuntimeError, with nothing left running."""
    settings = Settings(model, tokens, interval_ms / 1000)
    with _processes(endpoints, processes, ports, base_port, settings, start_timeout) as (urls, _):
        yield urls


@contextlib.contextmanager
def _processes(
    endpoints: int,
    processes: int | None,
    ports: Sequence[int] | None,
    base_port: int,
    settings: Settings,
    start_timeout: float,
) -> Iterator[tuple[list[str], list[int]]]:
    """`serve`'s processes: their URLs and their process ids."""
    with contextlib.ExitStack() as stack:
        if ports is None:
            ports = range(base_port, base_port + endpoints) if base_port else [0] * endpoints
        reserved = [stack.enter_context(_reserve(port)) for port in ports]
        ports = [sock.getsockname()[1] for sock in reserved]
        if (
            not ports
            or (processes is not None and processes < 1)
            or (settings.tokens is not None and settings.tokens < 1)
        ):
            raise ValueError("a token server needs at least one port, one process and one token an answer")
        options = ["--model", settings.model, "--interval-ms", str(settings.interval * 1000)]
        if settings.tokens is not None:
            options += ["--tokens", str(settings.tokens)]
        children: dict[subprocess.Popen[bytes], list[int]] = {}
        stack.callback(_stop, children)
        for share in _shares(ports, processes or len(ports)):
            command = [sys.executable, __file__, "--serve-ports", ",".join(map(str, share)), *options]
            # Its own session: a Ctrl-C in the terminal reaches only this process, which then ends them in order.
            child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
            children[child] = share
        deadline = time.monotonic() + start_timeout
        _wait_ready(children, deadline)
        for port in ports:
            _check_models(port, settings.model, deadline)
        yield [f"http://127.0.0.1:{port}" for port in ports], [child.pid for child in children]


def _wait_ready(children: dict[subprocess.Popen[bytes], list[int]], deadline: float) -> None:
    with selectors.DefaultSelector() as selector:
        for child in children:
            assert child.stdout is not None
            selector.register(child.stdout, selectors.EVENT_READ, child)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                waiting = [children[key.data] for key in selector.get_map().values()]
                raise RuntimeError(f"token server processes for ports {waiting} not listening after the start timeout")
            for key, _ in selector.select(left):
                child = key.data
                assert child.stdout is not None
                if child.stdout.read1(len(READY)) != READY:  # the end of its stdout: it ended
                    raise RuntimeError(
                        f"token server process for ports {children[child]} ended before it listened "
                        f"(exit code {child.wait(STOP_TIMEOUT)}): see its stderr"
                    )
                selector.unregister(child.stdout)


def _check_models(port: int, model: str, deadline: float) -> None:
    # http.client, not urllib: a proxy from the environment must not stand between this and 127.0.0.1.
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=max(0.1, deadline - time.monotonic()))
    try:
        connection.request("GET", "/v1/models")
        response = connection.getresponse()
        listing = json.loads(response.read())
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"token server on port {port}: no answer to GET /v1/models ({exc})") from None
    finally:
        connection.close()
    if response.status != 200 or listing["data"][0]["id"] != model:
        raise RuntimeError(f"token server on port {port}: GET /v1/models answered {response.status} {listing}")


def _stop(children: dict[subprocess.Popen[bytes], list[int]]) -> None:
    """End the processes: closing stdin asks each to stop, SIGTERM then SIGKILL make those still up."""
    for child in children:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.close()
        child.stdout.close()
    for ask in (None, subprocess.Popen.terminate, subprocess.Popen.kill):
        deadline = time.monotonic() + STOP_TIMEOUT / 2
        for child in children:
            if ask is not None and child.poll() is None:
                ask(child)
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(max(0.0, deadline - time.monotonic()))
        if all(child.returncode is not None for child in children):
            return
    raise RuntimeError(f"token server processes {[child.pid for child in children]} did not end after SIGKILL")


# -- how many events one process writes --------------------------------------------------------------------------
END = b"0\r\n\r\n"
"""The last bytes of a streamed answer: no event's chunk ends with them."""


class _Reader(asyncio.Protocol):
    """A load client's connection: sends the same streamed request again as soon as an answer has ended,
    and reads nothing but where the answer ends, so that it costs far less per event than a real client."""

    def __init__(self, request: bytes, answers: list[int]) -> None:
        self._request = request
        self._answers = answers
        self._tail = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # create_connection's: a stream transport
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        self._tail = (self._tail + data[-len(END) :])[-len(END) :]
        if self._tail == END:
            assert self._transport is not None
            self._answers[0] += 1
            self._transport.write(self._request)


async def _load(port: int, connections: int, tokens: int, seconds: float, server_pid: int) -> dict[str, float]:
    body = _dumps(
        {
            "model": MODEL,
            "prompt": token_ids(1000),  # a long prompt, as a benchmark's: its JSON is most of a request's cost
            "max_tokens": tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
            "return_token_ids": True,
        }
    )
    request = b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
    loop = asyncio.get_running_loop()
    answers = [0]
    transports = [
        (await loop.create_connection(lambda: _Reader(request, answers), "127.0.0.1", port))[0]
        for _ in range(connections)
    ]
    await asyncio.sleep(min(1.0, seconds / 4))  # past the connections' start and the caches' first fill
    start = (time.monotonic(), answers[0], _cpu_seconds(server_pid), time.process_time())
    await asyncio.sleep(seconds)
    end = (time.monotonic(), answers[0], _cpu_seconds(server_pid), time.process_time())
    for transport in transports:
        transport.close()
    wall = end[0] - start[0]
    events = (end[1] - start[1]) * tokens
    return {
        "events_per_s": events / wall,
        "answers_per_s": (end[1] - start[1]) / wall,
        "server_cpu": (end[2] - start[2]) / wall,
        "client_cpu": (end[3] - start[3]) / wall,
        "events_per_server_cpu_s": events / max(end[2] - start[2], 1e-9),
    }


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux's /proc: utime and stime, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(seconds: float, connections: int, tokens: int) -> dict[str, float]:
    """Streams through one server process from `connections` connections at once for `seconds`; prints and
    returns events/s, and events per CPU-second of the server process (what it writes when the client is
    not the limit: its ceiling on one core)."""
    with _processes(1, 1, None, 0, Settings(tokens=tokens), START_TIMEOUT) as (urls, (pid,)):
        port = int(urls[0].rsplit(":", 1)[1])
        result: dict[str, float] = uvloop.run(_load(port, connections, tokens, seconds, pid))
    print(
        f"one token-server process, {connections} connections, {tokens}-token streams, {seconds:g} s:\n"
        f"  {result['events_per_s']:,.0f} events/s ({result['answers_per_s']:,.0f} answers/s); "
        f"server CPU {result['server_cpu']:.0%} of a core, load client's {result['client_cpu']:.0%}\n"
        f"  {result['events_per_server_cpu_s']:,.0f} events per CPU-second of the server process"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="An OpenAI-compatible token server for client benchmarks.")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--ports", help="comma-separated ports, one endpoint each")
    where.add_argument("--base-port", type=int, default=0, help="first of --endpoints ports (default: free ports)")
    parser.add_argument("--endpoints", type=int, default=1)
    parser.add_argument("--processes", type=int, help="server processes (default: one per endpoint)")
    parser.add_argument("--tokens", type=int, help="most tokens an answer has, whatever max_tokens asks")
    parser.add_argument("--interval-ms", type=float, default=0.0, help="between a stream's events (default: none)")
    parser.add_argument("--model", default=MODEL, help="the served model name")
    parser.add_argument("--measure", type=float, metavar="SECONDS", help="measure one process's events/s, then end")
    parser.add_argument("--connections", type=int, default=64, help="--measure's connections")
    parser.add_argument("--serve-ports", help=argparse.SUPPRESS)  # what serve() starts each process with
    args = parser.parse_args()
    if args.serve_ports:
        share = [int(port) for port in args.serve_ports.split(",")]
        uvloop.run(_serve_ports(share, Settings(args.model, args.tokens, args.interval_ms / 1000)))
        return
    if args.measure:
        measure(args.measure, args.connections, args.tokens or 128)
        return
    ports = [int(port) for port in args.ports.split(",")] if args.ports else None
    with serve(
        endpoints=args.endpoints,
        processes=args.processes,
        ports=ports,
        base_port=args.base_port,
        tokens=args.tokens,
        interval_ms=args.interval_ms,
        model=args.model,
    ) as urls:
        print(f"token server: {args.processes or len(urls)} processes, model {args.model!r}; Ctrl-C ends it")
        print("\n".join(urls), flush=True)
        # Blocked, so that the signal ends the wait here and the processes are then ended in order.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})


if __name__ == "__main__":
    main()
