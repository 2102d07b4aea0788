"""A lean HTTP/1.1 client for generation requests: chunked bodies and server-sent events read in one pass.

Why not httpx for these: profiled on a streamed Server run (`scripts/bench_sse_client.py --profile`),
nearly all of the client's CPU went to httpx's layers for each event (httpcore, h11, anyio's cancel
scopes, an async generator per layer, a socket read and a task wake-up per event), not to reading the
events. Here an `asyncio.Protocol` frames the response as bytes arrive and hands each event's data to a
callback in the same call: no task switch, no object per event but the payload string. httpx still does
everything else (start-up checks, health probes), where a request costs nothing that matters.

What it does not do, on purpose: proxies (a benchmark measures the server, not a proxy in front of it),
redirects, compression (it asks for none) and HTTP/2.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

MAX_HEAD_BYTES = 64 * 1024


class ConnectFailed(Exception):
    """No connection to the server (refused, unreachable, TLS handshake failed)."""


class ConnectionBroke(Exception):
    """The connection closed or broke before the answer was complete."""


class BadResponse(Exception):
    """Bytes that are not an HTTP/1.1 response."""


OnEvent = Callable[[str], bool]
"""Called with each server-sent event's data; returns True at the protocol's end marker, after which the rest
of the body is read but not passed on. What it raises ends the exchange with that error."""


@dataclass(frozen=True)
class Target:
    """Where requests go: an endpoint URL taken apart once."""

    host: str
    port: int
    tls: ssl.SSLContext | None
    prefix: str
    """The URL's path, which request paths are appended to (a KServe route may have one)."""
    head: bytes
    """Request headers every request carries (Host, authorization), ready to write."""

    @classmethod
    def of(cls, url: str, *, tls: ssl.SSLContext | None, token: str | None) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname
        lines = [f"Host: {host}:{port}" if parts.port else f"Host: {host}"]
        if token:
            lines.append(f"Authorization: Bearer {token}")
        elif parts.username:  # user:password in the URL is Basic auth
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            lines.append(f"Authorization: Basic {base64.b64encode(pair.encode()).decode()}")
        lines += ["Accept: */*", "Content-Type: application/json", "User-Agent: mlperf-llm-sut"]
        context = (tls or ssl.create_default_context()) if parts.scheme == "https" else None
        head = "".join(f"{line}\r\n" for line in lines).encode("latin-1")
        return cls(host, port, context, parts.path.rstrip("/"), head)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    """Lower-case names."""


@dataclass
class _Framing:
    chunked: bool = False
    length: int | None = None
    """Content-Length; None with `chunked` False means the body ends when the connection closes."""
    keep_alive: bool = True
    received: int = 0


class Connection(asyncio.Protocol):
    """One keep-alive connection, one exchange at a time; parses the response as its bytes arrive."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._state = "idle"  # idle, head, body, done
        self._framing = _Framing()
        self._chunk_left = 0
        """Bytes of the current chunk still to read (chunked bodies); -1: at a chunk-size line."""
        self._head: asyncio.Future[Response] | None = None
        self._end: asyncio.Future[bytes] | None = None
        self._on_event: OnEvent | None = None
        self._ended = False
        """The end marker came: the rest of the body is read, not passed on."""
        self._events = bytearray()
        self._body = bytearray()
        self.closed = False
        self.received_any = False
        """Whether any byte of the current exchange's answer came: before that, it may be sent again."""

    # -- asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # a stream transport: create_connection's

    def data_received(self, data: bytes) -> None:
        if self._state in ("idle", "done"):  # bytes no request asked for: this connection is not to be trusted
            self.close()
            return
        self.received_any = True
        self._buffer += data
        try:
            if self._state == "head":
                self._read_head()
            if self._state == "body":
                self._read_body()
        except Exception as exc:  # a bad response, or what the event callback raised
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._state == "body" and not self._framing.chunked and self._framing.length is None:
            self._finish()  # a body delimited by the connection's end
            return
        if self._state in ("head", "body"):
            why = f": {exc}" if exc else ""
            self._fail(ConnectionBroke(f"the server closed the connection before the answer was complete{why}"))

    # -- one exchange -------------------------------------------------------------------------------
    def send(self, request: bytes) -> asyncio.Future[Response]:
        assert self._transport is not None and self._state in ("idle", "done")
        loop = asyncio.get_running_loop()
        self._head, self._end = loop.create_future(), loop.create_future()
        self._state, self._framing, self._on_event, self._ended = "head", _Framing(), None, False
        self._events.clear()
        self._body.clear()
        self.received_any = False
        self._transport.write(request)
        return self._head

    def body(self, on_event: OnEvent | None) -> asyncio.Future[bytes]:
        """The rest of the body: whole (`on_event` None), or each event to `on_event` as it comes."""
        assert self._end is not None
        self._on_event = on_event
        if on_event is not None and self._body:  # what came with the head
            pending, self._body = bytes(self._body), bytearray()
            self._feed(pending)
        return self._end

    @property
    def reusable(self) -> bool:
        return self._state == "done" and self._framing.keep_alive and not self.closed

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    # -- parsing ----------------------------------------------------------------------------------
    def _read_head(self) -> None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise BadResponse("response headers longer than 64 KiB")
            return
        lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        version, _, rest = lines[0].partition(" ")
        if not version.startswith("HTTP/1."):
            raise BadResponse(f"not an HTTP/1.x response: {lines[0][:80]!r}")
        status = int(rest[:3])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        framing = self._framing
        framing.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if not framing.chunked and "content-length" in headers:
            framing.length = int(headers["content-length"])
        connection = headers.get("connection", "").lower()
        framing.keep_alive = "close" not in connection and version != "HTTP/1.0"
        if not framing.chunked and framing.length is None:
            framing.keep_alive = False
        self._chunk_left = -1
        self._state = "body"
        assert self._head is not None
        if not self._head.done():
            self._head.set_result(Response(status, headers))

    def _read_body(self) -> None:
        framing, buffer = self._framing, self._buffer
        if not framing.chunked:
            data = bytes(buffer)
            buffer.clear()
            if framing.length is not None:
                data = data[: framing.length - framing.received]
            framing.received += len(data)
            self._feed(data)
            if framing.length is not None and framing.received >= framing.length:
                self._finish()
            return
        position = 0
        while True:
            if self._chunk_left < 0:  # a size line, or the end of the body
                eol = buffer.find(b"\r\n", position)
                if eol < 0:
                    break
                size = int(bytes(buffer[position:eol]).split(b";", 1)[0], 16)
                if size == 0:
                    # Trailers, if any, end with an empty line: the body is complete once that is here.
                    if buffer.find(b"\r\n\r\n", eol) < 0:
                        break
                    buffer.clear()
                    self._finish()
                    return
                self._chunk_left = size
                position = eol + 2
            if len(buffer) - position < self._chunk_left + 2:
                break
            end = position + self._chunk_left
            self._feed(bytes(buffer[position:end]))
            position, self._chunk_left = end + 2, -1
        del buffer[:position]

    def _feed(self, data: bytes) -> None:
        if self._on_event is None:
            self._body += data
            return
        events = self._events
        if events:
            events += data
            data = bytes(events)
            events.clear()
        last = data.rfind(b"\n")
        if last < 0:
            events += data
            return
        if last + 1 < len(data):
            events += data[last + 1 :]
        if self._ended:
            return
        for line in data[:last].split(b"\n"):
            # SSE: only `data:` lines carry anything here (comments, `event:` lines and blank separators not).
            if line.startswith(b"data:") and self._on_event(line[5:].strip().decode()):
                self._ended = True
                return

    def _finish(self) -> None:
        self._state = "done"
        if self._end is not None and not self._end.done():
            self._end.set_result(bytes(self._body))

    def _fail(self, exc: Exception) -> None:
        self._state = "failed"
        for future in (self._head, self._end):
            if future is not None and not future.done():
                future.set_exception(exc)
        self.close()


@dataclass
class Pool:
    """Keep-alive connections to one `Target`, as many as requests are in flight at once."""

    target: Target
    connect_timeout: float
    _idle: list[Connection] = field(default_factory=list)

    async def exchange(self, path: str, body: bytes) -> tuple[Connection, Response]:
        """Send a POST; returns once the response's head is here, with the connection to read the body from
        (`Connection.body`) and to give back (`release`)."""
        request = (
            f"POST {self.target.prefix}{path} HTTP/1.1\r\nContent-Length: {len(body)}\r\n".encode("latin-1")
            + self.target.head
            + b"\r\n"
            + body
        )
        while self._idle:
            connection = self._idle.pop()
            if connection.closed:
                continue
            try:
                return connection, await connection.send(request)
            except ConnectionBroke:
                # The server closed an idle connection as this request went out (a keep-alive timeout): it
                # never saw the request, so a new connection sends it again.
                if connection.received_any:
                    raise
        connection = await self._connect()
        return connection, await connection.send(request)

    def release(self, connection: Connection) -> None:
        if connection.reusable:
            self._idle.append(connection)
        else:
            connection.close()

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()

    async def _connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        target = self.target
        try:
            async with asyncio.timeout(self.connect_timeout):
                transport, connection = await loop.create_connection(
                    Connection,
                    target.host,
                    target.port,
                    ssl=target.tls,
                    server_hostname=target.host if target.tls else None,
                )
        except TimeoutError:
            raise ConnectFailed(f"timed out connecting to {target.host}:{target.port}") from None
        except OSError as exc:  # refused, unreachable, and ssl.SSLError (a certificate not trusted)
            raise ConnectFailed(f"{target.host}:{target.port}: {exc}") from None
        # uvloop may return before it has called connection_made.
        connection.connection_made(transport)
        return connection
